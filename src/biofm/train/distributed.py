"""Data-parallel training under `torchrun`: DDP, or FSDP2 (`fully_shard`).

    torchrun --nproc-per-node 2 -m biofm pretrain ... [--set train.strategy=fsdp2]

`init_distributed` joins the process group that torchrun describes in RANK,
WORLD_SIZE and LOCAL_RANK (gloo on CPU, NCCL on CUDA); one plain process
joins nothing and trains exactly as before.

Global batch semantics: `train.batch_size` (and `tokens_per_batch`) is the
global micro-batch. Every rank builds the same micro-batch `k` from the same
plan, collates it and applies the objective's masking with the shared
generator, then keeps only its own rows (`ParallelModel.share`). Each rank's
loss is weighted by its share of the micro-batch's predicted tokens, and each
micro-batch of an accumulated step by its share of the step's (`Trainer.step`
with `count`), so the gradient DDP / FSDP2 average over ranks equals the
token-mean gradient of a one-process run over the step's micro-batches: the
loss curve matches to float rounding.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from biofm.model import FoundationModel, weights_for_saving
from biofm.objectives.base import IGNORE_INDEX
from biofm.outputs import Batch, ObjectiveOutput

Strategy = Literal["none", "ddp", "fsdp2"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job; the defaults describe a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when init_distributed created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str = "cpu") -> DistInfo:
    """Join torchrun's process group (or the one a caller already created)."""
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return DistInfo(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), world, local_rank, owns_group=True)


def close_distributed(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Rank 0 (or a single process); safe to call before the group exists."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def resolve_strategy(name: str, world_size: int) -> Strategy:
    """"auto" is DDP under torchrun; any strategy is the plain path in one process."""
    if world_size <= 1:
        return "none"
    return "ddp" if name == "auto" else name  # type: ignore[return-value]


def wrap_model(model: FoundationModel, strategy: Strategy, device: torch.device) -> nn.Module:
    """The module that runs forward/backward: `model`, its DDP wrapper, or `model`
    itself after `fully_shard` (each transformer block, then the root)."""
    if strategy == "ddp":
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        for tensor in [*model.parameters(), *model.buffers()]:  # every rank starts from rank 0's
            dist.broadcast(tensor.data, src=0)
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        for block in getattr(model.backbone, "layers", []):
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)  # the root holds embeddings, final norm and the tied head
    return model


def compile_blocks(model: FoundationModel) -> None:
    """`torch.compile` each transformer block in place (parameter names unchanged,
    so checkpoints stay interchangeable with uncompiled runs)."""
    for block in getattr(model.backbone, "layers", []):
        block.compile()


class ParallelModel:
    """One process's handle on the model being trained.

    core:   the plain `FoundationModel` (config, tokenizer, objective.prepare)
    engine: what runs forward/backward (core, DDP(core), or core after fully_shard)
    """

    def __init__(self, core: FoundationModel, engine: nn.Module, strategy: Strategy,
                 info: DistInfo, device: torch.device) -> None:
        self.core, self.engine, self.strategy = core, engine, strategy
        self.info, self.device = info, device

    @classmethod
    def build(cls, model: FoundationModel, strategy: str, info: DistInfo, device: torch.device,
              *, compile: bool = False) -> "ParallelModel":
        """Move `model` to `device`, optionally compile its blocks, and wrap it."""
        model.to(device)
        if compile:
            compile_blocks(model)
        chosen = resolve_strategy(strategy, info.world_size)
        return cls(model, wrap_model(model, chosen, device), chosen, info, device)

    @classmethod
    def local(cls, model: FoundationModel, device: torch.device | None = None) -> "ParallelModel":
        return cls(model, model, "none", DistInfo(), device or model.device)

    # -- batches and losses -------------------------------------------------------
    def share(self, batch: Batch, total: int | None = None) -> tuple[Batch, float]:
        """This rank's rows of a prepared global batch and their share of its targets
        (`total`: the batch's `count_targets`, when the caller has it already).

        Rows are split as evenly as possible (`np.array_split`). A packed batch
        with fewer rows than ranks (by default packing makes one row) is dealt
        out by documents instead: one row per rank of about equal tokens, so
        every rank trains while there are as many documents as ranks. A rank
        left without rows runs one row with no targets (weight 0) so that it
        still takes part in the collectives of forward and backward.
        """
        total = count_targets(batch) if total is None else total
        world, rank = self.info.world_size, self.info.rank
        if world == 1:
            return batch, 1.0 if total else 0.0
        if batch.document_ids is not None and batch.input_ids.shape[0] < world:
            part = _documents(batch, rank, world)
        else:
            rows = np.array_split(np.arange(batch.input_ids.shape[0]), world)[rank]
            part = _rows(batch, torch.as_tensor(rows, dtype=torch.long)) if len(rows) else None
        if part is None:
            part = _rows(batch, torch.tensor([0]))
            part = part.with_(
                labels=None if part.labels is None else torch.full_like(part.labels, IGNORE_INDEX),
                value_labels=None if part.value_labels is None
                else torch.full_like(part.value_labels, float("nan")))
        return part, count_targets(part) / total if total else 0.0

    def loss_for_backward(self, out: ObjectiveOutput, weight: float) -> torch.Tensor:
        """Scaled so that the rank average of gradients is the global token-mean gradient."""
        if weight == 0.0:  # no targets here: a zero that still reaches every parameter
            return out.logits.sum() * 0.0
        return out.loss * (weight * self.info.world_size)

    @contextlib.contextmanager
    def grad_sync(self, sync: bool) -> Iterator[None]:
        """Skip the gradient all-reduce on all but the last accumulation micro-batch."""
        if self.strategy == "ddp" and not sync:
            with self.engine.no_sync():  # type: ignore[operator]
                yield
            return
        if self.strategy == "fsdp2":
            self.engine.set_requires_gradient_sync(sync)  # type: ignore[operator]
        yield

    # -- collectives ----------------------------------------------------------------
    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if self.info.world_size == 1:
            return values
        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """`obj` from every rank, in rank order (on every rank)."""
        if self.info.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.info.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.info.world_size > 1:
            dist.barrier()

    # -- state ----------------------------------------------------------------------
    def full_weights(self) -> dict[str, torch.Tensor]:
        """CPU weights for a model directory (tied ones once). A collective under
        FSDP2, where only rank 0 receives them; call it on every rank."""
        if self.strategy != "fsdp2":
            return weights_for_saving(self.core) if self.info.is_main else {}
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = get_model_state_dict(self.engine, options=_full_options())
        tied = _tied_duplicates(self.core)
        return {name: t.contiguous() for name, t in state.items() if name not in tied}

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The whole optimizer state keyed by parameter name (the same layout under
        every strategy, so a checkpoint resumes under any of them); rank 0 only."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.engine, optimizer, options=_full_options())

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import (StateDictOptions,
                                                             set_optimizer_state_dict)

        if all(isinstance(key, int) for key in state.get("state", {})):  # torch's own layout
            optimizer.load_state_dict(state)
            return
        set_optimizer_state_dict(self.engine, optimizer, state,
                                 options=StateDictOptions(full_state_dict=True))


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _tied_duplicates(model: nn.Module) -> set[str]:
    """Names under which a shared parameter appears a second time."""
    every = dict(model.named_parameters(remove_duplicate=False))
    return set(every) - set(dict(model.named_parameters()))


def count_targets(batch: Batch) -> int:
    """Tokens (or values) that enter the loss: labels != -100, finite value_labels."""
    count = 0 if batch.labels is None else int((batch.labels != IGNORE_INDEX).sum())
    if batch.value_labels is not None:
        count += int(torch.isfinite(batch.value_labels).sum())
    return count


def _documents(batch: Batch, rank: int, world: int) -> Batch | None:
    """Rank `rank`'s documents of a packed batch as one packed row (None: it gets none).

    The documents, in row order, are cut into `world` consecutive runs of about
    equal tokens (each non-empty while there are enough documents). A document
    keeps its tokens, labels and masking, and packed attention never crosses
    documents, so the ranks' losses weighted by their targets are the batch's.
    """
    spans = []  # (row, start, end) of each document; pack_collate lays them out in order
    for r, row in enumerate(batch.document_ids):
        ends = torch.bincount(row[row >= 0]).cumsum(0).tolist()
        spans += [(r, start, end) for start, end in zip([0, *ends[:-1]], ends)]
    cuts = _balanced_cuts([end - start for _, start, end in spans], world)
    mine = spans[cuts[rank]: cuts[rank + 1]]
    if not mine:
        return None

    def join(t: torch.Tensor | None) -> torch.Tensor | None:  # (B, T, ...) → (1, T_rank, ...)
        return None if t is None else torch.cat([t[r, s:e] for r, s, e in mine])[None]

    docs = torch.cat([torch.full((e - s,), d, dtype=torch.long)
                      for d, (_, s, e) in enumerate(mine)])[None]
    return Batch(join(batch.input_ids), join(batch.attention_mask), join(batch.labels), docs,
                 join(batch.values), join(batch.value_labels), join(batch.positions))


def _balanced_cuts(lengths: list[int], parts: int) -> list[int]:
    """Cut points 0 = c_0 <= ... <= c_parts = n splitting `lengths` into consecutive runs
    of about equal sums; every run holds one item at least while there are enough."""
    n, cum = len(lengths), np.cumsum(lengths)
    cuts = [0]
    for j in range(1, parts):
        target = cum[-1] * j / parts
        i = int(np.searchsorted(cum, target))  # the first item whose end reaches the target
        c = i if i > 0 and target - cum[i - 1] < cum[i] - target else i + 1
        lo, hi = cuts[-1] + 1, n - (parts - j)  # leave at least one item for every later run
        cuts.append(min(max(c, lo), hi) if lo <= hi else min(lo, n))
    return [*cuts, n]


def _rows(batch: Batch, rows: torch.Tensor) -> Batch:
    pick = lambda t: None if t is None else t[rows]  # noqa: E731
    return Batch(pick(batch.input_ids), pick(batch.attention_mask), pick(batch.labels),
                 pick(batch.document_ids), pick(batch.values), pick(batch.value_labels),
                 pick(batch.positions))
