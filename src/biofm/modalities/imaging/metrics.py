"""Segmentation metrics (MONAI's implementations): Dice and HD95, per mask.

    dice(pred, target)                        in [0, 1]
    hd95(pred, target, spacing=(1.0, 1.0))    95th-percentile symmetric Hausdorff distance, mm

Both take binary masks of one image (2D or 3D, same shape). Empty masks follow
fixed rules, so every example has a value and means are over all examples:
both empty → Dice 1, HD95 0; exactly one empty → Dice 0, HD95 = the image's
diagonal in mm (the largest distance possible on that grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _one_hot(mask: np.ndarray) -> torch.Tensor:
    """(*spatial) bool → (1, 2, *spatial) float (background, foreground)."""
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    return torch.stack([~m, m]).float()[None]


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    _check(pred, target)
    if not pred.any() and not target.any():
        return 1.0
    if not pred.any() or not target.any():
        return 0.0
    from monai.metrics import compute_dice

    return float(compute_dice(_one_hot(pred), _one_hot(target), include_background=False)[0, 0])


def hd95(pred: np.ndarray, target: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    _check(pred, target)
    spacing = tuple(float(s) for s in (spacing or (1.0,) * pred.ndim))
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float(np.linalg.norm(np.asarray(pred.shape) * np.asarray(spacing)))
    import warnings

    from monai.metrics import compute_hausdorff_distance

    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal argument
        warnings.simplefilter("ignore", FutureWarning)
        return float(compute_hausdorff_distance(_one_hot(pred), _one_hot(target), percentile=95,
                                                spacing=list(spacing))[0, 0])


def _check(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")


def segmentation_metrics(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                         spacing: Sequence[float] | None = None, *, intervals: bool = False,
                         seed: int = 0) -> dict[str, float]:
    """Mean Dice and HD95 (mm) over examples, and their count; with `intervals`,
    percentile-bootstrap 95% intervals of both means over the examples (dice_lo,
    dice_hi, hd95_lo, hd95_hi; 1,000 resamples seeded by `seed`)."""
    from biofm.bench.metrics import mean_interval

    per_case = {"dice": [dice(p, t) for p, t in zip(preds, targets)],
                "hd95": [hd95(p, t, spacing) for p, t in zip(preds, targets)]}
    out = {name: float(np.mean(v)) for name, v in per_case.items()}
    out["n"] = float(len(per_case["dice"]))
    if intervals:
        for name, v in per_case.items():
            out[f"{name}_lo"], out[f"{name}_hi"] = mean_interval(np.asarray(v), seed=seed)
    return out


__all__ = ["dice", "hd95", "segmentation_metrics"]
