"""Expression encodings of a cell's counts (its `CellCounts`, see `reader`).

- "geneformer" (rank-value encoding, Theodoris et al. 2023): counts / the
  cell's total × `target_sum`, divided by each gene's non-zero median over the
  pretraining corpus (fitted here, stored in tokenizer.json), genes ranked by
  that value (ties: vocabulary order), `[<cls>] + ranked genes + [<eos>]`
  truncated to the context. Ids only: masked-gene pretraining is plain "mlm".
- "scgpt" (Cui et al. 2024): the cell's expressed genes as tokens, each with an
  expression bin: per-cell quantile bins of the non-zero counts, 1..n_bins
  (ties go to the lowest bin); bin 0 for special tokens; bin n_bins + 1 is the
  mask bin of the "masked-value" objective. When a cell has more expressed
  genes than the context, the most expressed are kept; genes are then given in
  vocabulary order, so positions carry no expression information (the bins do).
  `encode` returns a `ValuedSequence` (ids, bins) for a `values: bins` backbone.

Genes outside the vocabulary are dropped from each cell; `gene_overlap` reports
how many genes and what share of the counts that loses for a file, and
`check_gene_overlap` refuses below a minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.modalities.singlecell.reader import (CellCounts, PerGeneArray, looks_ensembl,
                                               require_cell)
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

SPECIAL_TOKENS = ("<pad>", "<mask>", "<cls>", "<eos>", "<unk>")  # Geneformer: <pad> 0, <mask> 1
SPECIALS = {"pad": "<pad>", "mask": "<mask>", "bos": "<cls>", "eos": "<eos>", "unk": "<unk>"}
TARGET_SUM = 10_000.0
GENE_ARRAYS_CACHED = 8  # files whose gene → id lookup a tokenizer keeps


class GeneTokenizer(Tokenizer):
    """A vocabulary of genes; a cell's `CellCounts` → (gene ids, counts) of its known genes."""

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None,
                 **config: Any) -> None:
        super().__init__(vocab, specials or SPECIALS, **config)
        self._special = set(self.special_ids)
        self._resolved: dict[str, int] = {}
        self._ids = PerGeneArray(self._lookup, keep=GENE_ARRAYS_CACHED)

    def gene_id(self, key: str) -> int:
        """Vocabulary id of a gene key ("ENSG…|SYMBOL" aliases tried in order); -1 if unknown."""
        found = self._resolved.get(key)
        if found is None:
            found = next((self.token_to_id[a] for a in key.split("|")
                          if self.token_to_id.get(a, self.pad_id) not in self._special), -1)
            self._resolved[key] = found
        return found

    def gene_ids(self, genes: np.ndarray) -> np.ndarray:
        """(G,) int64 vocabulary ids of a file's gene keys (-1 unknown), resolved once per
        gene array (the file's cells share it)."""
        return self._ids(genes)

    def _lookup(self, genes: np.ndarray) -> np.ndarray:
        return np.fromiter((self.gene_id(g) for g in genes), dtype=np.int64, count=len(genes))

    def known_genes(self, cell: CellCounts) -> tuple[np.ndarray, np.ndarray, float]:
        """(ids (n,), counts (n,) float64) of the cell's expressed genes in the vocabulary,
        and the cell's total count over all its genes (known or not)."""
        cell = require_cell(cell)
        ids = self.gene_ids(cell.genes)[cell.indices]
        counts = cell.counts.astype(np.float64)
        keep = (ids >= 0) & (counts > 0)
        return ids[keep], counts[keep], float(counts.sum())

    def split(self, cell: CellCounts) -> list[str]:  # type: ignore[override]
        ids = self.encode(cell, add_special_tokens=False)
        ids = ids.ids if isinstance(ids, ValuedSequence) else ids
        return [self.vocab[i] for i in ids]

    def join(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    @staticmethod
    def corpus_genes(cells: Iterable[CellCounts], min_cells: int = 1) -> dict[str, np.ndarray]:
        """Gene (first alias) → (k,) its counts / cell total × TARGET_SUM in the k cells
        expressing it, for genes expressed in at least `min_cells` cells; sorted by gene."""
        keys: dict[str, int] = {}  # first alias → row, over every file's genes
        rows_of = PerGeneArray(lambda genes: np.fromiter(
            (keys.setdefault(g.split("|")[0], len(keys)) for g in genes), dtype=np.int64,
            count=len(genes)))
        rows, values = [], []
        for cell in map(require_cell, cells):
            counts = cell.counts.astype(np.float64)
            scaled = counts / max(counts.sum(), 1.0) * TARGET_SUM
            keep = scaled > 0
            rows.append(rows_of(cell.genes)[cell.indices[keep]])
            values.append(scaled[keep])
        if not rows:
            return {}
        row, value = np.concatenate(rows), np.concatenate(values)
        order = np.argsort(row, kind="stable")
        row, value = row[order], value[order]
        starts = np.flatnonzero(np.diff(row, prepend=-1))
        names = list(keys)
        found = {names[row[a]]: v for a, v in zip(starts, np.split(value, starts[1:]))}
        return {g: found[g] for g in sorted(found) if len(found[g]) >= min_cells}


@TOKENIZERS.register("geneformer")
class GeneformerTokenizer(GeneTokenizer):
    """Rank-value encoding with per-gene non-zero medians (see module docstring).

    medians: (vocab_size,) aligned with `vocab` (1.0 on special tokens).
    """

    name = "geneformer"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 medians: Sequence[float], target_sum: float = TARGET_SUM) -> None:
        super().__init__(vocab, specials, medians=[float(m) for m in medians],
                         target_sum=float(target_sum))
        self.medians = np.asarray(medians, dtype=np.float64)
        if self.medians.shape != (len(self.vocab),) or (self.medians <= 0).any():
            raise ValueError("geneformer medians must be positive, one per vocabulary entry")

    @classmethod
    def fit(cls, cells: Iterable[CellCounts], min_cells: int = 1) -> "GeneformerTokenizer":
        """Vocabulary = genes expressed in >= `min_cells` cells; medians over those cells."""
        values = cls.corpus_genes(cells, min_cells)
        if not values:
            raise BiofmError("no expressed genes in the pretraining cells",
                             fix="pass cells with counts")
        medians = [1.0] * len(SPECIAL_TOKENS) + [float(np.median(v)) for v in values.values()]
        return cls([*SPECIAL_TOKENS, *values], SPECIALS, medians=medians)

    @classmethod
    def from_medians(cls, medians: dict[str, float]) -> "GeneformerTokenizer":
        """From a gene → non-zero median table (e.g. Geneformer's gene_median_dictionary)."""
        genes = [g for g in medians if g not in SPECIAL_TOKENS]
        return cls([*SPECIAL_TOKENS, *genes], SPECIALS,
                   medians=[1.0] * len(SPECIAL_TOKENS) + [float(medians[g]) for g in genes])

    def rank(self, cell: CellCounts) -> np.ndarray:
        """Gene ids of the cell's known genes, highest normalised expression first."""
        ids, counts, total = self.known_genes(cell)
        value = counts / max(total, 1.0) * self.config["target_sum"] / self.medians[ids]
        return ids[np.lexsort((ids, -value))]

    def encode(self, cell: CellCounts, *, add_special_tokens: bool = True,  # type: ignore[override]
               max_length: int | None = None) -> list[int]:
        """[<cls>] + ranked gene ids + [<eos>]; a vocabulary without <cls> / <eos>
        (Geneformer V1's token dictionary) gives the ranked genes alone."""
        ranked = self.rank(cell).tolist()
        if not (add_special_tokens and "bos" in self.specials and "eos" in self.specials):
            return ranked if max_length is None else ranked[:max_length]
        if max_length is not None:
            ranked = ranked[: max(max_length - 2, 0)]
        return [self.bos_id, *ranked, self.eos_id]


@TOKENIZERS.register("scgpt")
class ScGPTTokenizer(GeneTokenizer):
    """Gene tokens + per-cell quantile expression bins (see module docstring)."""

    name = "scgpt"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 n_bins: int = 51) -> None:
        super().__init__(vocab, specials, n_bins=int(n_bins))
        if n_bins < 2:
            raise ValueError("scgpt needs n_bins >= 2")
        self.n_bins = int(n_bins)

    @property
    def value_bins(self) -> int:
        """Bins the backbone embeds: 0 (special), 1..n_bins, and the mask bin."""
        return self.n_bins + 2

    @property
    def mask_bin(self) -> int:
        return self.n_bins + 1

    @classmethod
    def fit(cls, cells: Iterable[CellCounts], min_cells: int = 1,
            n_bins: int = 51) -> "ScGPTTokenizer":
        """Vocabulary = genes expressed in >= `min_cells` cells."""
        genes = list(cls.corpus_genes(cells, min_cells))
        if not genes:
            raise BiofmError("no expressed genes in the pretraining cells",
                             fix="pass cells with counts")
        return cls([*SPECIAL_TOKENS, *genes], SPECIALS, n_bins=n_bins)

    def bins(self, counts: np.ndarray) -> np.ndarray:
        """Per-cell quantile bins 1..n_bins of non-zero `counts` (n,); ties → lowest bin."""
        if len(counts) == 0:
            return np.zeros(0, dtype=np.int64)
        edges = np.quantile(counts, np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1])
        return np.digitize(counts, edges, right=True).astype(np.int64) + 1

    def encode(self, cell: CellCounts, *, add_special_tokens: bool = True,  # type: ignore[override]
               max_length: int | None = None) -> ValuedSequence:
        ids, counts, _ = self.known_genes(cell)
        bins = self.bins(counts)
        room = None if max_length is None else max(max_length - 2 * add_special_tokens, 0)
        keep = np.lexsort((ids, -counts))[:room]  # the most expressed genes
        keep = keep[np.argsort(ids[keep], kind="stable")]  # then in vocabulary order
        ids, bins = ids[keep], bins[keep]
        if add_special_tokens:
            ids = np.concatenate([[self.bos_id], ids, [self.eos_id]])
            bins = np.concatenate([[0], bins, [0]])
        return ValuedSequence(ids.astype(np.int64), bins.astype(np.int64))


# -- vocabulary overlap ------------------------------------------------------------------
@dataclass(frozen=True)
class GeneOverlap:
    """How much of a file's expression a gene vocabulary covers."""

    n_genes: int  # genes expressed in at least one cell
    n_known: int
    counts: float
    counts_known: float
    unknown_examples: tuple[str, ...] = ()  # the most counted genes outside the vocabulary

    @property
    def gene_fraction(self) -> float:
        return self.n_known / max(self.n_genes, 1)

    @property
    def count_fraction(self) -> float:
        return self.counts_known / max(self.counts, 1.0)

    def describe(self) -> str:
        return (f"{self.n_known:,} of {self.n_genes:,} genes ({self.count_fraction:.1%} of "
                f"counts) are in the vocabulary")


def gene_overlap(tokenizer: GeneTokenizer, cells: Iterable[CellCounts]) -> GeneOverlap:
    """Expressed genes of `cells` and their counts, split into known / unknown."""
    per_file = PerGeneArray(lambda genes: np.zeros(len(genes)))  # (G,) total per gene
    for cell in map(require_cell, cells):
        np.add.at(per_file(cell.genes), cell.indices, cell.counts)
    totals: dict[str, float] = {}
    for genes, counts in per_file.items():
        for j in np.flatnonzero(counts):
            totals[genes[j]] = totals.get(genes[j], 0.0) + float(counts[j])
    known = [g for g in totals if tokenizer.gene_id(g) >= 0]
    unknown = sorted((g for g in totals if tokenizer.gene_id(g) < 0), key=lambda g: -totals[g])
    return GeneOverlap(len(totals), len(known), float(sum(totals.values())),
                       float(sum(totals[g] for g in known)), tuple(unknown[:3]))


def _vocabulary_examples(tokenizer: GeneTokenizer, n: int = 3) -> list[str]:
    """A few gene tokens of the vocabulary (not special tokens), for error messages."""
    return [t for i, t in enumerate(tokenizer.vocab) if i not in tokenizer.special_ids][:n]


def _id_space(names: Sequence[str]) -> str:
    return "Ensembl ids" if looks_ensembl([n.split("|")[0] for n in names]) else "gene symbols"


def check_gene_overlap(tokenizer: Tokenizer, cells: Iterable[CellCounts],
                       path: str | Path | None, min_overlap: float) -> GeneOverlap | None:
    """Refuse when less than `min_overlap` of the file's expressed genes are known."""
    if not isinstance(tokenizer, GeneTokenizer):
        return None
    overlap = gene_overlap(tokenizer, cells)
    if overlap.n_genes == 0:
        raise BiofmError("no cell has any counts, so there is nothing to encode", path=path,
                         fix="pass an .h5ad whose count matrix holds expressed genes")
    if overlap.gene_fraction < min_overlap:
        vocab = _vocabulary_examples(tokenizer)
        raise BiofmError(
            f"only {overlap.describe()}: {overlap.gene_fraction:.1%} is below the minimum "
            f"gene overlap of {min_overlap:.0%}; the file's genes (e.g. "
            f"{', '.join(overlap.unknown_examples)}) look like {_id_space(overlap.unknown_examples)}"
            f", the vocabulary's (e.g. {', '.join(vocab)}) like {_id_space(vocab)}", path=path,
            fix="use gene identifiers of the model's vocabulary (Ensembl ids or symbols; a var "
                "column 'gene_ids' or 'gene_symbols' lets biofm map between them), or pretrain "
                "with a lower minimum (--set data.min_gene_overlap=0.2)")
    return overlap
