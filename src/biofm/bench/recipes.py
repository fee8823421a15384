"""Experiment recipes: pretrain a preset, then compare on a task, in one call.

    table = pretrain_and_compare("runs/cells", preset="cell-geneformer-tiny",
                                 task="pbmc-celltype", seeds=3)

The recipe search behind a preset (e.g. `cell-geneformer-tiny` on
"pbmc-celltype") runs this with different `overrides` and compares the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from biofm.bench.compare import MODES, compare
from biofm.bench.report import ResultTable


def pretrain_and_compare(output: str | Path, *, preset: str, task: str, seeds: int = 1,
                         quick: bool = False, corpus: str | None = None,
                         modes: Sequence[str] = MODES,
                         overrides: dict[str, Any] | None = None) -> ResultTable:
    """Pretrain `preset` (on `corpus`, default the preset's; `overrides` merged into its
    config, e.g. {"train": {"max_steps": 800}}) under `output/pretrain/PRESET`, then
    `compare` on `task` with the demo's transfer settings (quick: seconds, for tests)."""
    from biofm.commands import pretrain
    from biofm.config import PretrainConfig, preset_path
    from biofm.model import FoundationModel
    from biofm.registry import TASKS

    config = PretrainConfig.load(preset_path("pretrain", preset))
    if corpus is not None:
        config = config.replace(data={"input": corpus})
    if overrides:
        config = config.replace(**overrides)
    if quick:
        config = config.replace(backbone={"max_len": 48},
                                train={"max_steps": 5, "eval_every": 5, "save_every": 5,
                                       "warmup_steps": 2, "progress": False})
    run = pretrain(config, Path(output) / "pretrain" / preset, overwrite=True)
    model = FoundationModel.load(run.model_dir)
    return compare(model, TASKS.get(task)(), seeds=seeds, modes=modes, quick=quick)


__all__ = ["pretrain_and_compare"]
