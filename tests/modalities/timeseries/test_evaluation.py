"""Rolling-origin evaluation: strict temporal splits (no leakage), scores, summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rich.console import Console

from biofm.errors import BiofmError
from biofm.modalities.timeseries import evaluation
from biofm.modalities.timeseries.baselines import Arima, Ets, LastValue, SeasonalNaive
from biofm.modalities.timeseries.corpora import load_corpus
from biofm.modalities.timeseries.evaluation import choose_origins, rolling_origin
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.series import Series, date_range
from tests.modalities.timeseries.leakage import assert_no_leakage


def seasonal_series(n: int = 80, period: int = 7, seed: int = 0) -> Series:
    """Generated (not real) data for exact checks: a noisy weekly-period pattern."""
    rng = np.random.default_rng(seed)
    values = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.5, n)
    return Series("gen", date_range(np.datetime64("2021-01-01"), n, "D"), values, "D")


class Recorder:
    """Remembers every history it was shown; forecasts its last value."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def forecast(self, history, horizon, quantiles):
        self.seen.append(history.copy())
        return np.full((horizon, len(quantiles)), history[-1])


@pytest.mark.parametrize("forecaster", [LastValue(), SeasonalNaive(period=52), Arima(), Ets()],
                         ids=lambda f: f.name)
def test_no_future_value_influences_a_baseline_forecast(forecaster):
    series = load_corpus("flu-boston")[3]  # Dorchester
    assert_no_leakage(forecaster, series, origin=300)


def test_the_leakage_check_fails_when_evaluation_leaks(monkeypatch):
    def leaky(series, origin):  # one value too many: the first target
        return series.values[: origin + 2].copy()

    monkeypatch.setattr(evaluation, "history_until", leaky)
    with pytest.raises(AssertionError, match="after the origin"):
        assert_no_leakage(LastValue(), load_corpus("flu-boston")[3], origin=300)


def test_each_forecast_sees_exactly_the_past_of_its_origin():
    series, recorder = seasonal_series(), Recorder()
    result = rolling_origin([series], [recorder], horizons=(1, 2), context=20, origins=5,
                            reference="recorder")
    origins = sorted(result.rows["origin"].unique())
    assert origins == list(range(len(series) - 3 - 4, len(series) - 3 + 1))  # last: n - 1 - h
    for origin, history in zip(origins, recorder.seen):
        np.testing.assert_array_equal(history, series.values[: origin + 1])


def test_rows_scores_and_relative_wis():
    series = seasonal_series()
    result = rolling_origin([series], [SeasonalNaive(period=7), LastValue()], horizons=(1, 2, 3),
                            context=30, origins=10)
    rows = result.rows
    assert len(rows) == 10 * 3 * 2
    first = rows.iloc[0]
    assert first["y"] == series.values[first["origin"] + first["horizon"]]
    assert first["target_date"] == str(series.dates[first["origin"] + first["horizon"]])
    summary = result.summary.set_index("forecaster")
    assert summary.loc["seasonal-naive", "rel_WIS"] == 1.0
    assert summary.loc["seasonal-naive", "WIS"] < summary.loc["last-value", "WIS"]  # seasonal data
    ratio = summary.loc["last-value", "WIS"] / summary.loc["seasonal-naive", "WIS"]
    assert summary.loc["last-value", "rel_WIS"] == pytest.approx(ratio)
    assert summary.loc["last-value", "MAE"] == pytest.approx(
        rows[rows.forecaster == "last-value"]["ae"].mean())
    assert set(result.by_horizon["horizon"]) == {1, 2, 3}


def test_missing_truth_is_kept_but_not_scored():
    series = seasonal_series()
    values = series.values.copy()
    values[-1] = np.nan
    series = Series(series.id, series.dates, values, "D")
    result = rolling_origin([series], [LastValue()], horizons=(1,), context=10, origins=3,
                            reference="last-value")
    assert len(result.rows) == 3 and result.rows["wis"].isna().sum() == 1
    assert result.summary["n"].tolist() == [2]


def test_saved_tables_and_printed_table(tmp_path):
    result = rolling_origin([seasonal_series()], [SeasonalNaive(period=7), LastValue()],
                            context=30, origins=2)
    paths = result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "summary.csv",
                                                          "summary.json", "summary_by_horizon.csv"]
    payload = json.loads(paths["json"].read_text())
    assert payload["reference"] == "seasonal-naive"
    assert {r["forecaster"] for r in payload["summary"]} == {"seasonal-naive", "last-value"}
    assert result.table().row_count == 2


def test_a_series_shorter_than_context_plus_horizon_is_named():
    short = Series("tiny", date_range(np.datetime64("2020-01-05"), 20, "W"), np.ones(20), "W",
                   source="tiny.csv")
    with pytest.raises(BiofmError, match=r"tiny.csv \(tiny\).*20 periods.*context 52"):
        rolling_origin([short], [LastValue()], context=52)
    assert choose_origins(short, n_origins=3, max_horizon=4, context=10) == [13, 14, 15]


def test_an_origin_with_no_observed_past_is_named():
    values = np.r_[np.full(30, np.nan), np.arange(30.0)]
    series = Series("late", date_range(np.datetime64("2020-01-05"), 60, "W"), values, "W")
    with pytest.raises(BiofmError, match=r"'late' has no observed value up to 2020-07-26"):
        rolling_origin([series], [LastValue()], context=30, origins=[str(series.dates[29])])


def test_explicit_origin_dates_and_bad_ones():
    series = seasonal_series()
    result = rolling_origin([series], [LastValue()], horizons=(1,), context=5,
                            origins=[str(series.dates[40])], reference="last-value")
    assert result.rows["origin"].tolist() == [40]
    with pytest.raises(BiofmError, match="not a date of series"):
        rolling_origin([series], [LastValue()], origins=["1999-01-01"])


def test_a_forecaster_with_crossing_quantiles_is_caught():
    class Crossing:
        name = "crossing"

        def forecast(self, history, horizon, quantiles):
            return np.tile(np.linspace(1, 0, len(quantiles)), (horizon, 1))

    with pytest.raises(ValueError, match="non-decreasing"):
        rolling_origin([seasonal_series()], [Crossing()], context=10, origins=1)


def test_quantile_levels_follow_the_caller():
    q5 = (0.025, 0.25, 0.5, 0.75, 0.975)
    result = rolling_origin([seasonal_series()], [LastValue()], context=30, origins=2,
                            quantiles=q5, reference="last-value")
    assert result.quantiles == q5 and np.isfinite(result.rows["cov95"]).all()
    assert FLUSIGHT_QUANTILES != q5


def test_fallbacks_to_last_value_are_counted_not_passed_off_as_the_model(monkeypatch, tmp_path):
    """ARIMA's fit fails on series "b" from its last two origins (and never on "a"): the
    rows flag those forecasts, the summaries count them, the printed table says so."""
    a = seasonal_series(seed=1)
    b = Series("b", a.dates, seasonal_series(seed=2).values, "D")
    arima = Arima()
    fit = arima._mean_and_se

    def sometimes_broken(history, horizon):  # origins are 74..77: histories of 75..78 values
        if history[0] == b.values[0] and len(history) >= 77:
            raise np.linalg.LinAlgError("singular")
        return fit(history, horizon)

    monkeypatch.setattr(arima, "_mean_and_se", sometimes_broken)
    result = rolling_origin([a, b], [SeasonalNaive(period=7), arima], horizons=(1, 2),
                            context=30, origins=4)
    rows = result.rows[result.rows.forecaster == "arima"]
    flagged = rows[rows.fallback]
    assert set(flagged.series) == {"b"} and flagged.origin.nunique() == 2 and len(flagged) == 4
    assert len(arima.failures) == 2
    summary = result.summary.set_index("forecaster")
    assert summary.loc["arima", "fallbacks"] == 4 and summary.loc["arima", "fallback_series"] == 1
    assert summary.loc["seasonal-naive", "fallbacks"] == 0
    by_horizon = result.by_horizon[result.by_horizon.forecaster == "arima"]
    assert by_horizon["fallbacks"].tolist() == [2, 2]
    console = Console(record=True, width=150)
    console.print(result.table())
    text = console.export_text()
    assert "fallbacks" in text and "arima: 4 of 16 points (1 series) are last-value fallbacks" \
        in " ".join(text.split())
    result.save(tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert {r["forecaster"]: r["fallbacks"] for r in saved} == {"seasonal-naive": 0, "arima": 4}
