"""Errors of effect estimates against simulated truth."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ate_error", "covers", "pehe"]


def pehe(cate_hat: np.ndarray, true_cate: np.ndarray) -> float:
    """Precision in estimating heterogeneous effects (Hill 2011):
    sqrt(mean((cate_hat - (mu1 - mu0))²)) over the units."""
    cate_hat, true_cate = np.asarray(cate_hat, float), np.asarray(true_cate, float)
    if cate_hat.shape != true_cate.shape:
        raise ValueError(f"{cate_hat.shape} estimates for {true_cate.shape} true effects")
    return float(np.sqrt(np.mean((cate_hat - true_cate) ** 2)))


def ate_error(ate_hat: float, true_cate: np.ndarray) -> float:
    """|ATE_hat - mean(mu1 - mu0)|: the error against the units' own (sample) ATE."""
    return float(abs(ate_hat - np.mean(true_cate)))


def covers(low: float, high: float, true_cate: np.ndarray) -> float:
    """1.0 when [low, high] holds the sample ATE, 0.0 when not, NaN without an interval."""
    if math.isnan(low) or math.isnan(high):
        return float("nan")
    return float(low <= np.mean(true_cate) <= high)
