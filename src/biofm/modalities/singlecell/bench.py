"""The cell-type comparison: pretrained vs scratch vs the classical baseline.

Baseline (what a scanpy user would do first): counts normalised to 10,000 per
cell, log1p, PCA fitted on the training cells (50 components), then logistic
regression with its strength chosen on the validation split (`LinearProbe`).

The baseline is declared on the single-cell modality (`pca_features` + a linear
model), so `biofm compare` runs it beside the transfer methods.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biofm.adapt.probe import LinearProbe
from biofm.data.tasks import Split, Splits
from biofm.modalities.singlecell.reader import CellCounts, PerGeneArray
from biofm.modalities.singlecell.tokenizers import TARGET_SUM

PCA_COMPONENTS = 50
BASELINE = "LogReg on PCA (log-norm)"


def log_normalised(cells: Sequence[CellCounts], genes: Sequence[str]) -> np.ndarray:
    """(N, G) float32: counts of `genes` per cell / cell total × 1e4, then log1p
    (the total counts every gene of the cell, listed in `genes` or not)."""
    column = {g: j for j, g in enumerate(genes)}
    columns = PerGeneArray(lambda keys: np.fromiter((column.get(g, -1) for g in keys),
                                                    dtype=np.int64, count=len(keys)))
    out = np.zeros((len(cells), len(genes)), dtype=np.float32)
    for i, cell in enumerate(cells):
        counts = cell.counts.astype(np.float64)
        scaled = counts / max(counts.sum(), 1.0) * TARGET_SUM
        j = columns(cell.genes)[cell.indices]
        out[i, j[j >= 0]] = scaled[j >= 0]
    return np.log1p(out)


def training_genes(split: Split) -> list[str]:
    """Genes expressed in at least one training cell, sorted."""
    expressed = PerGeneArray(lambda genes: np.zeros(len(genes), dtype=bool))
    for cell in split.inputs:
        expressed(cell.genes)[cell.indices[cell.counts > 0]] = True
    return sorted({g for genes, mask in expressed.items() for g in genes[mask]})


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


def pca_features(splits: Splits, seed: int = 0,
                 n_components: int = PCA_COMPONENTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) PCA coordinates of log-normalised expression; the genes and
    the PCA are fitted on the training cells only (a `Baseline` featurizer)."""
    from sklearn.decomposition import PCA

    genes = training_genes(splits.train)
    x_train, x_valid, x_test = (log_normalised(s.inputs, genes)
                                for s in (splits.train, splits.valid, splits.test))
    pca = PCA(n_components=min(n_components, *x_train.shape), random_state=seed).fit(x_train)
    return pca.transform(x_train), pca.transform(x_valid), pca.transform(x_test)


def baseline_metrics(splits: Splits, seed: int = 0) -> dict[str, float]:
    """Test metrics of logistic regression on PCA of log-normalised expression."""
    from biofm.adapt.finetune import task_metrics

    _, probabilities = pca_logreg(splits, seed)
    return task_metrics("classification", splits.test.labels, probabilities)
