"""The training loop shared by every objective and modality.

AdamW + warmup/cosine, gradient accumulation and clipping, bf16 autocast on
CUDA, periodic validation with early stopping, a rich progress bar, metrics as
JSON lines, and atomic checkpoints that resume bit-for-bit: the data order,
the masking generator and the RNG states are all part of the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from biofm.config import TrainConfig
from biofm.data.collate import pack_collate, pad_collate
from biofm.model import FoundationModel, load_weights, read_safetensors
from biofm.train.checkpoint import (LoopState, latest_checkpoint, load_training_state,
                                    restore_rng, save_training_checkpoint)
from biofm.train.schedule import build_optimizer, warmup_cosine

VALID_MASK_SEED = 1_000_003  # validation masking is fixed so losses compare across evals


@dataclass
class TrainResult:
    """What `train` returns; entry points pass it on so tests can check numbers."""

    final_loss: float
    best_valid_loss: float | None
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    model_dir: Path | None = None
    stopped_early: bool = False


class BatchPlan:
    """Deterministic micro-batch order from a global index `k`.

    Epoch e uses a permutation seeded by (seed, e); within windows of
    `bucket` batches sequences are sorted by length, which cuts padding while
    keeping batches random. Any `k` maps to the same indices after a resume.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, bucket: int = 32) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = min(batch_size, len(lengths))
        self.seed = seed
        self.bucket = bucket
        self.per_epoch = len(lengths) // self.batch_size  # drop the ragged tail
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __call__(self, k: int) -> np.ndarray:
        epoch, i = divmod(k, self.per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._epoch_batches(epoch))
        return self._cache[1][i]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))[: self.per_epoch * self.batch_size]
        window = self.bucket * self.batch_size
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start: start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            group = [chunk[j: j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
            batches += [group[j] for j in rng.permutation(len(group))]
        return batches


class TokenBudgetPlan:
    """Micro-batches holding up to `tokens` tokens each (for packing).

    Epoch e shuffles with (seed, e) and fills batches greedily in that order,
    so every batch carries about the same number of real tokens whatever the
    length distribution; `k` maps to the same indices after a resume.
    """

    def __init__(self, lengths: Sequence[int], tokens: int, seed: int) -> None:
        self.lengths = np.asarray(lengths)
        self.tokens = max(tokens, int(self.lengths.max()))
        self.seed = seed
        self._epochs: dict[int, list[np.ndarray]] = {}
        self.per_epoch = len(self._epoch_batches(0))

    def __call__(self, k: int) -> np.ndarray:
        epoch = 0
        while k >= len(self._epoch_batches(epoch)):
            k -= len(self._epoch_batches(epoch))
            epoch += 1
        return self._epoch_batches(epoch)[k]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self._epochs:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
            batches, current, used = [], [], 0
            for i in order:
                if used + self.lengths[i] > self.tokens and current:
                    batches.append(np.array(current))
                    current, used = [], 0
                current.append(i)
                used += self.lengths[i]
            if current and used >= self.tokens // 2:  # drop a small ragged tail
                batches.append(np.array(current))
            self._epochs = {epoch: batches}  # keep one epoch in memory
        return self._epochs[epoch]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_context(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(model: FoundationModel, train_data: Sequence[Sequence[int]],
          valid_data: Sequence[Sequence[int]] | None, config: TrainConfig,
          run_dir: str | Path, *, resume: bool = False,
          console: Console | None = None) -> TrainResult:
    """Pretrain `model` on token-id sequences; write checkpoints under `run_dir`.

    `run_dir/final` holds the model to use afterwards: the best-validation
    weights when validation data is given, else the last weights.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)  # dropout; masking has its own generator
    model.to(device).train()
    optimizer = build_optimizer(model, config.lr, config.weight_decay, config.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.warmup_steps, config.max_steps, config.min_lr_ratio))
    mask_generator = torch.Generator().manual_seed(config.seed)
    loop = LoopState()

    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = load_training_state(checkpoint)
        load_weights(model, read_safetensors(checkpoint / "model.safetensors", str(device)),
                     checkpoint / "model.safetensors")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state, mask_generator)
        loop = LoopState(**state["loop"])
        console.print(f"resuming from {checkpoint} (step {loop.step})")
    elif resume:
        console.print(f"no checkpoint in {run_dir}; starting a fresh run")

    lengths = [len(s) for s in train_data]
    if config.packing:
        row = config.row_tokens or model.config.backbone.max_len
        plan = TokenBudgetPlan(lengths, config.tokens_per_batch or config.batch_size * row,
                               config.seed)
        collate = lambda seqs, pad: pack_collate(seqs, pad, row)  # noqa: E731
    else:
        plan = BatchPlan(lengths, config.batch_size, config.seed)
        collate = pad_collate
    metrics = _MetricsLog(run_dir / "metrics.jsonl", loop.history, config.tensorboard)
    pad_id = model.tokenizer.pad_id
    stopped_early = False
    window_loss, window_tokens, window_start = [], 0, time.perf_counter()

    with _progress(console, config.progress) as progress:
        task = progress.add_task("pretrain", total=config.max_steps, completed=loop.step,
                                 loss=float("nan"), tps=0.0)
        while loop.step < config.max_steps:
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for _ in range(config.grad_accum):
                batch = collate([train_data[i] for i in plan(loop.micro_step)], pad_id)
                batch = model.objective.prepare(batch, mask_generator).to(device)
                loop.micro_step += 1
                with autocast_context(device, config.precision):
                    out = model(batch)
                (out.loss / config.grad_accum).backward()
                step_loss += out.loss.item() / config.grad_accum
                window_tokens += batch.num_tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            loop.step += 1
            window_loss.append(step_loss)

            if loop.step % config.log_every == 0 or loop.step == config.max_steps:
                elapsed = time.perf_counter() - window_start
                record = {"step": loop.step, "loss": float(np.mean(window_loss)),
                          "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm),
                          "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
                metrics.write(record)
                progress.update(task, loss=record["loss"], tps=record["tokens_per_s"])
                window_loss, window_tokens, window_start = [], 0, time.perf_counter()

            if valid_data and _due(loop.step, config.eval_every, config.max_steps):
                valid_loss = evaluate_loss(model, valid_data, config, device)
                metrics.write({"step": loop.step, "valid_loss": valid_loss})
                if valid_loss < loop.best_valid - 1e-6:
                    loop.best_valid, loop.evals_without_improvement = valid_loss, 0
                    publish_model(model, run_dir / "best")
                else:
                    loop.evals_without_improvement += 1
                if config.patience and loop.evals_without_improvement >= config.patience:
                    console.print(f"early stop at step {loop.step}: no improvement in "
                                  f"{config.patience} evaluations")
                    stopped_early = True
            if _due(loop.step, config.save_every, config.max_steps) or stopped_early:
                save_training_checkpoint(run_dir, model, optimizer, scheduler, mask_generator, loop)
            progress.update(task, completed=loop.step)
            if stopped_early:
                break

    final_dir = run_dir / "final"
    if valid_data and (run_dir / "best").is_dir():
        _replace_dir(run_dir / "best", final_dir, copy=True)
    else:
        publish_model(model, final_dir)
    metrics.close()
    train_losses = [h["loss"] for h in loop.history if "loss" in h]
    return TrainResult(final_loss=train_losses[-1] if train_losses else math.nan,
                       best_valid_loss=None if math.isinf(loop.best_valid) else loop.best_valid,
                       steps=loop.step, history=list(loop.history), model_dir=final_dir,
                       stopped_early=stopped_early)


@torch.no_grad()
def evaluate_loss(model: FoundationModel, data: Sequence[Sequence[int]], config: TrainConfig,
                  device: torch.device) -> float:
    """Token-weighted objective loss on `data` with a fixed masking seed."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(VALID_MASK_SEED)
    order = np.argsort([len(s) for s in data], kind="stable")
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = pad_collate([data[i] for i in order[start: start + config.batch_size]],
                            model.tokenizer.pad_id)
        batch = model.objective.prepare(batch, generator).to(device)
        with autocast_context(device, config.precision):
            out = model(batch)
        total += out.loss.item() * out.num_predicted
        count += out.num_predicted
    model.train(was_training)
    return total / max(count, 1)


def publish_model(model: FoundationModel, target: Path) -> None:
    """Write a model directory beside `target`, then swap it in (no half-written dir)."""
    staging = target.with_name(target.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    model.save(staging)
    _replace_dir(staging, target)


def _replace_dir(source: Path, target: Path, copy: bool = False) -> None:
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if copy:
        staging = target.with_name(target.name + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(source, staging)
        source = staging
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


class _MetricsLog:
    """metrics.jsonl (rewritten from the checkpoint's history on resume) + TensorBoard."""

    def __init__(self, path: Path, history: list[dict[str, Any]], tensorboard: bool) -> None:
        self.history = history
        self.fh = open(path, "w")
        for record in history:
            self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self.fh.close()
        if self.tb is not None:
            self.tb.close()


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)
