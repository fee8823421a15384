"""Probabilistic forecast metrics: pinball (quantile) loss, weighted interval score,
interval coverage and the MAE of the median, in numpy.

Shapes: `y` is (...), `q_pred` is (..., Q) with Q = len(quantiles), quantiles
ascending. Entries whose truth `y` is NaN (missing observation) are left out of
every mean; a metric over no finite truth is NaN.

WIS follows Bracher et al. (2021, PLoS Comput Biol 17:e1008618):
    WIS = 1 / (K + 1/2) * (1/2 |y - m| + sum_k alpha_k / 2 * IS_alpha_k)
    IS_alpha = (u - l) + 2/alpha (l - y)_+ + 2/alpha (y - u)_+
for the median m and K central intervals [l, u] at levels 1 - alpha_k. Because
alpha/2 * IS_alpha is the pinball loss of l (at alpha/2) plus that of u (at
1 - alpha/2), WIS equals twice the mean pinball loss over the 2K + 1 quantiles.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# The 23 quantile levels of the CDC FluSight challenge (2023-).
FLUSIGHT_QUANTILES: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50,
    0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.975, 0.99,
)


def _check(y: np.ndarray, q_pred: np.ndarray,
           quantiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    q_pred = np.asarray(q_pred, dtype=np.float64)
    levels = np.asarray(quantiles, dtype=np.float64)
    if q_pred.shape != (*y.shape, levels.size):
        raise ValueError(f"q_pred has shape {q_pred.shape}; expected y.shape + (Q,) = "
                         f"{(*y.shape, levels.size)}")
    if levels.size == 0 or np.any(np.diff(levels) <= 0) or levels[0] <= 0 or levels[-1] >= 1:
        raise ValueError(f"quantile levels must be strictly increasing in (0, 1): {quantiles}")
    return y, q_pred, levels


def _masked_mean(per_point: np.ndarray, y: np.ndarray) -> float:
    finite = np.isfinite(y)
    return float(per_point[finite].mean()) if finite.any() else float("nan")


def pinball_per_point(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(...) mean pinball loss over the Q levels at each point (NaN where y is NaN)."""
    y, q_pred, levels = _check(y, q_pred, quantiles)
    diff = y[..., None] - q_pred                                   # (..., Q)
    loss = np.maximum(levels * diff, (levels - 1.0) * diff)        # rho_tau(y - q)
    return loss.mean(axis=-1)


def pinball_loss(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean pinball loss over points with finite y and all quantile levels."""
    return _masked_mean(pinball_per_point(y, q_pred, quantiles), np.asarray(y, dtype=np.float64))


def _interval_pairs(levels: np.ndarray) -> tuple[int, list[tuple[int, int, float]]]:
    """Index of the median and (lower index, upper index, alpha) of each central interval."""
    n = levels.size
    if n % 2 == 0 or not np.isclose(levels[n // 2], 0.5) or \
            not np.allclose(levels + levels[::-1], 1.0):
        raise ValueError("WIS needs the median plus symmetric pairs of quantile levels "
                         f"(tau, 1 - tau); got {levels.tolist()}")
    return n // 2, [(k, n - 1 - k, 2 * levels[k]) for k in range(n // 2)]


def wis_per_point(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(...) weighted interval score at each point, computed in the interval form."""
    y, q_pred, levels = _check(y, q_pred, quantiles)
    mid, pairs = _interval_pairs(levels)
    total = 0.5 * np.abs(y - q_pred[..., mid])
    for lo, hi, alpha in pairs:
        lower, upper = q_pred[..., lo], q_pred[..., hi]
        interval_score = ((upper - lower) + 2.0 / alpha * np.maximum(lower - y, 0.0)
                          + 2.0 / alpha * np.maximum(y - upper, 0.0))
        total = total + alpha / 2.0 * interval_score
    return total / (len(pairs) + 0.5)


def wis(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean weighted interval score over points with finite y."""
    return _masked_mean(wis_per_point(y, q_pred, quantiles), np.asarray(y, dtype=np.float64))


def coverage_per_point(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float],
                       level: float) -> np.ndarray:
    """(...) 1.0 where lower <= y <= upper for the central `level` interval (e.g. 0.5, 0.95)."""
    y, q_pred, levels = _check(y, q_pred, quantiles)
    tail = (1.0 - level) / 2.0
    lo = np.flatnonzero(np.isclose(levels, tail))
    hi = np.flatnonzero(np.isclose(levels, 1.0 - tail))
    if lo.size == 0 or hi.size == 0:
        raise ValueError(f"a {level:.0%} interval needs quantiles {tail:g} and {1 - tail:g}")
    inside = (q_pred[..., lo[0]] <= y) & (y <= q_pred[..., hi[0]])
    return np.where(np.isfinite(y), inside.astype(np.float64), np.nan)


def coverage(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float], level: float) -> float:
    """Fraction of finite-y points inside the central `level` interval."""
    return _masked_mean(coverage_per_point(y, q_pred, quantiles, level),
                        np.asarray(y, dtype=np.float64))


def median_index(quantiles: Sequence[float]) -> int:
    """Position of the 0.5 level in `quantiles` (ValueError when absent)."""
    hits = np.flatnonzero(np.isclose(np.asarray(quantiles, dtype=np.float64), 0.5))
    if hits.size == 0:
        raise ValueError(f"quantiles {list(quantiles)} have no median (0.5)")
    return int(hits[0])


def mae(y: np.ndarray, q_pred: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean absolute error of the median forecast over finite-y points."""
    y, q_pred, _ = _check(y, q_pred, quantiles)
    return _masked_mean(np.abs(y - q_pred[..., median_index(quantiles)]), y)


__all__ = ["FLUSIGHT_QUANTILES", "coverage", "coverage_per_point", "mae", "median_index",
           "pinball_loss", "pinball_per_point", "wis", "wis_per_point"]
