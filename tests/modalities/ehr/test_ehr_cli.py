"""The CLI on EHR data: pretrain (mlm, clm) → embed (one row per subject) → finetune /
evaluate / compare on a MEDS label file; the packaged nafld tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biofm.registry import TASKS
from tests.modalities.ehr.conftest import cohort, write_meds_dir

TINY = ("--steps", "5", "--batch-size", "8", "--set", "backbone.max_len=48", "--no-progress")


@pytest.fixture
def meds(tmp_path):
    frame, labels = cohort(200, seed=0, planted_after=False)
    root = write_meds_dir(tmp_path / "meds", frame)
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    return root


def test_pretrain_embed_finetune_evaluate_compare(meds, cli, tmp_path):
    run = cli("pretrain", "--modality", "ehr", "--input", meds, "--output", tmp_path / "run",
              *TINY)
    assert run.code == 0, run.err
    model = tmp_path / "run" / "final"
    shard, labels = meds / "data" / "0.parquet", tmp_path / "labels.parquet"

    run = cli("embed", "--model", model, "--input", shard, "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    embeddings = pd.read_parquet(tmp_path / "e.parquet")
    assert embeddings["id"].tolist() == [str(i) for i in range(1, 201)]  # one row per subject
    assert np.isfinite(np.stack(embeddings["embedding"])).all()

    run = cli("finetune", "--model", model, "--input", shard, "--label", labels,
              "--mode", "probe", "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert "events have a code in the model's vocabulary" in run.err
    run = cli("evaluate", "--model", tmp_path / "ft", "--input", shard, "--label", labels,
              "--output", tmp_path / "m.json")
    assert run.code == 0, run.err and "roc_auc" in (tmp_path / "m.json").read_text()

    run = cli("compare", "--model", model, "--input", shard, "--label", labels, "--seeds", "1",
              "--mode", "probe", "--intervals", "--output", tmp_path / "cmp")
    assert run.code == 0, run.err
    header = (tmp_path / "cmp" / "results.md").read_text().splitlines()[0]
    assert header == ("| task | method | seeds | roc_auc | roc_auc 95% CI | pr_auc | "
                      "pr_auc 95% CI | accuracy |")
    assert "LogReg on counts + last values" in run.err and "GBT on counts + last values" in \
        run.err  # progress lines; the table (stdout) wraps the names
    assert "LogReg" in run.out and "GBT" in run.out


def test_causal_pretraining_on_a_decoder(meds, cli, tmp_path):
    run = cli("pretrain", "--modality", "ehr", "--objective", "clm", "--input", meds,
              "--output", tmp_path / "run", *TINY)
    assert run.code == 0, run.err
    from biofm.config import PretrainConfig

    config = PretrainConfig.load(tmp_path / "run" / "final" / "config.yaml")
    assert config.backbone.kind == "decoder" and config.backbone.values == "bins"
    run = cli("pretrain", "--modality", "ehr", "--objective", "masked-value", "--input", meds,
              "--output", tmp_path / "run2", *TINY)
    assert run.code == 2 and "does not fit ehr data" in run.err


def test_label_errors_reach_the_cli_as_one_paragraph(meds, cli, tmp_path):
    run = cli("pretrain", "--modality", "ehr", "--input", meds, "--output", tmp_path / "run",
              *TINY)
    bad = pd.read_parquet(tmp_path / "labels.parquet")
    bad.loc[0, "subject_id"] = 4242
    bad.to_parquet(tmp_path / "bad.parquet")
    run = cli("finetune", "--model", tmp_path / "run" / "final", "--input",
              meds / "data" / "0.parquet", "--label", tmp_path / "bad.parquet", "--mode",
              "probe", "--output", tmp_path / "ft")
    assert run.code == 2 and "bad.parquet" in run.err and "4242" in run.err
    assert "Traceback" not in run.err


@pytest.mark.parametrize("name, n, positives", [("nafld-death-5y", 10679, 731),
                                                ("nafld-cvd-5y", 8888, 834)])
def test_nafld_tasks_cut_inputs_at_the_landmark(name, n, positives):
    from biofm.modalities.ehr.cohorts import INDEX_DATE
    from biofm.modalities.ehr.datasets import nafld_splits

    task = TASKS.get(name)()
    splits = task.load(0)
    parts = (splits.train, splits.valid, splits.test)
    assert sum(map(len, parts)) == n and sum(int(p.labels.sum()) for p in parts) == positives
    for part, split in zip(parts, ("train", "tuning", "held_out")):
        assert {i.split("@")[0] for i in part.ids} <= {s for s, v in nafld_splits().items()
                                                       if v == split}
        assert all((np.isnat(t.times) | (t.times <= INDEX_DATE)).all() for t in part.inputs)
    assert task.load(1).test.ids == splits.test.ids  # the MEDS split: the same for every seed
