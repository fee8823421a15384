"""Synthetic effect data with a known constant effect, shared by the causal tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from biofm.causal import EffectData

EFFECT = 2.0


def constant_effect_data(n: int = 600, seed: int = 0) -> EffectData:
    """Confounded treatment (more likely with larger x0), outcome linear in the
    covariates plus a category shift, and the same effect EFFECT for every unit."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    group = rng.choice(["a", "b", "c"], size=n)
    t = (rng.random(n) < 1 / (1 + np.exp(-0.8 * x0))).astype(np.int64)
    mu0 = x0 + 0.5 * x1 + (group == "b") * 1.0
    mu1 = mu0 + EFFECT
    y = np.where(t == 1, mu1, mu0) + rng.normal(scale=0.5, size=n)
    covariates = pd.DataFrame({"x0": x0, "x1": x1,
                               "group": pd.Categorical(group, categories=["a", "b", "c"])})
    return EffectData("synthetic", covariates, t, y, mu0=mu0, mu1=mu1)
