"""Pretraining: the shared optimizer step (`biofm.train.trainer`) over token-id corpora.

On top of the step (AdamW + warmup/cosine, gradient accumulation and
clipping, bf16 autocast on CUDA) this adds what pretraining needs: optional
`torch.compile` of the transformer blocks, periodic validation with early
stopping, a rich progress bar, metrics as JSON lines, and atomic checkpoints
that resume bit-for-bit: the data order, the masking generator and the RNG
states are all part of the checkpoint. The same loop runs in one process or
data-parallel under `torchrun` (DDP or FSDP2, `train.strategy`).

The hot path never waits on the device: micro-batches are collated, masked
and split between ranks on the CPU (on a background thread when
`train.num_workers` > 0, in pinned memory on CUDA), and the loss and gradient
norm stay tensors until a `log_every` step reads them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from rich.console import Console

from biofm.config import TrainConfig
from biofm.data.collate import pack_collate, pad_collate
from biofm.device import autocast_context, resolve_device
from biofm.model import FoundationModel, load_weights, read_safetensors
from biofm.outputs import Batch
from biofm.train.checkpoint import (LoopState, latest_checkpoint, load_training_state,
                                    publish_model, replace_dir, restore_rng,
                                    save_training_checkpoint)
from biofm.train.distributed import (DistInfo, ParallelModel, close_distributed, count_targets,
                                     init_distributed)
from biofm.train.plans import BatchPlan, ShardPlan, TokenBudgetPlan
from biofm.train.trainer import (EarlyStopping, FitConfig, Loss, MetricsLog, StepOutput,
                                 Trainer, fit, progress_bar)

__all__ = ["BatchPlan", "MicroBatches", "TokenBudgetPlan", "TrainResult", "evaluate_loss",
           "train"]

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


def _fit_config(config: TrainConfig) -> FitConfig:
    """The optimizer-step part of a pretraining config."""
    return FitConfig(lr=config.lr, max_steps=config.max_steps, weight_decay=config.weight_decay,
                     betas=config.betas, warmup_steps=config.warmup_steps,
                     min_lr_ratio=config.min_lr_ratio, grad_accum=config.grad_accum,
                     grad_clip=config.grad_clip, precision=config.precision)


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
        self.trainer = Trainer(model, _fit_config(config), device, grad_sync=self.model.grad_sync)
        self.mask_generator = torch.Generator().manual_seed(config.seed)
        self.loop = LoopState()
        self.plan, self.collate = _plan(train_data, config, model)
        self.window_loss: list[torch.Tensor] = []  # this rank's share of each step's loss
        self.window_carried: list[float] = []  # the window's losses before a resume, all ranks'
        self.window_tokens, self.window_start = 0, time.perf_counter()
        self.augment: Augment | None = None
        self.batches: MicroBatches[_MicroBatch] | None = None  # started after a restore
        self.mask_state = self.mask_generator.get_state()  # after the last consumed batch

    def run(self) -> TrainResult:
        self._restore()
        cfg, loop = self.config, self.loop
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl" if self.info.is_main else None,
                                  loop.history, cfg.tensorboard)
        self.stopper = EarlyStopping(cfg.patience, min_delta=1e-6, best=loop.best_valid,
                                     stale=loop.evals_without_improvement)
        if self.stopper.stop:  # resuming a run that had stopped early: it stays stopped
            self._say(f"the run stopped early at step {loop.step} (no improvement in "
                      f"{cfg.patience} evaluations); nothing to continue")
            stopped_early = True
        else:
            stopped_early = self._fit()
        self._finish()
        self.metrics.close()
        train_losses = [h["loss"] for h in loop.history if "loss" in h]
        return TrainResult(final_loss=train_losses[-1] if train_losses else math.nan,
                           best_valid_loss=None if math.isinf(loop.best_valid) else loop.best_valid,
                           steps=loop.step, history=list(loop.history),
                           model_dir=self.run_dir / "final", stopped_early=stopped_early)

    def _fit(self) -> bool:
        """The optimizer steps, with batches made ahead; True when it stopped early."""
        cfg, loop = self.config, self.loop
        self.batches = MicroBatches(self._make_batch, loop.micro_step, 2 * cfg.num_workers)
        try:
            with progress_bar(self.console, cfg.progress and self.info.is_main) as progress:
                self.progress = progress
                self.task = progress.add_task("pretrain", total=cfg.max_steps,
                                              completed=loop.step, loss=float("nan"), tps=0.0)
                # each global micro-batch weighs by its targets: the step is their token mean
                return fit(self.trainer, self._next_batch, self._loss, self._after_step,
                           count=lambda item: item.targets)
        finally:
            self.batches.close()

    def _restore(self) -> None:
        if self.checkpoint is None:
            if self.resume:
                self._say(f"no checkpoint in {self.run_dir}; starting a fresh run")
            return
        state = load_training_state(self.checkpoint)
        self.model.load_optimizer_state(self.trainer.optimizer, state["optimizer"])
        self.trainer.scheduler.load_state_dict(state["scheduler"])  # and the step count
        restore_rng(state, self.mask_generator, self.info.rank)
        self.mask_state = self.mask_generator.get_state()
        self.loop = LoopState(**state["loop"])
        # the loss window not yet logged, so the next record is the uninterrupted run's
        self.window_carried = list(self.loop.window_loss)
        self.window_tokens = self.loop.window_tokens
        self.window_start = time.perf_counter() - self.loop.window_seconds
        self._say(f"resuming from {self.checkpoint} (step {self.loop.step})")

    def _make_batch(self, k: int) -> "_MicroBatch":
        """Global micro-batch `k`: collated, prepared (masked) and this rank's share
        taken, all on the CPU; called in order k = micro_step, micro_step + 1, ..."""
        core = self.model.core
        indices = self.plan(k)
        sequences = [self.train_data[int(i)] for i in indices]
        if self.augment is not None:
            sequences = self.augment(sequences, k, indices)
        batch = self.collate(sequences, core.tokenizer.pad_id)
        prepared = core.objective.prepare(batch, self.mask_generator)
        targets = count_targets(prepared)
        part, weight = self.model.share(prepared, targets)
        if self.model.device.type == "cuda":  # pinned: the copy to the GPU overlaps compute
            part = _pinned(part)
        return _MicroBatch(part, weight, targets, batch.num_tokens,
                           self.mask_generator.get_state())

    def _next_batch(self) -> "_MicroBatch":
        assert self.batches is not None
        item = next(self.batches)
        self.loop.micro_step += 1
        self.mask_state = item.mask_state
        self.window_tokens += item.num_tokens
        return item

    def _loss(self, item: "_MicroBatch") -> Loss:
        """This rank's rows of a global micro-batch, weighted by their share of its targets."""
        out = self.model.engine(item.part.to(self.model.device))
        return Loss(self.model.loss_for_backward(out, item.weight), out.loss, item.weight)

    def _after_step(self, out: StepOutput) -> bool:
        """Log, validate, checkpoint; True when early stopping triggers."""
        cfg, loop = self.config, self.loop
        loop.step = out.step
        self._log(out)
        stop = self._validate()
        if _due(loop.step, cfg.save_every, cfg.max_steps) or stop:
            self._keep_window()
            # the masking state of the consumed batches, not of the ones prefetched
            consumed = torch.Generator()
            consumed.set_state(self.mask_state)
            save_training_checkpoint(self.run_dir, self.model, self.trainer.optimizer,
                                     self.trainer.scheduler, consumed, loop)
        self.progress.update(self.task, completed=loop.step)
        return stop

    def _log(self, out: StepOutput) -> None:
        self.window_loss.append(out.loss)
        cfg, step = self.config, out.step
        if step % cfg.log_every and step != cfg.max_steps:
            return
        # every rank logs at the same steps, so the sum over ranks is a collective they all join;
        # the window's losses are read from the device here, in one transfer
        losses = self.window_carried + self.model.all_reduce_sum(
            torch.stack(self.window_loss).tolist())
        elapsed = time.perf_counter() - self.window_start
        record = {"step": step, "loss": float(np.mean(losses)), "lr": out.lr,
                  "grad_norm": out.grad_norm.item(),
                  "tokens_per_s": self.window_tokens / max(elapsed, 1e-9)}
        self.metrics.write(record)
        self.progress.update(self.task, loss=record["loss"], tps=record["tokens_per_s"])
        self.window_loss, self.window_carried, self.window_tokens = [], [], 0
        self.window_start = time.perf_counter()

    def _keep_window(self) -> None:
        """Put the loss window not yet logged into the loop state, summed over ranks (a
        collective: every rank saves at the same steps), so a resume logs it as this run would."""
        loop = self.loop
        losses = torch.stack(self.window_loss).tolist() if self.window_loss else []
        loop.window_loss = self.window_carried + (self.model.all_reduce_sum(losses) if losses
                                                  else [])
        loop.window_tokens = self.window_tokens
        loop.window_seconds = time.perf_counter() - self.window_start

    def _validate(self) -> bool:
        """Evaluate when due and publish best/; True when early stopping triggers."""
        cfg, loop = self.config, self.loop
        if self.valid_data is None or not _due(loop.step, cfg.eval_every, cfg.max_steps):
            return False
        valid_loss = evaluate_loss(self.model, self.valid_data, cfg)
        self.metrics.write({"step": loop.step, "valid_loss": valid_loss})
        if self.stopper.update(valid_loss):
            publish_model(self.model, self.run_dir / "best")
        loop.best_valid, loop.evals_without_improvement = self.stopper.best, self.stopper.stale
        if self.stopper.stop:
            self._say(f"early stop at step {loop.step}: no improvement in "
                      f"{cfg.patience} evaluations")
        return self.stopper.stop

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
    tokens = (config.tokens_per_batch or default_token_budget(lengths, config.batch_size)
              if config.packing else 0)
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


def default_token_budget(lengths: np.ndarray, batch_size: int) -> int:
    """Packing keeps the batch size asked for: `batch_size` sequences of the mean
    length (batch_size × max_len would make steps several times larger)."""
    return max(1, round(batch_size * float(np.mean(lengths)))) if len(lengths) else batch_size


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


@dataclass
class _MicroBatch:
    """A micro-batch ready for the model: this rank's part, its share of the global
    batch's targets, the global batch's targets and real tokens, and the masking
    generator's state after it."""

    part: Batch
    weight: float
    targets: int
    num_tokens: int
    mask_state: torch.Tensor


def _pinned(batch: Batch) -> Batch:
    pin = {f.name: getattr(batch, f.name).pin_memory() for f in dataclasses.fields(batch)
           if isinstance(getattr(batch, f.name), torch.Tensor)}
    return batch.with_(**pin)


T = TypeVar("T")


class MicroBatches(Generic[T]):
    """`make(start)`, `make(start + 1)`, ... in order.

    depth 0: each is made when asked for. depth > 0: one background thread
    makes them up to `depth` ahead, so collation and masking overlap the
    model's step; `make` must then only touch state that the caller leaves
    alone (the loop's plan, data reader and masking generator). One thread,
    not several: masking draws from one generator in batch order, which keeps
    the batches identical to depth 0 and to an uninterrupted run.
    """

    def __init__(self, make: Callable[[int], T], start: int, depth: int) -> None:
        self.make, self.next_k, self.depth = make, start, depth
        self.queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if depth > 0:
            self.thread = threading.Thread(target=self._work, name="biofm-batches", daemon=True)
            self.thread.start()

    def __iter__(self) -> "MicroBatches[T]":
        return self

    def __next__(self) -> T:
        if self.thread is None:
            item = self.make(self.next_k)
            self.next_k += 1
            return item
        item = self.queue.get()
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        """Stop the background thread (batches made ahead are dropped)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _work(self) -> None:
        k = self.next_k
        while not self.stop.is_set():
            try:
                item: Any = self.make(k)
            except BaseException as exc:  # raised again in the consumer
                item = _Failed(exc)
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failed):
                return
            k += 1


@dataclass
class _Failed:
    error: BaseException
