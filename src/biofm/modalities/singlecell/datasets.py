"""Real single-cell data that ships inside installed packages (nothing is downloaded).

Corpora (unlabeled, for pretraining), each a zero-argument callable → list[Record]
of cells (data = the cell's `CellCounts`, gene symbols):

- "celltypist-sample": 559 cells × 32,786 genes of integer UMI counts, celltypist
  1.7.1 `data/samples/sample_cell_by_gene.csv` (MIT);
- "pbmc68k-reduced": the 700 PBMCs of scanpy 1.11.5 `datasets/10x_pbmc68k_reduced.h5ad`
  (BSD-3; 10x Genomics, Zheng et al. 2017), 765 genes. The file keeps no counts
  (`X` scaled, `raw.X` log-normalised to 10,000 per cell), so they are recovered
  as `round(expm1(raw.X) * obs.n_counts / 1e4)` (the rounding moves no value by
  more than 0.09); only these 765 genes are available;
- "blood-cells": both of the above (1,259 cells), the pretraining corpus of the
  preset `cell-scgpt-tiny`; `cell-geneformer-tiny` pretrains on "pbmc68k-reduced"
  (the celltypist cells bring many genes the PBMC file lacks).

Task (labeled):

- "pbmc-celltype" (classification, 10 classes): the 700 PBMCs' `bulk_labels`
  (cell types from FACS-sorted reference profiles), class ids in sorted label
  order (`PBMC_CLASSES`); split 80/10/10 at random, stratified by class.
  Pretraining on "blood-cells" or "pbmc68k-reduced" sees these cells' expression (never their labels),
  as unsupervised pretraining on the cells to annotate commonly does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.data.splits import random_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.modalities.singlecell.reader import (INTEGER_TOLERANCE, cells_of_matrix, gene_array,
                                               open_h5ad)
from biofm.registry import CORPORA, TASKS

CELLTYPIST = ("celltypist", "data/samples/sample_cell_by_gene.csv")
PBMC68K = ("scanpy", "datasets/10x_pbmc68k_reduced.h5ad")
FRACTIONS = (0.8, 0.1, 0.1)


def read_count_csv(path: Path, max_cells: int | None = None) -> list[Record]:
    """Cells of a cell × gene CSV of counts (first column: cell ids; header: genes)."""
    import pandas as pd

    frame = pd.read_csv(path, index_col=0, nrows=max_cells)
    counts = frame.to_numpy(dtype=np.float64)  # integers written as floats (noise < 1e-10)
    if (counts < 0).any() or (np.abs(counts - np.rint(counts)) > INTEGER_TOLERANCE).any():
        raise BiofmError("the table does not hold integer counts", path=path,
                         fix="reinstall it: pip install --no-deps --force-reinstall celltypist")
    cells = cells_of_matrix(counts, gene_array(frame.columns))
    return [Record(str(name), cell, str(path), i + 2)
            for i, (name, cell) in enumerate(zip(frame.index, cells))]


@lru_cache(maxsize=1)
def _celltypist_cells() -> tuple[Record, ...]:
    return tuple(read_count_csv(package_file(*CELLTYPIST)))


def pbmc68k_counts() -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(cell ids, genes, counts (700, 765), bulk_labels) of the scanpy PBMC file."""
    path = package_file(*PBMC68K)
    adata = open_h5ad(path, backed=False)
    if adata.raw is None or "n_counts" not in adata.obs or "bulk_labels" not in adata.obs:
        raise BiofmError("the scanpy PBMC file lacks raw.X, obs['n_counts'] or "
                         "obs['bulk_labels']", path=path,
                         fix="reinstall it: pip install --no-deps --force-reinstall scanpy")
    log_norm = adata.raw.X
    log_norm = log_norm.toarray() if hasattr(log_norm, "toarray") else np.asarray(log_norm)
    n_counts = adata.obs["n_counts"].to_numpy(dtype=np.float64)[:, None]
    counts = np.round(np.expm1(log_norm.astype(np.float64)) * n_counts / 1e4)
    return ([str(c) for c in adata.obs_names], [str(g) for g in adata.raw.var_names], counts,
            [str(x) for x in adata.obs["bulk_labels"]])


@lru_cache(maxsize=1)
def _pbmc_cells() -> tuple[tuple[Record, ...], tuple[str, ...]]:
    names, genes, counts, labels = pbmc68k_counts()
    source = str(package_file(*PBMC68K))
    cells = cells_of_matrix(counts, gene_array(genes))
    records = tuple(Record(name, cell, source, i + 1)
                    for i, (name, cell) in enumerate(zip(names, cells)))
    return records, tuple(labels)


@CORPORA.register("celltypist-sample")
def celltypist_sample() -> list[Record]:
    """559 cells of raw UMI counts (celltypist's sample)."""
    return list(_celltypist_cells())


@CORPORA.register("pbmc68k-reduced")
def pbmc68k_reduced() -> list[Record]:
    """700 PBMCs, 765 genes, counts recovered from scanpy's log-normalised raw.X."""
    return list(_pbmc_cells()[0])


@CORPORA.register("blood-cells")
def blood_cells() -> list[Record]:
    """celltypist's 559 cells + scanpy's 700 PBMCs (1,259 cells of counts)."""
    return celltypist_sample() + pbmc68k_reduced()


PBMC_CLASSES: tuple[str, ...] = (
    "CD14+ Monocyte", "CD19+ B", "CD34+", "CD4+/CD25 T Reg", "CD4+/CD45RA+/CD25- Naive T",
    "CD4+/CD45RO+ Memory", "CD56+ NK", "CD8+ Cytotoxic T", "CD8+/CD45RA+ Naive Cytotoxic",
    "Dendritic")


def _pbmc_splits(seed: int) -> Splits:
    records, labels = _pbmc_cells()
    unknown = sorted(set(labels) - set(PBMC_CLASSES))
    if unknown:
        raise BiofmError(f"unexpected bulk_labels {unknown}", path=package_file(*PBMC68K),
                         fix="install scanpy 1.11.5's data file")
    y = np.asarray([PBMC_CLASSES.index(x) for x in labels], dtype=np.int64)
    whole = Split([f"pbmc68k:{r.id}" for r in records], [r.data for r in records], y)
    parts = random_split(len(whole), FRACTIONS, seed=seed, stratify=y)
    return Splits(whole.subset(parts.train), whole.subset(parts.valid), whole.subset(parts.test))


@TASKS.register("pbmc-celltype")
def pbmc_celltype() -> Task:
    """PBMC cell type (10 `bulk_labels` classes) from a cell's counts; 700 cells."""
    return Task(
        name="pbmc-celltype", modality="singlecell", kind="classification", load=_pbmc_splits,
        split="80/10/10 random, stratified by cell type",
        source=("scanpy 1.11.5 datasets/10x_pbmc68k_reduced.h5ad (BSD-3; 10x Genomics PBMC 68k, "
                "Zheng et al. 2017): 700 cells, 765 genes, obs['bulk_labels']; counts recovered "
                "as round(expm1(raw.X) * n_counts / 1e4)"),
        description="which of 10 PBMC types is this cell? (macro-F1, accuracy)",
        classes=PBMC_CLASSES,
    )
