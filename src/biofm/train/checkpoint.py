"""Training checkpoints: model directory + `train_state.pt`, published atomically.

Each save writes a complete new directory `step-NNNNNNN/` and only then
rewrites the one-line `latest` pointer (temp file + rename), so a run killed
at any moment leaves the previous checkpoint intact. Older step directories
are removed after the pointer moves.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text

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


def save_training_checkpoint(run_dir: Path, model, optimizer, scheduler,
                             mask_generator: torch.Generator, loop: LoopState,
                             keep: int = 1) -> Path:
    target = run_dir / f"step-{loop.step:07d}"
    if target.exists():
        shutil.rmtree(target)
    model.save(target)
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "mask_generator": mask_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "loop": asdict(loop),
    }
    with atomic_path(target / STATE_FILE) as tmp:
        torch.save(state, tmp)
    atomic_write_text(run_dir / LATEST, target.name + "\n")
    old = sorted(p for p in run_dir.glob("step-*") if p.is_dir() and p != target)
    for stale in old[: max(len(old) - (keep - 1), 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return target


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
        return torch.load(checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise BiofmError(f"training state is unreadable ({type(exc).__name__}: {exc})",
                         path=checkpoint_dir / STATE_FILE,
                         fix="resume from an earlier step-* directory or start a fresh run") from None


def restore_rng(state: dict[str, Any], mask_generator: torch.Generator) -> None:
    mask_generator.set_state(state["mask_generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
