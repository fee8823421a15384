"""What pretrained towers buy on a pair task: the comparison table.

    table = pair_compare((protein_model, molecule_model), PAIR_TASKS.get("kiba")(),
                         split="cold-target", seeds=3, max_train=1000)

Per seed, one split feeds: the classical baselines (GBT on ECFP + composition, the
per-target and per-drug training means), the towers' architectures trained from
scratch, and the pretrained towers frozen (probe: the head alone is trained), LoRA-
adapted and fully fine-tuned. Each row carries the test CI, MSE, Pearson and
Spearman over all test pairs, and per-target ranking quality (Spearman and EF10 of
each test target's compounds, see `biofm.pairs.metrics`).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from biofm.bench.report import ResultTable
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.pairs.baselines import run_baselines
from biofm.pairs.data import PairSplits, PairTask
from biofm.pairs.metrics import pair_metrics, ranking_metrics
from biofm.pairs.model import PairConfig
from biofm.pairs.train import pair_finetune

MODES = ("scratch", "probe", "lora", "full")
LABELS = {"scratch": "scratch towers", "probe": "pretrained: probe (frozen towers)",
          "lora": "pretrained: LoRA", "full": "pretrained: fine-tune"}
LR = {"scratch": 1e-3, "probe": 1e-3, "lora": 2e-3, "full": 5e-4}
Say = Callable[[str], None]


def compare_config(mode: str, seed: int, *, epochs: int = 15, quick: bool = False,
                   **changes) -> PairConfig:
    """The recipe of the comparison: concat-MLP head, batches of 64 pairs over 8
    targets, `epochs` epochs with early stopping (patience 4) on validation MSE."""
    return PairConfig(mode=mode, seed=seed, lr=LR[mode], epochs=2 if quick else epochs,
                      patience=1 if quick else 4, **changes)


def pair_compare(bases: tuple[FoundationModel, FoundationModel], task: PairTask, *,
                 split: str, seeds: int = 3, modes: Sequence[str] = MODES, max_train: int = 0,
                 epochs: int = 15, quick: bool = False, device: str = "auto",
                 max_tokens: int = 1024, say: Say | None = None) -> ResultTable:
    """Baselines + `modes` on `task` split by `split`, over `seeds` seeds (test metrics)."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise BiofmError(f"unknown pair mode(s) {unknown}", fix=f"choose among {', '.join(MODES)}")
    check_split(task, split)
    name = f"{task.name} ({split})"
    table, start = ResultTable(), time.perf_counter()
    for seed in range(seeds):
        splits = cap_pairs(task.load(split, seed), 200 if quick and not max_train else max_train,
                           seed)
        if say is not None and seed == 0:
            say(f"{name}: {len(splits.train):,} train / {len(splits.valid):,} valid / "
                f"{len(splits.test):,} test pairs" + "".join(f"; {n}" for n in splits.notes))
        for label, predictions in run_baselines(splits, seed).items():
            _add(table, name, label, seed, splits, predictions, task.query_side, say, start)
        for mode in modes:
            config = compare_config(mode, seed, epochs=epochs, quick=quick, device=device,
                                    max_tokens=max_tokens)
            result = pair_finetune(bases, splits, config,
                                   log=say if (seed == 0 and mode == modes[0]) else None)
            _add(table, name, LABELS[mode], seed, splits, result.test_predictions,
                 task.query_side, say, start)
    if say is not None:
        say(f"{name}: {seeds} seed(s) x {len({r['method'] for r in table.rows})} methods in "
            f"{time.perf_counter() - start:.0f} s")
    return table


def check_split(task: PairTask, split: str) -> None:
    if split not in task.splits:
        raise BiofmError(f"split {split!r} does not apply to the pair task {task.name!r}",
                         fix=f"use --split {' | '.join(task.splits)}")


def _add(table: ResultTable, name: str, method: str, seed: int, splits: PairSplits,
         predictions: np.ndarray, query_side: int, say: Say | None, start: float) -> None:
    test = splits.test
    metrics = pair_metrics(test.labels, predictions)
    ranking = ranking_metrics(test.index[:, query_side], test.labels, predictions)
    targets = int(ranking.pop("targets"))
    metrics.update(ranking)
    table.add(name, method, seed, metrics)
    if say is not None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        say(f"{name} seed {seed + 1}: {method}: {shown} (per-target over {targets} test "
            f"targets; {time.perf_counter() - start:.0f} s)")


def cap_pairs(splits: PairSplits, max_train: int, seed: int) -> PairSplits:
    """At most `max_train` training pairs (a seeded sample; valid and test kept)."""
    if not max_train or len(splits.train) <= max_train:
        return splits
    keep = np.random.default_rng(seed).choice(len(splits.train), max_train, replace=False)
    return PairSplits(splits.train.subset(np.sort(keep)), splits.valid, splits.test,
                      notes=(*splits.notes, f"training pairs capped at {max_train:,}"))


__all__ = ["LABELS", "MODES", "cap_pairs", "check_split", "compare_config", "pair_compare"]
