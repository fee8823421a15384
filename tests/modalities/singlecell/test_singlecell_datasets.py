"""Packaged single-cell data: the celltypist counts, the PBMC counts recovered from
scanpy's log-normalised file, and the cell-type task's stratified split."""

from __future__ import annotations

import numpy as np

from biofm.data.packaged import package_file
from biofm.modalities.singlecell.datasets import (CELLTYPIST, PBMC_CLASSES, pbmc68k_counts,
                                                  read_count_csv)
from biofm.registry import CORPORA, TASKS


def test_celltypist_sample_holds_integer_counts():
    cells = read_count_csv(package_file(*CELLTYPIST), max_cells=3)  # the corpus reads all 559
    assert [c.id for c in cells] == ["Cell_1", "Cell_2", "Cell_3"] and cells[0].line == 2
    first = cells[0].data
    assert first.counts.sum() == 17348 and (first.counts >= 1).all() and len(first) > 1000
    assert all(c.data.genes is first.genes for c in cells) and len(first.genes) == 32786


def test_pbmc_counts_are_recovered_from_log_normalised_raw():
    cells, genes, counts, labels = pbmc68k_counts()
    assert counts.shape == (700, 765) and len(genes) == 765 and len(set(labels)) == 10
    assert (counts >= 0).all() and (counts == np.round(counts)).all()
    # undoing the recovery gives back scanpy's raw.X (log1p of 10,000-per-cell scaling)
    from biofm.modalities.singlecell import open_h5ad
    from biofm.modalities.singlecell.datasets import PBMC68K

    adata = open_h5ad(package_file(*PBMC68K), backed=False)
    n_counts = adata.obs["n_counts"].to_numpy()[:, None]
    again = np.log1p(counts * 1e4 / n_counts)
    np.testing.assert_allclose(again, adata.raw.X.toarray(), atol=0.05)


def test_pbmc_corpus_records():
    records = CORPORA.get("pbmc68k-reduced")()
    assert len(records) == 700 and records[0].id == "AAAGCCTGGCTAAC-1"
    assert "blood-cells" in CORPORA and "celltypist-sample" in CORPORA


def test_celltype_task_split_is_stratified_and_seeded():
    task = TASKS.get("pbmc-celltype")()
    assert task.modality == "singlecell" and task.kind == "classification"
    splits = task.load(0)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (560, 71, 69)
    all_ids = splits.train.ids + splits.valid.ids + splits.test.ids
    assert len(set(all_ids)) == 700
    assert set(splits.train.labels.tolist()) == set(range(len(PBMC_CLASSES)))
    assert splits.test.ids != task.load(1).test.ids and splits.test.ids == task.load(0).test.ids
