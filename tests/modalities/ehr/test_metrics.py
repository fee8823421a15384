"""Bootstrap intervals of AUROC / AUPRC (bench.metrics.bootstrap_ci) on inputs whose answer
is known, and the gradient-boosted baseline model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from biofm.bench.baselines import Baseline, per_input
from biofm.bench.metrics import _weighted_binary_metrics, bootstrap_ci, interval_columns
from biofm.data.tasks import Split, Splits
from biofm.errors import BiofmError


def test_perfect_reversed_and_tied_scores_have_degenerate_intervals():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert bootstrap_ci(y, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]) == {"roc_auc": (1.0, 1.0),
                                                                "pr_auc": (1.0, 1.0)}
    assert bootstrap_ci(y, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1])["roc_auc"] == (0.0, 0.0)
    tied = bootstrap_ci(y, np.full(6, 0.5), n_resamples=200)
    assert tied["roc_auc"] == (0.5, 0.5)  # every resample: all pairs tied → 0.5
    # AP of all-tied scores is the resample's share of positives: spans around 0.5
    assert tied["pr_auc"][0] < 0.5 < tied["pr_auc"][1]


def test_each_resample_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # many ties
    for _ in range(5):
        index = rng.integers(0, 300, 300)
        counts = np.bincount(index, minlength=300)[None]
        got = _weighted_binary_metrics(y, s, counts)
        assert got["roc_auc"][0] == pytest.approx(roc_auc_score(y[index], s[index]), abs=1e-12)
        assert got["pr_auc"][0] == pytest.approx(average_precision_score(y[index], s[index]),
                                                 abs=1e-12)


def test_interval_covers_the_known_auc_with_the_expected_width():
    # scores N(0, 1) for negatives, N(d, 1) for positives: AUC = Phi(d / sqrt(2))
    rng = np.random.default_rng(1)
    d, n = 1.0, 2000
    y = np.r_[np.zeros(n), np.ones(n)].astype(int)
    s = np.r_[rng.normal(0, 1, n), rng.normal(d, 1, n)]
    low, high = bootstrap_ci(y, s, n_resamples=500, seed=3)["roc_auc"]
    truth = norm.cdf(d / math.sqrt(2))  # 0.760
    assert low < truth < high
    # Hanley-McNeil standard error of an AUC: the 95% interval is about 2 x 1.96 x SE wide
    q1, q2 = truth / (2 - truth), 2 * truth ** 2 / (1 + truth)
    se = math.sqrt((truth * (1 - truth) + (n - 1) * (q1 - truth ** 2) + (n - 1) * (q2 - truth ** 2))
                   / (n * n))
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_seeded_nested_levels_and_checks():
    rng = np.random.default_rng(2)
    y, s = rng.integers(0, 2, 200), rng.random(200)
    assert bootstrap_ci(y, s, seed=7) == bootstrap_ci(y, s, seed=7)
    wide, narrow = bootstrap_ci(y, s, level=0.95)["pr_auc"], bootstrap_ci(y, s, level=0.5)["pr_auc"]
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]
    assert set(bootstrap_ci(y, np.c_[1 - s, s], metrics=("roc_auc",))) == {"roc_auc"}
    one_class = bootstrap_ci(np.zeros(10), np.arange(10.0))["roc_auc"]
    assert all(math.isnan(x) for x in one_class)
    with pytest.raises(BiofmError, match="one binary score per label"):
        bootstrap_ci(y, s[:10])
    columns = interval_columns(y, s, seed=7)
    assert columns == {"roc_auc_lo": bootstrap_ci(y, s, seed=7)["roc_auc"][0],
                       "roc_auc_hi": bootstrap_ci(y, s, seed=7)["roc_auc"][1],
                       "pr_auc_lo": bootstrap_ci(y, s, seed=7)["pr_auc"][0],
                       "pr_auc_hi": bootstrap_ci(y, s, seed=7)["pr_auc"][1]}


def test_gradient_boosting_baseline_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.1 * rng.normal(size=300) > 0).astype(np.int64)
    part = lambda a, b: Split([str(i) for i in range(a, b)], list(x[a:b]), y[a:b])  # noqa: E731
    splits = Splits(part(0, 200), part(200, 250), part(250, 300))
    baseline = Baseline("GBT", per_input(np.stack), "gradient-boosting")
    proba = baseline.predict("classification", splits, seed=0)
    assert proba.shape == (50,) and roc_auc_score(y[250:], proba) > 0.9
    values = Baseline("GBT", per_input(np.stack), "gradient-boosting").predict(
        "regression", Splits(*(Split(p.ids, p.inputs, p.labels.astype(np.float32))
                               for p in (splits.train, splits.valid, splits.test))), seed=0)
    assert values.shape == (50,)
