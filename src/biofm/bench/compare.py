"""What pretraining buys on one labeled task: the comparison table.

    table = compare(model, TASKS.get("crp-sites")(), seeds=3)
    table.render(console)

Per seed (the task's own split for that seed), the same split feeds: the
classical baselines (`baselines`), the architecture trained from scratch, and
the pretrained model as a linear probe, fully fine-tuned and LoRA-adapted.
`biofm compare` and `biofm demo` print these tables.
"""

from __future__ import annotations

import itertools
import time
from typing import Callable, Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from biofm.adapt import FinetuneConfig, finetune
from biofm.adapt.finetune import task_metrics
from biofm.adapt.probe import LinearProbe
from biofm.bench.report import ResultTable
from biofm.data.tasks import Splits, Task
from biofm.model import FoundationModel

MODES = ("scratch", "probe", "full", "lora")
RANDOM_FOREST = "RF on fingerprints/k-mers"
LINEAR_KMER = "linear on 4-mer frequencies"


def compare(model: FoundationModel, task: Task, *, seeds: int = 3,
            modes: Sequence[str] = MODES, max_train: int = 0, quick: bool = False,
            say: Callable[[str], None] | None = None) -> ResultTable:
    """Baselines + `modes` on `task` over `seeds` seeds (test metrics per seed)."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        from biofm.errors import BiofmError
        raise BiofmError(f"unknown transfer mode(s) {unknown}", fix=f"choose among {MODES}")
    if task.modality != model.config.data.modality:
        from biofm.errors import BiofmError
        raise BiofmError(f"task {task.name!r} is {task.modality} data but the model is a "
                         f"{model.config.data.modality} model",
                         fix="compare a model pretrained on the task's modality")
    table, start = ResultTable(), time.perf_counter()
    for seed in range(seeds):
        splits = cap_train(task.load(seed), 200 if quick else max_train, seed)
        for label, metrics in baselines(task, splits, seed).items():
            table.add(task.name, label, seed, metrics)
        for mode in modes:
            result = finetune(model, splits, task.kind, finetune_config(mode, seed, quick))
            table.add(task.name, mode_label(mode), seed, keep_metrics(task, result.test_metrics))
    if say is not None:
        methods = len({r["method"] for r in table.rows})
        say(f"{task.name}: {seeds} seed(s) x {methods} methods in "
            f"{time.perf_counter() - start:.0f} s")
    return table


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
    (binary) or macro_f1 (multiclass)."""
    keys = ("roc_auc", "pr_auc", "macro_f1", "accuracy") if task.kind == "classification" \
        else ("rmse", "mae", "spearman")
    return {k: metrics[k] for k in keys if k in metrics}


def cap_train(splits: Splits, max_train: int, seed: int) -> Splits:
    """At most `max_train` training examples (a seeded sample; valid and test kept)."""
    if not max_train or len(splits.train) <= max_train:
        return splits
    keep = np.random.default_rng(seed).choice(len(splits.train), max_train, replace=False)
    return Splits(splits.train.subset(np.sort(keep)), splits.valid, splits.test)


def baselines(task: Task, splits: Splits, seed: int) -> dict[str, dict[str, float]]:
    """Classical baselines on the same split: label → test metrics.

    molecules: RF on Morgan fingerprints; peptides: RF on amino-acid + dipeptide
    composition; DNA: a linear model and an RF on 4-mer frequencies; cells:
    logistic regression on PCA of log-normalised expression (what a scanpy user
    does first). Linear models choose their strength on the validation split.
    """
    if task.modality == "singlecell":
        from biofm.modalities.singlecell.bench import BASELINE, baseline_metrics
        return {BASELINE: keep_metrics(task, baseline_metrics(splits, seed))}
    featurise = {"molecule": _morgan, "protein": _composition, "dna": _kmer_frequencies}
    if task.modality not in featurise:
        return {}
    x_train, x_valid, x_test = (featurise[task.modality](s.inputs)
                                for s in (splits.train, splits.valid, splits.test))
    out = {}
    if task.modality == "dna":
        linear = LinearProbe.fit(task.kind, x_train, splits.train.labels, x_valid,
                                 splits.valid.labels)
        out[LINEAR_KMER] = keep_metrics(task, task_metrics(task.kind, splits.test.labels,
                                                           linear.predict(x_test)))
    if task.kind == "regression":
        model = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=-1)
        pred = model.fit(x_train, splits.train.labels).predict(x_test)
    else:
        model = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=-1)
        proba = model.fit(x_train, splits.train.labels).predict_proba(x_test)
        pred = proba[:, 1] if proba.shape[1] == 2 else proba
    out[RANDOM_FOREST] = keep_metrics(task, task_metrics(task.kind, splits.test.labels, pred))
    return out


def _morgan(smiles: list[str]) -> np.ndarray:
    from biofm.modalities.molecules.fingerprints import morgan_fingerprints
    return morgan_fingerprints(smiles)


def _kmer_frequencies(sequences: list[str], k: int = 4) -> np.ndarray:
    """Overlapping k-mer (k=4, 256 features) frequencies: the classic DNA baseline."""
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    out = np.zeros((len(sequences), len(index)), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        hits = [index[seq[i: i + k]] for i in range(len(seq) - k + 1) if seq[i: i + k] in index]
        for j in hits:
            out[row, j] += 1 / max(len(hits), 1)
    return out


AMINO = "ACDEFGHIKLMNPQRSTVWY"
DIPEPTIDES = {a + b: i for i, (a, b) in enumerate(itertools.product(AMINO, AMINO))}


def _composition(sequences: list[str]) -> np.ndarray:
    """Amino-acid (20) + dipeptide (400) frequencies: the classic peptide baseline."""
    out = np.zeros((len(sequences), 420), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        for aa in seq:
            if aa in AMINO:
                out[row, AMINO.index(aa)] += 1 / max(len(seq), 1)
        for i in range(len(seq) - 1):
            j = DIPEPTIDES.get(seq[i: i + 2])
            if j is not None:
                out[row, 20 + j] += 1 / max(len(seq) - 1, 1)
    return out


__all__ = ["LINEAR_KMER", "MODES", "RANDOM_FOREST", "baselines", "cap_train", "compare",
           "finetune_config", "keep_metrics", "mode_label"]
