"""What pretraining buys on one labeled task: the comparison table.

    table = compare(model, TASKS.get("crp-sites")(), seeds=3)
    table.render(console)

Per seed (the task's own split for that seed), the same split feeds: the
classical baselines of the task's modality (`Modality.baselines`), the architecture trained from scratch, and
the pretrained model as a linear probe, fully fine-tuned and LoRA-adapted.
`biofm compare` and `biofm demo` print these tables.

With `intervals=True` (`biofm compare --intervals`) each binary-classification row
also gets percentile-bootstrap 95% intervals of its test ROC-AUC and PR-AUC
(`bench.metrics.interval_columns`: 1,000 resamples of the test examples, seeded by
the split seed), as the columns roc_auc_lo / _hi, pr_auc_lo / _hi; the table shows
each metric's seed-mean interval beside it. ADMET gets one per property's ROC-AUC
(`modalities.molecules.admet_compare`). Segmentation tasks (`brain-box-seg`) get
intervals of mean Dice and HD95 over the test crops (dice_lo / _hi, hd95_lo / _hi);
other task kinds get no interval columns. `max_train` caps the training examples
(crops, for segmentation) per seed with a seeded sample.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from biofm.adapt import FinetuneConfig, finetune
from biofm.adapt.finetune import task_metrics
from biofm.bench.metrics import interval_columns
from biofm.bench.report import ResultTable
from biofm.data.tasks import Splits, Task
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.registry import MODALITIES

MODES = ("scratch", "probe", "full", "lora")


def compare(model: FoundationModel, task: Task, *, seeds: int = 3,
            modes: Sequence[str] = MODES, max_train: int = 0, quick: bool = False,
            say: Callable[[str], None] | None = None, device: str = "auto",
            intervals: bool = False) -> ResultTable:
    """Baselines + `modes` on `task` over `seeds` seeds (test metrics per seed; with
    `intervals`, bootstrap 95% intervals of binary ROC-AUC / PR-AUC too)."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise BiofmError(f"unknown transfer mode(s) {unknown}", fix=f"choose among {MODES}")
    if task.modality != model.config.data.modality:
        raise BiofmError(f"task {task.name!r} is {task.modality} data but the model is a "
                         f"{model.config.data.modality} model",
                         fix="compare a model pretrained on the task's modality")
    if task.compare is not None:  # e.g. ADMET: one multi-task model vs one model per task
        return task.compare(model, task, seeds=seeds, modes=modes, max_train=max_train,
                            quick=quick, say=say, device=device, intervals=intervals)
    table, start = ResultTable(), time.perf_counter()
    for seed in range(seeds):
        splits = cap_train(task.load(seed), 200 if quick else max_train, seed)
        for label, metrics in baselines(task, splits, seed, intervals).items():
            table.add(task.name, label, seed, metrics)
            _progress(say, task, seed, seeds, label, metrics, start)
        for mode in modes:
            result = finetune(model, splits, task.kind,
                              finetune_config(mode, seed, quick).replace(device=device))
            metrics = keep_metrics(task, result.test_metrics)
            if intervals:
                metrics |= interval_metrics(task, splits.test.labels,
                                            result.test_predictions, seed)
            table.add(task.name, mode_label(mode), seed, metrics)
            _progress(say, task, seed, seeds, mode_label(mode), metrics, start)
    if say is not None:
        methods = len({r["method"] for r in table.rows})
        say(f"{task.name}: {seeds} seed(s) x {methods} methods in "
            f"{time.perf_counter() - start:.0f} s")
    return table


def _progress(say: Callable[[str], None] | None, task: Task, seed: int, seeds: int,
              method: str, metrics: dict[str, float], start: float) -> None:
    """One line per finished (seed, method): readable in a terminal and in a log file."""
    if say is not None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        say(f"{task.name} seed {seed + 1}/{seeds}: {method}: {shown} "
            f"({time.perf_counter() - start:.0f} s)")


def finetune_config(mode: str, seed: int, quick: bool = False) -> FinetuneConfig:
    """The transfer recipe of the comparison: 15 epochs (early stopping, patience 4)."""
    lr = {"scratch": 2e-3, "full": 1e-3, "lora": 3e-3, "probe": 0.0}[mode]
    return FinetuneConfig(mode=mode, seed=seed, lr=lr, batch_size=64, epochs=2 if quick else 15,
                          patience=1 if quick else 4)


def mode_label(mode: str) -> str:
    return {"scratch": "scratch", "probe": "pretrained: probe",
            "full": "pretrained: fine-tune", "lora": "pretrained: LoRA"}[mode]


def keep_metrics(task: Task, metrics: dict[str, float]) -> dict[str, float]:
    """Regression: rmse, mae, spearman. Classification: roc_auc, accuracy, and pr_auc
    (binary) or macro_f1 (multiclass). Multilabel: macro roc_auc, pr_auc, macro_f1,
    micro_f1. Survival: c_index."""
    keys = {"classification": ("roc_auc", "pr_auc", "macro_f1", "accuracy"),
            "multilabel": ("roc_auc", "pr_auc", "macro_f1", "micro_f1"),
            "survival": ("c_index",)}.get(
        task.kind, ("rmse", "mae", "spearman"))
    return {k: metrics[k] for k in keys if k in metrics}


def cap_train(splits: Splits, max_train: int, seed: int) -> Splits:
    """At most `max_train` training examples (a seeded sample; valid and test kept)."""
    train = cap_examples(splits.train, max_train, seed)
    return splits if train is splits.train else Splits(train, splits.valid, splits.test)


def cap_examples(data, max_train: int, seed: int):
    """At most `max_train` of `data` (anything with `len` and `subset`: a `Split`,
    segmentation crops): a seeded sample in the original order; 0: all of it."""
    if not max_train or len(data) <= max_train:
        return data
    keep = np.random.default_rng(seed).choice(len(data), max_train, replace=False)
    return data.subset(np.sort(keep))


def interval_metrics(task: Task, labels: np.ndarray, predictions: np.ndarray,
                     seed: int) -> dict[str, float]:
    """Bootstrap 95% interval columns of a binary task's test ROC-AUC and PR-AUC (seeded
    by the split seed); none for other kinds."""
    scores = np.asarray(predictions)
    binary = task.kind == "classification" and (scores.ndim == 1 or scores.shape[1] == 2)
    return interval_columns(labels, scores, seed=seed) if binary else {}


def baselines(task: Task, splits: Splits, seed: int,
              intervals: bool = False) -> dict[str, dict[str, float]]:
    """The task modality's classical baselines (`Modality.baselines`) on the same split:
    label → test metrics (and, with `intervals`, their bootstrap interval columns)."""
    out = {}
    for baseline in MODALITIES.get(task.modality).baselines:
        if task.kind in baseline.kinds:
            predictions = baseline.predict(task.kind, splits, seed)
            out[baseline.label] = keep_metrics(task, task_metrics(task.kind, splits.test.labels,
                                                                  predictions))
            if intervals:
                out[baseline.label] |= interval_metrics(task, splits.test.labels,
                                                        predictions, seed)
    return out


__all__ = ["MODES", "baselines", "cap_train", "compare", "finetune_config", "keep_metrics",
           "interval_metrics", "mode_label"]
