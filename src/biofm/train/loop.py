"""The training loop shared by every objective and modality.

AdamW + warmup/cosine, gradient accumulation and clipping, bf16 autocast on
CUDA, optional `torch.compile` of the transformer blocks, periodic validation
with early stopping, a rich progress bar, metrics as JSON lines, and atomic
checkpoints that resume bit-for-bit: the data order, the masking generator and
the RNG states are all part of the checkpoint. The same loop runs in one
process or data-parallel under `torchrun` (DDP or FSDP2, `train.strategy`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from biofm.config import TrainConfig
from biofm.data.collate import pack_collate, pad_collate
from biofm.model import FoundationModel, load_weights, read_safetensors
from biofm.outputs import Batch
from biofm.train.checkpoint import (LoopState, latest_checkpoint, load_training_state,
                                    publish_model, replace_dir, restore_rng,
                                    save_training_checkpoint)
from biofm.train.distributed import DistInfo, ParallelModel, close_distributed, init_distributed
from biofm.train.plans import BatchPlan, ShardPlan, TokenBudgetPlan
from biofm.train.schedule import build_optimizer, warmup_cosine

__all__ = ["BatchPlan", "TokenBudgetPlan", "TrainResult", "autocast_context", "evaluate_loss",
           "resolve_device", "train"]

logger = logging.getLogger("biofm")
Augment = Callable[[list, int, Sequence[int]], list]
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


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """"auto" is CUDA when there is a GPU; under torchrun each rank takes GPU LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_context(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(model: FoundationModel, train_data: Sequence[Sequence[int]],
          valid_data: Sequence[Sequence[int]] | None, config: TrainConfig,
          run_dir: str | Path, *, resume: bool = False,
          console: Console | None = None, augment: Augment | None = None) -> TrainResult:
    """Pretrain `model` on token-id sequences; write checkpoints under `run_dir`.

    `augment(sequences, micro_step, indices)` may transform each micro-batch's
    token ids before masking (e.g. DNA reverse complement); it must depend only
    on its arguments so resumed and multi-process runs see the same data.

    `train_data` is a list of id sequences or a `ShardedCorpus` (read lazily,
    shard by shard). Under `torchrun` the run is data-parallel with the same
    global batches as one process (see `biofm.train.distributed`); rank 0
    writes checkpoints, metrics and the progress bar. `run_dir/final` holds the
    model to use afterwards: the best-validation weights when validation data
    is given, else the last weights.
    """
    info = init_distributed(resolve_device(config.device).type)
    try:
        run = _Run(model, train_data, valid_data if valid_data else None, config,
                   Path(run_dir), info, console or Console(stderr=True), resume)
        run.augment = augment
        return run.run()
    finally:
        close_distributed(info)


class _Run:
    """One training run: setup in `__init__`, the loop in `run`, a method per phase."""

    def __init__(self, model: FoundationModel, train_data: Sequence[Sequence[int]],
                 valid_data: Sequence[Sequence[int]] | None, config: TrainConfig, run_dir: Path,
                 info: DistInfo, console: Console, resume: bool) -> None:
        self.config, self.run_dir, self.info, self.console = config, run_dir, info, console
        self.train_data, self.valid_data, self.resume = train_data, valid_data, resume
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed + info.rank)  # dropout; masking has its own generator
        self.checkpoint = latest_checkpoint(run_dir) if resume else None
        if self.checkpoint is not None:  # before wrapping: every rank loads the same weights
            path = self.checkpoint / "model.safetensors"
            load_weights(model, read_safetensors(path), path)
        model.train()
        device = resolve_device(config.device, info.local_rank if info.world_size > 1 else None)
        self.model = ParallelModel.build(model, config.strategy, info, device,
                                         compile=config.compile)
        logger.info("training on %s (rank %d of %d, strategy %s, precision %s, compile %s)",
                    device, info.rank, info.world_size, self.model.strategy, config.precision,
                    config.compile)
        self.optimizer = build_optimizer(model, config.lr, config.weight_decay, config.betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(config.warmup_steps, config.max_steps, config.min_lr_ratio))
        self.mask_generator = torch.Generator().manual_seed(config.seed)
        self.loop = LoopState()
        self.plan, self.collate = _plan(train_data, config, model)
        self.window_loss: list[float] = []
        self.window_tokens, self.window_start = 0, time.perf_counter()
        self.augment: Augment | None = None

    def run(self) -> TrainResult:
        self._restore()
        cfg, loop = self.config, self.loop
        self.metrics = _MetricsLog(self.run_dir / "metrics.jsonl" if self.info.is_main else None,
                                   loop.history, cfg.tensorboard)
        stopped_early = False
        with _progress(self.console, cfg.progress and self.info.is_main) as progress:
            task = progress.add_task("pretrain", total=cfg.max_steps, completed=loop.step,
                                     loss=float("nan"), tps=0.0)
            while loop.step < cfg.max_steps and not stopped_early:
                self._log(*self._step(), progress, task)
                stopped_early = self._validate()
                if _due(loop.step, cfg.save_every, cfg.max_steps) or stopped_early:
                    save_training_checkpoint(self.run_dir, self.model, self.optimizer,
                                             self.scheduler, self.mask_generator, loop)
                progress.update(task, completed=loop.step)
        self._finish()
        self.metrics.close()
        train_losses = [h["loss"] for h in loop.history if "loss" in h]
        return TrainResult(final_loss=train_losses[-1] if train_losses else math.nan,
                           best_valid_loss=None if math.isinf(loop.best_valid) else loop.best_valid,
                           steps=loop.step, history=list(loop.history),
                           model_dir=self.run_dir / "final", stopped_early=stopped_early)

    def _restore(self) -> None:
        if self.checkpoint is None:
            if self.resume:
                self._say(f"no checkpoint in {self.run_dir}; starting a fresh run")
            return
        state = load_training_state(self.checkpoint)
        self.model.load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state, self.mask_generator, self.info.rank)
        self.loop = LoopState(**state["loop"])
        self._say(f"resuming from {self.checkpoint} (step {self.loop.step})")

    def _step(self) -> tuple[float, int, float]:
        """One optimizer step over `grad_accum` global micro-batches: (loss, tokens, grad norm)."""
        cfg, model = self.config, self.model
        self.optimizer.zero_grad(set_to_none=True)
        loss, tokens = 0.0, 0
        for i in range(cfg.grad_accum):
            batch = self._next_batch()
            tokens += batch.num_tokens
            part, weight = model.share(batch)
            with model.grad_sync(i == cfg.grad_accum - 1):
                with autocast_context(model.device, cfg.precision):
                    out = model.engine(part.to(model.device))
                (model.loss_for_backward(out, weight) / cfg.grad_accum).backward()
            if weight:
                loss += out.loss.item() * weight / cfg.grad_accum
        loss = model.all_reduce_sum([loss])[0]
        grad_norm = model.clip_grad_norm(cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.loop.step += 1
        return loss, tokens, grad_norm

    def _next_batch(self) -> Batch:
        """Global micro-batch `micro_step`, collated and prepared (masked) on the CPU."""
        core = self.model.core
        indices = self.plan(self.loop.micro_step)
        sequences = [self.train_data[int(i)] for i in indices]
        if self.augment is not None:
            sequences = self.augment(sequences, self.loop.micro_step, indices)
        batch = self.collate(sequences, core.tokenizer.pad_id)
        self.loop.micro_step += 1
        return core.objective.prepare(batch, self.mask_generator)

    def _log(self, loss: float, tokens: int, grad_norm: float, progress: Progress, task) -> None:
        self.window_loss.append(loss)
        self.window_tokens += tokens
        cfg, step = self.config, self.loop.step
        if step % cfg.log_every and step != cfg.max_steps:
            return
        elapsed = time.perf_counter() - self.window_start
        record = {"step": step, "loss": float(np.mean(self.window_loss)),
                  "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                  "tokens_per_s": self.window_tokens / max(elapsed, 1e-9)}
        self.metrics.write(record)
        progress.update(task, loss=record["loss"], tps=record["tokens_per_s"])
        self.window_loss, self.window_tokens = [], 0
        self.window_start = time.perf_counter()

    def _validate(self) -> bool:
        """Evaluate when due and publish best/; True when early stopping triggers."""
        cfg, loop = self.config, self.loop
        if self.valid_data is None or not _due(loop.step, cfg.eval_every, cfg.max_steps):
            return False
        valid_loss = evaluate_loss(self.model, self.valid_data, cfg)
        self.metrics.write({"step": loop.step, "valid_loss": valid_loss})
        if valid_loss < loop.best_valid - 1e-6:
            loop.best_valid, loop.evals_without_improvement = valid_loss, 0
            publish_model(self.model, self.run_dir / "best")
        else:
            loop.evals_without_improvement += 1
        if cfg.patience and loop.evals_without_improvement >= cfg.patience:
            self._say(f"early stop at step {loop.step}: no improvement in "
                      f"{cfg.patience} evaluations")
            return True
        return False

    def _finish(self) -> None:
        """final/ = best/ when there was validation, else the last weights."""
        best, final = self.run_dir / "best", self.run_dir / "final"
        self.model.barrier()
        if self.valid_data is not None and best.is_dir():
            if self.info.is_main:
                replace_dir(best, final, copy=True)
            self.model.barrier()
        else:
            publish_model(self.model, final)

    def _say(self, message: str) -> None:
        if self.info.is_main:
            self.console.print(message)


@torch.no_grad()
def evaluate_loss(model: FoundationModel | ParallelModel, data: Sequence[Sequence[int]],
                  config: TrainConfig, device: torch.device | None = None) -> float:
    """Token-weighted objective loss on `data` with a fixed masking seed.

    Distributed: every rank prepares each batch whole and runs its own rows.
    """
    parallel = model if isinstance(model, ParallelModel) else ParallelModel.local(model, device)
    core, engine = parallel.core, parallel.engine
    was_training = core.training
    engine.eval()
    generator = torch.Generator().manual_seed(VALID_MASK_SEED)
    order = np.argsort(_lengths(data), kind="stable")
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = pad_collate([data[int(i)] for i in order[start: start + config.batch_size]],
                            core.tokenizer.pad_id)
        part, weight = parallel.share(core.objective.prepare(batch, generator))
        with autocast_context(parallel.device, config.precision):
            out = engine(part.to(parallel.device))
        if weight:
            total += out.loss.item() * out.num_predicted
            count += out.num_predicted
    total, count = parallel.all_reduce_sum([total, float(count)])
    engine.train(was_training)
    return total / max(count, 1)


def _lengths(data: Sequence[Sequence[int]]) -> np.ndarray:
    """Sequence lengths; a sharded corpus has them in its index (no token reads)."""
    lengths = getattr(data, "lengths", None)
    return np.asarray([len(s) for s in data]) if lengths is None else lengths


def _plan(data: Sequence[Sequence[int]], config: TrainConfig, model: FoundationModel):
    """The micro-batch plan for `data` and the collator (pad, or pack into rows)."""
    lengths = _lengths(data)
    max_len = model.config.backbone.max_len
    tokens = (config.tokens_per_batch or config.batch_size * max_len) if config.packing else 0
    # packed attention runs per document, so one row per micro-batch wastes nothing
    row = config.row_tokens or max(tokens, max_len)
    if hasattr(data, "shard_sizes"):
        plan = ShardPlan(data.shard_sizes, lengths, config.seed, tokens=tokens,  # type: ignore
                         batch_size=0 if tokens else config.batch_size,
                         buffer=config.shuffle_buffer)
    elif config.packing:
        plan = TokenBudgetPlan(lengths, tokens, config.seed)
    else:
        plan = BatchPlan(lengths, config.batch_size, config.seed)
    collate = functools.partial(pack_collate, row_tokens=row) if config.packing else pad_collate
    return plan, collate


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


class _MetricsLog:
    """metrics.jsonl (rewritten from the checkpoint's history on resume) + TensorBoard.

    With `path` None (ranks other than 0) records only go to `history`.
    """

    def __init__(self, path: Path | None, history: list[dict[str, Any]], tensorboard: bool) -> None:
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
                self.tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:
                self.tb = None

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


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)
