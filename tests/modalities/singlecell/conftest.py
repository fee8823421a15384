"""Session fixtures for the single-cell tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.modalities.singlecell.cells import write_h5ad


@pytest.fixture(scope="session")
def pbmc_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 real PBMCs (counts recovered from scanpy's file) with obs['cell_type']."""
    from biofm.modalities.singlecell.datasets import pbmc68k_counts

    cells, genes, counts, labels = pbmc68k_counts()
    keep = np.arange(0, 700, 700 // 120)[:120]
    path = tmp_path_factory.mktemp("cells") / "pbmc120.h5ad"
    return write_h5ad(path, counts[keep], genes, cells=[cells[i] for i in keep],
                      obs={"cell_type": pd.Categorical([labels[i] for i in keep])})
