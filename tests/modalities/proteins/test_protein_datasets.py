"""Packaged protein corpora and peptide tasks: real sizes, clean text, no leakage."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.modalities.proteins.datasets import unaligned
from biofm.registry import CORPORA, TASKS

RESIDUES = set("ACDEFGHIKLMNPQRSTVWYXBZUO")


@pytest.mark.parametrize("name, size", [("proteome", 2100), ("pfam-hemopexin", 4188),
                                        ("pfam-ww", 4025)])
def test_corpora_load_real_unaligned_sequences(name, size):
    records = CORPORA.get(name)()
    assert len(records) == size
    assert len({r.id for r in records}) == size
    assert all(r.data and set(r.data) <= RESIDUES for r in records)


def test_proteome_drops_stop_codons_only_at_the_end():
    first = CORPORA.get("proteome")()[0]
    assert first.id == "938293.PRJEB85.HG003688_1"
    assert first.data.startswith("MNINELLKDK") and first.data.endswith("QKKSELPA")


def test_unaligned_strips_gaps_and_case():
    rows = [Record("a", "..LPp-QW*"), Record("gaps", "--..")]
    assert unaligned(rows) == [Record("a", "LPPQW")]


@pytest.mark.parametrize("name, total", [("amp", 4620), ("anticancer", 826)])
def test_peptide_tasks_split_deduplicated_and_stratified(name, total):
    task = TASKS.get(name)()
    assert (task.name, task.modality, task.kind) == (name, "protein", "classification")
    assert "modlamp" in task.source and "BSD" in task.source
    splits = task.load(0)
    parts = [splits.train, splits.valid, splits.test]
    assert sum(len(p) for p in parts) == total
    assert [round(len(p) / total, 2) for p in parts] == [0.8, 0.1, 0.1]
    texts = [set(p.inputs) for p in parts]
    assert all(len(t) == len(p) for t, p in zip(texts, parts))  # no repeat inside a split
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    rates = [p.labels.mean() for p in parts]
    assert max(rates) - min(rates) < 0.01                            # stratified
    assert set(np.unique(splits.train.labels)) == {0, 1}
    assert all(set(t) <= RESIDUES for t in splits.train.inputs)


def test_amp_split_depends_on_seed_only():
    task = TASKS.get("amp")()
    a, b, c = task.load(0), task.load(0), task.load(1)
    assert a.test.ids == b.test.ids
    assert a.test.ids != c.test.ids
    assert sorted(a.test.ids + a.valid.ids + a.train.ids) == sorted(
        c.test.ids + c.valid.ids + c.train.ids)


def test_amp_drops_sequences_listed_with_both_labels():
    with open(package_file("modlamp", "data/AMPvsUniProt.csv")) as fh:
        rows = list(csv.reader(fh))[1:]
    labels: dict[str, set[int]] = {}
    for seq, label in rows:
        labels.setdefault(seq.strip(), set()).add(int(label))
    conflicting = {s for s, labs in labels.items() if len(labs) == 2}
    assert len(rows) == 5200 and len(labels) == 4642 and len(conflicting) == 22
    splits = TASKS.get("amp")().load(0)
    seen = dict(zip(splits.train.inputs, splits.train.labels))
    assert not conflicting & set(seen)
    assert all(labels[s] == {int(y)} for s, y in seen.items())
