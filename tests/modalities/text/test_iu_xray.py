"""The packaged IU chest X-ray reports: real counts, the normal / abnormal task, splits
that never put one text in two splits, and the TF-IDF baseline fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.bench.baselines import Baseline
from biofm.bench.compare import baselines
from biofm.data.tasks import Split, Splits
from biofm.modalities.text import TEXT
from biofm.modalities.text.features import tfidf_features
from biofm.modalities.text.iu_xray import normalised, reports
from biofm.registry import CORPORA, MODALITIES, TASKS


def test_reports_are_read_by_path_with_sections_and_mesh_terms():
    all_reports = reports()
    assert len(all_reports) == 3955
    first = all_reports[0]
    assert (first.id, first.mesh, first.terms) == ("CXR1", ("normal",), frozenset({"normal"}))
    assert first.findings.startswith("The cardiac silhouette") and "Positive TB" in first.indication
    assert first.text == f"{first.findings} {first.impression}"
    assert sum(r.terms == {"normal"} for r in all_reports) == 1391
    assert sum("no indexing" in r.terms for r in all_reports) == 95


def test_the_corpus_holds_every_report_with_text():
    records = CORPORA.get("iu-xray-reports")()
    assert len(records) == 3927 and len({r.id for r in records}) == 3927
    assert all(r.data.strip() for r in records) and "NLMCXR_reports.tgz:" in records[0].source


def test_abnormal_task_groups_duplicate_texts_in_one_split():
    task = TASKS.get("iu-xray-abnormal")()
    assert (task.modality, task.kind, task.classes) == ("text", "classification",
                                                         ("normal", "abnormal"))
    assert "CC BY-NC-ND 4.0" in task.source and "torchxrayvision" in task.source
    splits = task.load(0)
    parts = (splits.train, splits.valid, splits.test)
    assert sum(map(len, parts)) == 3832
    assert sum(int((p.labels == 0).sum()) for p in parts) == 1363  # 1,391 less 28 without text
    texts = [{normalised(t) for t in p.inputs} for p in parts]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert all(abs(len(p) / 3832 - f) < 0.02 for p, f in zip(parts, (0.8, 0.1, 0.1)))
    again, other = task.load(0), task.load(1)
    assert again.test.ids == splits.test.ids and other.test.ids != splits.test.ids


def tiny_splits() -> Splits:
    def split(texts, labels):
        return Split([str(i) for i in range(len(texts))], texts, np.asarray(labels))
    train = split(["lungs clear", "lungs clear today", "large effusion", "effusion large left"] * 6,
                  [0, 0, 1, 1] * 6)
    valid = split(["clear lungs", "effusion noted"], [0, 1])
    test = split(["lungs are clear", "a large effusion", "pneumothorax only"], [0, 1, 1])
    return Splits(train, valid, test)


def test_tfidf_is_fitted_on_the_training_split_only():
    x_train, x_valid, x_test = tfidf_features(tiny_splits(), 0)
    assert x_train.shape[1] == x_valid.shape[1] == x_test.shape[1]
    assert x_test[2].nnz == 0  # "pneumothorax" is not a training term
    assert np.allclose(np.asarray(x_train.multiply(x_train).sum(1)).ravel(), 1.0)  # l2 rows


def test_the_modality_baseline_is_tfidf_logistic_regression():
    assert [b.label for b in MODALITIES.get("text").baselines] == ["TF-IDF + logistic regression"]
    task = TASKS.get("iu-xray-abnormal")()
    scores = Baseline("tfidf", tfidf_features, "linear-raw").predict(
        "classification", tiny_splits(), 0)
    assert scores.shape == (3,) and scores[1] > 0.5 > scores[0]
    metrics = baselines(task, task.load(0), 0)["TF-IDF + logistic regression"]
    assert metrics["roc_auc"] > 0.95  # the impression often says "normal" in words


@pytest.mark.parametrize("strategy", ["group", "random"])
def test_labeled_files_split_by_group_or_at_random(strategy):
    texts = ["Same text.", "same   TEXT.", "Other.", *[f"note {i}" for i in range(37)]]
    labels = np.asarray([0, 1] * 20)
    index = TEXT.split_index(strategy, texts, labels, "classification", seed=3)
    where = {i: k for k, part in enumerate(index) for i in part}
    assert sorted(where) == list(range(40))
    if strategy == "group":
        assert where[0] == where[1]
