"""The Series container: regular dates by construction, future dates per frequency."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.modalities.timeseries.series import Series, date_range


def weekly(n: int, start: str = "2020-01-05") -> Series:
    return Series("s", date_range(np.datetime64(start), n, "W"), np.arange(n, dtype=float), "W")


def test_dates_and_values_are_normalised_and_future_dates_follow_the_frequency():
    s = Series("a", ["2020-01-05", "2020-01-12"], [1, np.nan], "W", source="x.csv")
    assert s.dates.dtype == np.dtype("datetime64[D]") and s.values.dtype == np.float64
    assert len(s) == 2 and s.n_observed == 1 and s.season == 52
    assert s.future_dates(2).astype(str).tolist() == ["2020-01-19", "2020-01-26"]
    daily = Series("d", date_range(np.datetime64("2020-02-28"), 2, "D"), [1, 2], "D")
    assert daily.future_dates(2).astype(str).tolist() == ["2020-03-01", "2020-03-02"]
    yearly = Series("y", ["1999-01-01", "2000-01-01"], [1, 2], "Y")
    assert yearly.future_dates(1).astype(str).tolist() == ["2001-01-01"] and yearly.season == 1


@pytest.mark.parametrize("dates", [["2020-01-05", "2020-01-19"],   # a gap
                                   ["2020-01-12", "2020-01-05"],   # backwards
                                   ["2020-01-05", "2020-01-05"]])  # duplicate
def test_irregular_dates_are_rejected(dates):
    with pytest.raises(ValueError, match="one week apart"):
        Series("a", dates, [1.0, 2.0], "W")


def test_unknown_frequency_and_shape_mismatch_are_rejected():
    with pytest.raises(ValueError, match="freq"):
        Series("a", ["2020-01-05"], [1.0], "Q")
    with pytest.raises(ValueError, match="equal length"):
        Series("a", ["2020-01-05"], [1.0, 2.0], "W")


def test_head_keeps_the_first_periods_and_covariates():
    s = weekly(10)
    s = Series(s.id, s.dates, s.values, "W", covariates={"temp": np.arange(10.0) * 2})
    h = s.head(4)
    assert h.values.tolist() == [0, 1, 2, 3] and h.covariates["temp"].tolist() == [0, 2, 4, 6]


def test_monthly_series_step_calendar_months_from_month_starts_or_month_ends():
    starts = date_range(np.datetime64("2019-11-01"), 4, "M")
    assert starts.astype(str).tolist() == ["2019-11-01", "2019-12-01", "2020-01-01", "2020-02-01"]
    ends = date_range(np.datetime64("2019-12-31"), 3, "M")
    assert ends.astype(str).tolist() == ["2019-12-31", "2020-01-31", "2020-02-29"]
    s = Series("m", ends, [1.0, 2.0, 3.0], "M")
    assert s.season == 12 and s.future_dates(2).astype(str).tolist() == ["2020-03-31",
                                                                         "2020-04-30"]
    with pytest.raises(ValueError, match="first or the last day of their month"):
        Series("m", ["2020-01-15", "2020-02-15"], [1.0, 2.0], "M")
    with pytest.raises(ValueError, match="one month apart"):
        Series("m", ["2020-01-01", "2020-03-01"], [1.0, 2.0], "M")
