"""Metrics on inputs whose values are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofm.bench.metrics import classification_metrics, primary_metric, regression_metrics
from biofm.errors import BiofmError


def test_binary_perfect_and_reversed_ranking():
    y = [0, 0, 1, 1]
    perfect = classification_metrics(y, [0.1, 0.2, 0.8, 0.9])
    assert perfect == {"roc_auc": 1.0, "pr_auc": 1.0, "accuracy": 1.0}
    reversed_ = classification_metrics(y, [0.9, 0.8, 0.2, 0.1])
    assert reversed_["roc_auc"] == 0.0 and reversed_["accuracy"] == 0.0
    assert reversed_["pr_auc"] == pytest.approx(0.5 * (1 / 3 + 2 / 4))  # hits at ranks 3, 4


def test_binary_hand_computed_mixed_case():
    # positives scored 0.8, 0.4; negatives 0.6, 0.2: 3 of 4 pairs ordered right
    m = classification_metrics(np.array([1, 0, 1, 0]), np.array([0.8, 0.6, 0.4, 0.2]))
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx(0.5 * (1 / 1 + 2 / 3))
    assert m["accuracy"] == pytest.approx(0.5)  # 0.8 right, 0.6 wrong, 0.4 wrong, 0.2 right


def test_binary_accepts_two_column_probabilities_and_one_class_gives_nan():
    p1 = np.array([0.1, 0.9, 0.7])
    two = classification_metrics([0, 1, 1], np.stack([1 - p1, p1], axis=1))
    assert two == classification_metrics([0, 1, 1], p1)
    one_class = classification_metrics([1, 1], [0.3, 0.9])
    assert math.isnan(one_class["roc_auc"]) and math.isnan(one_class["pr_auc"])
    assert one_class["accuracy"] == 0.5


def test_multiclass():
    y = np.array([0, 1, 2, 2])
    scores = np.array([[5.0, 1, 0], [0, 4, 1], [0, 1, 3], [2, 0, 1]])  # logits are fine
    m = classification_metrics(y, scores)
    assert m["accuracy"] == pytest.approx(0.75)
    # per class F1: 0 → P=1/2 R=1 F=2/3; 1 → 1; 2 → P=1 R=1/2 F=2/3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    # one-vs-rest AUCs: class 0: 2 vs [0,0,0] → 1 ... ; class 2: pos (3, 1) neg (0, 1)
    auc2 = (1 + 1 + 1 + 0.5) / 4
    assert m["roc_auc"] == pytest.approx((1 + 1 + auc2) / 3)


def test_macro_f1_counts_classes_predicted_but_absent_from_the_truth():
    from sklearn.metrics import f1_score

    y = np.array([0, 0, 1, 1])
    scores = np.eye(3)[[0, 2, 1, 1]]  # one class-0 example predicted as class 2
    m = classification_metrics(y, scores)
    # class 0: P=1 R=1/2 F=2/3; class 1: F=1; class 2 (predicted only): F=0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y, scores.argmax(1), average="macro"))


def test_score_count_mismatch():
    with pytest.raises(BiofmError, match="3 scores for 2 labels"):
        classification_metrics([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(BiofmError, match="1 predictions for 2 targets"):
        regression_metrics([1, 2], [1])


def test_regression_known_values():
    m = regression_metrics([1, 2], [1, 4])
    assert m["rmse"] == pytest.approx(math.sqrt(2))
    assert m["mae"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(1 - 4 / 0.5)  # SSres 4, SStot 0.5
    rev = regression_metrics([1, 2, 3, 4], [40, 30, 20, 10])
    assert rev["spearman"] == pytest.approx(-1) and rev["pearson"] == pytest.approx(-1)
    mono = regression_metrics([1, 2, 3, 4], [1, 4, 9, 16])
    assert mono["spearman"] == pytest.approx(1) and mono["pearson"] < 1
    exact = regression_metrics([0.5, 1.5, 3.0], [0.5, 1.5, 3.0])
    assert exact["rmse"] == 0 and exact["r2"] == 1


def test_regression_constant_prediction_gives_nan_correlations():
    m = regression_metrics([1, 2, 3], [2, 2, 2])
    assert math.isnan(m["spearman"]) and math.isnan(m["pearson"])
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3))


def test_primary_metric():
    assert primary_metric("classification") == ("roc_auc", True)
    assert primary_metric("regression") == ("rmse", False)
    with pytest.raises(BiofmError, match="unknown task kind"):
        primary_metric("ranking")


def test_mean_interval_brackets_the_mean_and_is_seeded():
    from biofm.bench.metrics import mean_interval

    assert mean_interval(np.full(7, 0.8)) == pytest.approx((0.8, 0.8))  # no spread, no width
    values = np.random.default_rng(0).normal(0.7, 0.1, 200)
    low, high = mean_interval(values, seed=3)
    assert low < values.mean() < high and (low, high) == mean_interval(values, seed=3)
    # the normal-theory half width 1.96·sd/√n, within bootstrap noise
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.15)
    with pytest.raises(BiofmError, match="0 values"):
        mean_interval(np.array([]))
