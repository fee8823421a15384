"""Metrics of pair predictions: over all test pairs, and per target as a screen.

- `pair_metrics`: concordance index (DeepDTA's CI, `bench.metrics.concordance_index`),
  MSE, Pearson and Spearman over the test pairs;
- `ranking_metrics`: the test pairs grouped by their query-side item (a KIBA test
  target and the compounds measured on it), each group ranked by prediction as a
  screen would rank it: the mean over targets of the Spearman correlation and of
  the top-10% enrichment factor, EF10 = (share of the true top 10% found in the
  predicted top 10%) / 10%, so 1 is random and 1 / 10% = 10 is perfect. Targets
  with fewer than `min_pairs` measured compounds, or one distinct value, are
  left out (`targets` says how many counted).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from biofm.bench.metrics import concordance_index

TOP = 0.10
MIN_PAIRS = 10


def pair_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ci, mse, pearson, spearman over all pairs (correlations NaN for a constant)."""
    y, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    constant = np.ptp(y) == 0 or np.ptp(p) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pearson = float("nan") if constant else float(stats.pearsonr(y, p).statistic)
        spearman = float("nan") if constant else float(stats.spearmanr(y, p).statistic)
    return {"ci": concordance_index(y, p), "mse": float(np.mean((y - p) ** 2)),
            "pearson": pearson, "spearman": spearman}


def enrichment_factor(y_true: np.ndarray, y_pred: np.ndarray, top: float = TOP) -> float:
    """Share of the true top `top` (highest values) within the predicted top `top`,
    over `top`: 1 = random order, 1 / top = perfect (k = ceil(top * n) of each).
    Ties at either cut are broken at random, in expectation: a constant prediction
    scores exactly 1."""
    n = len(y_true)
    k = max(math.ceil(top * n), 1)
    found = float(np.sum(_top_share(np.asarray(y_true, dtype=float), k)
                         * _top_share(np.asarray(y_pred, dtype=float), k))) / k
    return found / (k / n)


def _top_share(values: np.ndarray, k: int) -> np.ndarray:
    """Each value's chance to be among the k highest when ties are broken at random."""
    cut = np.sort(values)[::-1][k - 1]
    above, tied = values > cut, values == cut
    return above + tied * (k - above.sum()) / tied.sum()


def ranking_metrics(groups: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                    min_pairs: int = MIN_PAIRS) -> dict[str, float]:
    """Per-group (per-target) Spearman and EF10, averaged over groups with at least
    `min_pairs` pairs and more than one distinct true value."""
    spearman, ef = [], []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        y, p = y_true[rows], y_pred[rows]
        if len(rows) < min_pairs or np.ptp(y) == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = float(stats.spearmanr(y, p).statistic) if np.ptp(p) > 0 else 0.0
        spearman.append(rho)
        ef.append(enrichment_factor(y, p))
    if not spearman:
        return {"target_spearman": float("nan"), "target_ef10": float("nan"), "targets": 0.0}
    return {"target_spearman": float(np.mean(spearman)), "target_ef10": float(np.mean(ef)),
            "targets": float(len(spearman))}


__all__ = ["enrichment_factor", "pair_metrics", "ranking_metrics"]
