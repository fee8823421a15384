"""TransTEE: tokens, the treatment token's effect on the output, a constant effect
recovered through the one training core, bootstrap intervals, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.causal import (
    CovariateTokenizer,
    TransTEE,
    TransTEEConfig,
    TransTEEEstimator,
    ate_error,
    pehe,
)
from tests.causal.helpers import constant_effect_data

TINY = TransTEEConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, lr=3e-3, max_steps=300,
                      batch_size=64, members=2)


def test_tokens_give_each_covariate_and_level_an_id():
    data = constant_effect_data(n=5)
    tokenizer = CovariateTokenizer(data.covariates)
    ids, values = tokenizer.encode(data.covariates)
    assert ids.shape == (5, 4) and values.shape == (5, 4, 1)  # x0, x1, group, treatment
    assert tokenizer.vocab_size == 3 + 2 + 3  # pad/control/treated, x0, x1, a/b/c
    assert (ids[:, 0] == 3).all() and (ids[:, 1] == 4).all()
    codes = data.covariates["group"].cat.codes.to_numpy()
    assert ids[:, 2].tolist() == (5 + codes).tolist()
    assert (values[:, 2:] == 0).all()  # categories and the treatment carry no value
    x0 = data.covariates["x0"].to_numpy()
    assert np.allclose(values[:, 0, 0], (x0 - x0.mean()) / x0.std(), atol=1e-6)


def test_the_outcome_reads_the_treatment_token():
    torch.manual_seed(0)
    model = TransTEE(TINY, vocab_size=8, n_tokens=4)
    ids, values = torch.tensor([[3, 4, 5, 0]] * 2), torch.randn(1, 4, 1).expand(2, 4, 1)
    with torch.no_grad():
        out = model(ids, values, torch.tensor([0, 1]))
        assert out.shape == (2,) and out[0] != out[1]
        assert model(ids, values, torch.tensor([1, 1]))[0].item() == pytest.approx(out[1].item())


def test_transtee_recovers_a_constant_effect_with_an_interval():
    data = constant_effect_data(n=400)
    est = TransTEEEstimator(seed=0, config=TINY).fit(data)
    effects = est.estimate(data)
    assert ate_error(effects.ate, data.true_cate) < 0.3
    assert pehe(effects.cate, data.true_cate) < 0.6
    assert effects.ate_low <= effects.ate <= effects.ate_high
    assert effects.cate_low.shape == (400,) and (effects.cate_low <= effects.cate_high).all()
    assert np.allclose(effects.y1 - effects.y0, effects.cate, atol=1e-5)
    assert len(est.members) == 2 and all(h for h in est.histories)  # validation scored


def test_same_seed_same_estimate_and_one_member_has_no_interval():
    data = constant_effect_data(n=120)
    config = TINY.replace(max_steps=20, members=1)
    a, b = (TransTEEEstimator(seed=3, config=config).fit(data).estimate(data) for _ in range(2))
    assert np.array_equal(a.cate, b.cate)
    assert np.isnan(a.ate_low) and a.cate_low is None
