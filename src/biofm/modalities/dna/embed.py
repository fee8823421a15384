"""DNA embeddings: strand-averaged, and sliding windows for sequences longer than the context.

`embed_dna(model, seqs)` returns one vector per sequence, built on
`FoundationModel.embed` (which pools each window's token states, `mean` or `cls`):

1. Windows. A sequence is cut into windows of `window` bases starting every
   `stride` bases (defaults: the most bases the model's context always holds
   with its tokenizer — `max_len - 2` for `dna-char` and `dna-bpe`,
   `max_len - 2 + k - 1` for k-mers, `6 (max_len - 2)` for `dna-nt6` — and
   `stride = window`). The last window is aligned to the sequence's end, so
   every window is full length and every base is covered; a sequence no longer
   than `window` is one window.
2. Aggregation. The sequence's vector is the mean of its window vectors, each
   weighted by the number of bases it is the first window to cover (`window`
   for the first, `stride` for the next ones, the remainder for the
   end-aligned last one): with the default stride this is the base-weighted
   mean, and no part of the sequence counts twice.
3. Strands. With `strand_average=True` (default) the same is done on the
   reverse complement and the two vectors are averaged, so the embedding does
   not depend on which strand the sequence was read from.
"""

from __future__ import annotations

from typing import Iterable, Literal, Sequence

import numpy as np

from biofm.errors import BiofmError
from biofm.modalities.dna.augment import reverse_complement
from biofm.modalities.dna.reader import normalize_dna
from biofm.modalities.dna.tokenizers import DnaTokenizer

Pooling = Literal["mean", "cls"]


def window_starts(length: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, weight) of the windows of a `length`-base sequence (see the module doc)."""
    if length <= window:
        return [(0, length, length)]
    out, start, covered = [], 0, 0
    while True:
        start = min(start, length - window)
        end = start + window
        out.append((start, end, end - covered))
        covered = end
        if end >= length:
            return out
        start += stride


def embed_dna(model, seqs: Sequence[str], *, strand_average: bool = True,
              window: int | None = None, stride: int | None = None, pooling: Pooling = "mean",
              batch_size: int = 64, ids: Sequence[str] | None = None,
              progress: Iterable | None = None) -> np.ndarray:
    """Embeddings (N, d) float32 of DNA sequences of any length; see the module docstring.

    `model` is a `FoundationModel` with a DNA tokenizer; `ids` name the sequences
    in error messages (default: their 1-based index).
    """
    tokenizer = model.tokenizer
    if not isinstance(tokenizer, DnaTokenizer):
        raise BiofmError(f"this model's tokenizer is {tokenizer.name!r}, not a DNA tokenizer",
                         fix="embed DNA with a model pretrained on DNA (modality 'dna')")
    window, stride = _window_and_stride(tokenizer, model.config.backbone.max_len, window, stride)
    names = list(ids) if ids is not None else [f"sequence {i + 1}" for i in range(len(seqs))]
    texts: list[str] = []
    owner: list[int] = []      # row of the output each window feeds
    weight: list[float] = []
    strands = 2 if strand_average else 1
    for row, (name, raw) in enumerate(zip(names, seqs)):
        seq = normalize_dna(raw)
        if len(seq) < max(tokenizer.min_bases, 1):
            raise BiofmError(f"{name} has {len(seq)} bases: nothing to embed "
                             f"(the {tokenizer.name} tokenizer needs at least "
                             f"{tokenizer.min_bases})", record=name,
                             fix="drop empty and too-short sequences before embedding")
        for strand, text in enumerate((seq, reverse_complement(seq))[:strands]):
            for start, end, w in window_starts(len(text), window, stride):
                texts.append(text[start:end])
                owner.append(row)
                weight.append(w / len(text) / strands)
    if progress is not None:  # the caller counts sequences; the model counts windows
        progress = _PerSequence(progress, len(seqs) / max(len(texts), 1))
    vectors = model.embed(texts, pooling=pooling, batch_size=batch_size, progress=progress)
    out = np.zeros((len(seqs), vectors.shape[1]), dtype=np.float64)
    np.add.at(out, np.asarray(owner, dtype=np.int64), vectors * np.asarray(weight)[:, None])
    return out.astype(np.float32)


class _PerSequence:
    """Forwards `advance(windows)` as the matching fraction of sequences."""

    def __init__(self, inner, sequences_per_window: float) -> None:
        self.inner, self.scale = inner, sequences_per_window

    def advance(self, n: int) -> None:
        self.inner.advance(n * self.scale)


def _window_and_stride(tokenizer: DnaTokenizer, max_len: int, window: int | None,
                       stride: int | None) -> tuple[int, int]:
    window = tokenizer.context_bases(max_len - 2) if window is None else window
    stride = window if stride is None else stride
    if window < max(tokenizer.min_bases, 1):
        raise BiofmError(f"window of {window} bases is shorter than one {tokenizer.name} token",
                         fix=f"use a window of at least {tokenizer.min_bases} bases")
    if not 1 <= stride <= window:
        raise BiofmError(f"stride {stride} must be between 1 and the window ({window} bases)",
                         fix="a stride longer than the window would leave bases unembedded")
    return int(window), int(stride)
