"""Pair CSVs, the KIBA sample and its splits."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biofm.data.records import SkipLog
from biofm.data.splits import murcko_scaffold
from biofm.errors import BiofmError
from biofm.pairs import PAIR_TASKS, Side, read_pairs
from biofm.pairs.data import PairData
from biofm.pairs.splits import identity_groups, scaffold_groups, split_pairs
from biofm.pairs.tasks import kiba_data, kiba_target_clusters, modality_parsers

SIDES = (Side("target", "sequence", "protein"), Side("drug", "smiles", "molecule"))
PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ", "MSDNGPQNQRNAPRITFGGPSDST", "MALWMRLLPLLALLALWGPD"]
LIGANDS = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1"]


def _csv(tmp_path: Path, rows: list[tuple[str, str, object]]) -> Path:
    path = tmp_path / "pairs.csv"
    pd.DataFrame(rows, columns=["sequence", "smiles", "y"]).to_csv(path, index=False)
    return path


def _grid() -> list[tuple[str, str, float]]:
    return [(p, s, float(i + j)) for i, p in enumerate(PROTEINS) for j, s in enumerate(LIGANDS)]


def test_pairs_point_at_distinct_items(tmp_path):
    data = read_pairs(_csv(tmp_path, _grid()), SIDES, "y", modality_parsers(SIDES))
    assert len(data) == 12 and len(data.items[0]) == 3 and len(data.items[1]) == 4
    assert data.inputs(0)[5] == PROTEINS[1]
    assert data.items[1][1] == "Oc1ccccc1"  # canonical SMILES
    assert data.lines.tolist() == list(range(2, 14))
    assert data.labels[5] == 2.0


def test_missing_column_names_the_available_ones(tmp_path):
    path = _csv(tmp_path, _grid())
    sides = (SIDES[0], Side("drug", "SMILES", "molecule"))
    with pytest.raises(BiofmError, match=r"column 'SMILES' is missing.*available: sequence, "
                                         r"smiles, y"):
        read_pairs(path, sides, "y", modality_parsers(sides))


def test_invalid_smiles_names_its_line_and_skip_counts_it(tmp_path):
    rows = _grid()
    rows[2] = (PROTEINS[0], "C1CC(", 1.0)  # line 4
    rows[7] = (PROTEINS[1], "C1CC(", 1.0)  # the same bad cell again, line 9
    path = _csv(tmp_path, rows)
    with pytest.raises(BiofmError, match=r"pairs.csv \(line 4\): invalid SMILES 'C1CC\('"):
        read_pairs(path, SIDES, "y", modality_parsers(SIDES))
    skipped = SkipLog()
    data = read_pairs(path, SIDES, "y", modality_parsers(SIDES), on_error="skip",
                      skipped=skipped)
    assert len(data) == 10 and [line for _, line, _ in skipped.entries] == [4, 9]
    assert "left out 2 pair(s) with an invalid input" in data.notes


def test_lines_are_counted_as_the_file_has_them(tmp_path):
    """A blank line between rows: the bad cell after it is on line 5, not 4."""
    rows = _grid()
    rows[2] = (PROTEINS[0], "C1CC(", 1.0)
    path = _csv(tmp_path, rows)
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:2] + [""] + text[2:]) + "\n")
    with pytest.raises(BiofmError, match=r"pairs.csv \(line 5\): invalid SMILES 'C1CC\('"):
        read_pairs(path, SIDES, "y", modality_parsers(SIDES))


def test_text_label_is_refused_with_its_line(tmp_path):
    rows = _grid()
    rows[3] = (PROTEINS[0], "CCO", "strong")
    with pytest.raises(BiofmError, match=r"line 5.*'strong'.*not a number"):
        read_pairs(_csv(tmp_path, rows), SIDES, "y", modality_parsers(SIDES))


def test_rows_without_an_input_are_counted(tmp_path):
    rows = _grid() + [(PROTEINS[0], None, 1.0), (PROTEINS[1], "CCO", None)]
    data = read_pairs(_csv(tmp_path, rows), SIDES, "y", modality_parsers(SIDES))
    assert len(data) == 12
    assert data.notes == ("left out 1 row(s) without a label ('y') and 1 row(s) without one of "
                          "the inputs",)


def _toy(n_targets: int = 12, n_drugs: int = 30, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)
    index = np.array([(t, d) for t in range(n_targets) for d in range(n_drugs)
                      if rng.random() < 0.6])
    # rings of 3 to 10 carbons with side chains: 8 scaffolds
    smiles = [f"C1{'C' * (1 + d % 8)}C1" + "C" * (d // 8 + 1) for d in range(n_drugs)]
    return PairData(SIDES, ([f"P{t}" for t in range(n_targets)], smiles),
                    ([f"t{t}" for t in range(n_targets)], [f"d{d}" for d in range(n_drugs)]),
                    index, rng.normal(size=len(index)).astype(np.float32),
                    np.arange(len(index)) + 2)


def _shared(splits, side: int, groups: list[str]) -> set[str]:
    seen = [{groups[i] for i in part.index[:, side]} for part in
            (splits.train, splits.valid, splits.test)]
    return (seen[0] & seen[1]) | (seen[0] & seen[2]) | (seen[1] & seen[2])


def test_cold_splits_keep_groups_apart():
    data = _toy()
    groupers = (identity_groups, scaffold_groups)
    scaffolds = scaffold_groups(data.items[1], data.item_ids[1])
    cold_drug = split_pairs(data, "cold-drug", 0, groupers)
    assert not _shared(cold_drug, 1, scaffolds)
    assert len(set(scaffolds)) == 8
    cold_target = split_pairs(data, "cold-target", 1, groupers)
    assert not _shared(cold_target, 0, data.item_ids[0])
    sizes = [len(p) for p in (cold_target.train, cold_target.valid, cold_target.test)]
    assert sum(sizes) == len(data) and sizes[0] > sizes[2] > 0
    random = split_pairs(data, "random", 0, groupers)
    assert sum(len(p) for p in (random.train, random.valid, random.test)) == len(data)
    with pytest.raises(BiofmError, match="unknown pair split 'cold-ligand'.*cold-target, "
                                         "cold-drug or cold-both"):
        split_pairs(data, "cold-ligand", 0, groupers)


def test_cold_both_drops_pairs_that_cross():
    data = _toy(20, 40)
    splits = split_pairs(data, "cold-both", 0, (identity_groups, identity_groups))
    for side in (0, 1):
        assert not _shared(splits, side, data.item_ids[side])
    kept = len(splits.train) + len(splits.valid) + len(splits.test)
    assert kept < len(data) and f"keeps the {kept:,} of {len(data):,}" in splits.notes[0]


# -- KIBA -----------------------------------------------------------------------------

def test_kiba_sample_as_shipped():
    data = kiba_data()
    assert len(data) == 5000 and len(data.items[0]) == 189 and len(data.items[1]) == 458
    assert data.item_ids[0][0] == "Q9HAZ1" and data.item_ids[1][0] == "CHEMBL2004716"
    assert 7.0 < data.labels.min() < data.labels.max() < 17.0
    given = PAIR_TASKS.get("kiba")().load("given", 0)
    assert (len(given.train), len(given.valid), len(given.test)) == (3000, 1000, 1000)


def test_kiba_clusters_hold_near_identical_targets():
    from biofm.data.packaged import package_file

    matrix = pd.read_csv(package_file("pydebiaseddta", "data/dta/dta_sample_sw_sim_matrix.csv"),
                         index_col=0)
    ids = list(matrix.index)
    clusters = dict(zip(ids, kiba_target_clusters(ids)))
    close = np.argwhere(np.triu(matrix.to_numpy() >= 0.5, 1))
    assert len(close) > 50
    assert all(clusters[ids[i]] == clusters[ids[j]] for i, j in close)
    assert len(set(clusters.values())) == 128


@pytest.mark.parametrize("split", ["cold-target", "cold-drug", "cold-both"])
def test_kiba_cold_splits(split):
    task = PAIR_TASKS.get("kiba")()
    splits = task.load(split, 0)
    data = kiba_data()
    if split in ("cold-target", "cold-both"):
        assert not _shared(splits, 0, kiba_target_clusters(data.item_ids[0]))
    if split in ("cold-drug", "cold-both"):
        assert not _shared(splits, 1, [murcko_scaffold(s) for s in data.items[1]])
    again = task.load(split, 0)
    assert np.array_equal(again.test.index, splits.test.index)
    assert not np.array_equal(task.load(split, 1).test.index, splits.test.index)
