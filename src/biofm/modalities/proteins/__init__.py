"""Proteins: FASTA reader, ESM-2 tokenizer, packaged corpora and peptide tasks.

Importing this package registers the "protein" modality, the "esm2" tokenizer,
the corpora "proteome", "pfam-hemopexin", "pfam-ww" and the tasks "amp",
"anticancer".
"""

from __future__ import annotations

from typing import Sequence

from biofm.bench.baselines import Baseline, per_input
from biofm.modalities.base import Modality
from biofm.modalities.proteins import datasets  # noqa: F401  (registers corpora and tasks)
from biofm.modalities.proteins.fasta import read_fasta, write_fasta
from biofm.modalities.proteins.features import composition
from biofm.modalities.proteins.tokenizer import ESM2_VOCAB, EsmTokenizer
from biofm.registry import MODALITIES


def _esm_tokenizer(texts: Sequence[str]) -> EsmTokenizer:
    """ESM-2's vocabulary is fixed, so the corpus is not needed (a named function
    rather than a lambda so the modality pickles into worker processes)."""
    return EsmTokenizer()


PROTEIN = MODALITIES.register("protein")(Modality(
    name="protein", read=read_fasta, build_tokenizer=_esm_tokenizer,
    suffixes=(".fasta", ".fa", ".faa", ".fas"), csv_column="sequence",
    baselines=(Baseline("RF on AA + dipeptide composition", per_input(composition),
                        "random-forest"),),
))

__all__ = ["ESM2_VOCAB", "EsmTokenizer", "PROTEIN", "composition", "read_fasta", "write_fasta"]
