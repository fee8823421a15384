"""random_split and scaffold_split: coverage, fractions, determinism, disjointness."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.data.splits import murcko_scaffold, random_split, scaffold_split
from biofm.errors import BiofmError


def covers_once(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_random_split_sizes_coverage_determinism():
    parts = random_split(101, (0.8, 0.1, 0.1), seed=3)
    assert [len(p) for p in parts] == [81, 10, 10]
    assert covers_once(parts, 101)
    assert all(p.dtype == np.int64 for p in parts)
    again = random_split(101, (0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts.test, random_split(101, seed=4).test)


def test_random_split_stratified_keeps_class_ratios():
    labels = np.array([0] * 90 + [1] * 10)
    parts = random_split(100, (0.8, 0.1, 0.1), seed=0, stratify=labels)
    assert covers_once(parts, 100)
    assert [int(labels[p].sum()) for p in parts] == [8, 1, 1]
    with pytest.raises(BiofmError, match="one class label per row"):
        random_split(100, stratify=labels[:50])


@pytest.mark.parametrize("bad", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1)])
def test_bad_fractions(bad):
    with pytest.raises(BiofmError, match="summing to 1"):
        random_split(10, bad)
    with pytest.raises(BiofmError, match="summing to 1"):
        scaffold_split(["CCO"], bad)


def molecules():
    """60 molecules: 20 scaffolds (biphenyls with a j-carbon linker) of 1-4 members,
    plus 10 acyclic molecules, which share the empty scaffold."""
    subs = ["", "C", "O", "N"]
    cyclic = [f"{s}c1ccc(cc1){'C' * j}c1ccccc1" for j in range(20) for s in subs[: 1 + j % 4]]
    return cyclic + ["C" * k + "O" for k in range(1, 11)]


def test_scaffold_split_disjoint_covering_and_deterministic():
    smiles = molecules()
    assert len({murcko_scaffold(s) for s in smiles}) == 21
    for seed in range(5):
        parts = scaffold_split(smiles, (0.8, 0.1, 0.1), seed=seed)
        assert covers_once(parts, 60)
        groups = [{murcko_scaffold(smiles[i]) for i in p} for p in parts]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
        assert "" in groups[0]  # the big acyclic group goes to train
        # sizes match 48/6/6 up to one small group (<= 3 molecules)
        assert [abs(len(p) - t) <= 3 for p, t in zip(parts, (48, 6, 6))] == [True] * 3
    parts = scaffold_split(smiles, seed=0)
    again = scaffold_split(smiles, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert len({tuple(scaffold_split(smiles, seed=s).test) for s in range(5)}) > 1


def test_scaffold_split_zero_fraction_gets_nothing():
    parts = scaffold_split(molecules(), (0.9, 0.1, 0.0), seed=1)
    assert len(parts.test) == 0 and covers_once(parts, 60)


def test_murcko_scaffold():
    assert murcko_scaffold("Cc1ccccc1") == "c1ccccc1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("C[C@H]1CC[C@@H](C)CC1") == "C1CCCCC1"
    with pytest.raises(BiofmError, match="invalid SMILES 'C1CC'"):
        scaffold_split(["CCO", "C1CC"])
