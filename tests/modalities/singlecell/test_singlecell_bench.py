"""The cell-type comparison: the PCA + logistic-regression baseline on known inputs, and
the whole row (pretrain → baseline, scratch, probe, fine-tune) at a seconds-long size."""

from __future__ import annotations

import numpy as np

from biofm.data.tasks import Split, Splits
from biofm.modalities.singlecell.bench import baseline_metrics, log_normalised


def test_log_normalisation():
    x = log_normalised(["a=1 b=3", "b=2 c=2"], ["a", "b"])
    np.testing.assert_allclose(x, np.log1p([[2500.0, 7500.0], [0.0, 5000.0]]), rtol=1e-6)


def marker_cells(n: int, seed: int) -> Split:
    """Two synthetic cell types told apart by marker genes (generated, not real data)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = []
    for label in labels:
        counts = rng.poisson(2.0, size=20) + 1
        counts[:3] += 30 if label else 0  # markers of type 1
        counts[3:6] += 0 if label else 30  # markers of type 0
        texts.append(" ".join(f"g{j}={c}" for j, c in enumerate(counts)))
    return Split([f"c{i}" for i in range(n)], texts, labels)


def test_baseline_separates_cell_types_by_their_markers():
    splits = Splits(marker_cells(60, 0), marker_cells(20, 1), marker_cells(20, 2))
    metrics = baseline_metrics(splits)
    assert metrics["accuracy"] == 1.0 and metrics["roc_auc"] == 1.0
