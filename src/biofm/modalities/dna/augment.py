"""Reverse-complement augmentation: DNA is double-stranded, so a sequence and its
reverse complement carry the same information, and a model should see both.

- `reverse_complement(seq)`: the other strand, read 5' → 3' (IUPAC codes map to
  their complements, case is kept, other characters are left as they are);
- `reverse_complement_ids(tokenizer, ids)`: the same on token ids. For `dna-char`
  and the k-mer tokenizers this is exact on ids (reverse the tokens, map each to
  its reverse complement); for `dna-nt6` and `dna-bpe`, whose tokens do not
  align across strands, the ids are decoded, reverse-complemented and encoded
  again (the body keeps its length in bases, not necessarily in tokens);
- `RandomReverseComplement(p, seed)`: flips a text (`__call__`) or a batch of
  token-id sequences (`batch(seqs, step, indices)`) with probability `p`. Batch
  draws are a pure function of `(seed, step[, index])`, so a resumed run flips
  the same sequences as an uninterrupted one without saving any generator state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from biofm.errors import BiofmError

if TYPE_CHECKING:
    from biofm.modalities.dna.tokenizers import DnaTokenizer

_COMPLEMENT = str.maketrans("ACGTUNRYSWKMBDHVacgtunryswkmbdhv",
                            "TGCAANYRSWMKVHDBtgcaanyrswmkvhdb")


def reverse_complement(seq: str) -> str:
    """'AACG' → 'CGTT'."""
    return seq.translate(_COMPLEMENT)[::-1]


def reverse_complement_ids(tokenizer: "DnaTokenizer", ids: Sequence[int],
                           max_length: int | None = None) -> list[int]:
    """Token ids of the reverse complement; a leading `<cls>` / trailing `<eos>` stay put.

    `max_length` (specials included) crops a re-encoded body that came out longer.
    """
    ids = list(ids)
    head = ids[:1] if ids and ids[0] == tokenizer.bos_id else []
    tail = ids[-1:] if len(ids) > len(head) and ids[-1] == tokenizer.eos_id else []
    body = ids[len(head): len(ids) - len(tail)]
    table = tokenizer.complement_table()
    if table is not None:
        flipped = table[np.asarray(body[::-1], dtype=np.int64)].tolist() if body else []
    else:
        text = reverse_complement(tokenizer.decode(body))
        keep = None if max_length is None else max(max_length - len(head) - len(tail), 0)
        flipped = tokenizer.encode(text, add_special_tokens=False, max_length=keep)
    return [*head, *flipped, *tail]


class RandomReverseComplement:
    """Reverse-complement with probability `p`; randomness from `seed` only.

    `tokenizer` is needed for `batch` (token ids), not for texts; `max_length`
    (the model's context) crops re-encoded sequences (`dna-nt6`, `dna-bpe`).
    """

    def __init__(self, p: float = 0.5, seed: int = 0,
                 tokenizer: "DnaTokenizer | None" = None, max_length: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise BiofmError(f"reverse-complement probability must be in [0, 1], got {p}",
                             fix="e.g. p=0.5 (each strand equally often) or 0 to switch it off")
        self.p, self.seed, self.tokenizer, self.max_length = p, seed, tokenizer, max_length
        self.rng = np.random.default_rng(seed)

    def __call__(self, text: str) -> str:
        """One draw from this transform's own generator."""
        return reverse_complement(text) if self.rng.random() < self.p else text

    def batch(self, sequences: Sequence[Sequence[int]], step: int,
              indices: Sequence[int] | None = None) -> list[list[int]]:
        """Flip each token-id sequence with probability `p`, drawn from `(seed, step)`.

        With `indices` (the sequences' positions in the training set) each draw is
        keyed by `(seed, step, index)` instead of the position in the batch, so a
        data-parallel run that gives every rank a slice of the global batch flips
        the same sequences as one process. The trainer hook:
        `seqs = augment.batch(seqs, micro_step, indices)` before collating.
        """
        if self.tokenizer is None:
            raise BiofmError("RandomReverseComplement.batch needs the tokenizer",
                             fix="build it as RandomReverseComplement(p, seed, tokenizer)")
        if indices is None:
            draws = np.random.default_rng([self.seed, step]).random(len(sequences))
        else:
            draws = np.array([np.random.default_rng([self.seed, step, int(i)]).random()
                              for i in indices])
        return [reverse_complement_ids(self.tokenizer, s, self.max_length) if flip else list(s)
                for s, flip in zip(sequences, draws < self.p)]
