"""DNA: FASTA / FASTQ readers (whole records or genome windows), the DNABERT /
DNABERT-2 / Nucleotide Transformer / HyenaDNA tokenizers, reverse-complement
augmentation, strand-averaged sliding-window embeddings, packaged corpora and tasks.

Importing this package registers the "dna" modality, the tokenizers "dna-char",
"dna-kmer3" … "dna-kmer6", "dna-nt6", "dna-bpe", the corpora "ecoli-k12",
"ecoli-ec590", "c-diphtheriae" and the tasks "crp-sites", "ars-enrichment".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from biofm.bench.baselines import Baseline, per_input
from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.modalities.base import Augment, Modality
from biofm.modalities.dna import datasets  # noqa: F401  (registers corpora and tasks)
from biofm.modalities.dna.augment import (RandomReverseComplement, reverse_complement,
                                          reverse_complement_ids)
from biofm.modalities.dna.embed import embed_dna
from biofm.modalities.dna.features import kmer_frequencies
from biofm.modalities.dna.reader import (WindowStats, looks_like_dna, normalize_dna, read_dna,
                                        read_windows)
from biofm.modalities.dna.similarity import group_split, near_identical_groups
from biofm.modalities.dna.tokenizers import (DnaBpeTokenizer, DnaCharTokenizer, DnaTokenizer,
                                             KmerTokenizer, NucleotideTransformerTokenizer)
from biofm.registry import MODALITIES

if TYPE_CHECKING:
    from biofm.config import PretrainConfig
    from biofm.model import FoundationModel


def _char_tokenizer(texts: Sequence[str]) -> DnaCharTokenizer:
    """Single-nucleotide tokens need no corpus (a named function so the modality pickles)."""
    return DnaCharTokenizer()


AMBIGUOUS_SUFFIXES = (".fasta", ".fa", ".fas")  # proteins use them too


@dataclass(frozen=True)
class DnaModality(Modality):
    """`matches` claims nucleotide suffixes (.fna, .fastq, ...) by name, and the
    FASTA suffixes that proteins share only for a file whose letters are
    nucleotides, so `biofm embed` still tells a protein file from a genome.
    Pretraining flips strands with `data.rc_prob`; embeddings slide windows over
    long sequences and average both strands (`embed_dna`)."""

    def check_run(self, config: "PretrainConfig", model: "FoundationModel") -> None:
        """A genome window must fit the model's context, or most of it is cut away."""
        window, max_len = config.data.window, model.config.backbone.max_len
        if not window:
            return
        sample = "".join(np.random.default_rng(0).choice(list("ACGT"), size=window))
        tokens = len(model.tokenizer.encode(sample))  # specials included, nothing cut
        if tokens > max_len:
            raise BiofmError(f"a window of {window:,} bases is {tokens:,} tokens with the "
                             f"{model.tokenizer.name} tokenizer (specials included), but the "
                             f"model's context is backbone.max_len={max_len:,}: "
                             f"{tokens - max_len:,} tokens of each window would be cut",
                             fix=f"--set backbone.max_len={tokens}, or a smaller "
                                 f"--set data.window")

    def augmentation(self, config: "PretrainConfig", model: "FoundationModel") -> Augment | None:
        if not config.data.rc_prob:
            return None
        return RandomReverseComplement(config.data.rc_prob, config.train.seed, model.tokenizer,
                                       model.config.backbone.max_len).batch

    def embed_records(self, model: "FoundationModel", records: Sequence[Record], *,
                      pooling: str, batch_size: int, progress) -> np.ndarray:
        return embed_dna(model, [r.data for r in records], pooling=pooling,  # type: ignore
                         batch_size=batch_size, ids=[r.id for r in records], progress=progress)

    def matches(self, path: str | Path) -> bool:
        if not super().matches(path):
            return False
        name = Path(path).name.lower().removesuffix(".gz")
        if not name.endswith(AMBIGUOUS_SUFFIXES) or not Path(path).is_file():
            return True
        return looks_like_dna(path)


DNA = MODALITIES.register("dna")(DnaModality(
    name="dna", read=read_dna, build_tokenizer=_char_tokenizer,
    suffixes=(".fna", ".ffn", ".frn", ".fastq", ".fq", *AMBIGUOUS_SUFFIXES),
    options=("window", "stride", "rc_prob"), csv_column="sequence",
    baselines=(Baseline("linear on 4-mer frequencies", per_input(kmer_frequencies), "linear"),
               Baseline("RF on 4-mer frequencies", per_input(kmer_frequencies),
                        "random-forest")),
))

__all__ = ["DNA", "DnaBpeTokenizer", "DnaCharTokenizer", "DnaModality", "DnaTokenizer",
           "KmerTokenizer", "NucleotideTransformerTokenizer", "RandomReverseComplement",
           "WindowStats", "embed_dna", "kmer_frequencies", "group_split", "looks_like_dna", "near_identical_groups",
           "normalize_dna", "read_dna", "read_windows", "reverse_complement",
           "reverse_complement_ids"]
