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

PRIMARY = {"classification": ("roc_auc", True), "regression": ("rmse", False),
           "multilabel": ("roc_auc", True), "survival": ("c_index", True)}


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


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Multi-label: `y_true` (N, L) 0/1, `scores` (N, L) per-label probabilities →
    roc_auc and pr_auc as macro means over the labels with positives and negatives in
    y_true, macro_f1 over all labels at threshold 0.5, and micro_f1. A NaN label is
    not measured (multi-task data such as ADMET: each molecule has some of the labels):
    each label is scored over the rows where it is measured."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape or y.ndim != 2:
        raise BiofmError(f"scores of shape {s.shape} for labels of shape {y.shape}",
                         fix="pass one row of per-label scores per example")
    seen = ~np.isnan(y)  # (N, L)
    columns = [(y[seen[:, j], j].astype(int), s[seen[:, j], j]) for j in range(y.shape[1])]
    both = [(t, p) for t, p in columns if 0 < t.sum() < len(t)]
    f1 = [f1_score(t, (p >= 0.5).astype(int), zero_division=0) for t, p in columns if len(t)]
    hits = sum(int(((p >= 0.5) & (t == 1)).sum()) for t, p in columns)
    positives = sum(int(t.sum()) + int((p >= 0.5).sum()) for t, p in columns)
    return {
        "roc_auc": float(np.mean([roc_auc_score(t, p) for t, p in both]))
        if both else float("nan"),
        "pr_auc": float(np.mean([average_precision_score(t, p) for t, p in both]))
        if both else float("nan"),
        "macro_f1": float(np.mean(f1)) if f1 else float("nan"),
        "micro_f1": 2 * hits / positives if positives else 0.0,
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


def concordance_index(y_true: np.ndarray, y_pred: np.ndarray,
                      event: np.ndarray | None = None) -> float:
    """Harrell's concordance index: over the comparable pairs, the share the predictions
    order the same way as the true values, ties in the predictions counting one half.
    NaN when no pair is comparable. Equals `lifelines.utils.concordance_index(y_true,
    y_pred, event)`.

    Without `event` (every value observed: the CI of drug–target affinity papers,
    DeepDTA's `get_cindex`) every pair with different true values is comparable. With
    `event` (survival: `y_true` times, `event` 1 where the event was seen, 0 where the
    time is a censoring; `y_pred` higher = longer survival) a pair is comparable when the
    shorter time is an event, or both times are equal and only the other is censored.

    O(n log n): a Fenwick tree over prediction ranks holds the events seen so far, in
    order of the true values; each example counts the smaller predictions among the
    events with a smaller true value (a censored one also those at its own time).
    """
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    observed = np.ones(len(y), bool) if event is None else np.asarray(event).astype(bool).ravel()
    if not y.shape == p.shape == observed.shape:
        flags = "" if event is None else f" and {observed.size} event flags"
        raise BiofmError(f"{p.size} predictions{flags} for {y.size} targets",
                         fix="pass one prediction (and event flag) per example")
    ranks = np.unique(p, return_inverse=True)[1] + 1  # 1-based dense ranks of p
    tree = np.zeros(int(ranks.max(initial=0)) + 1, dtype=np.int64)

    def below(r: int) -> int:  # inserted predictions of rank <= r
        total = 0
        while r > 0:
            total += tree[r]
            r -= r & -r
        return int(total)

    def insert(r: int) -> None:
        while r < len(tree):
            tree[r] += 1
            r += r & -r

    def score(group: np.ndarray) -> float:  # concordant (+ half tied) pairs with the tree
        total = 0.0
        for r in group:
            less, upto = below(int(r) - 1), below(int(r))
            total += less + 0.5 * (upto - less)
        return total

    order = np.argsort(y, kind="stable")
    concordant = 0.0
    comparable = inserted = start = 0
    while start < len(order):  # one group of equal true values at a time
        stop = start
        while stop < len(order) and y[order[stop]] == y[order[start]]:
            stop += 1
        group = order[start:stop]
        events, censored = ranks[group[observed[group]]], ranks[group[~observed[group]]]
        concordant += score(events)  # against the events of smaller true values
        comparable += inserted * len(events)
        for r in events:
            insert(int(r))
        inserted += len(events)
        concordant += score(censored)  # against the events up to its own true value
        comparable += inserted * len(censored)
        start = stop
    return concordant / comparable if comparable else float("nan")


def survival_metrics(y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Time-to-event: `y_true` (N, 2) of (time, event 1 | censored 0); `predictions`
    either (N,) risk scores (higher = earlier event; a Cox model's partial hazard) or
    (N, K) survival probabilities at the ends of K follow-up bins (a discrete-time
    hazard model), whose risk is 1 - S at the last bin end. → c_index (Harrell's C)."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(predictions, dtype=float)
    if y.ndim != 2 or y.shape[1] != 2 or s.shape[0] != y.shape[0]:
        raise BiofmError(f"predictions of shape {s.shape} for survival labels of shape "
                         f"{y.shape}", fix="pass (N, 2) labels (time, event) and one risk "
                                           "score or survival curve per example")
    risk = 1.0 - s[:, -1] if s.ndim == 2 else s
    return {"c_index": concordance_index(y[:, 0], -risk, y[:, 1])}


def kind_metrics(kind: str, y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """The metrics of a task kind (classification, regression, multilabel, survival)."""
    functions = {"classification": classification_metrics, "regression": regression_metrics,
                 "multilabel": multilabel_metrics, "survival": survival_metrics}
    if kind not in functions:
        raise BiofmError(f"unknown task kind {kind!r}", fix=f"use one of: {', '.join(functions)}")
    return functions[kind](y_true, predictions)


# -- bootstrap intervals ------------------------------------------------------------------
BOOTSTRAP_METRICS = ("roc_auc", "pr_auc")


def bootstrap_ci(y_true: np.ndarray, scores: np.ndarray, *, n_resamples: int = 1000,
                 level: float = 0.95, seed: int = 0,
                 metrics: tuple[str, ...] = BOOTSTRAP_METRICS) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of binary ROC-AUC / PR-AUC (average precision).

    Examples are resampled with replacement `n_resamples` times (seeded); each
    resample's metrics equal scikit-learn's on that resample (ties in `scores` as
    scikit-learn counts them), computed from one sort of the scores. Resamples that
    hold one class only are left out; an interval needs half of them, else NaN.
    Returns {metric: (low, high)} at `level` (0.95: the 2.5th and 97.5th percentiles).
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=float)
    s = s[:, 1] if s.ndim == 2 and s.shape[1] == 2 else s.ravel()
    unknown = [m for m in metrics if m not in BOOTSTRAP_METRICS]
    if unknown or s.shape != y.shape or not 0 < level < 1 or n_resamples < 1:
        raise BiofmError(f"bootstrap_ci: {len(s)} scores for {len(y)} labels, level {level}, "
                         f"{n_resamples} resamples, metrics {list(metrics)}",
                         fix=f"pass one binary score per label, 0 < level < 1, metrics among "
                             f"{BOOTSTRAP_METRICS}")
    rng = np.random.default_rng(seed)
    values = {m: [] for m in metrics}
    chunk = max(1, min(n_resamples, 2_000_000 // max(len(y), 1)))  # (chunk, n) counts in memory
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        index = rng.integers(0, len(y), size=(rows, len(y)))
        counts = np.bincount((index + np.arange(rows)[:, None] * len(y)).ravel(),
                             minlength=rows * len(y)).reshape(rows, len(y))
        for name, value in _weighted_binary_metrics(y, s, counts).items():
            if name in values:
                values[name].append(value)
    alpha = (1 - level) / 2
    out = {}
    for name, parts in values.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        out[name] = ((float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha)))
                     if len(v) >= n_resamples / 2 else (float("nan"), float("nan")))
    return out


def _weighted_binary_metrics(y: np.ndarray, s: np.ndarray,
                             weights: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC and average precision of each row of `weights` (B, N) (example counts),
    NaN where a row holds one class. Scores are grouped by distinct value, highest first."""
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])  # (G,) score groups
    w = weights[:, order].astype(float)
    pos = np.add.reduceat(w * (y[order] == 1), starts, axis=1)  # (B, G) positives per group
    neg = np.add.reduceat(w * (y[order] != 1), starts, axis=1)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a positive beats the negatives in lower groups, ties with half of its own group's
        below = n_neg[:, None] - np.cumsum(neg, axis=1)
        auc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
        tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        ap = (pos * precision).sum(1) / n_pos
    both = (n_pos > 0) & (n_neg > 0)
    return {"roc_auc": np.where(both, auc, np.nan), "pr_auc": np.where(both, ap, np.nan)}


def mean_interval(values: np.ndarray, *, n_resamples: int = 1000, level: float = 0.95,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-example `values` (e.g. Dice of
    each test case): examples resampled with replacement `n_resamples` times, seeded."""
    v = np.asarray(values, dtype=float).ravel()
    if len(v) == 0 or not 0 < level < 1 or n_resamples < 1:
        raise BiofmError(f"mean_interval: {len(v)} values, level {level}, {n_resamples} "
                         "resamples", fix="pass at least one value, 0 < level < 1")
    index = np.random.default_rng(seed).integers(0, len(v), size=(n_resamples, len(v)))
    means = v[index].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def interval_columns(y_true: np.ndarray, scores: np.ndarray, *, seed: int = 0,
                     n_resamples: int = 1000, level: float = 0.95) -> dict[str, float]:
    """`bootstrap_ci` as flat table columns: roc_auc_lo, roc_auc_hi, pr_auc_lo, pr_auc_hi."""
    intervals = bootstrap_ci(y_true, scores, seed=seed, n_resamples=n_resamples, level=level)
    return {f"{name}_{end}": value for name, (low, high) in intervals.items()
            for end, value in (("lo", low), ("hi", high))}
