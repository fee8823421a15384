"""The one optimizer step, shared by pretraining and every kind of fine-tuning.

    trainer = Trainer(model, FitConfig(lr=1e-3, max_steps=100), device)
    stopped = fit(trainer, next_batch, lambda batch: Loss(model(batch).loss), after_step)

`Trainer.step` draws `grad_accum` micro-batches from `next_batch`, runs each
through `loss_fn` under autocast (bf16 on CUDA), accumulates the gradients,
clips their global norm and steps AdamW (no weight decay on norms, biases and
embeddings) on a warmup + cosine schedule. With `count` (the targets a
micro-batch's mean loss averages over) the micro-batches are weighted by their
share of the step's targets, so the step's gradient and loss are the token
mean over all of them, however unevenly masking or lengths spread the targets.
`fit` repeats the step until `max_steps` or until the caller's `after_step`
hook (logging, validation, checkpoints) asks to stop. `EarlyStopping` tracks
the best validation score; `MetricsLog` and `progress_bar` are the shared ways
to report.

Loss and gradient norm stay tensors inside the step (no device sync per
micro-batch); callers read them with `.item()` when they log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from pydantic import Field
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from torch import nn

from biofm.config import Config
from biofm.device import autocast_context
from biofm.errors import BiofmError
from biofm.train.schedule import build_optimizer, warmup_cosine

__all__ = ["BestEpoch", "EarlyStopping", "FitConfig", "Loss", "MetricsLog", "StepOutput",
           "Trainer", "clip_gradients", "fit", "progress_bar"]

B = TypeVar("B")  # whatever a caller's micro-batch is: a Batch, (batch, targets), ...


class FitConfig(Config):
    """How the optimizer steps.

    Args:
        lr / weight_decay / betas: AdamW; norms, biases and embeddings get no decay.
        max_steps: optimizer steps; the cosine schedule ends there.
        warmup_steps / min_lr_ratio: linear warmup to `lr`, then cosine decay
            to `min_lr_ratio * lr` at `max_steps`.
        grad_accum: micro-batches per optimizer step (their gradients average,
            weighted by their targets when `fit` is given `count`).
        grad_clip: largest global gradient norm (0 = no clipping).
        precision: "auto" (bf16 autocast on CUDA, fp32 elsewhere), "bf16" or "fp32".
    """

    lr: float = Field(ge=0)
    max_steps: int = Field(ge=0)
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = 0.1
    grad_accum: int = Field(1, ge=1)
    grad_clip: float = 1.0
    precision: Literal["auto", "fp32", "bf16"] = "auto"


@dataclass
class Loss:
    """What a caller's `loss_fn` returns for one micro-batch.

    backward: the scalar to differentiate (a distributed rank pre-scales its share);
    value: the loss to report (default: `backward`);
    weight: `value`'s share of the micro-batch (0: nothing to report on this rank).
    """

    backward: torch.Tensor
    value: torch.Tensor | None = None
    weight: float = 1.0


@dataclass
class StepOutput:
    """One optimizer step, for the caller's hook."""

    step: int  # optimizer steps done, this one included
    loss: torch.Tensor  # () float64: the micro-batches' weight * value, weighted by their shares
    grad_norm: torch.Tensor  # () global gradient norm before clipping
    lr: float  # the learning rate of the next step


class Trainer:
    """AdamW on warmup + cosine over `module`'s trainable parameters, and the step.

    `grad_sync(last)` wraps each micro-batch's forward and backward (DDP / FSDP2
    skip the gradient all-reduce until the last one); plain modules need none.
    `optimizer` and `scheduler` are attributes so checkpoints can save them.
    """

    def __init__(self, module: nn.Module, config: FitConfig, device: torch.device, *,
                 grad_sync: Callable[[bool], contextlib.AbstractContextManager] | None = None) -> None:
        self.module, self.config, self.device = module, config, device
        self.grad_sync = grad_sync or (lambda last: contextlib.nullcontext())
        self.optimizer = build_optimizer(module, config.lr, config.weight_decay, config.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            warmup_cosine(config.warmup_steps, config.max_steps, config.min_lr_ratio))

    @property
    def steps_done(self) -> int:
        """Counted by the scheduler, so a restored scheduler restores the count."""
        return self.scheduler.last_epoch

    def step(self, next_batch: Callable[[], B], loss_fn: Callable[[B], Loss],
             count: Callable[[B], float] | None = None) -> StepOutput:
        """One optimizer step over `grad_accum` micro-batches drawn from `next_batch`.

        count(batch): the targets its loss averages over, read before any forward
        (micro-batches are still host objects then, so no device sync); each
        micro-batch's loss is weighted by its share of the step's targets. None:
        equal weights. A micro-batch with count 0 must still return a finite loss.
        """
        accum = self.config.grad_accum
        batches = [next_batch() for _ in range(accum)]
        shares = _accumulation_weights(batches, count)
        self.optimizer.zero_grad(set_to_none=True)
        # float64 (as Python floats were): reported losses do not depend on the accumulation
        total = torch.zeros((), dtype=_report_dtype(self.device), device=self.device)
        for i, (batch, share) in enumerate(zip(batches, shares)):
            with self.grad_sync(i == accum - 1):
                with autocast_context(self.device, self.config.precision):
                    loss = loss_fn(batch)
                (loss.backward * share).backward()
            if loss.weight and share:  # nothing to report without targets (the value may be NaN)
                value = loss.backward if loss.value is None else loss.value
                total += value.detach().to(total.dtype) * (loss.weight * share)
        params = [p for p in self.module.parameters() if p.grad is not None]
        grad_norm = clip_gradients(params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return StepOutput(self.steps_done, total, grad_norm, self.scheduler.get_last_lr()[0])


def fit(trainer: Trainer, next_batch: Callable[[], B], loss_fn: Callable[[B], Loss],
        after_step: Callable[[StepOutput], bool | None] | None = None, *,
        count: Callable[[B], float] | None = None) -> bool:
    """Step until `max_steps` (steps done before a resume count) or until
    `after_step` returns True; True when it stopped early. `count`: see `Trainer.step`."""
    while trainer.steps_done < trainer.config.max_steps:
        out = trainer.step(next_batch, loss_fn, count)
        if after_step is not None and after_step(out):
            return True
    return False


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients of `params` to a global norm of at most `max_norm`
    (0: leave them); returns the norm before clipping, as a tensor."""
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if hasattr(total, "full_tensor"):  # FSDP2: the norm of sharded grads is a DTensor
        total = total.full_tensor()
    if max_norm > 0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


def _accumulation_weights(batches: list, count: Callable[[Any], float] | None) -> list[float]:
    """Each micro-batch's share of the step: count_k / sum(count), or 1 / k without counts."""
    if count is None:
        return [1.0 / len(batches)] * len(batches)
    counts = [float(count(batch)) for batch in batches]
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _report_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


@dataclass
class EarlyStopping:
    """The best validation score so far and the evaluations since it improved.

    `update(score)` is True when `score` beats the best by more than
    `min_delta` (the first score always does); `stop` once `patience`
    evaluations in a row did not (patience 0: never).
    """

    patience: int = 0
    higher_is_better: bool = False
    min_delta: float = 0.0
    best: float | None = None
    stale: int = 0

    def update(self, score: float) -> bool:
        if self.best is None:
            better = True
        elif self.higher_is_better:
            better = score > self.best + self.min_delta
        else:
            better = score < self.best - self.min_delta
        self.best, self.stale = (score, 0) if better else (self.best, self.stale + 1)
        return better

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience


class BestEpoch:
    """`fit`'s after-step hook for epoch-based fine-tuning: every `per_epoch` steps score
    the validation data, keep a copy of the best weights, stop after `patience`
    epochs without improvement (`EarlyStopping`); `restore()` loads the best back.

    `evaluate()` returns {name: value} and leaves the model's train / eval modes as it
    found them; `metric` is the name that selects, improving by more than `min_delta`.
    `history` gets one row per epoch: {"epoch", "train_loss" (the epoch's mean),
    "valid_<name>" for each name}; `log` a line per epoch, names shown as `labels` gives
    them (default: the names). With `count="step"` an evaluation every `per_epoch` steps
    of random batches is counted by its step instead ({"step", …}).
    """

    def __init__(self, model: nn.Module, evaluate: Callable[[], dict[str, float]], metric: str,
                 *, higher_is_better: bool, patience: int, per_epoch: int,
                 log: Callable[[str], None] | None = None,
                 labels: dict[str, str] | None = None, min_delta: float = 0.0,
                 count: Literal["epoch", "step"] = "epoch") -> None:
        self.model, self.evaluate, self.metric, self.per_epoch = model, evaluate, metric, per_epoch
        self.log, self.labels, self.count = log, labels or {}, count
        self.stopper = EarlyStopping(patience, higher_is_better=higher_is_better,
                                     min_delta=min_delta)
        self.losses: list[torch.Tensor] = []
        self.history: list[dict[str, float]] = []
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, out: StepOutput) -> bool:
        self.losses.append(out.loss)
        if out.step % self.per_epoch:
            return False
        scores = self.evaluate()
        at = out.step // self.per_epoch if self.count == "epoch" else out.step
        train_loss = torch.stack(self.losses).mean().item()
        self.losses = []
        self.history.append({self.count: at, "train_loss": train_loss,
                             **{f"valid_{name}": value for name, value in scores.items()}})
        if self.log is not None:
            shown = ", ".join(f"{self.labels.get(name, name)} {value:.4f}"
                              for name, value in scores.items())
            self.log(f"train loss {train_loss:.4f}, valid {shown} after {self.count} {at}")
        if self.stopper.update(scores[self.metric]):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return self.stopper.stop

    def restore(self) -> list[dict[str, float]]:
        """Load the best epoch's weights into the model (if an epoch ran); the history."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history


class MetricsLog:
    """metrics.jsonl (rewritten from `history` on resume) + optional TensorBoard.

    With `path` None (ranks other than 0, in-memory runs) records only go to `history`.
    """

    def __init__(self, path: Path | None, history: list[dict[str, Any]],
                 tensorboard: bool = False) -> None:
        self.history = history
        self.fh = open(path, "w") if path is not None else None
        self.tb = None
        if self.fh is None:
            return
        for record in history:
            self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise BiofmError("train.tensorboard=true, but TensorBoard is not installed",
                                 fix="pip install 'biofm[tensorboard]', or drop "
                                     "--set train.tensorboard=true") from None
            self.tb = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.fh is None:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.tb is not None:
            self.tb.close()


def progress_bar(console: Console, enabled: bool) -> Progress:
    """Steps, loss and tokens/s; tasks need the fields `loss` and `tps`."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)
