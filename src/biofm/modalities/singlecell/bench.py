"""The cell-type comparison: pretrained vs scratch vs the classical baseline.

Baseline (what a scanpy user would do first): counts normalised to 10,000 per
cell, log1p, PCA fitted on the training cells (50 components), then logistic
regression with its strength chosen on the validation split (`LinearProbe`).

`celltype_comparison` runs the whole row: pretrain a tiny preset, then
`biofm.bench.compare` on "pbmc-celltype" (which calls `baseline_metrics` for
single-cell tasks) — the recipe search behind the `cell-geneformer-tiny` preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from biofm.adapt.probe import LinearProbe
from biofm.data.tasks import Split, Splits
from biofm.modalities.singlecell.reader import parse_cell
from biofm.modalities.singlecell.tokenizers import TARGET_SUM

PCA_COMPONENTS = 50
BASELINE = "LogReg on PCA (log-norm)"


def log_normalised(texts: Sequence[str], genes: Sequence[str]) -> np.ndarray:
    """(N, G) float32: counts of `genes` per cell / cell total × 1e4, then log1p
    (the total counts every gene of the cell, listed in `genes` or not)."""
    column = {g: j for j, g in enumerate(genes)}
    out = np.zeros((len(texts), len(genes)), dtype=np.float32)
    for i, text in enumerate(texts):
        names, counts = parse_cell(text)
        scaled = counts / max(counts.sum(), 1.0) * TARGET_SUM
        for name, value in zip(names, scaled):
            j = column.get(name)
            if j is not None:
                out[i, j] = value
    return np.log1p(out)


def training_genes(split: Split) -> list[str]:
    """Genes expressed in at least one training cell, sorted."""
    return sorted({pair.rpartition("=")[0] for text in split.inputs for pair in text.split()})


def pca_logreg(splits: Splits, seed: int = 0,
               n_components: int = PCA_COMPONENTS) -> tuple[LinearProbe, np.ndarray]:
    """Fit the baseline on train (strength on valid); (model, test class probabilities (N, C))."""
    from sklearn.decomposition import PCA

    genes = training_genes(splits.train)
    x_train, x_valid, x_test = (log_normalised(s.inputs, genes)
                                for s in (splits.train, splits.valid, splits.test))
    pca = PCA(n_components=min(n_components, *x_train.shape), random_state=seed).fit(x_train)
    z_train, z_valid, z_test = (pca.transform(x) for x in (x_train, x_valid, x_test))
    probe = LinearProbe.fit("classification", z_train, splits.train.labels, z_valid,
                            splits.valid.labels)
    return probe, probe.predict(z_test)


def baseline_metrics(splits: Splits, seed: int = 0) -> dict[str, float]:
    """Test metrics of logistic regression on PCA of log-normalised expression."""
    from biofm.adapt.finetune import task_metrics

    _, probabilities = pca_logreg(splits, seed)
    return task_metrics("classification", splits.test.labels, probabilities)


def celltype_comparison(output: str | Path, *, preset: str = "cell-geneformer-tiny",
                        seeds: int = 1, quick: bool = False, corpus: str | None = None,
                        modes: Sequence[str] = ("scratch", "probe", "full", "lora"),
                        overrides: dict[str, Any] | None = None):
    """Pretrain `preset` (on `corpus`, default the preset's; `overrides` merged into its
    config, e.g. {"train": {"max_steps": 800}}), then `biofm.bench.compare` on
    "pbmc-celltype" (the demo's transfer settings): a `ResultTable` with rows
    "LogReg on PCA (log-norm)" and one per mode, per seed (quick: seconds, for tests)."""
    from biofm.bench.compare import compare
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
    model = FoundationModel.load(pretrain(config, Path(output) / "pretrain" / preset).model_dir)
    return compare(model, TASKS.get("pbmc-celltype")(), seeds=seeds, modes=modes, quick=quick)
