"""Per-row instance normalisation of patch values (PatchTST / TimesFM style).

A backbone with `values: patches` reads, beside each token, a patch of
`patch_len` raw values (`Batch.values` (B, T, P), NaN = missing). Values are
normalised per row when a batch is prepared (by the objective, or by a
forecaster), because only the objective knows which values the model may see:
statistics come from *visible* values only (observed, not masked, not in the
future; optionally only the last `recent` of them), and the backbone input per
patch is

    [ (x - loc) / scale  (0 where not visible) ,  visible flag ]   (2 * patch_len,)

so `backbone.value_size = 2 * patch_len` and the model can tell a missing or
masked value from a value equal to the mean. Outputs are un-normalised with the
same `loc` / `scale`.
"""

from __future__ import annotations

import torch

SCALE_TOLERANCE = 1e-6  # below this a standard deviation counts as zero (constant series)
MIN_VISIBLE = 2  # values a row needs before its targets are trained on


def recent_visible(visible: torch.Tensor, recent: int) -> torch.Tensor:
    """(B, T, P) bool: only the last `recent` visible values of each row (in time order)."""
    flat = visible.reshape(visible.shape[0], -1)
    after = flat.flip(-1).long().cumsum(-1).flip(-1)  # visible values at or after each step
    return (flat & (after <= recent)).reshape(visible.shape)


def instance_stats(values: torch.Tensor, visible: torch.Tensor, *, cumulative: bool = False,
                   recent: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the visible values of each row.

    values (B, T, P) float (NaN allowed where not visible), visible (B, T, P) bool.
    Returns loc, scale and the number of visible values counted, each (B, 1, 1);
    with `cumulative` (causal models) (B, T, 1): the statistics of patches 0..t,
    so that position t never sees a later value. A row with no visible values
    gets loc 0, scale 1; a constant row (std below 1e-6) gets scale 1 (TimesFM).
    `recent` (not with `cumulative`): use only the last `recent` visible values of
    each row (the masked-patch objective and forecaster use `objective.norm_window`).
    """
    if recent is not None and not cumulative:
        visible = recent_visible(visible, recent)
    v = torch.where(visible, values, torch.zeros_like(values)).double()
    count, total, squares = (x.sum(-1, keepdim=True) for x in (visible.double(), v, v * v))
    if cumulative:
        count, total, squares = (x.cumsum(1) for x in (count, total, squares))  # (B, T, 1)
    else:
        count, total, squares = (x.sum(1, keepdim=True) for x in (count, total, squares))
    loc = total / count.clamp(min=1)
    var = (squares / count.clamp(min=1) - loc * loc).clamp(min=0)
    scale = var.sqrt()
    scale = torch.where(scale < SCALE_TOLERANCE, torch.ones_like(scale), scale)
    return loc.float(), scale.float(), count.float()


def model_inputs(values: torch.Tensor, visible: torch.Tensor, loc: torch.Tensor,
                 scale: torch.Tensor) -> torch.Tensor:
    """The backbone's value input (B, T, 2P): normalised visible values (0 elsewhere)
    concatenated with the visible flags."""
    normed = (values - loc) / scale
    normed = torch.where(visible, normed, torch.zeros_like(normed))
    return torch.cat([normed, visible.to(normed.dtype)], dim=-1)


def normalise(values: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(x - loc) / scale, NaN stays NaN."""
    return (values - loc) / scale


def denormalise(normed: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalise`; loc / scale broadcast over any trailing quantile axis."""
    return normed * scale + loc


__all__ = ["MIN_VISIBLE", "SCALE_TOLERANCE", "denormalise", "instance_stats", "model_inputs",
           "normalise", "recent_visible"]
