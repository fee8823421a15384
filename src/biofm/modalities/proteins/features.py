"""Amino-acid (20) + dipeptide (400) composition: the classic peptide baseline features."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

AMINO = "ACDEFGHIKLMNPQRSTVWY"
DIPEPTIDES = {a + b: i for i, (a, b) in enumerate(itertools.product(AMINO, AMINO))}


def composition(sequences: Sequence[str]) -> np.ndarray:
    """(N, 420) float32: amino-acid frequencies, then dipeptide frequencies."""
    out = np.zeros((len(sequences), 420), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        for aa in seq:
            if aa in AMINO:
                out[row, AMINO.index(aa)] += 1 / max(len(seq), 1)
        for i in range(len(seq) - 1):
            j = DIPEPTIDES.get(seq[i: i + 2])
            if j is not None:
                out[row, 20 + j] += 1 / max(len(seq) - 1, 1)
    return out


__all__ = ["composition"]
