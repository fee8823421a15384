"""Builders for the single-cell tests: cells of a small matrix, and .h5ad files written
with anndata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from biofm.modalities.singlecell import CellCounts, cells_of_matrix, gene_array


def cells(counts, genes: list[str]) -> list[CellCounts]:
    """The rows of a cells × genes count matrix, sharing one gene array (as a file's do)."""
    return cells_of_matrix(np.asarray(counts, dtype=np.float64), gene_array(genes))


def cell(**counts: float) -> CellCounts:
    """One cell written by hand: cell(g1=2, g2=6)."""
    return CellCounts.from_dict(counts)


def write_h5ad(path: Path, counts: np.ndarray, genes: list[str], *, cells: list[str] | None = None,
               sparse: bool = True, obs: dict | None = None, var: dict | None = None,
               layers: dict | None = None, raw: np.ndarray | None = None) -> Path:
    """An AnnData file with `counts` (cells × genes) as X (or whatever the caller passes)."""
    import anndata

    cells = cells or [f"cell{i}" for i in range(counts.shape[0])]
    x = sp.csr_matrix(counts.astype(np.float32)) if sparse else counts.astype(np.float32)
    adata = anndata.AnnData(X=x, obs=pd.DataFrame(obs or {}, index=cells),
                            var=pd.DataFrame(var or {}, index=genes))
    for name, matrix in (layers or {}).items():
        adata.layers[name] = sp.csr_matrix(matrix.astype(np.float32))
    if raw is not None:
        adata.raw = anndata.AnnData(X=sp.csr_matrix(raw.astype(np.float32)),
                                    var=pd.DataFrame(index=genes))
    adata.write_h5ad(path)
    return path
