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
    history = np.array([1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0, np.nan])
    q = LastValue().forecast(history, 3, FLUSIGHT_QUANTILES)
    assert_valid(q, 3)
    assert q[:, MID].tolist() == [6.0, 6.0, 6.0]  # the NaN at the end is skipped
    one_step = np.diff(history[:-1])  # 1-step changes: +2, -1, +2, -1, +2, -1, +2
    symmetric = np.concatenate([one_step, -one_step])
    assert q[0, -1] == pytest.approx(6.0 + np.quantile(symmetric, 0.99))
    assert q[0, 0] == pytest.approx(6.0 + np.quantile(symmetric, 0.01))
    assert (q[1, 0], q[1, -1]) == (5.0, 7.0)  # every 2-step change is +1 (and -1 mirrored)


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
