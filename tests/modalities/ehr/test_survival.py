"""Time to event on EHR data: a user's MEDS label file with --kind survival through the
CLI (finetune, evaluate, predict, compare with the Cox baseline and the C-index), its
errors, and the packaged nafld-survival task (no look-ahead)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biofm.errors import BiofmError
from biofm.modalities.ehr import EHR
from biofm.registry import TASKS
from tests.modalities.ehr.conftest import cohort, write_meds_dir

TINY = ("--steps", "5", "--batch-size", "8", "--set", "backbone.max_len=48", "--no-progress")


def survival_labels(labels: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The cohort's label-1 subjects (who carry ICD10CM/Z99.9 before the prediction time)
    die early; the others die late or are censored: days in float_value."""
    rng = np.random.default_rng(seed)
    sick = labels["boolean_value"].to_numpy()
    days = np.where(sick, rng.uniform(20, 300, len(sick)), rng.uniform(200, 900, len(sick)))
    event = sick | (rng.random(len(sick)) < 0.4)
    return labels.assign(boolean_value=event, float_value=days.round())


@pytest.fixture
def data(tmp_path):
    frame, labels = cohort(240, seed=1, planted_after=False)
    root = write_meds_dir(tmp_path / "meds", frame)
    survival_labels(labels, 0).to_parquet(tmp_path / "surv.parquet", index=False)
    return root / "data" / "0.parquet", tmp_path / "surv.parquet"


def test_survival_through_the_cli(data, cli, tmp_path):
    shard, labels = data
    run = cli("pretrain", "--modality", "ehr", "--input", shard.parent.parent, "--output",
              tmp_path / "run", *TINY)
    assert run.code == 0, run.err
    model = tmp_path / "run" / "final"
    run = cli("finetune", "--model", model, "--input", shard, "--label", labels, "--kind",
              "survival", "--mode", "full", "--epochs", "2", "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert set(json.loads(run.out[:run.out.rindex("}") + 1])["test"]) == {"c_index"}
    edges = json.loads((tmp_path / "ft" / "finetune.json").read_text())["bin_edges"]
    assert edges[0] == 0 and np.all(np.diff(edges) > 0)

    run = cli("evaluate", "--model", tmp_path / "ft", "--input", shard, "--label", labels,
              "--output", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert 0 <= json.loads((tmp_path / "m.json").read_text())["metrics"]["c_index"] <= 1
    run = cli("predict", "--model", tmp_path / "ft", "--input", shard, "--output",
              tmp_path / "p.csv")
    assert run.code == 0, run.err
    predictions = pd.read_csv(tmp_path / "p.csv")
    curves = predictions[[f"survival_{e:g}" for e in edges[1:]]].to_numpy()
    assert len(predictions) == 240 and (np.diff(curves, axis=1) <= 1e-7).all()
    np.testing.assert_allclose(predictions["prediction"], 1 - curves[:, -1], rtol=1e-5)

    run = cli("finetune", "--model", model, "--input", shard, "--label", labels, "--kind",
              "survival", "--mode", "probe", "--output", tmp_path / "probe")
    assert run.code == 0, run.err
    run = cli("predict", "--model", tmp_path / "probe", "--input", shard, "--output",
              tmp_path / "pp.csv")
    assert run.code == 0, run.err
    first_edge = json.loads((tmp_path / "probe" / "finetune.json").read_text())["bin_edges"][1]
    columns = pd.read_csv(tmp_path / "pp.csv").columns.tolist()
    assert columns[:3] == ["id", "prediction", f"survival_{first_edge:g}"]

    run = cli("compare", "--model", model, "--input", shard, "--label", labels, "--kind",
              "survival", "--seeds", "1", "--mode", "probe")
    assert run.code == 0, run.err
    assert "Cox on counts + last values: c_index" in run.err and "c_index" in run.out
    assert "LogReg" not in run.err  # classification baselines do not apply


def test_the_cox_baseline_finds_the_planted_risk(data):
    """Only the Cox baseline applies to a survival task; it ranks the planted risk."""
    from biofm.bench.compare import baselines

    shard, labels = data
    task = EHR.task_from_file(shard, label=str(labels), kind="survival", split="random", seed=0)
    splits = task.load(0)
    assert task.kind == "survival" and splits.train.labels.shape[1] == 2
    cox = baselines(task, splits, 0)
    assert list(cox) == ["Cox on counts + last values"]
    assert cox["Cox on counts + last values"]["c_index"] > 0.7


def test_survival_label_errors(tmp_path):
    frame, labels = cohort(30, seed=0)
    root = write_meds_dir(tmp_path / "meds", frame)
    labels.to_parquet(tmp_path / "no_time.parquet", index=False)
    with pytest.raises(BiofmError, match="need column.*'float_value'") as error:
        EHR.task_from_file(root, label=str(tmp_path / "no_time.parquet"), kind="survival",
                           split="random", seed=0)
    assert "no_time.parquet" in str(error.value)
    bad = survival_labels(labels, 0)
    bad.loc[3, "float_value"] = -5.0
    bad.to_parquet(tmp_path / "negative.parquet", index=False)
    with pytest.raises(BiofmError, match="'float_value', subject 4: -5 days") as error:
        EHR.task_from_file(root, label=str(tmp_path / "negative.parquet"), kind="survival",
                           split="random", seed=0)
    assert "negative.parquet" in str(error.value)


def test_nafld_survival_task_cuts_inputs_at_the_landmark():
    from biofm.modalities.ehr.cohorts import INDEX_DATE, nafld_followup

    task = TASKS.get("nafld-survival")()
    splits = task.load(0)
    parts = (splits.train, splits.valid, splits.test)
    labels = np.concatenate([p.labels for p in parts])
    assert task.kind == "survival" and len(labels) == 17549 and labels[:, 1].sum() == 1364
    followup = nafld_followup().set_index("subject_id")["futime"]
    ids = [int(i.split("@")[0]) for p in parts for i in p.ids]
    np.testing.assert_array_equal(labels[:, 0], followup.loc[ids].to_numpy())
    assert labels[:, 0].min() > 0  # every death is after the index date, out of the input
    for part in parts:
        assert all((np.isnat(t.times) | (t.times <= INDEX_DATE)).all() for t in part.inputs)
        assert not any("MEDS_DEATH" in t.codes for t in part.inputs)
