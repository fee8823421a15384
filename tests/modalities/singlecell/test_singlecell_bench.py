"""The cell-type baseline: log-normalisation of typed cells, the training genes, and PCA +
logistic regression on known inputs (the whole comparison row is tests/bench/test_recipes.py)."""

from __future__ import annotations

import numpy as np

from biofm.data.tasks import Split, Splits
from biofm.modalities.singlecell.bench import baseline_metrics, log_normalised, training_genes
from tests.modalities.singlecell.cells import cell, cells


def test_log_normalisation():
    x = log_normalised(cells([[1, 3, 0], [0, 2, 2]], ["a", "b", "c"]), ["a", "b"])
    np.testing.assert_allclose(x, np.log1p([[2500.0, 7500.0], [0.0, 5000.0]]), rtol=1e-6)
    other_file = [cell(c=2, b=2, d=4)]  # another gene array, another column order
    np.testing.assert_allclose(log_normalised(other_file, ["a", "b"]), np.log1p([[0.0, 2500.0]]))


def test_training_genes_are_the_expressed_ones_of_every_file():
    split = Split(["x", "y", "z"], [*cells([[1, 0], [0, 0]], ["b", "a"]), cell(c=1)],
                  np.zeros(3))
    assert training_genes(split) == ["b", "c"]


def marker_cells(n: int, seed: int) -> Split:
    """Two synthetic cell types told apart by marker genes (generated, not real data)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    counts = rng.poisson(2.0, size=(n, 20)) + 1
    counts[:, :3] += 30 * labels[:, None]  # markers of type 1
    counts[:, 3:6] += 30 * (1 - labels[:, None])  # markers of type 0
    return Split([f"c{i}" for i in range(n)], cells(counts, [f"g{j}" for j in range(20)]), labels)


def test_baseline_separates_cell_types_by_their_markers():
    splits = Splits(marker_cells(60, 0), marker_cells(20, 1), marker_cells(20, 2))
    metrics = baseline_metrics(splits)
    assert metrics["accuracy"] == 1.0 and metrics["roc_auc"] == 1.0
