"""Baselines: point forecasts by hand, empirical / Gaussian quantiles, fall-backs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from biofm.modalities.timeseries.baselines import Arima, Ets, LastValue, SeasonalNaive
from biofm.modalities.timeseries.corpora import load_corpus
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES, median_index

MID = median_index(FLUSIGHT_QUANTILES)


def assert_valid(q: np.ndarray, horizon: int) -> None:
    assert q.shape == (horizon, 23) and np.all(np.isfinite(q))
    assert np.all(np.diff(q, axis=1) >= 0)


def test_last_value_repeats_the_last_observation_with_empirical_spread():
    history = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0])
    q = LastValue().forecast(history, 2, FLUSIGHT_QUANTILES)
    assert_valid(q, 2)
    assert q[:, MID].tolist() == [6.0, 6.0]
    one_step = np.diff(history)  # 1-step changes: +2, -1, +2, -1, +2, -1, +2
    symmetric = np.concatenate([one_step, -one_step])
    assert q[0, -1] == pytest.approx(6.0 + np.quantile(symmetric, 0.99))
    assert q[0, 0] == pytest.approx(6.0 + np.quantile(symmetric, 0.01))
    assert (q[1, 0], q[1, -1]) == (5.0, 7.0)  # every 2-step change is +1 (and -1 mirrored)


def test_last_value_spread_counts_the_missing_values_at_the_end():
    # a line y = t, then 3 missing values: the target of horizon h is h + 3 steps
    # after the last observation (19), and every (h + 3)-step change is h + 3
    history = np.concatenate([np.arange(20.0), [np.nan] * 3])
    q = LastValue().forecast(history, 4, FLUSIGHT_QUANTILES)
    assert_valid(q, 4)
    assert q[:, MID].tolist() == [19.0] * 4
    gaps = np.arange(1, 5) + 3
    np.testing.assert_allclose(q[:, -1], 19.0 + gaps)
    np.testing.assert_allclose(q[:, 0], 19.0 - gaps)
    # without the missing run the gap is h
    q = LastValue().forecast(history[:20], 4, FLUSIGHT_QUANTILES)
    np.testing.assert_allclose(q[:, -1], 19.0 + np.arange(1, 5))


def test_seasonal_naive_spread_is_over_the_seasons_back():
    # y = t with period 4: the value a season back is 4 below the target, two seasons 8
    history = np.arange(30.0)
    q = SeasonalNaive(period=4).forecast(history, 6, FLUSIGHT_QUANTILES)
    assert q[:, MID].tolist() == [26.0, 27.0, 28.0, 29.0, 26.0, 27.0]
    np.testing.assert_allclose(q[:, -1] - q[:, MID], [4, 4, 4, 4, 8, 8])
    # a seasonal value that is missing falls back to last value, with its gap
    gappy = np.concatenate([np.arange(20.0), [np.nan] * 4])
    np.testing.assert_array_equal(SeasonalNaive(period=4).forecast(gappy, 2, FLUSIGHT_QUANTILES),
                                  LastValue().forecast(gappy, 2, FLUSIGHT_QUANTILES))


def test_too_short_a_history_gives_a_point_forecast_and_none_raises():
    q = LastValue().forecast(np.array([np.nan, 7.0]), 2, FLUSIGHT_QUANTILES)
    assert np.all(q == 7.0)
    with pytest.raises(ValueError, match="at least one observed"):
        LastValue().forecast(np.array([np.nan]), 1, FLUSIGHT_QUANTILES)


def test_negative_histories_are_not_clipped_at_zero():
    history = np.array([-5.0, -3.0, -6.0, -2.0, -7.0, -4.0, -1.0])
    assert LastValue().forecast(history, 1, FLUSIGHT_QUANTILES)[0, 0] < -1.0


def test_seasonal_naive_takes_the_value_one_season_back():
    history = np.arange(20, dtype=float) % 7 * 10  # period 7, 20 values
    q = SeasonalNaive(period=7).forecast(history, 9, FLUSIGHT_QUANTILES)
    assert_valid(q, 9)
    expected = [history[19 + h - 7 * ((h + 6) // 7)] for h in range(1, 10)]
    assert q[:, MID].tolist() == expected
    assert np.all(q[:, 0] == q[:, -1])  # a perfectly seasonal past has no seasonal error


def test_seasonal_naive_falls_back_to_last_value_on_a_short_history():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(SeasonalNaive(period=52).forecast(history, 4, FLUSIGHT_QUANTILES),
                                  LastValue().forecast(history, 4, FLUSIGHT_QUANTILES))


@pytest.mark.parametrize("model", [Arima, Ets])
def test_statsmodels_baselines_on_a_real_ili_series(model):
    history = load_corpus("flu-boston")[3].values[:250]  # Dorchester, with its real gaps
    forecaster = model()
    with warnings.catch_warnings(record=True) as caught:  # no convergence chatter for users
        warnings.simplefilter("always")
        q = forecaster.forecast(history, 4, FLUSIGHT_QUANTILES)
    assert not [w for w in caught if "statsmodels" in w.filename], [str(w.message) for w in caught]
    assert_valid(q, 4)
    assert forecaster.failures == []
    width = q[:, -1] - q[:, 0]
    assert np.all(np.diff(width) >= -1e-9)  # uncertainty grows with the horizon
    assert 0 <= q[0, MID] < 2 * np.nanmax(history)


def test_a_failed_fit_falls_back_to_last_value_and_is_recorded(monkeypatch):
    forecaster = Arima()

    def broken(history, horizon):
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(forecaster, "_mean_and_se", broken)
    history = np.linspace(1, 30, 30)
    q = forecaster.forecast(history, 2, FLUSIGHT_QUANTILES)
    np.testing.assert_array_equal(q, LastValue().forecast(history, 2, FLUSIGHT_QUANTILES))
    assert forecaster.failures == ["LinAlgError: singular"]
    Ets().forecast(history[:3], 1, FLUSIGHT_QUANTILES)  # too short to fit: falls back too


@pytest.mark.parametrize("model", [Arima, Ets])
def test_monthly_arima_and_ets_are_seasonal_given_two_seasons(model):
    """A clean yearly cycle of months: with period 12 the fit follows it, without it
    (or with under two seasons of history, where the period is ignored) it cannot."""
    t = np.arange(48)
    history = 100 + 40 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 1, 48)
    truth = 100 + 40 * np.sin(2 * np.pi * np.arange(48, 54) / 12)
    errors = {}
    for period in (12, None):
        forecaster = model(period=period)
        q = forecaster.forecast(history, 6, FLUSIGHT_QUANTILES)
        assert_valid(q, 6)
        assert not forecaster.failures
        errors[period] = np.abs(q[:, MID] - truth).mean()
    assert errors[12] < 5 < errors[None]
    short = history[:23]  # under two seasons: the non-seasonal model, exactly
    np.testing.assert_array_equal(model(period=12).forecast(short, 3, FLUSIGHT_QUANTILES),
                                  model().forecast(short, 3, FLUSIGHT_QUANTILES))


def test_the_forecast_baselines_take_the_season_of_the_series_frequency():
    from biofm.modalities.timeseries.forecast import baselines_for
    from biofm.modalities.timeseries.series import Series, date_range

    def periods(freq: str) -> list:
        series = Series("s", date_range(np.datetime64("2020-01-01"), 3, freq), [1.0] * 3, freq)
        return [getattr(b, "period", None) for b in baselines_for([series])]

    assert periods("M") == [12, None, 12, 12]  # seasonal naive, last value, ARIMA, ETS
    assert periods("W") == [52, None, None, None]  # 52-week seasonal fits: too slow, too few
    assert periods("D") == [7, None, None, None]
