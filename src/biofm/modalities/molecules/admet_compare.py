"""ADMET: one multi-task model against one model per property, and RF on fingerprints.

    table = admet_compare(model, TASKS.get("admet")(), seeds=1, max_train=1000)

Per seed, on the splits of `biofm.modalities.molecules.admet` (training labels capped
at `max_train` per property, the same labels for every row of the table):

- "RF on Morgan fingerprints": one random forest per property (the molecule
  modality's classical baseline);
- "single-task: <mode>": one model per property, each adapted from the pretrained
  model in that transfer mode (`biofm.adapt.finetune`, the comparison's recipe);
- "multi-task: <mode>": one model for the five, with a sigmoid output per property
  on the shared pooled state; a molecule's unmeasured labels are masked out of the
  loss (multilabel fine-tuning with NaN labels).

Each row: test ROC-AUC per property (over its measured test molecules) and their mean;
with `intervals`, a percentile-bootstrap 95% interval per property (`<property>_lo`,
`<property>_hi`: 1,000 resamples of its measured test molecules, seeded by the split
seed), none for the mean.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from biofm.adapt import finetune
from biofm.bench.compare import MODES, finetune_config
from biofm.bench.metrics import bootstrap_ci, classification_metrics
from biofm.bench.report import ResultTable
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.registry import MODALITIES

from .admet import PROPERTIES, one_property

Say = Callable[[str], None]
MODE_NAMES = {"scratch": "scratch", "probe": "pretrained probe", "full": "pretrained fine-tune",
              "lora": "pretrained LoRA"}
QUICK_CAP = 200  # --quick (tests): labels per property in each split


def admet_compare(model: FoundationModel, task: Task, *, seeds: int = 3,
                  modes: Sequence[str] = MODES, max_train: int = 0, quick: bool = False,
                  say: Say | None = None, device: str = "auto",
                  intervals: bool = False) -> ResultTable:
    """RF, single-task and multi-task rows (test ROC-AUC per property, with `intervals`
    their bootstrap 95% intervals) over `seeds`."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise BiofmError(f"unknown transfer mode(s) {unknown}", fix=f"choose among {MODES}")
    names = task.classes or PROPERTIES
    table, start = ResultTable(), time.perf_counter()

    def add(method: str, seed: int, tested: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """`tested`: per property, (test labels, scores) over its measured molecules."""
        aucs = [_auc(y, p) for y, p in tested]
        metrics = {**dict(zip(names, aucs)), "mean": float(np.nanmean(aucs))}
        if intervals:  # per property: bootstrap of its measured test molecules
            for name, (y, p) in zip(names, tested):
                metrics[f"{name}_lo"], metrics[f"{name}_hi"] = _auc_interval(y, p, seed)
        table.add(task.name, method, seed, metrics)
        if say is not None:
            shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in (*names, "mean"))
            say(f"{task.name} seed {seed + 1}/{seeds}: {method}: ROC-AUC {shown} "
                f"({time.perf_counter() - start:.0f} s)")

    for seed in range(seeds):
        splits = task.load(seed)
        cap = QUICK_CAP if quick and not max_train else max_train
        splits = Splits(cap_labels(splits.train, cap, seed),
                        cap_labels(splits.valid, QUICK_CAP if quick else 0, seed),
                        cap_labels(splits.test, QUICK_CAP if quick else 0, seed))
        if say is not None and seed == 0:
            for note in task.notes:
                say(f"{task.name}: {note}")
            say(f"{task.name}: " + "; ".join(_counts(splits, names)))
        singles = [one_property(splits, j) for j in range(len(names))]
        rf = MODALITIES.get("molecule").baselines[0]
        add(rf.label, seed, [(s.test.labels, rf.predict("classification", s, seed))
                             for s in singles])
        for mode in modes:
            config = finetune_config(mode, seed, quick).replace(device=device)
            add(f"single-task: {MODE_NAMES[mode]}", seed,
                [(s.test.labels, finetune(model, s, "classification", config).test_predictions)
                 for s in singles])
            joint = finetune(model, splits, "multilabel", config).test_predictions  # (N, L)
            add(f"multi-task: {MODE_NAMES[mode]}", seed, per_label(splits.test.labels, joint))
    if say is not None:
        say(f"{task.name}: {seeds} seed(s) in {time.perf_counter() - start:.0f} s")
    return table


def cap_labels(split: Split, cap: int, seed: int) -> Split:
    """At most `cap` measured labels per property (a seeded sample; the others become
    NaN); molecules left with none are dropped. 0: all."""
    if not cap:
        return split
    labels = split.labels.copy()
    rng = np.random.default_rng(seed)
    for j in range(labels.shape[1]):
        seen = np.flatnonzero(~np.isnan(labels[:, j]))
        if len(seen) > cap:
            labels[rng.choice(seen, len(seen) - cap, replace=False), j] = np.nan
    keep = np.flatnonzero(~np.isnan(labels).all(1))
    return Split([split.ids[i] for i in keep], [split.inputs[i] for i in keep], labels[keep])


def per_label(labels: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per column, (labels, scores) over its measured rows."""
    measured = [~np.isnan(labels[:, j]) for j in range(labels.shape[1])]
    return [(labels[m, j], scores[m, j]) for j, m in enumerate(measured)]


def per_label_auc(labels: np.ndarray, scores: np.ndarray) -> list[float]:
    """ROC-AUC of each column over its measured rows (NaN: one class only)."""
    return [_auc(y, p) for y, p in per_label(labels, scores)]


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return classification_metrics(np.asarray(labels).astype(int), scores)["roc_auc"]


def _auc_interval(labels: np.ndarray, scores: np.ndarray, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap 95% interval of one property's test ROC-AUC (1,000
    resamples seeded by the split seed; `bootstrap_ci` gives NaN for one class)."""
    return bootstrap_ci(np.asarray(labels).astype(int), scores, seed=seed,
                        metrics=("roc_auc",))["roc_auc"]


def _counts(splits: Splits, names: Sequence[str]) -> list[str]:
    parts = []
    for label, split in (("train", splits.train), ("valid", splits.valid),
                         ("test", splits.test)):
        per = (~np.isnan(split.labels)).sum(0)
        parts.append(f"{label} {len(split):,} molecules ("
                     + ", ".join(f"{n} {c:,}" for n, c in zip(names, per)) + ")")
    return parts


__all__ = ["admet_compare", "cap_labels", "per_label_auc"]
