"""Fine-tune a pretrained forecaster on the history of the series to forecast.

    forecaster = finetune_forecaster("runs/ts/final", [boston.head(200)], mode="lora",
                                     steps=100, seed=0)

The series are cut into windows (every `stride` steps, as long as the model's
context; shorter series give left-padded windows) and the model keeps training
with its own pretraining objective (masked-patch or next-patch, pinball loss on
the 23 FluSight levels), so the zero-shot forecasting path is unchanged. Pass
only values up to the forecast origin: whatever is passed is trained on.

- full: every weight is trained;
- lora: LoRA adapters (via `peft`, on the attention and MLP linears named in
  `adapt.finetune.LORA_TARGETS`) are trained, everything else stays frozen;
  the adapters are merged into the weights afterwards, so the result is a plain
  checkpoint;
- scratch: the same architecture with fresh random weights, trained like
  full: the baseline that shows what pretraining buys.
The run is deterministic given `seed` (window order, masking, LoRA initialisation).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from biofm.adapt.finetune import LORA_TARGETS, FinetuneConfig, inject_lora
from biofm.adapt.saving import merged_base
from biofm.data.collate import ValuedSequence, pad_collate
from biofm.device import resolve_device
from biofm.errors import BiofmError
from biofm.modalities.timeseries.model import PatchForecaster
from biofm.modalities.timeseries.pretraining import window_ends
from biofm.modalities.timeseries.series import Series
from biofm.model import FoundationModel
from biofm.outputs import Batch
from biofm.train.trainer import FitConfig, Loss, Trainer, fit

Mode = Literal["full", "lora", "scratch"]
DEFAULT_LR: dict[str, float] = {"full": 3e-4, "lora": 1e-3, "scratch": 1e-3}


def finetune_forecaster(checkpoint_dir: str | Path | FoundationModel, series: Sequence[Series],
                        *, mode: Mode = "full", steps: int = 100, seed: int = 0,
                        lr: float | None = None, batch_size: int = 16, stride: int = 1,
                        lora_r: int = 8, lora_alpha: int = 16,
                        device: str = "auto") -> PatchForecaster:
    """Fine-tune the checkpoint (a directory, or a loaded model that is left as it is)
    on windows of `series`; returns the adapted `PatchForecaster`.

    lr defaults to 3e-4 (full) or 1e-3 (lora, scratch).
    """
    if mode not in DEFAULT_LR:
        raise BiofmError(f"unknown fine-tuning mode {mode!r}",
                         fix="use 'full', 'lora' or 'scratch'")
    if steps < 1:
        raise BiofmError(f"steps must be at least 1, got {steps}", fix="pass steps >= 1")
    base = (copy.deepcopy(checkpoint_dir) if isinstance(checkpoint_dir, FoundationModel)
            else FoundationModel.load(checkpoint_dir))
    forecaster = PatchForecaster(base, device="cpu")  # validates the checkpoint kind
    windows = forecast_windows(forecaster, series, stride)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # LoRA or scratch initialisation, dropout
        if mode == "scratch":
            base = FoundationModel(base.config, base.tokenizer)
        if mode == "lora":
            inject_lora(base, r=lora_r, alpha=lora_alpha, targets=LORA_TARGETS)
        _train(base, windows, steps, lr or DEFAULT_LR[mode], batch_size, seed,
               resolve_device(device))
        if mode == "lora":  # inside fork_rng: the merge builds a model, drawing random weights
            base = merged_base(base)
    name = f"{forecaster.name}-{mode}"
    return PatchForecaster(base.eval(), name=name, device=device)


def forecast_windows(forecaster: PatchForecaster, series: Sequence[Series],
                     stride: int = 1) -> list[ValuedSequence]:
    """Context-length windows of each series (latest first, `stride` apart), as patches.

    Windows need more than one patch of observed values (something to predict
    after at least one visible patch); a series without any raises.
    """
    tokenizer = forecaster.model.tokenizer
    P, n_patches = forecaster.patch_len, forecaster.context_patches
    window, out = forecaster.context, []
    for s in series:
        kept = 0
        for end in window_ends(len(s), window, stride) + _short_ends(len(s), window, stride):
            values = s.values[max(0, end - window): end]
            if np.isfinite(values).sum() > P:
                out.append(tokenizer.encode_series(values, n_patches))  # type: ignore[attr-defined]
                kept += 1
        if not kept:
            raise BiofmError(f"series {s.id!r} has no window with more than {P} observed values",
                             path=s.source or None,
                             fix=f"fine-tune on a series with at least {P + 1} observed values")
    return out


def _short_ends(n: int, window: int, stride: int) -> list[int]:
    """Ends of the windows that lie wholly inside a series shorter than `window`."""
    return list(range(n - stride, 0, -stride)) if n <= window else []


def _train(model: FoundationModel, windows: list[ValuedSequence], steps: int, lr: float,
           batch_size: int, seed: int, device: torch.device) -> list[float]:
    """`steps` optimizer steps on seeded random batches of windows; the losses per step."""
    model.to(device).train()
    defaults = FinetuneConfig()
    config = FitConfig(lr=lr, max_steps=steps, weight_decay=defaults.weight_decay,
                       warmup_steps=round(defaults.warmup_ratio * steps),
                       min_lr_ratio=defaults.min_lr_ratio, grad_clip=defaults.grad_clip)
    generator = torch.Generator().manual_seed(seed)  # batch order and masking
    pad_id = model.tokenizer.pad_id

    def next_batch() -> Batch:
        index = torch.randperm(len(windows), generator=generator)[:batch_size]
        batch = pad_collate([windows[i] for i in index], pad_id)
        return model.objective.prepare(batch, generator).to(device)

    step_losses: list[torch.Tensor] = []
    fit(Trainer(model, config, device), next_batch, lambda batch: Loss(model(batch).loss),
        after_step=lambda out: step_losses.append(out.loss))
    model.cpu().eval()
    losses = [loss.item() for loss in step_losses]
    if not all(math.isfinite(x) for x in losses):
        raise BiofmError("fine-tuning diverged (the loss is not finite)",
                         fix="lower lr, or check the series for extreme values")
    return losses


__all__ = ["finetune_forecaster", "forecast_windows"]
