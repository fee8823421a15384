"""Cell embeddings of an `.h5ad` file, written into a copy of it (`obsm`) or beside it.

    cells = read_h5ad(input)  →  gene-overlap check  →  model.embed(chunk of CellCounts)  →
    output.h5ad: a copy of the input with obsm[key] = (n_cells, d) float32
    output.parquet / .npy: one row per cell (id = obs name)
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from biofm.data.records import OnError, SkipLog
from biofm.errors import BiofmError
from biofm.io import atomic_path
from biofm.model import FoundationModel
from biofm.modalities.singlecell.reader import open_h5ad, read_h5ad
from biofm.modalities.singlecell.tokenizers import check_gene_overlap

OBSM_KEY = "X_biofm"
CHUNK_CELLS = 4096


def embed_h5ad(model: FoundationModel, input: str | Path, *,
               pooling: Literal["mean", "cls"] = "mean",
               batch_size: int = 64, layer: str | None = None, min_gene_overlap: float = 0.5,
               on_error: OnError = "raise", skipped: SkipLog | None = None,
               progress: Iterable | None = None, log=None,
               chunk_cells: int = CHUNK_CELLS) -> tuple[list[str], np.ndarray]:
    """(cell ids, embeddings (n_cells, d) float32) of the file's cells.

    Two streamed passes over the file (backed mode): the gene-overlap check, then
    the embeddings `chunk_cells` cells at a time, so only one chunk of cells
    is held in memory beside the (n_cells, d) result.
    """
    overlap = check_gene_overlap(model.tokenizer, (r.data for r in read_h5ad(input, layer=layer,
                                                                              on_error="skip")),
                                 input, min_gene_overlap)
    if overlap is not None and log is not None:
        log(f"{input}: {overlap.describe()}")
    ids: list[str] = []
    parts: list[np.ndarray] = []
    cells = read_h5ad(input, on_error=on_error, skipped=skipped, layer=layer)
    while chunk := list(itertools.islice(cells, chunk_cells)):
        ids += [r.id for r in chunk]
        parts.append(model.embed([r.data for r in chunk], pooling=pooling, batch_size=batch_size,
                                 progress=progress))
    if not ids:
        raise BiofmError("no cells with counts", path=input, fix="pass an .h5ad with cells")
    return ids, np.concatenate(parts)


def check_not_input(input: str | Path, output: str | Path) -> None:
    """The embeddings go to a copy: refuse an output that is the input itself."""
    if Path(output).resolve() == Path(input).resolve():
        raise BiofmError("the output would overwrite the input", path=output,
                         fix="write the embeddings to another .h5ad file (a copy is made)")


def check_unique_cells(input: str | Path) -> list[str]:
    """The obs names of `input`, refused when one repeats: the copy places each
    embedding in the row of its cell's name."""
    adata = open_h5ad(input, unique_cells=True)
    try:
        return list(adata.obs_names.astype(str))
    finally:
        adata.file.close()


def write_obsm_copy(input: str | Path, output: str | Path, ids: list[str], vectors: np.ndarray,
                    key: str = OBSM_KEY) -> Path:
    """Copy `input` to `output` (atomically) with `obsm[key]` = the embeddings.

    Cells skipped as bad records get NaN rows, so the copy keeps every cell.
    """
    import anndata
    import h5py

    input, output = Path(input), Path(output)
    check_not_input(input, output)
    names = check_unique_cells(input)
    row = {name: i for i, name in enumerate(names)}
    full = np.full((len(names), vectors.shape[1]), np.nan, dtype=np.float32)
    full[[row[i] for i in ids]] = vectors
    with atomic_path(output) as tmp:
        shutil.copyfile(input, tmp)
        with h5py.File(tmp, "r+") as fh:  # add one element; X (maybe huge) is not rewritten
            obsm = fh.require_group("obsm")
            if key in obsm:
                del obsm[key]
            anndata.io.write_elem(obsm, key, full)
    return output
