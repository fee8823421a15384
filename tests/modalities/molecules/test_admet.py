"""ADMET as multi-task molecules: the TrialBench files, their splits, masked multi-task
fine-tuning and the comparison table, on a tiny subset of the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from biofm.bench.metrics import multilabel_metrics
from biofm.data.splits import murcko_scaffold
from biofm.modalities.molecules import admet
from biofm.modalities.molecules.admet_compare import admet_compare, cap_labels, per_label_auc
from biofm.registry import TASKS

ROWS = 40  # first real rows of each packaged file
ASPIRIN, BENZENE = "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """The first rows of the ten packaged files, plus planted cases: an invalid SMILES,
    one molecule with both labels in one file, and aspirin in a property's train file
    and another's valid file."""
    directory = tmp_path_factory.mktemp("admet")
    for name in admet.PROPERTIES:
        for part in ("train", "valid"):
            lines = (admet.cooked_dir() / f"{name}_{part}.txt").read_text().splitlines()[:ROWS]
            if (name, part) == ("absorption", "train"):
                lines += ["C1CC(\t1", f"{BENZENE}\t0", f"{BENZENE}\t1", f"{ASPIRIN}\t1"]
            if (name, part) == ("toxicity", "valid"):
                lines += [f"{ASPIRIN}\t0"]
            (directory / f"{name}_{part}.txt").write_text("\n".join(lines) + "\n")
    return directory


def test_table_reads_labels_masks_and_counts_what_it_drops(tiny_dir):
    table = admet.admet_table(tiny_dir)
    assert table.labels.shape == (len(table.smiles), 5) and table.labels.dtype == np.float32
    assert set(np.unique(table.labels[~np.isnan(table.labels)])) == {0.0, 1.0}
    assert (~np.isnan(table.labels)).any(1).all()  # every molecule has a label
    notes = " ".join(table.notes)
    assert "1 invalid SMILES" in notes and "1 molecules with both labels" in notes
    assert f"{len(table.smiles):,} molecules, {int(table.test.sum()):,} of them in a test" in notes
    assert "c1ccccc1" not in table.smiles  # both labels in one file: dropped there
    i = table.smiles.index(ASPIRIN)
    # a test molecule of toxicity loses its absorption training label
    assert table.test[i] and table.labels[i, 4] == 0 and np.isnan(table.labels[i, 0])


def test_splits_keep_test_molecules_and_scaffolds_out_of_training(tiny_dir):
    table = admet.admet_table(tiny_dir)
    splits = admet.admet_splits(table, seed=0)
    train, valid, test = (set(s.inputs) for s in (splits.train, splits.valid, splits.test))
    assert not (train & valid or train & test or valid & test)
    assert len(train) + len(valid) + len(test) == len(table.smiles)
    assert test == {s for s, t in zip(table.smiles, table.test) if t}
    assert not {murcko_scaffold(s) for s in train} & {murcko_scaffold(s) for s in valid}
    # each property's test molecules are its given valid file (minus invalid / clashing)
    given = {admet.canonical_smiles(line.split("\t")[0]) for line in
             (tiny_dir / "metabolism_valid.txt").read_text().splitlines()}
    single = admet.one_property(splits, admet.PROPERTIES.index("metabolism"))
    assert set(single.test.inputs) == given - {None}
    assert single.train.labels.dtype == np.int64 and set(single.train.labels) <= {0, 1}
    assert admet.admet_splits(table, 1).valid.inputs != splits.valid.inputs


def test_tasks_are_registered_with_provenance():
    names = TASKS.names()
    assert "admet" in names and all(f"admet-{p}" in names for p in admet.PROPERTIES)
    task = TASKS.get("admet")()
    assert task.kind == "multilabel" and task.classes == admet.PROPERTIES
    assert "trialbench" in task.source and "MIT" in task.source and task.compare is not None
    assert TASKS.get("admet-toxicity")().kind == "classification"


def test_multilabel_metrics_mask_unmeasured_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (60, 3)).astype(float)
    s = rng.random((60, 3))
    full = multilabel_metrics(y, s)
    assert full["macro_f1"] == pytest.approx(f1_score(y, s >= 0.5, average="macro"))
    assert full["micro_f1"] == pytest.approx(f1_score(y, s >= 0.5, average="micro"))
    masked = y.copy()
    masked[:30, 0] = np.nan  # label 0 measured on the last 30 rows only
    aucs = per_label_auc(masked, s)
    assert aucs[1:] == pytest.approx(per_label_auc(y, s)[1:])
    assert aucs[0] == pytest.approx(per_label_auc(y[30:], s[30:])[0])
    assert multilabel_metrics(masked, s)["roc_auc"] == pytest.approx(np.mean(aucs))


def test_multitask_loss_ignores_unmeasured_labels():
    from biofm.adapt.finetune import _loss

    raw = torch.tensor([[0.3, -1.0], [2.0, 0.5]], requires_grad=True)
    target = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    loss = _loss(raw, target, "multilabel")
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([0.3, 2.0, 0.5]), torch.tensor([1.0, 0.0, 1.0]))
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert raw.grad[0, 1] == 0  # no gradient from an unmeasured label


def test_cap_labels_keeps_at_most_cap_per_property(tiny_dir):
    split = admet.admet_splits(admet.admet_table(tiny_dir), 0).train
    capped = cap_labels(split, 5, seed=0)
    assert ((~np.isnan(capped.labels)).sum(0) <= 5).all()
    assert (~np.isnan(capped.labels)).any(1).all()
    assert set(capped.inputs) <= set(split.inputs)


def test_admet_compare_table_multi_vs_single_vs_rf(tiny_dir, molecule_mlm_run):
    from biofm.model import FoundationModel

    model = FoundationModel.load(molecule_mlm_run / "final")
    lines: list[str] = []
    table = admet_compare(model, admet.admet_task(tiny_dir), seeds=1, modes=("scratch", "lora"),
                          quick=True, say=lines.append, device="cpu", intervals=True)
    methods = [r["method"] for r in table.rows]
    assert methods == ["RF on Morgan fingerprints", "single-task: scratch", "multi-task: scratch",
                       "single-task: pretrained LoRA", "multi-task: pretrained LoRA"]
    bounds = [f"{p}_{end}" for p in admet.PROPERTIES for end in ("lo", "hi")]
    assert table.metric_names == [*admet.PROPERTIES, "mean", *bounds]
    for row in table.rows:
        aucs = [row[p] for p in admet.PROPERTIES]
        assert all(np.isnan(a) or 0 <= a <= 1 for a in aucs)
        assert row["mean"] == pytest.approx(np.nanmean(aucs))
        for p in admet.PROPERTIES:  # a bootstrap interval around each property's ROC-AUC
            if not np.isnan(row[p]):
                assert row[f"{p}_lo"] <= row[p] <= row[f"{p}_hi"]
    assert any(row[f"{p}_lo"] < row[f"{p}_hi"] for row in table.rows for p in admet.PROPERTIES)
    assert any("train" in line and "absorption" in line for line in lines)


def test_biofm_compare_task_admet_prints_the_table(cli, tiny_dir, molecule_mlm_run, monkeypatch):
    monkeypatch.setattr(admet, "cooked_dir", lambda: tiny_dir)
    admet.admet_table.cache_clear()
    try:
        run = cli("compare", "--model", molecule_mlm_run / "final", "--task", "admet",
                  "--seeds", "1", "--mode", "probe", "--max-train", "20", "--device", "cpu",
                  "--intervals")
    finally:
        admet.admet_table.cache_clear()
    assert run.code == 0, run.err
    assert "multi-task: pretrained probe" in run.out and "single-task" in run.out
    assert "toxicity" in run.out and "RF on Morgan" in run.out
    assert "toxicity 95% CI" in run.out  # each property's interval beside it
