"""Builders for the single-cell tests: small .h5ad files written with anndata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


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
