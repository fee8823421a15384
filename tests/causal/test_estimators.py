"""Estimators on known inputs: IPW by hand, every method on a constant effect,
the bootstrap's intervals, and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.causal import (
    IPW,
    SLearner,
    Standardisation,
    TLearner,
    XLearner,
    ate_error,
    bootstrap_intervals,
    covers,
    ipw_ate,
    pehe,
)
from tests.causal.helpers import EFFECT, constant_effect_data


def test_ipw_by_hand():
    # treated: weights 1/0.5, 1/0.25 = 2, 4 → (2·3 + 4·1) / 6 = 10/6;
    # controls: 1/(1-0.5), 1/(1-0.75) = 2, 4 → (2·2 + 4·0) / 6 = 4/6
    t, y = np.array([1, 1, 0, 0]), np.array([3.0, 1.0, 2.0, 0.0])
    e = np.array([0.5, 0.25, 0.5, 0.75])
    assert ipw_ate(t, y, e) == pytest.approx(10 / 6 - 4 / 6)
    # propensities are truncated to [0.01, 0.99]: 0.001 weighs as 0.01
    e = np.array([0.001, 0.5, 0.5, 0.5])
    w1 = np.array([100.0, 2.0])
    assert ipw_ate(t, y, e) == pytest.approx((w1 @ [3, 1]) / w1.sum() - 1.0)
    assert ipw_ate(t, y, e, clip=0.0) == pytest.approx((1000 * 3 + 2) / 1002 - 1.0)


def test_ipw_with_a_known_propensity_recovers_a_confounded_effect():
    # the naive difference of means is biased; weighting by the true e removes the bias
    rng = np.random.default_rng(0)
    x = rng.normal(size=20000)
    e = 1 / (1 + np.exp(-x))
    t = (rng.random(x.size) < e).astype(int)
    y = 2 * x + 1.0 * t + rng.normal(size=x.size)
    assert y[t == 1].mean() - y[t == 0].mean() > 1.5
    assert ipw_ate(t, y, e) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("make", [SLearner, TLearner, XLearner, IPW, Standardisation])
def test_every_baseline_finds_a_constant_effect(make):
    data = constant_effect_data()
    est = make(0).fit(data)
    effects = est.estimate(data)
    assert ate_error(effects.ate, data.true_cate) < 0.3
    if est.gives_cate:
        assert effects.cate.shape == (len(data),)
        assert pehe(effects.cate, data.true_cate) < 0.6
    else:
        assert effects.cate is None


def test_standardisation_is_exact_on_a_noiseless_linear_outcome():
    data = constant_effect_data()
    exact = type(data)(data.name, data.covariates, data.treatment,
                       np.where(data.treatment == 1, data.mu1, data.mu0), data.mu0, data.mu1)
    effects = Standardisation().fit(exact).estimate(exact)
    assert effects.ate == pytest.approx(EFFECT)
    assert np.allclose(effects.y1 - effects.y0, EFFECT)
    assert np.allclose(effects.y0, data.mu0)


def test_bootstrap_intervals_hold_the_effect():
    data = constant_effect_data()
    held = data.subset(np.arange(50))
    inside, outside = (Standardisation().fit(data).estimate(d) for d in (data, held))
    bootstrap_intervals(Standardisation, data, [(data, inside), (held, outside)], 30, seed=0)
    for effects, units in ((inside, data), (outside, held)):
        assert effects.ate_low < EFFECT < effects.ate_high
        assert effects.ate_high - effects.ate_low < 0.5
        assert effects.cate_low.shape == effects.cate_high.shape == (len(units),)
        assert (effects.cate_low <= effects.cate_high).all()
    ipw = IPW().fit(data).estimate(data)
    bootstrap_intervals(IPW, data, [(data, ipw)], 30, seed=0)
    assert ipw.ate_low < EFFECT < ipw.ate_high and ipw.cate_low is None


def test_metrics_on_known_numbers():
    truth = np.array([1.0, 2.0, 3.0])
    assert pehe(np.array([1.0, 2.0, 5.0]), truth) == pytest.approx(np.sqrt(4 / 3))
    assert ate_error(2.5, truth) == pytest.approx(0.5)
    assert covers(1.5, 2.5, truth) == 1.0 and covers(2.1, 3.0, truth) == 0.0
    assert np.isnan(covers(float("nan"), float("nan"), truth))
    with pytest.raises(ValueError):
        pehe(np.zeros(2), truth)
