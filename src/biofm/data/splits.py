"""Train/valid/test index splits: random (optionally stratified) and scaffold.

Both return `SplitIndices` of sorted int64 arrays that together cover
`range(n)` exactly once, and both are a pure function of their inputs and
`seed`, so a benchmark run can be repeated split for split.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple, Sequence

import numpy as np

from biofm.errors import BiofmError

Fractions = tuple[float, float, float]


class SplitIndices(NamedTuple):
    """Row indices of each split (sorted)."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def random_split(n: int, fractions: Fractions = (0.8, 0.1, 0.1), seed: int = 0,
                 stratify: Sequence | np.ndarray | None = None) -> SplitIndices:
    """Shuffle `range(n)` with `seed` and cut it by `fractions`.

    With `stratify` (one class label per row), each class is split on its own
    by the same fractions, so rare classes appear in every split they can.
    Sizes are rounded by largest remainder, so they always sum to n.
    """
    fractions = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    if stratify is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise BiofmError(f"stratify has {labels.shape} labels for {n} rows",
                             fix="pass one class label per row")
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: list[list[np.ndarray]] = [[], [], []]
    for group in groups:
        shuffled = rng.permutation(group)
        cuts = np.cumsum(_split_sizes(len(shuffled), fractions))[:-1]
        for part, chunk in zip(parts, np.split(shuffled, cuts)):
            part.append(chunk)
    return SplitIndices(*(np.sort(np.concatenate(p)).astype(np.int64) for p in parts))


def scaffold_split(smiles: Sequence[str], fractions: Fractions = (0.8, 0.1, 0.1),
                   seed: int = 0) -> SplitIndices:
    """Split molecules so that no Bemis–Murcko scaffold spans two splits.

    Scaffold splits measure generalisation to new chemotypes, which random
    splits overstate. This is the "balanced" variant of chemprop
    (Yang et al. 2019):

    1. group molecules by Murcko scaffold (`includeChirality=False`; acyclic
       molecules share the empty scaffold);
    2. order groups: "big" groups (larger than half the smallest non-zero
       valid/test target) first, so they land in train instead of making valid
       or test one chemotype; then the other groups. Both lists are shuffled
       by `seed`, as in chemprop: sorting big groups instead would make every
       seed give the same split whenever most groups are big;
    3. put each group, whole, in the first of train / valid / test whose
       target size it still fits; if it fits none, in the split with the most
       room left, later split on ties (chemprop sends all leftovers to test;
       this way a split with fraction 0 never receives molecules).

    Split sizes therefore match `fractions` approximately (typically within one group).
    """
    groups = sorted(_scaffold_groups(smiles).values(), key=lambda g: g[0])  # by first occurrence
    return group_split(groups, fractions, seed)


def group_split(groups: Sequence[Sequence[int]], fractions: Fractions = (0.8, 0.1, 0.1),
                seed: int = 0) -> SplitIndices:
    """Assign whole groups (scaffolds, sequence clusters) to train / valid / test.

    The assignment of `scaffold_split` (steps 2-3 there): big groups first, both
    lists shuffled by `seed`, each group into the first split it still fits.
    """
    fractions = _check_fractions(fractions)
    targets = np.asarray(fractions) * sum(len(g) for g in groups)
    big_cut = min(t for t in targets[1:] if t > 0) / 2 if any(targets[1:] > 0) else np.inf
    rng = np.random.default_rng(seed)
    big = [g for g in groups if len(g) > big_cut]
    small = [g for g in groups if len(g) <= big_cut]
    ordered = [big[i] for i in rng.permutation(len(big))]
    ordered += [small[i] for i in rng.permutation(len(small))]
    parts: list[list[int]] = [[], [], []]
    room = targets.copy()
    for group in ordered:
        fits = [k for k in range(3) if len(group) <= room[k]]
        k = fits[0] if fits else max(range(3), key=lambda j: (room[j], j))
        parts[k].extend(group)
        room[k] -= len(group)
    return SplitIndices(*(np.asarray(sorted(p), dtype=np.int64) for p in parts))


def murcko_scaffold(smiles: str) -> str:
    """Bemis–Murcko scaffold SMILES ("" for acyclic molecules); raises on invalid SMILES."""
    from rdkit import Chem, rdBase  # imported here: only molecule tasks need RDKit
    from rdkit.Chem.Scaffolds import MurckoScaffold

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise BiofmError(f"invalid SMILES {smiles!r}: cannot compute its scaffold", record=smiles,
                         fix="canonicalise the molecules with biofm's SMILES reader first")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def _scaffold_groups(smiles: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    return groups


def _check_fractions(fractions: Sequence[float]) -> Fractions:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-6:
        raise BiofmError(f"split fractions {tuple(fractions)} must be three non-negative numbers "
                         "(train, valid, test) summing to 1", fix="e.g. (0.8, 0.1, 0.1)")
    return values  # type: ignore[return-value]


def _split_sizes(n: int, fractions: Fractions) -> list[int]:
    """Largest-remainder rounding of `fractions * n` (sums to n; ties go to train first)."""
    exact = np.asarray(fractions) * n
    sizes = np.floor(exact).astype(int)
    remainder = exact - sizes
    for k in np.argsort(-remainder, kind="stable")[: n - sizes.sum()]:
        sizes[k] += 1
    return sizes.tolist()
