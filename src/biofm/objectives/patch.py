"""Patch objectives with quantile outputs (pinball loss), for any backbone with
`values: patches` (`Batch.values` (B, T, patch_len) raw values, NaN = missing).

Both objectives predict, for every predicted value, the quantile levels of
`objective.quantiles` (default `DEFAULT_QUANTILES`, the 23 levels of the CDC
FluSight challenge), in the normalised units of their row (see `instance_norm`),
and are trained with the mean pinball loss over the levels and the finite
targets (`Batch.value_labels`, NaN = no loss), so one pretrained model gives
calibrated intervals. Targets are clipped to +-`TARGET_CLIP` scales of their
row, so an exploding outbreak cannot dominate.

- "masked-patch" (encoder, PatchTST-style): half of the rows hide their last
  1..n/4 patches (forecasting), the others hide a random `mask_rate` of their
  patches (reconstruction); hidden patches get the `<mask>` id and no values.
  Normalisation uses the last `objective.norm_window` visible values only, so nothing
  hidden leaks into it and the scale is the recent one.
  A fifth of the rows also lose a random prefix of their history, so that the
  model learns to forecast from short series. Forecast: append masked patches.
- "next-patch" (decoder, TimesFM-style): position t predicts patch t + 1. The
  normalisation is causal (statistics of patches 0..t for position t), so no
  position sees a later value, and forecasting from a history uses exactly the
  statistics of that history. A fifth of the rows lose a random prefix too.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch
from torch import nn

from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.errors import BiofmError
from biofm.objectives.base import Objective
from biofm.objectives.instance_norm import MIN_VISIBLE, instance_stats, model_inputs, normalise
from biofm.objectives.mlm import LMHead
from biofm.outputs import BackboneOutput, Batch, ObjectiveOutput
from biofm.registry import OBJECTIVES

# The 23 quantile levels of the CDC FluSight challenge (2023-): the levels when
# `objective.quantiles` is unset, as in every checkpoint saved before that field existed.
DEFAULT_QUANTILES: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50,
    0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95, 0.975, 0.99,
)

TAIL_FRACTION = 0.5  # masked-patch rows that hide their last patches (forecasting)
SHORT_FRACTION = 0.2  # rows whose history is cut to a random length
TARGET_CLIP = 20.0  # normalised targets are clipped to +-20 scales: an outbreak that grows
# hundreds of context standard deviations would otherwise dominate every batch's loss


def pinball_loss(pred: torch.Tensor, target: torch.Tensor,
                 quantiles: torch.Tensor | Sequence[float]) -> tuple[torch.Tensor, int]:
    """Mean pinball loss over the quantile levels and the finite targets.

    pred (..., Q), target (...) with NaN where no loss, quantiles (Q,).
    Returns (loss, number of finite targets); the loss is 0 (still attached to
    `pred`) when there is no finite target. Same value as the numpy
    `biofm.modalities.timeseries.metrics.pinball_loss`.
    """
    levels = torch.as_tensor(quantiles, dtype=pred.dtype, device=pred.device)
    finite = torch.isfinite(target)
    diff = torch.where(finite, target, torch.zeros_like(target))[..., None] - pred  # (..., Q)
    per_point = torch.maximum(levels * diff, (levels - 1.0) * diff).mean(-1)  # (...)
    count = int(finite.sum())
    loss = (per_point * finite).sum() / max(count, 1)
    return loss, count


class QuantileHead(nn.Module):
    """hidden (B, T, d) → quantiles (B, T, P, Q): the MLM head's dense → GELU →
    LayerNorm → linear, over P * Q outputs."""

    def __init__(self, d_model: int, patch_len: int, n_quantiles: int, eps: float) -> None:
        super().__init__()
        self.patch_len, self.n_quantiles = patch_len, n_quantiles
        self.mlp = LMHead(d_model, patch_len * n_quantiles, eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.mlp(hidden)  # (B, T, P * Q)
        return x.view(*hidden.shape[:-1], self.patch_len, self.n_quantiles)


class QuantileObjective(Objective):
    """Shared part: a quantile head over every position and the pinball loss.

    `levels`: the quantile levels predicted (`objective.quantiles`, else
    `DEFAULT_QUANTILES`); the head has `patch_len * len(levels)` outputs.
    """

    values: ClassVar[str] = "patches"  # Batch.values: (B, T, patch_len) raw patches
    predicts_quantiles: ClassVar[bool] = True

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__(config, backbone, special_ids)
        if backbone.values != "patches" or backbone.value_size < 2 or backbone.value_size % 2:
            raise BiofmError(f"objective {config.name!r} needs backbone.values=patches and an "
                             f"even backbone.value_size (2 * patch_len); got "
                             f"values={backbone.values!r}, value_size={backbone.value_size}",
                             fix="use a ts-* preset, or set backbone.values=patches "
                                 "backbone.value_size=16 (patch length 8)")
        self.patch_len = backbone.value_size // 2
        self.mask_id = backbone.mask_id
        self.levels: tuple[float, ...] = config.quantiles or DEFAULT_QUANTILES
        self.register_buffer("quantiles", torch.tensor(self.levels), persistent=False)  # (Q,)
        self.head = QuantileHead(backbone.d_model, self.patch_len, len(self.levels),
                                 backbone.norm_eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)  # (B, T, P, Q) in normalised units

    def forward(self, hidden: BackboneOutput, batch: Batch) -> ObjectiveOutput:
        if batch.value_labels is None:
            raise ValueError("batch has no value_labels: call objective.prepare(batch) first")
        pred = self.logits(hidden.last_hidden_state).float()
        loss, count = pinball_loss(pred, batch.value_labels.float(), self.quantiles)
        return ObjectiveOutput(loss=loss, logits=pred, num_predicted=count)

    @staticmethod
    def _raw(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw patch values (B, T, P) and the observed mask (finite, not padding)."""
        if batch.values is None or batch.values.dim() != 3:
            raise ValueError("a patch batch needs values (B, T, patch_len)")
        if batch.document_ids is not None:
            raise BiofmError("patch rows cannot be packed (instance statistics are per row)",
                             fix="set train.packing=false")
        raw = batch.values.float()
        return raw, torch.isfinite(raw) & batch.attention_mask.bool()[..., None]


@OBJECTIVES.register("masked-patch")
class MaskedPatch(QuantileObjective):
    """Hide patches (the tail or random ones); predict their quantiles from the rest."""

    backbone_kind = "encoder"

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        raw, observed = self._raw(batch)
        attention = batch.attention_mask.bool()
        observed = observed & ~_short_history(attention, generator)[..., None]
        masked = _choose_masked(attention, self.config.mask_rate, generator)  # (B, T)
        return masked_batch(batch, raw, observed, masked, self.mask_id,
                            self.config.norm_window or None)


def masked_batch(batch: Batch, raw: torch.Tensor, observed: torch.Tensor,
                 masked: torch.Tensor, mask_id: int, recent: int | None) -> Batch:
    """Hide the `masked` patches (B, T), normalise on what stays visible (its last
    `recent` values; None: all of them), set targets."""
    visible = observed & ~masked[..., None]  # (B, T, P)
    loc, scale, count = instance_stats(raw, visible, recent=recent)  # (B, 1, 1)
    targets = masked[..., None] & observed & (count >= MIN_VISIBLE)
    labels = torch.where(targets, normalise(raw, loc, scale), torch.full_like(raw, float("nan")))
    labels = labels.clamp(-TARGET_CLIP, TARGET_CLIP)  # NaN stays NaN
    ids = batch.input_ids.masked_fill(masked, mask_id)
    return batch.with_(input_ids=ids, values=model_inputs(raw, visible, loc, scale),
                       value_labels=labels)


def _choose_masked(attention: torch.Tensor, rate: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """(B, T) patches to hide: a tail of 1..max(1, n/4) patches in `TAIL_FRACTION` of the
    rows, a random `rate` of them elsewhere (at least one hidden, one visible)."""
    B, T = attention.shape
    n = attention.sum(1)  # (B,) real patches per row
    pos = torch.arange(T)[None, :]
    tail_rows = torch.rand(B, generator=generator) < TAIL_FRACTION
    k = 1 + (torch.rand(B, generator=generator) * (n // 4).clamp(min=1)).long()  # (B,)
    tail = pos >= (n - k)[:, None]
    random = torch.rand(B, T, generator=generator) < rate
    masked = torch.where(tail_rows[:, None], tail, random) & attention
    last = pos == (n - 1)[:, None]
    masked = masked | (last & ~masked.any(1, keepdim=True))  # at least one hidden
    first = pos == 0
    return masked & ~(first & masked.all(1, keepdim=True) & (n > 1)[:, None])  # one visible


def _short_history(attention: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, T) patches to blank in `SHORT_FRACTION` of the rows: all but the last
    1..n patches (whole patches, so the kept history is a random length)."""
    B, T = attention.shape
    n = attention.sum(1)
    rows = torch.rand(B, generator=generator) < SHORT_FRACTION
    keep = 1 + (torch.rand(B, generator=generator) * n).long()  # (B,) in 1..n
    pos = torch.arange(T)[None, :]
    return rows[:, None] & (pos < (n - keep)[:, None]) & attention


@OBJECTIVES.register("next-patch")
class NextPatch(QuantileObjective):
    """Predict patch t + 1 from patches 0..t (causal backbone, causal normalisation)."""

    backbone_kind = "decoder"

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        raw, observed = self._raw(batch)
        attention = batch.attention_mask.bool()
        observed = observed & ~_short_history(attention, generator)[..., None]
        return next_patch_batch(batch, raw, observed)


def next_patch_batch(batch: Batch, raw: torch.Tensor, observed: torch.Tensor) -> Batch:
    """Inputs normalised with causal statistics; targets: the next patch in the
    units of the current position (no loss before `MIN_VISIBLE` values were seen)."""
    loc, scale, count = instance_stats(raw, observed, cumulative=True)  # (B, T, 1)
    labels = torch.full_like(raw, float("nan"))
    ok = observed[:, 1:] & (count[:, :-1] >= MIN_VISIBLE)
    nxt = normalise(raw[:, 1:], loc[:, :-1], scale[:, :-1])
    labels[:, :-1] = torch.where(ok, nxt.clamp(-TARGET_CLIP, TARGET_CLIP), labels[:, :-1])
    return batch.with_(values=model_inputs(raw, observed, loc, scale), value_labels=labels)


__all__ = ["DEFAULT_QUANTILES", "MaskedPatch", "NextPatch", "QuantileHead", "QuantileObjective",
           "TARGET_CLIP", "masked_batch", "next_patch_batch", "pinball_loss"]
