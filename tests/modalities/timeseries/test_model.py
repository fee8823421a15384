"""PatchForecaster: zero-shot forecasts, short histories, no leakage, save/load."""

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.model import PatchForecaster
from tests.modalities.timeseries.forecaster_helpers import (CONTEXT_PATCHES, PATCH,
                                                             seasonal_series,
                                                             tiny_forecaster_model)

HISTORY = seasonal_series(100).values


@pytest.fixture(params=["masked-patch", "next-patch"])
def forecaster(request) -> PatchForecaster:
    return PatchForecaster(tiny_forecaster_model(request.param), device="cpu")


def test_forecast_shape_finite_and_monotone(forecaster):
    q = forecaster.forecast(HISTORY, 4, FLUSIGHT_QUANTILES)
    assert q.shape == (4, 23) and np.isfinite(q).all()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (q >= 0).all()  # a non-negative history gives non-negative quantiles


def test_other_levels_are_interpolated_from_the_23(forecaster):
    full = forecaster.forecast(HISTORY, 3)
    few = forecaster.forecast(HISTORY, 3, [0.05, 0.5, 0.95])
    np.testing.assert_allclose(few, full[:, [2, 11, 20]])
    between = forecaster.forecast(HISTORY, 3, [0.0175])  # halfway between 0.01 and 0.025
    np.testing.assert_allclose(between[:, 0], (full[:, 0] + full[:, 1]) / 2)
    with pytest.raises(BiofmError, match="increase strictly"):
        forecaster.forecast(HISTORY, 3, [0.5, 0.1])


def test_a_series_shorter_than_the_context_is_forecast(forecaster):
    assert forecaster.context == CONTEXT_PATCHES * PATCH
    for n in (1, 3, PATCH + 1, forecaster.context - 1):
        q = forecaster.forecast(HISTORY[:n], 4)
        assert q.shape == (4, 23) and np.isfinite(q).all()
    with pytest.raises(BiofmError, match="no observed value"):
        forecaster.forecast(np.full(10, np.nan), 4)


def test_no_leakage_future_values_cannot_change_a_forecast(forecaster):
    """Everything after the origin may change: the forecast at the origin stays identical."""
    series = seasonal_series(100, seed=3).values
    origin = 70  # history = values[: origin + 1]
    altered = series.copy()
    altered[origin + 1:] = altered[origin + 1:] * 10 + 99
    a = forecaster.forecast(series[: origin + 1], 4)
    b = forecaster.forecast(altered[: origin + 1], 4)
    np.testing.assert_array_equal(a, b)
    # and history older than the context is not read either
    older = series[: origin + 1].copy()
    older[: origin + 1 - forecaster.context] = 1e6
    np.testing.assert_array_equal(a, forecaster.forecast(older, 4))


def test_horizons_beyond_one_pass():
    masked = PatchForecaster(tiny_forecaster_model("masked-patch"), device="cpu")
    assert masked.forecast(HISTORY, masked.max_horizon).shape == (masked.max_horizon, 23)
    with pytest.raises(BiofmError, match="at most"):
        masked.forecast(HISTORY, masked.max_horizon + 1)
    causal = PatchForecaster(tiny_forecaster_model("next-patch"), device="cpu")
    long = causal.forecast(HISTORY, 3 * PATCH + 1)  # four patches, each fed back
    assert long.shape == (3 * PATCH + 1, 23) and np.isfinite(long).all()


def test_forecast_many_equals_one_at_a_time(forecaster):
    histories = [HISTORY, HISTORY[:20], seasonal_series(50, seed=2).values]
    together = forecaster.forecast_many(histories, 4)
    for i, h in enumerate(histories):
        np.testing.assert_allclose(together[i], forecaster.forecast(h, 4), rtol=1e-5, atol=1e-4)


def test_save_load_round_trip_gives_identical_forecasts(forecaster, tmp_path):
    forecaster.save(tmp_path / "ckpt")
    loaded = PatchForecaster.load(tmp_path / "ckpt", device="cpu")
    assert loaded.name == forecaster.name and loaded.context == forecaster.context
    np.testing.assert_array_equal(loaded.forecast(HISTORY, 4), forecaster.forecast(HISTORY, 4))


def test_a_text_checkpoint_is_not_a_forecaster(tmp_path):
    from tests.helpers import tiny_model

    tiny_model().save(tmp_path / "protein")
    with pytest.raises(BiofmError, match="not a time-series forecaster"):
        PatchForecaster.load(tmp_path / "protein")
