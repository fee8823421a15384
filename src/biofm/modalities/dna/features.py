"""Overlapping k-mer frequencies: the classic DNA baseline features."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np


def kmer_frequencies(sequences: Sequence[str], k: int = 4) -> np.ndarray:
    """(N, 4**k) float32 overlapping k-mer frequencies (k-mers with N skipped)."""
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    out = np.zeros((len(sequences), len(index)), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        hits = [index[seq[i: i + k]] for i in range(len(seq) - k + 1) if seq[i: i + k] in index]
        for j in hits:
            out[row, j] += 1 / max(len(hits), 1)
    return out


__all__ = ["kmer_frequencies"]
