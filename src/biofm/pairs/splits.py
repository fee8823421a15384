"""Splits of pair data: random, cold on one side, cold on both.

- random: pairs shuffled and cut 80 / 10 / 10;
- cold-<side> (cold-target, cold-drug): the side's items are grouped (`Grouper`:
  Bemis–Murcko scaffold for molecules, similarity clusters for proteins, identity
  otherwise) and every pair of a group lands in one split, so no scaffold / cluster
  of that side is in two splits (`group_split`, pair counts as sizes);
- cold-both: each side's groups are assigned on their own, by 60 / 20 / 20 of its
  pairs; a pair is kept when both its items landed in the same split and dropped
  otherwise (the note says how many): test pairs then share neither a target
  cluster nor a ligand scaffold with training pairs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from biofm.data.splits import SplitIndices, group_split, random_split
from biofm.errors import BiofmError
from biofm.pairs.data import PairData, PairSplits

# the items of one side (and their ids) → one group label per item
Grouper = Callable[[list, list[str]], list[str]]
FRACTIONS = (0.8, 0.1, 0.1)
BOTH_COLD_FRACTIONS = (0.6, 0.2, 0.2)


def identity_groups(items: list, ids: list[str]) -> list[str]:
    """Each distinct entity is its own group (cold = never seen in training)."""
    return list(ids)


def scaffold_groups(items: list, ids: list[str]) -> list[str]:
    """Bemis–Murcko scaffolds of SMILES items."""
    from biofm.data.splits import murcko_scaffold

    return [murcko_scaffold(s) for s in items]


def similarity_groups(ids: Sequence[str], matrix: np.ndarray, threshold: float) -> dict[str, str]:
    """Single-linkage clusters: ids whose similarity reaches `threshold` share a cluster
    (connected components of the thresholded matrix); id → cluster label."""
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(np.asarray(matrix) >= threshold, directed=False)
    return {name: f"cluster-{label}" for name, label in zip(ids, labels)}


def split_pairs(data: PairData, strategy: str, seed: int,
                groupers: tuple[Grouper, Grouper]) -> PairSplits:
    """`data` split by `strategy`: "random", "cold-<side name>" or "cold-both"."""
    names = [s.name for s in data.sides]
    notes: tuple[str, ...] = ()
    if strategy == "random":
        index = random_split(len(data), FRACTIONS, seed=seed)
    elif strategy.startswith("cold-") and strategy[5:] in names:
        side = names.index(strategy[5:])
        groups = _row_groups(data, side, groupers[side])
        index = group_split(groups, FRACTIONS, seed=seed)
        notes = (f"{len(groups)} {names[side]} groups, each in one split",)
    elif strategy == "cold-both":
        index, notes = _both_cold(data, groupers, seed)
    else:
        raise BiofmError(f"unknown pair split {strategy!r}",
                         fix=f"use --split random, {', '.join(f'cold-{n}' for n in names)} "
                             "or cold-both")
    parts = [data.subset(rows) for rows in index]
    empty = [name for name, part in zip(("train", "valid", "test"), parts) if not len(part)]
    if empty:
        raise BiofmError(f"the {strategy} split leaves {' and '.join(empty)} without pairs "
                         f"({len(data)} pairs)", fix="use more pairs, or --split random")
    return PairSplits(*parts, notes=notes)


def _row_groups(data: PairData, side: int, grouper: Grouper) -> list[list[int]]:
    """Rows of `data` grouped by the group of their item on `side` (first occurrence order)."""
    labels = grouper(data.items[side], data.item_ids[side])
    rows: dict[str, list[int]] = defaultdict(list)
    for row, item in enumerate(data.index[:, side]):
        rows[labels[item]].append(row)
    return list(rows.values())


def _both_cold(data: PairData, groupers: tuple[Grouper, Grouper],
               seed: int) -> tuple[SplitIndices, tuple[str, ...]]:
    """Each side's groups assigned alone; pairs whose two items disagree are dropped."""
    where = np.zeros((len(data), 2), dtype=np.int64)
    for side in (0, 1):
        assigned = group_split(_row_groups(data, side, groupers[side]), BOTH_COLD_FRACTIONS,
                               seed=seed + side)
        for k, rows in enumerate(assigned):
            where[rows, side] = k
    agree = where[:, 0] == where[:, 1]
    index = SplitIndices(*(np.flatnonzero(agree & (where[:, 0] == k)) for k in range(3)))
    note = (f"cold-both keeps the {agree.sum():,} of {len(data):,} pairs whose two sides "
            f"fell in the same split ({(~agree).sum():,} dropped)")
    return index, (note,)


__all__ = ["BOTH_COLD_FRACTIONS", "FRACTIONS", "Grouper", "identity_groups", "scaffold_groups",
           "similarity_groups", "split_pairs"]
