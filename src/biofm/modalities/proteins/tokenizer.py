"""ESM-2's residue tokenizer: same 33 tokens, same ids, so weights transfer both ways.

Policy, in one sentence for the README: protein text is uppercased and stripped
of whitespace, a final `*` stop codon is dropped, the rare residues U, O, B, Z
and X and the gap symbols `.` and `-` are kept as their own tokens, any other
character becomes one `<unk>` per character, special tokens written literally
(`<mask>`, `<unk>` …) are kept, and sequences longer than `max_length` keep
their N-terminal part (`crop="random"` picks a random window instead, as ESM-2
did in pretraining).

Ids match `transformers.EsmTokenizer` on the same vocab.txt for uppercase text.
Two deliberate differences: transformers neither uppercases (`"mk"` → one
`<unk>`) nor splits a run of unknown characters (`"JJ"` → one `<unk>`); here
every input character maps to exactly one token, so residue i of the sequence
is always token i + 1, which per-residue tasks and mutation scoring rely on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from biofm.errors import BiofmError
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

ESM2_VOCAB: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y", "M",
    "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-",
    "<null_1>", "<mask>",
)
ESM2_SPECIALS: dict[str, str] = {"bos": "<cls>", "eos": "<eos>", "pad": "<pad>",
                                 "unk": "<unk>", "mask": "<mask>"}
HF_VOCAB_FILE = "vocab.txt"
Crop = Literal["start", "random"]

# A literal special token (matched case-sensitively, before uppercasing) or one character.
_PIECE = re.compile("|".join(re.escape(t) for t in ESM2_VOCAB if t.startswith("<")) + r"|\S")


@TOKENIZERS.register("esm2")
class EsmTokenizer(Tokenizer):
    """ESM-2 protein tokenizer; `EsmTokenizer()` builds it (the vocabulary is fixed)."""

    name = "esm2"

    def __init__(self, vocab: Sequence[str] = ESM2_VOCAB,
                 specials: dict[str, str] | None = None, **config: Any) -> None:
        if tuple(vocab) != ESM2_VOCAB:
            raise BiofmError("this vocabulary is not ESM-2's 33-token vocabulary "
                             f"({_first_difference(vocab)})",
                             fix="use the 'esm2' tokenizer only with ESM-2 checkpoints; "
                                 "other vocabularies need their own tokenizer")
        super().__init__(vocab, dict(ESM2_SPECIALS if specials is None else specials), **config)

    @classmethod
    def from_hf_dir(cls, directory: str | Path) -> "EsmTokenizer":
        """Read a Hugging Face ESM-2 checkpoint's vocab.txt and check that it is ESM-2's."""
        path = Path(directory) / HF_VOCAB_FILE
        if not path.is_file():
            raise BiofmError(f"no {HF_VOCAB_FILE} in this directory", path=directory,
                             fix="pass a Hugging Face ESM-2 checkpoint directory "
                                 "(e.g. a local copy of facebook/esm2_t6_8M_UR50D)")
        vocab = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        while vocab and not vocab[-1]:
            vocab.pop()
        if tuple(vocab) != ESM2_VOCAB:
            raise BiofmError(f"vocab.txt is not ESM-2's 33-token vocabulary "
                             f"({len(vocab)} tokens, {_first_difference(vocab)})", path=path,
                             fix="use a checkpoint from the ESM-2 family; other "
                                 "vocabularies need their own tokenizer")
        return cls()

    def split(self, text: str) -> list[str]:
        pieces = [p if p.startswith("<") and len(p) > 1 else p.upper()
                  for p in _PIECE.findall(text)]
        if pieces and pieces[-1] == "*":
            pieces.pop()  # the stop codon ends translation; it is not a residue
        return pieces

    def encode(self, text: str, *, add_special_tokens: bool = True,
               max_length: int | None = None, crop: Crop = "start",
               rng: np.random.Generator | None = None) -> list[int]:
        """Text → ids; `max_length` counts `<cls>`/`<eos>`.

        A longer sequence keeps its first residues (`crop="start"`, deterministic),
        or a window at a random offset drawn from `rng` (`crop="random"`).
        """
        if crop not in ("start", "random"):
            raise BiofmError(f"unknown crop {crop!r}", fix="use 'start' or 'random'")
        if crop == "start" or max_length is None:
            return super().encode(text, add_special_tokens=add_special_tokens,
                                  max_length=max_length)
        if rng is None:
            raise BiofmError("crop='random' needs a generator",
                             fix="pass rng=numpy.random.default_rng(seed)")
        body = super().encode(text, add_special_tokens=False)
        keep = max(max_length - (2 if add_special_tokens else 0), 0)
        if len(body) > keep:
            start = int(rng.integers(0, len(body) - keep + 1))
            body = body[start:start + keep]
        return [self.bos_id, *body, self.eos_id] if add_special_tokens else body


def _first_difference(vocab: Sequence[str]) -> str:
    """Where `vocab` departs from ESM-2's, for the error message."""
    for i, (got, want) in enumerate(zip(vocab, ESM2_VOCAB)):
        if got != want:
            return f"token {i} is {got!r}, ESM-2 has {want!r}"
    return f"{len(vocab)} tokens, ESM-2 has {len(ESM2_VOCAB)}"
