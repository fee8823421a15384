"""AnnData `.h5ad` reader: raw counts per cell, streamed in row chunks.

A cell travels through the pipeline as a `Record` whose `data` is a `CellCounts`:
its sparse row of counts over the genes of its file,

    genes    (G,)  gene keys, one array SHARED by every cell of the file
    indices  (n,)  int32 columns of the genes with non-zero counts
    counts   (n,)  float32 those counts (integers)

so tasks, splits, checkpoints and the trainer handle cells like any other
record, and a cell costs its non-zero entries, not a string. A gene key may
carry aliases joined by "|" (Ensembl id first, then the symbol) when `var`
holds both; tokenizers resolve whichever alias their vocabulary uses.

Counts are required: the reader picks `X`, `layers['counts']` or `.raw.X`
(the first that holds non-negative integers, or the one named by `layer`) and
stops with a clear error when none does (log-normalised or scaled data).
The file is opened in backed mode (`backed='r'`), so `X` larger than memory
is read one chunk of rows at a time.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Iterator, Mapping, Sequence, TypeVar

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
T = TypeVar("T")


# -- one cell's counts -----------------------------------------------------------------
@dataclass(frozen=True, eq=False, slots=True)
class CellCounts:
    """One cell: a sparse row of counts over its file's genes (compared by identity).

    Args:
        genes: (G,) object array of gene keys ("ENSG…|SYMBOL" aliases allowed); the
            same array object for every cell of a file, so a tokenizer resolves it once.
        indices: (n,) int32 columns of `genes` with non-zero counts.
        counts: (n,) float32 their counts (integers, > 0).
    """

    genes: np.ndarray
    indices: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices, dtype=np.int32)
        counts = np.asarray(self.counts, dtype=np.float32)
        if indices.ndim != 1 or counts.shape != indices.shape:
            raise ValueError(f"cell indices {indices.shape} and counts {counts.shape} must be "
                             "1-D of equal length")
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "counts", counts)

    @classmethod
    def from_dict(cls, counts: Mapping[str, float]) -> "CellCounts":
        """A cell written by hand: gene key → count (zeros dropped)."""
        kept = {g: c for g, c in counts.items() if c}
        return cls(gene_array(kept), np.arange(len(kept)), np.fromiter(kept.values(), np.float32))

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def expressed(self) -> np.ndarray:
        """(n,) gene keys of the non-zero counts."""
        return self.genes[self.indices]

    def to_dict(self) -> dict[str, float]:
        """Gene key → count of the expressed genes (for reading, not for the pipeline)."""
        return dict(zip(self.expressed.tolist(), self.counts.tolist()))


def require_cell(value: Any) -> CellCounts:
    """`value` if it is a `CellCounts`; a clear error for text or arrays passed instead."""
    if isinstance(value, CellCounts):
        return value
    raise BiofmError(f"single-cell encodings take a cell's CellCounts, not a "
                     f"{type(value).__name__}",
                     fix="read cells with biofm.modalities.singlecell.read_h5ad, or build them "
                         "with cells_of_matrix(counts, gene_array(genes))")


def gene_array(genes: Iterable[str]) -> np.ndarray:
    """(G,) object array of gene keys, to be shared by the cells of one file."""
    return np.asarray([str(g) for g in genes], dtype=object)


class PerGeneArray(Generic[T]):
    """`make(genes)` computed once per gene array, not once per cell (a file's cells share
    their array). Each array seen is held, so the id it is keyed by stays unique; `keep`
    bounds how many are held (the oldest go first)."""

    def __init__(self, make: Callable[[np.ndarray], T], keep: int | None = None) -> None:
        self.make, self.keep = make, keep
        self._seen: OrderedDict[int, tuple[np.ndarray, T]] = OrderedDict()

    def __call__(self, genes: np.ndarray) -> T:
        entry = self._seen.get(id(genes))
        if entry is None or entry[0] is not genes:
            entry = self._seen[id(genes)] = (genes, self.make(genes))
            if self.keep is not None and len(self._seen) > self.keep:
                self._seen.popitem(last=False)
        return entry[1]

    def items(self) -> list[tuple[np.ndarray, T]]:
        """(genes, value) of each array held, in the order first seen."""
        return list(self._seen.values())


def cells_of_matrix(matrix: Any, genes: np.ndarray) -> list[CellCounts]:
    """One `CellCounts` per row of a cells × genes count matrix (dense or sparse),
    rounded to integers; every cell shares `genes` (make it once with `gene_array`)."""
    block = sp.csr_matrix(matrix, dtype=np.float64, copy=True)  # pruned below: never the caller's
    block.data = np.rint(block.data)
    block.eliminate_zeros()
    block.sum_duplicates()  # canonical: each gene once per cell, in column order
    indices, counts = block.indices.astype(np.int32), block.data.astype(np.float32)
    return [CellCounts(genes, indices[a:b], counts[a:b])
            for a, b in zip(block.indptr[:-1], block.indptr[1:])]


# -- which matrix holds counts ---------------------------------------------------------
@dataclass(frozen=True)
class CountSource:
    """Where a file's counts are: "X", "raw" or a layer name, with its gene keys
    ((G,) object array, shared by the file's cells)."""

    where: str
    genes: np.ndarray


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
    """(row, column, value) of the first NaN, infinite, negative or non-integer entry
    in the first `CHECK_ROWS` rows, or None when they all look like counts."""
    return _first_non_count(_rows(matrix, 0, min(n_rows, CHECK_ROWS)))


def _first_non_count(block: sp.csr_matrix) -> tuple[int, int, float] | None:
    coo = block.tocoo()
    with np.errstate(invalid="ignore"):  # NaN / inf compare False: caught by isfinite
        bad = (~np.isfinite(coo.data) | (coo.data < 0)
               | (np.abs(coo.data - np.rint(coo.data)) > INTEGER_TOLERANCE))
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
            return CountSource(where, gene_array(gene_keys(var)))
        row, col, value = problem
        kind = ("NaN or infinite" if not np.isfinite(value) else
                "negative" if value < 0 else "non-integer")
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
def open_h5ad(path: str | Path, *, backed: bool = True, unique_cells: bool = False) -> Any:
    """anndata.read_h5ad with a clear error for missing or unreadable files; with
    `unique_cells`, for repeated obs names too (where cells are matched by name:
    labels, embedding rows), instead of anndata's warning."""
    import anndata

    path = require_file(path, "h5ad file")
    try:
        with warnings.catch_warnings():  # files of old anndata versions read fine; no noise
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", anndata.OldFormatWarning)
            if unique_cells:  # the error below says it
                warnings.filterwarnings("ignore", "Observation names are not unique")
            adata = anndata.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BiofmError(f"not a readable AnnData .h5ad file ({type(exc).__name__}: {exc})",
                         path=path, fix="pass an .h5ad written by anndata / scanpy") from None
    if unique_cells and not adata.obs_names.is_unique:
        repeated = adata.obs_names[adata.obs_names.duplicated()].unique()
        if backed:
            adata.file.close()
        raise BiofmError(f"obs names are not unique ({len(repeated):,} repeated, e.g. "
                         f"{str(repeated[0])!r}); cells are matched by name", path=path,
                         fix="make them unique first: adata.obs_names_make_unique(), then "
                             "adata.write_h5ad(...)")
    return adata


def read_h5ad(path: str | Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
              layer: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[Record]:
    """One `Record` per cell (id = obs name, data = its `CellCounts`), streamed.

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
            for offset, cell in enumerate(cells_of_matrix(block, source.genes)):
                index = start + offset
                if not len(cell):
                    handle_bad_record(BiofmError("cell has no counts", path=path,
                                                 record=f"cell {names[index]!r}",
                                                 fix=EMPTY_CELL_FIX),
                                      on_error, skipped, str(path), index + 1)
                    continue
                yield Record(names[index], cell, str(path), index + 1)
    finally:
        if getattr(adata, "file", None) is not None and adata.isbacked:
            adata.file.close()
