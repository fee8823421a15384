"""DNA tokenizers, one registry entry per published scheme.

- `dna-char`: one token per base (HyenaDNA, Caduceus);
- `dna-kmer3` … `dna-kmer6`: overlapping k-mers, stride 1 (DNABERT);
- `dna-nt6`: non-overlapping 6-mers from the left, single bases where a 6-mer
  would hold N or run past the end (Nucleotide Transformer);
- `dna-bpe`: byte-pair encoding trained on the user's corpus (`fit`) with
  Hugging Face `tokenizers` (DNABERT-2).

Every tokenizer first normalises its input with `normalize_dna` (whitespace
dropped, uppercase, U → T, IUPAC ambiguity codes → N); a character that is still
not A/C/G/T/N becomes `<unk>`. `token_spans(text)` gives the bases each token
covers (half-open, in the normalised text), which per-base tasks and the k-mer
alignment tests rely on. `decode` writes `<unk>` as N, so `decode(encode(s))`
gives back `normalize_dna(s)` for any A/C/G/T/N text, with one exception for
k-mers (which need at least k bases): a k-mer holding N is `<unk>`, and a base
whose every k-mer holds an N (one next to an N run, say) comes back as N.

The vocabulary is saved with the checkpoint (`tokenizer.json`); for BPE the
merges are saved in its `config`, so `load_tokenizer` rebuilds the same ids.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from biofm.errors import BiofmError
from biofm.modalities.dna.augment import reverse_complement
from biofm.modalities.dna.reader import normalize_dna
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

BASES = "ACGT"
# role → token; order fixes ids, <pad>=0 so zero-initialised buffers are padding
DNA_SPECIALS: dict[str, str] = {"pad": "<pad>", "unk": "<unk>", "bos": "<cls>", "eos": "<eos>",
                                "mask": "<mask>"}

Span = tuple[int, int]
_ACGT_RUN = re.compile("[ACGT]+")


class DnaTokenizer(Tokenizer):
    """Shared rules of the DNA tokenizers; subclasses define `spans` and `default_vocab`."""

    def __init__(self, vocab: Sequence[str] | None = None,
                 specials: dict[str, str] | None = None, **config: Any) -> None:
        super().__init__(self.default_vocab() if vocab is None else vocab,
                         dict(DNA_SPECIALS if specials is None else specials), **config)

    @classmethod
    def default_vocab(cls) -> list[str]:
        raise NotImplementedError

    def spans(self, seq: str) -> list[Span]:
        """Token spans of a normalised sequence."""
        raise NotImplementedError

    def split(self, text: str) -> list[str]:
        seq = normalize_dna(text)
        return [seq[a:b] for a, b in self.spans(seq)]

    def token_spans(self, text: str) -> list[Span]:
        """Half-open base ranges [start, end) of the body tokens of `encode(text)`."""
        return self.spans(normalize_dna(text))

    @property
    def min_bases(self) -> int:
        """Shortest sequence that gives at least one token."""
        return 1

    def context_bases(self, n_tokens: int) -> int:
        """Bases that always fit in `n_tokens` body tokens (the sliding-window size)."""
        return n_tokens

    def complement_table(self) -> np.ndarray | None:
        """Token id → id of its reverse complement, where reverse-complementing a
        sequence is reversing its tokens and mapping them (char, k-mers); else None."""
        return None

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        """Ids → bases; `<unk>` stands for one unknown token and is written as N."""
        skip = set(self.special_ids) - {self.unk_id} if skip_special_tokens else set()
        return self.join([self.vocab[i] for i in ids if i not in skip])

    def join(self, tokens: list[str]) -> str:
        unk = self.specials["unk"]
        return "".join("N" if t == unk else t for t in tokens)

    def _complement_by_token(self) -> np.ndarray:
        table = np.arange(len(self.vocab), dtype=np.int64)
        for i, tok in enumerate(self.vocab):
            rc = reverse_complement(tok)
            if tok not in self.specials.values() and rc in self.token_to_id:
                table[i] = self.token_to_id[rc]
        return table


@TOKENIZERS.register("dna-char")
class DnaCharTokenizer(DnaTokenizer):
    """One token per base: A, C, G, T, N (HyenaDNA / Caduceus)."""

    name: ClassVar[str] = "dna-char"

    @classmethod
    def default_vocab(cls) -> list[str]:
        return [*DNA_SPECIALS.values(), *BASES, "N"]

    def split(self, text: str) -> list[str]:
        return list(normalize_dna(text))

    def spans(self, seq: str) -> list[Span]:
        return [(i, i + 1) for i in range(len(seq))]

    def complement_table(self) -> np.ndarray:
        return self._complement_by_token()


class KmerTokenizer(DnaTokenizer):
    """Overlapping k-mers with stride 1 (DNABERT): a sequence of L bases gives
    L - k + 1 tokens, token i covering bases i … i + k - 1. The 4^k k-mers are in
    lexicographic order after the specials; a k-mer holding N is `<unk>`."""

    k: ClassVar[int] = 6

    @classmethod
    def default_vocab(cls) -> list[str]:
        kmers = ("".join(p) for p in itertools.product(BASES, repeat=cls.k))
        return [*DNA_SPECIALS.values(), *kmers]

    @property
    def min_bases(self) -> int:
        return self.k

    def split(self, text: str) -> list[str]:
        seq, k = normalize_dna(text), self.k
        return [seq[i:i + k] for i in range(len(seq) - k + 1)]

    def spans(self, seq: str) -> list[Span]:
        return [(i, i + self.k) for i in range(len(seq) - self.k + 1)]

    def context_bases(self, n_tokens: int) -> int:
        return n_tokens + self.k - 1

    def complement_table(self) -> np.ndarray:
        return self._complement_by_token()

    def join(self, tokens: list[str]) -> str:
        """Overlapping k-mers → bases: token i writes bases i … i + k - 1; bases that
        only unknown k-mers cover are N."""
        if not tokens:
            return ""
        bases = ["N"] * (len(tokens) + self.k - 1)
        for i, tok in enumerate(tokens):
            if len(tok) == self.k and not tok.strip(BASES):  # a k-mer, not a special
                bases[i:i + self.k] = tok
        return "".join(bases)


@TOKENIZERS.register("dna-kmer3")
class Kmer3Tokenizer(KmerTokenizer):
    name: ClassVar[str] = "dna-kmer3"
    k: ClassVar[int] = 3


@TOKENIZERS.register("dna-kmer4")
class Kmer4Tokenizer(KmerTokenizer):
    name: ClassVar[str] = "dna-kmer4"
    k: ClassVar[int] = 4


@TOKENIZERS.register("dna-kmer5")
class Kmer5Tokenizer(KmerTokenizer):
    name: ClassVar[str] = "dna-kmer5"
    k: ClassVar[int] = 5


@TOKENIZERS.register("dna-kmer6")
class Kmer6Tokenizer(KmerTokenizer):
    name: ClassVar[str] = "dna-kmer6"
    k: ClassVar[int] = 6


@TOKENIZERS.register("dna-nt6")
class NucleotideTransformerTokenizer(DnaTokenizer):
    """Non-overlapping 6-mers read from the left; where the next 6 bases hold an N
    (or any non-ACGT character) or run past the end, one single-base token is
    emitted instead and reading goes on from the next base — the Nucleotide
    Transformer's rule (Dalla-Torre et al. 2023). Vocabulary: specials, the 4,096
    6-mers, then A, C, G, T, N."""

    name: ClassVar[str] = "dna-nt6"
    k: ClassVar[int] = 6

    @classmethod
    def default_vocab(cls) -> list[str]:
        kmers = ("".join(p) for p in itertools.product(BASES, repeat=cls.k))
        return [*DNA_SPECIALS.values(), *kmers, *BASES, "N"]

    def spans(self, seq: str) -> list[Span]:
        # equivalent left-to-right rule: in each run of A/C/G/T, 6-mers from the run's
        # start, then its last < 6 bases one by one; every other character alone
        out: list[Span] = []
        pos = 0
        for run in _ACGT_RUN.finditer(seq):
            out += [(i, i + 1) for i in range(pos, run.start())]
            full = run.start() + (run.end() - run.start()) // self.k * self.k
            out += [(i, i + self.k) for i in range(run.start(), full, self.k)]
            out += [(i, i + 1) for i in range(full, run.end())]
            pos = run.end()
        return out + [(i, i + 1) for i in range(pos, len(seq))]

    def context_bases(self, n_tokens: int) -> int:
        return n_tokens * self.k  # exact for A/C/G/T windows; N-rich windows are cropped


@TOKENIZERS.register("dna-bpe")
class DnaBpeTokenizer(DnaTokenizer):
    """Byte-pair encoding learnt on the user's corpus (DNABERT-2), with Hugging Face
    `tokenizers`: the whole sequence is one word (no pre-tokenizer), the initial
    alphabet is A, C, G, T, N. `fit(texts, vocab_size=4096)` trains it; unfitted,
    it is the single-base tokenizer. The merges are saved in `config["merges"]`."""

    name: ClassVar[str] = "dna-bpe"

    def __init__(self, vocab: Sequence[str] | None = None,
                 specials: dict[str, str] | None = None,
                 merges: Sequence[Sequence[str]] = (), **config: Any) -> None:
        super().__init__(vocab, specials, merges=[list(m) for m in merges], **config)
        self._model = None  # the HF tokenizer, built on first use (keeps pickling simple)

    @classmethod
    def default_vocab(cls) -> list[str]:
        return [*DNA_SPECIALS.values(), *BASES, "N"]

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2,
            **config: Any) -> "DnaBpeTokenizer":
        """Learn merges on `texts` until `vocab_size` tokens (specials included) or
        no pair occurs `min_frequency` times."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import BPE
        from tokenizers.trainers import BpeTrainer

        base = len(cls.default_vocab())
        if vocab_size < base:
            raise BiofmError(f"vocab_size {vocab_size} is smaller than the {base} specials and "
                             "bases", fix="use vocab_size >= 10 (DNABERT-2 used 4096)")
        seqs = [s for s in (normalize_dna(t) for t in texts) if s]
        if not seqs:
            raise BiofmError("cannot fit the dna-bpe tokenizer on an empty corpus",
                             fix="pass at least one DNA sequence")
        model = HFTokenizer(BPE(unk_token=DNA_SPECIALS["unk"]))
        trainer = BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                             special_tokens=list(DNA_SPECIALS.values()),
                             initial_alphabet=[*BASES, "N"], show_progress=False)
        model.train_from_iterator(seqs, trainer)
        vocab = sorted(model.get_vocab().items(), key=lambda item: item[1])
        merges = json.loads(model.to_str())["model"]["merges"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in merges]
        return cls([tok for tok, _ in vocab], DNA_SPECIALS, merges=merges, **config)

    def _hf(self):
        if self._model is None:
            from tokenizers import Tokenizer as HFTokenizer
            from tokenizers.models import BPE

            merges = [tuple(m) for m in self.config["merges"]]
            self._model = HFTokenizer(BPE(vocab=dict(self.token_to_id), merges=merges,
                                          unk_token=self.specials["unk"]))
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def split(self, text: str) -> list[str]:
        seq = normalize_dna(text)
        return self._hf().encode(seq, add_special_tokens=False).tokens if seq else []

    def spans(self, seq: str) -> list[Span]:
        if not seq:
            return []
        return [tuple(o) for o in self._hf().encode(seq, add_special_tokens=False).offsets]
