"""Pinball loss, WIS (both ways), coverage and MAE on inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.modalities.timeseries.metrics import (FLUSIGHT_QUANTILES, coverage, mae, pinball_loss,
                                                 wis, wis_per_point)

Q3 = (0.25, 0.5, 0.75)


def test_flusight_levels_are_the_23_cdc_levels():
    assert len(FLUSIGHT_QUANTILES) == 23
    assert FLUSIGHT_QUANTILES[:4] == (0.01, 0.025, 0.05, 0.10)
    assert FLUSIGHT_QUANTILES[-3:] == (0.95, 0.975, 0.99) and FLUSIGHT_QUANTILES[11] == 0.5
    assert np.allclose(np.add(FLUSIGHT_QUANTILES, FLUSIGHT_QUANTILES[::-1]), 1.0)


def test_pinball_and_wis_by_hand():
    # y = 10 inside [8, 14]: pinball .25*2, .5*1, .25*4 -> mean 2/3; WIS = (0.5*1 + 0.25*6)/1.5
    q = np.array([8.0, 11.0, 14.0])
    assert pinball_loss(np.array(10.0), q, Q3) == pytest.approx(2 / 3)
    assert wis(np.array(10.0), q, Q3) == pytest.approx(4 / 3)
    # y = 20 above the interval: IS = 6 + 2/0.5 * 6 = 30; WIS = (0.5*9 + 0.25*30)/1.5 = 8
    assert wis(np.array(20.0), q, Q3) == pytest.approx(8.0)
    assert pinball_loss(np.array(20.0), q, Q3) == pytest.approx(4.0)


def test_wis_equals_twice_the_mean_pinball_over_the_flusight_levels():
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 10.0, size=(7, 4))
    q = np.sort(rng.gamma(2.0, 10.0, size=(7, 4, 23)), axis=-1)
    twice_pinball = 2 * pinball_loss(y, q, FLUSIGHT_QUANTILES)
    assert wis(y, q, FLUSIGHT_QUANTILES) == pytest.approx(twice_pinball, rel=1e-12)


def test_wis_of_a_point_forecast_is_the_absolute_error():
    y = np.array([3.0, 10.0, 0.0])
    point = np.repeat(np.array([5.0, 4.0, 1.0])[:, None], 23, axis=1)
    assert wis_per_point(y, point, FLUSIGHT_QUANTILES) == pytest.approx([2.0, 6.0, 1.0])
    assert mae(y, point, FLUSIGHT_QUANTILES) == pytest.approx(3.0)


def test_coverage_and_missing_truth():
    levels = (0.025, 0.25, 0.5, 0.75, 0.975)
    q = np.array([[0, 4, 5, 6, 10]] * 4, dtype=float)
    y = np.array([5.0, 8.0, 12.0, np.nan])
    assert coverage(y, q, levels, 0.5) == pytest.approx(1 / 3)
    assert coverage(y, q, levels, 0.95) == pytest.approx(2 / 3)
    assert mae(y, q, levels) == pytest.approx((0 + 3 + 7) / 3)  # NaN truth left out
    assert np.isnan(wis(np.array([np.nan]), q[:1], levels))


def test_bad_levels_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="symmetric"):
        wis(np.array(1.0), np.array([0.0, 1.0]), (0.25, 0.5))
    with pytest.raises(ValueError, match="shape"):
        pinball_loss(np.zeros(3), np.zeros((3, 2)), Q3)
    with pytest.raises(ValueError, match="increasing"):
        pinball_loss(np.zeros(1), np.zeros((1, 3)), (0.5, 0.25, 0.75))
    with pytest.raises(ValueError, match="95% interval"):
        coverage(np.zeros(1), np.zeros((1, 3)), Q3, 0.95)
