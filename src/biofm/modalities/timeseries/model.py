"""`PatchForecaster`: zero-shot probabilistic forecasts from a biofm time-series checkpoint.

It implements the `evaluation.Forecaster` protocol:

    forecaster = PatchForecaster.load("runs/ts/final")
    q = forecaster.forecast(history, horizon=4, quantiles=FLUSIGHT_QUANTILES)  # (4, 23)

Only the last `context` values of `history` are used (the checkpoint's window:
`context_patches * patch_len` steps, the last patch ending at the forecast
origin); the instance normalisation is computed from the last
`objective.norm_window` (16 in the presets) visible values alone and undone on the output, so
nothing after the origin can enter a forecast.

- masked-patch checkpoints (encoder): `ceil(horizon / patch_len)` masked patches
  are appended after the history (which then keeps `context_patches - k`
  patches) and predicted in one pass;
- next-patch checkpoints (decoder): the next patch is predicted from the last
  position, its median appended to the history, and so on until `horizon`.

A history shorter than the context is left-padded with missing values (the
model sees them as unobserved). Minimum: one observed value in the context
(`MIN_HISTORY`); with fewer than a patch of values the intervals are wide.
The model predicts the 23 FluSight levels; other levels are interpolated
linearly between them (and held constant beyond 0.01 / 0.99). Quantiles are
sorted, so they never cross, and clipped at 0 when the history has no negative
value (counts and rates).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from biofm.device import autocast_context, resolve_device
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.patching import (PatchTokenizer, denormalise, instance_stats,
                                                  patchify)
from biofm.objectives.patch import MaskedPatch, NextPatch, masked_batch, next_patch_batch
from biofm.outputs import Batch

MIN_HISTORY = 1  # observed values a history needs in the context window


class PatchForecaster:
    """A pretrained (or fine-tuned) patch transformer as a `Forecaster`."""

    def __init__(self, model: FoundationModel, name: str | None = None,
                 device: str = "auto") -> None:
        if not isinstance(model.tokenizer, PatchTokenizer) or \
                not isinstance(model.objective, (MaskedPatch, NextPatch)):
            raise BiofmError("this checkpoint is not a time-series forecaster (it has a "
                             f"{model.tokenizer.name!r} tokenizer and a "
                             f"{model.config.objective.name!r} objective)",
                             fix="pretrain one with `biofm pretrain --config ts-patch-tiny`")
        self.model = model.eval()
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.patch_len = model.tokenizer.patch_len
        window = model.config.data.window or model.config.backbone.max_len * self.patch_len
        self.context_patches = math.ceil(window / self.patch_len)
        self.levels = np.asarray(model.objective.levels)  # what the checkpoint predicts
        self.name = name or f"biofm-{model.config.objective.name}"

    @classmethod
    def load(cls, directory: str | Path, *, name: str | None = None,
             device: str = "auto") -> "PatchForecaster":
        """A checkpoint directory written by `biofm pretrain` (`DIR/final`) or `save`."""
        return cls(FoundationModel.load(directory), name, device)

    def save(self, directory: str | Path) -> Path:
        """A normal biofm checkpoint directory (`load` and `FoundationModel.load` read it)."""
        return self.model.save(directory)

    @property
    def context(self) -> int:
        """Steps of history the model sees (older values are ignored)."""
        return self.context_patches * self.patch_len

    @property
    def max_horizon(self) -> int:
        """Longest horizon of one pass (masked-patch); next-patch has no limit."""
        return (self.context_patches - 1) * self.patch_len

    # -- the Forecaster protocol ------------------------------------------------------
    def forecast(self, history: np.ndarray, horizon: int,
                 quantiles: Sequence[float] = FLUSIGHT_QUANTILES) -> np.ndarray:
        """(horizon, len(quantiles)) forecasts of the steps after `history` (n,) (NaN = missing)."""
        return self.forecast_many([history], horizon, quantiles)[0]

    def forecast_many(self, histories: Sequence[np.ndarray], horizon: int,
                      quantiles: Sequence[float] = FLUSIGHT_QUANTILES) -> np.ndarray:
        """(N, horizon, len(quantiles)) for N histories, run as one batch."""
        if horizon < 1:
            raise BiofmError(f"horizon must be at least 1, got {horizon}", fix="pass horizon >= 1")
        contexts = [self._context(h, i) for i, h in enumerate(histories)]
        levels = self._levels(contexts, horizon)  # (N, horizon, 23) sorted
        out = _interpolate(levels, self.levels, np.asarray(quantiles, dtype=np.float64))
        for i, ctx in enumerate(contexts):
            if np.nanmin(ctx) >= 0:
                out[i] = np.maximum(out[i], 0.0)
        return out

    def _context(self, history: np.ndarray, index: int) -> np.ndarray:
        history = np.asarray(history, dtype=np.float64)
        if history.ndim != 1:
            raise BiofmError(f"history {index} has shape {history.shape}; expected (n,)",
                             fix="pass one series' values as a 1-D array")
        context = history[-self.context:]
        if np.isfinite(context).sum() < MIN_HISTORY:
            raise BiofmError(f"history {index} has no observed value in its last {self.context} "
                             "steps", fix="give at least one observed value before the origin")
        return context

    def _levels(self, contexts: list[np.ndarray], horizon: int) -> np.ndarray:
        if isinstance(self.model.objective, MaskedPatch):
            return self._masked_levels(contexts, horizon)
        return self._next_levels(contexts, horizon)

    # -- masked-patch: one pass with k masked patches appended ----------------------------
    @torch.no_grad()
    def _masked_levels(self, contexts: list[np.ndarray], horizon: int) -> np.ndarray:
        k = math.ceil(horizon / self.patch_len)
        n_hist = self.context_patches - k
        if n_hist < 1:
            raise BiofmError(f"horizon {horizon} needs {k} patches; this model's context holds "
                             f"{self.context_patches}", fix=f"forecast at most {self.max_horizon} "
                                                            "steps ahead with this checkpoint")
        future = np.full((k, self.patch_len), np.nan, dtype=np.float32)
        raw = torch.as_tensor(np.stack([np.concatenate([patchify(c, self.patch_len, n_hist),
                                                        future]) for c in contexts]))  # (N, T, P)
        masked = torch.zeros(raw.shape[:2], dtype=torch.bool)
        masked[:, n_hist:] = True
        observed = torch.isfinite(raw)
        recent = self.model.config.objective.norm_window or None  # as in pretraining
        batch = masked_batch(self._batch(raw), raw, observed, masked, self.model.tokenizer.mask_id,
                             recent)
        loc, scale, _ = instance_stats(raw, observed & ~masked[..., None],
                                       recent=recent)  # (N, 1, 1)
        pred = self._run(batch)[:, n_hist:]  # (N, k, P, 23) normalised
        pred = denormalise(pred, loc[..., None], scale[..., None])
        return _sorted(pred.reshape(len(contexts), k * self.patch_len, -1)[:, :horizon])

    # -- next-patch: autoregressive over patches, feeding back the median ----------------------
    @torch.no_grad()
    def _next_levels(self, contexts: list[np.ndarray], horizon: int) -> np.ndarray:
        P, T = self.patch_len, self.context_patches
        median = int(np.argmin(np.abs(self.levels - 0.5)))
        series = [c.copy() for c in contexts]
        steps: list[np.ndarray] = []
        while sum(s.shape[1] for s in steps) < horizon:
            raw = torch.as_tensor(np.stack([patchify(s, P, T) for s in series]))  # (N, T, P)
            observed = torch.isfinite(raw)
            batch = next_patch_batch(self._batch(raw), raw, observed)
            loc, scale, _ = instance_stats(raw, observed, cumulative=True)  # (N, T, 1)
            pred = self._run(batch)[:, -1]  # (N, P, 23) in the last position's units
            pred = _sorted(denormalise(pred, loc[:, -1, :, None], scale[:, -1, :, None]))
            steps.append(pred)
            series = [np.concatenate([s, p[:, median]]) for s, p in zip(series, pred)]
        return np.concatenate(steps, axis=1)[:, :horizon]

    def _batch(self, raw: torch.Tensor) -> Batch:
        ids = torch.full(raw.shape[:2], self.model.tokenizer.patch_id, dtype=torch.long)
        return Batch(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                     values=raw)

    def _run(self, batch: Batch) -> torch.Tensor:
        """Quantile predictions (N, T, P, 23) in normalised units, float32 on the CPU."""
        batch = batch.to(self.device)
        with autocast_context(self.device, "auto"):
            hidden = self.model.backbone(batch.input_ids, batch.attention_mask,
                                         values=batch.values)
            pred = self.model.objective.logits(hidden.last_hidden_state)
        return pred.float().cpu()


def _sorted(pred: torch.Tensor) -> np.ndarray:
    """Quantiles made non-decreasing along the last axis (sorting never worsens pinball)."""
    return np.sort(pred.double().numpy(), axis=-1)


def _interpolate(values: np.ndarray, levels: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """(..., L) values at `levels` → (..., len(wanted)) by linear interpolation in the level."""
    if wanted.ndim != 1 or wanted.size == 0 or np.any((wanted <= 0) | (wanted >= 1)) \
            or np.any(np.diff(wanted) <= 0):
        raise BiofmError(f"quantile levels must increase strictly within (0, 1); got "
                         f"{wanted.tolist()}",
                         fix="pass levels such as FLUSIGHT_QUANTILES")
    if wanted.shape == levels.shape and np.allclose(wanted, levels):
        return values.copy()
    flat = values.reshape(-1, values.shape[-1])
    out = np.stack([np.interp(wanted, levels, row) for row in flat])
    return np.maximum.accumulate(out, axis=-1).reshape(*values.shape[:-1], wanted.size)


__all__ = ["MIN_HISTORY", "PatchForecaster"]
