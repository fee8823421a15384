"""Proteins: FASTA reader, ESM-2 tokenizer, packaged corpora and peptide tasks.

Importing this package registers the "protein" modality, the "esm2" tokenizer,
the corpora "proteome", "pfam-hemopexin", "pfam-ww" and the tasks "amp",
"anticancer".
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from biofm.bench.baselines import Baseline, per_input
from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.modalities.base import Modality
from biofm.modalities.proteins import datasets  # noqa: F401  (registers corpora and tasks)
from biofm.modalities.proteins.fasta import read_fasta, write_fasta
from biofm.modalities.proteins.features import composition
from biofm.modalities.proteins.tokenizer import ESM2_VOCAB, EsmTokenizer
from biofm.registry import MODALITIES

if TYPE_CHECKING:
    from biofm.model import FoundationModel

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def _esm_tokenizer(texts: Sequence[str]) -> EsmTokenizer:
    """ESM-2's vocabulary is fixed, so the corpus is not needed (a named function
    rather than a lambda so the modality pickles into worker processes)."""
    return EsmTokenizer()


NUCLEOTIDES = frozenset("ACGTUN")
NUCLEOTIDE_CHECK = 50  # records looked at before deciding a file holds nucleotides


def read_proteins(path: str | Path, **options: Any) -> Iterator[Record]:
    """`read_fasta`, refusing a file whose sequences are all nucleotides (A, C, G, T/U,
    N): a genome read as protein would train a "protein" model on DNA letters."""
    records = read_fasta(path, **options)
    head = list(itertools.islice(records, NUCLEOTIDE_CHECK))
    letters = "".join(r.data for r in head).upper()
    if len(letters) >= 50 and set(letters) <= NUCLEOTIDES:
        raise BiofmError("this file holds nucleotide sequences (only A, C, G, T, N in its first "
                         f"{len(head)} records), not proteins", path=path,
                         fix="pass --modality dna (or a DNA model), or translate the sequences")
    yield from head
    yield from records


@dataclass(frozen=True)
class ProteinModality(Modality):
    """Samples are written as FASTA and described by length and composition."""

    def generation_report(self, samples: list[str], model: "FoundationModel",
                          reference: str | None) -> dict[str, Any]:
        lengths = np.array([len(s) for s in samples])
        counts = Counter("".join(samples))
        total = max(sum(counts.values()), 1)
        return {"length_mean": float(lengths.mean()) if len(lengths) else 0.0,
                "length_min": int(lengths.min(initial=0)),
                "length_max": int(lengths.max(initial=0)),
                "empty": int((lengths == 0).sum()),
                "composition": {aa: round(counts[aa] / total, 4) for aa in AMINO_ACIDS},
                "non_standard": round(sum(v for k, v in counts.items()
                                          if k not in AMINO_ACIDS) / total, 4)}

    def write_samples(self, samples: list[str], output: Path) -> None:
        write_fasta([Record(f"sample_{i + 1}", s) for i, s in
                     enumerate(samples)], output)


PROTEIN = MODALITIES.register("protein")(ProteinModality(
    name="protein", read=read_proteins, build_tokenizer=_esm_tokenizer,
    suffixes=(".fasta", ".fa", ".faa", ".fas"), csv_column="sequence",
    variant_alphabet=AMINO_ACIDS,
    baselines=(Baseline("RF on AA + dipeptide composition", per_input(composition),
                        "random-forest"),),
))

__all__ = ["ESM2_VOCAB", "EsmTokenizer", "PROTEIN", "composition", "read_fasta", "write_fasta"]
