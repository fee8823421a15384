"""How well `biofm screen` ranks compounds for targets it never saw: the screening report.

    table = screen_report("runs/kiba-lora")          # a pair-finetune output directory

The pair model's own task, split, seed and training cap (from its pair.json) rebuild
its test split. Its test targets are written as a FASTA and its test ligands as a
library CSV, and the two go through `screen` as a user's files would (chunks, checks,
ranking). Each test target's ranking of the library is then scored on the compounds
measured against it: Spearman between predicted and measured values, and EF10 (the
share of the measured top 10% within the predicted top 10%, over 10%: 1 random, 10
perfect), averaged over targets with at least 10 measured compounds
(`biofm.pairs.metrics.ranking_metrics`). The same split's baselines (GBT on
fingerprints + composition, training mean per target / per drug) are scored the same
way, so the rows say whether the screen beats them per target.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from biofm.bench.report import ResultTable
from biofm.errors import BiofmError
from biofm.pairs.baselines import run_baselines
from biofm.pairs.compare import cap_pairs
from biofm.pairs.data import PAIR_TASKS, PairData
from biofm.pairs.metrics import ranking_metrics
from biofm.pairs.saving import load_pair_model
from biofm.pairs.screen import screen

Log = Callable[[str], None]


def screen_report(model_dir: str | Path, *, device: str = "auto",
                  log: Log | None = None) -> ResultTable:
    """Per-target Spearman and EF10 of the screen and of the baselines on the model's
    test targets (see the module docstring)."""
    _, sides, info = load_pair_model(model_dir)
    if info.get("task") not in PAIR_TASKS:
        raise BiofmError(f"the pair model was trained on {info.get('task')!r}, not on a "
                         "packaged pair task: its test split cannot be rebuilt",
                         path=model_dir, fix="report on a model of `biofm pair-finetune "
                                             "--task kiba`")
    task = PAIR_TASKS.get(info["task"])()
    seed = int(info["config"].get("seed", 0))
    splits = cap_pairs(task.load(info["split"], seed), int(info.get("max_train", 0)), seed)
    test, query = splits.test, task.query_side
    name = f"{task.name} ({info['split']}) test targets"
    with tempfile.TemporaryDirectory(prefix=".screen-report-") as tmp:
        fasta, library = _write_inputs(Path(tmp), test, query)
        result = screen(model_dir, fasta, library, Path(tmp) / "ranked.csv",
                        column=sides[1 - query].column, device=device, log=log)
        predictions = _screen_predictions(Path(result.output), test, query)
    table = ResultTable()
    rows = {f"screen ({Path(model_dir).name}, {info['config']['mode']})": predictions,
            **run_baselines(splits, seed)}
    for method, values in rows.items():
        metrics = ranking_metrics(test.index[:, query], test.labels, values)
        table.add(name, method, seed, metrics)
    if log is not None:
        log(f"{name}: {len(test.used_items(query))} targets, {len(test.used_items(1 - query))} "
            f"compounds, {len(test):,} measured pairs")
    return table


def _write_inputs(tmp: Path, test: PairData, query: int) -> tuple[Path, Path]:
    """The test targets as FASTA (id = item number) and the test ligands as a library."""
    targets, ligands = test.used_items(query), test.used_items(1 - query)
    fasta = tmp / "targets.fasta"
    fasta.write_text("".join(f">t{i}\n{test.items[query][i]}\n" for i in targets))
    library = tmp / "library.csv"
    pd.DataFrame({"item": ligands, test.sides[1 - query].column:
                  [test.items[1 - query][i] for i in ligands]}).to_csv(library, index=False)
    return fasta, library


def _screen_predictions(ranked: Path, test: PairData, query: int) -> np.ndarray:
    """The screen's score of each measured test pair (N,)."""
    frame = pd.read_csv(ranked, usecols=["target_id", "score", "item"])
    score = {(int(t[1:]), int(i)): s for t, i, s in
             zip(frame["target_id"], frame["item"], frame["score"])}
    return np.array([score[(int(row[query]), int(row[1 - query]))] for row in test.index],
                    dtype=np.float64)


__all__ = ["screen_report"]
