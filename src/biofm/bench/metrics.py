"""Task metrics as plain dicts of floats, one function per task kind.

Metrics that are undefined for the given labels (ROC-AUC when the split holds
one class, correlations of a constant) come back as NaN rather than raising:
small benchmark splits hit these cases, and a NaN in a report is honest.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score,
                             mean_absolute_error, mean_squared_error, r2_score, roc_auc_score)

from biofm.errors import BiofmError

PRIMARY = {"classification": ("roc_auc", True), "regression": ("rmse", False)}


def primary_metric(kind: str) -> tuple[str, bool]:
    """(metric name, higher_is_better) that benchmarks rank and report first."""
    if kind not in PRIMARY:
        raise BiofmError(f"unknown task kind {kind!r}", fix=f"use one of: {', '.join(PRIMARY)}")
    return PRIMARY[kind]


def classification_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Binary: `scores` (N,) probabilities of class 1 (or (N, 2)) → roc_auc,
    pr_auc (average precision), accuracy at threshold 0.5.

    Multiclass: `scores` (N, C) per-class probabilities or logits → accuracy and
    macro_f1 of the argmax (over the classes in y_true or in the predictions, as
    scikit-learn counts them: a class predicted but absent scores F1 0), and roc_auc as
    the macro mean of one-vs-rest AUCs over classes with positives and negatives.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=float)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.shape[0] != y.shape[0]:
        raise BiofmError(f"{s.shape[0]} scores for {y.shape[0]} labels",
                         fix="pass one score (or one row of class scores) per example")
    if s.ndim == 1:
        both = len(np.unique(y)) == 2
        return {
            "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
            "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
            "accuracy": float(accuracy_score(y, (s >= 0.5).astype(int))),
        }
    pred = s.argmax(axis=1)
    aucs = [roc_auc_score(y == c, s[:, c]) for c in range(s.shape[1])
            if 0 < (y == c).sum() < len(y)]
    return {
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """rmse, mae, spearman, pearson, r2 of predictions against targets."""
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape:
        raise BiofmError(f"{p.size} predictions for {y.size} targets",
                         fix="pass one prediction per example")
    constant = np.ptp(y) == 0 or np.ptp(p) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined cases return NaN below
        spearman = float("nan") if constant else float(stats.spearmanr(y, p).statistic)
        pearson = float("nan") if constant else float(stats.pearsonr(y, p).statistic)
        r2 = float(r2_score(y, p)) if len(y) > 1 else float("nan")
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, p))),
        "mae": float(mean_absolute_error(y, p)),
        "spearman": spearman,
        "pearson": pearson,
        "r2": r2,
    }


def concordance_index(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Harrell's concordance index (the CI of drug–target affinity papers, DeepDTA's
    `get_cindex`): over the pairs with different true values, the share the predictions
    order the same way, ties in the predictions counting one half. NaN when no two true
    values differ. Equals `lifelines.utils.concordance_index(y_true, y_pred)` (every
    event observed); O(n log n): a Fenwick tree over prediction ranks, filled in order
    of the true values, counts for each example the smaller predictions among the
    examples with a smaller true value.
    """
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape:
        raise BiofmError(f"{p.size} predictions for {y.size} targets",
                         fix="pass one prediction per example")
    ranks = np.unique(p, return_inverse=True)[1] + 1  # 1-based dense ranks of p
    tree = np.zeros(int(ranks.max(initial=0)) + 1, dtype=np.int64)

    def below(r: int) -> int:  # inserted predictions of rank <= r
        total = 0
        while r > 0:
            total += tree[r]
            r -= r & -r
        return int(total)

    order = np.argsort(y, kind="stable")
    concordant = 0.0
    comparable = inserted = start = 0
    while start < len(order):  # one group of equal true values at a time
        stop = start
        while stop < len(order) and y[order[stop]] == y[order[start]]:
            stop += 1
        group = ranks[order[start:stop]]
        for r in group:  # compared with every example of a smaller true value
            less, upto = below(int(r) - 1), below(int(r))
            concordant += less + 0.5 * (upto - less)
        comparable += inserted * len(group)
        for r in group:
            r = int(r)
            while r < len(tree):
                tree[r] += 1
                r += r & -r
        inserted += len(group)
        start = stop
    return concordant / comparable if comparable else float("nan")
