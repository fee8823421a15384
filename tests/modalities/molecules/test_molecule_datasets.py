"""Packaged corpora and tasks load real data with the documented shapes."""

from __future__ import annotations

import numpy as np

from biofm.data.records import SkipLog
from biofm.data.splits import murcko_scaffold
from biofm.modalities.molecules import canonical_smiles
from biofm.registry import CORPORA, TASKS


def test_nci_corpus_skips_and_counts_invalid_rows():
    skipped = SkipLog()
    records = CORPORA.get("nci")(skipped)
    assert len(records) + len(skipped) == 4999
    assert 0 < len(skipped) < 20
    assert records[0].data == canonical_smiles("CC1=CC(=O)C=CC1=O") and records[0].id == "1"


def test_chembl_drugs_corpus():
    records = CORPORA.get("chembl-drugs")()
    assert len(records) == 1935
    assert all(canonical_smiles(r.data) == r.data for r in records[:50])


def scaffolds(texts):
    return {murcko_scaffold(s) for s in texts}


def test_freesolv_task_scaffold_split():
    task = TASKS.get("freesolv")()
    assert (task.modality, task.kind, task.split) == ("molecule", "regression", "scaffold")
    assert "FreeSolv" in task.source and "Apache" in task.source
    splits = task.load(0)
    parts = (splits.train, splits.valid, splits.test)
    assert sum(len(p) for p in parts) == 642
    assert [round(len(p) / 642, 1) for p in parts] == [0.8, 0.1, 0.1]
    train, valid, test = (scaffolds(p.inputs) for p in parts)
    assert not (train & valid or train & test or valid & test)
    assert all(p.labels.dtype == np.float32 and p.labels.shape == (len(p),) for p in parts)
    assert len({i for p in parts for i in p.ids}) == 642
    # methanesulfonyl chloride: expt -4.87 kcal/mol in the CSV
    everything = {i: y for p in parts for i, y in zip(p.ids, p.labels)}
    assert np.isclose(everything["methanesulfonyl chloride"], -4.87)
    again = task.load(0)
    assert again.test.ids == splits.test.ids
    assert task.load(1).test.ids != splits.test.ids


def test_solubility_task_given_test_and_scaffold_valid():
    task = TASKS.get("solubility")()
    splits = task.load(0)
    assert len(splits.test) == 257 and len(splits.train) + len(splits.valid) == 1025
    assert abs(len(splits.valid) - 102.5) < 15
    assert not scaffolds(splits.train.inputs) & scaffolds(splits.valid.inputs)
    assert splits.train.labels.dtype == np.float32
    assert -12 < splits.test.labels.min() < splits.test.labels.max() < 2  # logS range
    splits.test.labels[:] = 0  # editing a split leaves the cached data intact
    assert task.load(0).test.labels.any()
