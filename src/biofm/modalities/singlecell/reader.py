"""AnnData `.h5ad` reader: raw counts per cell, streamed in row chunks.

A cell travels through the pipeline as a `Record` whose `text` is its sparse
count profile, one `gene=count` pair per expressed gene, space separated:

    "CD3E=4 ENSG00000167286|CD3D=2 MALAT1=31"

so tasks, splits, checkpoints and the trainer handle cells exactly like
sequences. A gene key may carry aliases joined by "|" (Ensembl id first, then
the symbol) when `var` holds both; tokenizers resolve whichever alias their
vocabulary uses.

Counts are required: the reader picks `X`, `layers['counts']` or `.raw.X`
(the first that holds non-negative integers, or the one named by `layer`) and
stops with a clear error when none does (log-normalised or scaled data).
The file is opened in backed mode (`backed='r'`), so `X` larger than memory
is read one chunk of rows at a time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file

CHUNK_ROWS = 256
CHECK_ROWS = 1000  # rows inspected to decide whether a matrix holds counts
INTEGER_TOLERANCE = 1e-6  # counts stored as floats may carry rounding noise (1e-11 seen)
ENSEMBL_COLUMNS = ("gene_ids", "gene_id", "ensembl_id", "ensembl_ids", "gene_ensembl_id")
SYMBOL_COLUMNS = ("gene_symbols", "gene_symbol", "feature_name", "symbol", "gene_name",
                  "gene_names")
EMPTY_CELL_FIX = ("filter empty cells first (scanpy.pp.filter_cells(adata, min_counts=1)), "
                  "or skip them (pretrain / embed --on-error skip)")
COUNTS_WHERE = ("integer UMI counts usually live in layers['counts'] or in .raw.X "
                "(saved before normalisation)")


# -- cell text ----------------------------------------------------------------------
def format_cell(genes: Sequence[str], counts: np.ndarray) -> str:
    """`genes[i]=counts[i]` for the non-zero counts, in gene order (rounded to integers)."""
    counts = np.rint(counts)
    nonzero = np.flatnonzero(counts)
    return " ".join(f"{genes[i]}={int(counts[i])}" for i in nonzero)


def parse_cell(text: str) -> tuple[list[str], np.ndarray]:
    """Inverse of `format_cell`: gene keys and their counts (float64, (n,))."""
    genes, counts = [], []
    for pair in text.split():
        gene, _, count = pair.rpartition("=")
        if not gene:
            raise BiofmError(f"cell entry {pair!r} is not GENE=COUNT",
                             fix="build cell texts with biofm.modalities.singlecell.format_cell")
        genes.append(gene)
        counts.append(float(count))
    return genes, np.asarray(counts, dtype=np.float64)


# -- which matrix holds counts ---------------------------------------------------------
@dataclass(frozen=True)
class CountSource:
    """Where a file's counts are: "X", "raw" or a layer name, with its gene keys."""

    where: str
    genes: list[str]


def gene_keys(var: Any) -> list[str]:
    """One key per gene: "ENSEMBL|SYMBOL" when `var` holds both, else the var name."""
    names = [str(n) for n in var.index]
    columns = {str(c).lower(): c for c in var.columns}
    ensembl = next((columns[c] for c in ENSEMBL_COLUMNS if c in columns), None)
    symbol = next((columns[c] for c in SYMBOL_COLUMNS if c in columns), None)
    if looks_ensembl(names) and symbol is not None:
        return [f"{e}|{s}" for e, s in zip(names, var[symbol].astype(str))]
    if ensembl is not None and not looks_ensembl(names):
        return [f"{e}|{s}" for e, s in zip(var[ensembl].astype(str), names)]
    return names


def looks_ensembl(names: Sequence[str]) -> bool:
    """True when most names are Ensembl gene ids (ENSG…, ENSMUSG…)."""
    sample = list(names[:200])
    return bool(sample) and sum(n.startswith("ENS") and "G0" in n for n in sample) > len(sample) / 2


def _matrix(adata: Any, where: str) -> Any:
    if where == "X":
        return adata.X
    if where == "raw":
        return adata.raw.X
    return adata.layers[where]


def _rows(matrix: Any, start: int, stop: int) -> sp.csr_matrix:
    """Rows [start, stop) as CSR, from a dense array, a sparse or a backed matrix."""
    block = matrix[start:stop]
    if not sp.issparse(block):
        block = np.asarray(block)
    return sp.csr_matrix(block, dtype=np.float64)


def count_problem(matrix: Any, n_rows: int) -> tuple[int, int, float] | None:
    """(row, column, value) of the first negative or non-integer entry in the
    first `CHECK_ROWS` rows, or None when they all look like counts."""
    return _first_non_count(_rows(matrix, 0, min(n_rows, CHECK_ROWS)))


def _first_non_count(block: sp.csr_matrix) -> tuple[int, int, float] | None:
    coo = block.tocoo()
    bad = (coo.data < 0) | (np.abs(coo.data - np.rint(coo.data)) > INTEGER_TOLERANCE)
    if not bad.any():
        return None
    k = int(np.flatnonzero(bad)[0])
    return int(coo.row[k]), int(coo.col[k]), float(coo.data[k])


def find_counts(adata: Any, path: Path, layer: str | None = None) -> CountSource:
    """The matrix of raw counts: `layer` if given ("X", "raw" or a layer name),
    else the first of X, layers['counts'], .raw.X that holds counts."""
    candidates = [layer] if layer else ["X", "counts", "raw"]
    problems = []
    for where in candidates:
        if not _has(adata, where):
            if layer:
                known = ["X", *adata.layers.keys(), *(["raw"] if adata.raw is not None else [])]
                raise BiofmError(f"the file has no {_describe(where)}", path=path,
                                 fix=f"name one of {', '.join(known)} (embed --layer NAME; "
                                     "pretrain --set data.layer=NAME)")
            continue
        var = adata.raw.var if where == "raw" else adata.var
        problem = count_problem(_matrix(adata, where), adata.n_obs)
        if problem is None:
            return CountSource(where, gene_keys(var))
        row, col, value = problem
        kind = "negative" if value < 0 else "non-integer"
        problems.append(f"{_describe(where)} holds {kind} values (e.g. {value:.4g} in cell "
                        f"{adata.obs_names[row]!r}, gene {str(var.index[col])!r})")
    raise BiofmError("no raw counts: " + "; ".join(problems or ["no count matrix"]) +
                     " — the data look log-normalised or scaled, and this method needs counts",
                     path=path,
                     fix=f"{COUNTS_WHERE}; pass a file that keeps them "
                         "(adata.layers['counts'] = adata.X.copy() before normalising), "
                         "or name the matrix that holds them (embed --layer NAME; pretrain "
                         "--set data.layer=NAME)")


def _has(adata: Any, where: str) -> bool:
    if where == "X":
        return adata.X is not None
    if where == "raw":
        return adata.raw is not None
    return where in adata.layers


def _describe(where: str) -> str:
    return {"X": "X", "raw": ".raw.X"}.get(where, f"layers[{where!r}]")


# -- reading -------------------------------------------------------------------------
def open_h5ad(path: str | Path, *, backed: bool = True) -> Any:
    """anndata.read_h5ad with a clear error for missing or unreadable files."""
    import anndata

    path = require_file(path, "h5ad file")
    try:
        with warnings.catch_warnings():  # files of old anndata versions read fine; no noise
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", anndata.OldFormatWarning)
            return anndata.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BiofmError(f"not a readable AnnData .h5ad file ({type(exc).__name__}: {exc})",
                         path=path, fix="pass an .h5ad written by anndata / scanpy") from None


def read_h5ad(path: str | Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
              layer: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[Record]:
    """One `Record` per cell (id = obs name, text = its count profile), streamed.

    Cells without any counts are bad records (raised or skipped per `on_error`).
    """
    path = Path(path)
    adata = open_h5ad(path)
    try:
        source = find_counts(adata, path, layer)
        matrix = _matrix(adata, source.where)
        names = [str(n) for n in adata.obs_names]
        for start in range(0, adata.n_obs, chunk_rows):
            block = _rows(matrix, start, min(start + chunk_rows, adata.n_obs))
            problem = _first_non_count(block)  # the first CHECK_ROWS rows decided; all must hold
            if problem is not None:
                row, col, value = problem
                raise BiofmError(f"{_describe(source.where)} holds {value:.4g}, not a count, "
                                 f"for gene {source.genes[col]!r}", path=path,
                                 record=f"cell {names[start + row]!r}, row {start + row + 1}",
                                 fix=f"{COUNTS_WHERE}; pass raw counts only")
            for offset in range(block.shape[0]):
                row = block.getrow(offset)
                row.data = np.rint(row.data)
                index = start + offset
                if not row.data.any():
                    handle_bad_record(BiofmError("cell has no counts", path=path,
                                                 record=f"cell {names[index]!r}",
                                                 fix=EMPTY_CELL_FIX),
                                      on_error, skipped, str(path), index + 1)
                    continue
                text = " ".join(f"{source.genes[j]}={int(v)}"
                                for j, v in zip(row.indices, row.data) if v)
                yield Record(names[index], text, str(path), index + 1)
    finally:
        if getattr(adata, "file", None) is not None and adata.isbacked:
            adata.file.close()
