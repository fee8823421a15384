"""Near-identical DNA sequences, and splits that keep them on one side.

A random split of a DNA task puts a sequence in train and a one-mismatch copy of
it (or its reverse complement) in test, and the test score then measures
memory. `near_identical_groups` links every two sequences of the same length
whose identity, on either strand, is at least `min_identity` (Hamming distance
at most `floor((1 - min_identity) * length)`), and returns the connected
components (single linkage); `group_split` then assigns whole groups to
train / valid / test. Sequences of different lengths are never linked.

The search is exact, not sampled: cut sequences of length L into d + 2 fixed
segments; two sequences that differ at no more than d positions are identical
on at least two segments (pigeonhole), so candidate pairs are those sharing
some two segments, and each candidate is then checked base by base.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from biofm.data.splits import group_split  # noqa: F401  (re-exported: groups → splits)
from biofm.errors import BiofmError
from biofm.modalities.dna.augment import reverse_complement

_CHUNK = 65_536  # candidate pairs checked per numpy step (~10 MB for 150-bp sequences)


def near_identical_groups(texts: Sequence[str], min_identity: float = 0.9,
                          both_strands: bool = True) -> list[list[int]]:
    """Indices of `texts` grouped by single-linkage near-identity (see the module docstring).

    Groups are sorted by their first index; every index is in exactly one group.
    """
    if not 0.0 < min_identity <= 1.0:
        raise BiofmError(f"min_identity must be in (0, 1], got {min_identity}",
                         fix="e.g. 0.9 links sequences that differ at 10% of bases or fewer")
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        by_length[len(text)].append(i)
    rows, cols = [np.arange(len(texts))], [np.arange(len(texts))]
    for length, index in by_length.items():
        mismatches = math.floor((1.0 - min_identity) * length + 1e-9)
        pairs = _linked_pairs([texts[i] for i in index], mismatches, both_strands)
        rows.append(np.asarray(index)[pairs[:, 0]])
        cols.append(np.asarray(index)[pairs[:, 1]])
    n = len(texts)
    graph = coo_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows),
                                                              np.concatenate(cols))), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[int(label)].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def _linked_pairs(seqs: list[str], mismatches: int, both_strands: bool) -> np.ndarray:
    """(P, 2) index pairs into `seqs` (equal lengths) within `mismatches` on some strand."""
    n, length = len(seqs), len(seqs[0]) if seqs else 0
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    pool = list(seqs) + ([reverse_complement(s) for s in seqs] if both_strands else [])
    if mismatches >= length:  # every two sequences of this length are linked
        return np.stack([np.zeros(n - 1, dtype=np.int64), np.arange(1, n)], axis=1)
    codes = np.frombuffer("".join(pool).encode("ascii", "replace"),
                          dtype=np.uint8).reshape(len(pool), length)
    # cut into mismatches + 2 segments: a linked pair is identical on at least 2 of them,
    # so candidates share some pair of segments (long keys: few chance collisions)
    segments = min(mismatches + 2, length)
    bounds = np.linspace(0, length, segments + 1).astype(int)
    candidates = [
        _shared_key_pairs(np.concatenate([codes[:, bounds[c]:bounds[c + 1]] for c in combo], 1), n)
        for combo in itertools.combinations(range(segments), segments - mismatches)]
    pairs = np.unique(np.concatenate(candidates), axis=0)
    kept = [chunk[(codes[chunk[:, 0]] != codes[chunk[:, 1]]).sum(1) <= mismatches]
            for chunk in np.array_split(pairs, max(1, -(-len(pairs) // _CHUNK)))]
    kept_pairs = np.concatenate(kept) if kept else pairs
    return kept_pairs % n  # a reverse-complement row stands for its forward sequence


def _shared_key_pairs(key: np.ndarray, n_forward: int) -> np.ndarray:
    """Pairs (i, j), i < j, i a forward row, of rows whose `key` bytes are equal."""
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for row, value in enumerate(map(bytes, key)):
        buckets[value].append(row)
    out = [np.zeros((0, 2), dtype=np.int64)]
    for members in buckets.values():
        if len(members) < 2:
            continue
        m = np.asarray(members, dtype=np.int64)
        i, j = np.triu_indices(len(m), k=1)
        pair = np.stack([m[i], m[j]], axis=1)
        # (rc a, rc b) repeats (a, b); (a, a') is a sequence and its own complement
        pair = pair[(pair[:, 0] < n_forward) & (pair[:, 0] != pair[:, 1] % n_forward)]
        out.append(pair)
    return np.concatenate(out)


