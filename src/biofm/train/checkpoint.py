"""Training checkpoints: model directory + `train_state.pt`, published atomically.

Each save writes a complete new directory `step-NNNNNNN/` and only then
rewrites the one-line `latest` pointer (temp file + rename), so a run killed
at any moment leaves the previous checkpoint intact. Older step directories
are removed after the pointer moves.

In a distributed run every rank calls the save (FSDP2 gathers the full
weights and optimizer state with collectives) and rank 0 alone writes; on
resume every rank reads the same files. The optimizer state is keyed by
parameter name, so a checkpoint written by one process, DDP or FSDP2 resumes
under any of them.

`train_state.pt` holds tensors and plain Python values only, so resume reads it
with `torch.load(weights_only=True)`, which runs no code from the file; numpy
values are turned into those at save time.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text
from biofm.train.distributed import ParallelModel

LATEST = "latest"
STATE_FILE = "train_state.pt"


@dataclass
class LoopState:
    """Where the loop is: enough to continue bit-for-bit."""

    step: int = 0  # optimizer steps done
    micro_step: int = 0  # micro-batches consumed (the data position)
    best_valid: float = float("inf")
    evals_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    # the steps since the last `loss` record: their losses (summed over ranks), the
    # global micro-batches' real tokens and the seconds they took
    window_loss: list[float] = field(default_factory=list)
    window_tokens: int = 0
    window_seconds: float = 0.0


def save_training_checkpoint(run_dir: Path, model: ParallelModel, optimizer, scheduler,
                             mask_generator: torch.Generator, loop: LoopState,
                             keep: int = 1) -> Path:
    """Write `step-NNNNNNN/` (model directory + train_state.pt), then move `latest`.

    Call on every rank: under FSDP2 gathering weights and optimizer state are
    collectives. Rank 0 writes; the others wait until the pointer has moved.
    """
    target = run_dir / f"step-{loop.step:07d}"
    weights = model.full_weights()
    optimizer_state = model.optimizer_state(optimizer)
    rng = model.gather({"torch": torch.get_rng_state(), "cuda": _cuda_rng()})
    if model.info.is_main:
        if target.exists():
            shutil.rmtree(target)
        model.core.save(target, weights)
        state = _plain({
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "mask_generator": mask_generator.get_state(),
            "torch_rng": rng[0]["torch"],
            "cuda_rng": rng[0]["cuda"],
            "rank_rng": rng,  # per rank: dropout draws differ by rank
            "loop": asdict(loop),
        })
        with atomic_path(target / STATE_FILE) as tmp:
            torch.save(state, tmp)
        atomic_write_text(run_dir / LATEST, target.name + "\n")
        old = sorted(p for p in run_dir.glob("step-*") if p.is_dir() and p != target)
        for stale in old[: max(len(old) - (keep - 1), 0)]:
            shutil.rmtree(stale, ignore_errors=True)
    model.barrier()
    return target


def publish_model(model: ParallelModel, target: Path) -> None:
    """Write a model directory beside `target`, then swap it in (no half-written dir).
    Every rank calls it; rank 0 writes."""
    weights = model.full_weights()
    if model.info.is_main:
        staging = target.with_name(target.name + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        model.core.save(staging, weights)
        replace_dir(staging, target)
    model.barrier()


def replace_dir(source: Path, target: Path, copy: bool = False) -> None:
    """Put `source` at `target` by renames (copying it first when asked)."""
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


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / LATEST
    if not pointer.is_file():
        return None
    target = run_dir / pointer.read_text().strip()
    if not (target / STATE_FILE).is_file():
        raise BiofmError(f"the latest checkpoint {target.name} is incomplete", path=run_dir,
                         fix="delete the 'latest' file to start over, or point it at an "
                             "intact step-* directory")
    return target


def load_training_state(checkpoint_dir: Path) -> dict[str, Any]:
    try:
        return torch.load(checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise BiofmError(f"training state is unreadable ({type(exc).__name__}: {exc})",
                         path=checkpoint_dir / STATE_FILE,
                         fix="resume from an earlier step-* directory or start a fresh run") from None


def restore_rng(state: dict[str, Any], mask_generator: torch.Generator, rank: int = 0) -> None:
    """Masking generator (shared by all ranks) and this rank's torch / CUDA RNG."""
    mask_generator.set_state(state["mask_generator"])
    ranks = state.get("rank_rng") or []
    own = ranks[rank] if rank < len(ranks) else {"torch": state["torch_rng"],
                                                  "cuda": state.get("cuda_rng")}
    torch.set_rng_state(own["torch"])
    if own.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["cuda"])


def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and arrays as tensors (both exact),
    so that `torch.load(weights_only=True)` reads it back."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    return value


def _cuda_rng() -> list[torch.Tensor] | None:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
