"""The multi-label task kind, added for "iu-xray-findings": metrics on known inputs, the
linear probe, gradient fine-tuning (one sigmoid per label), the TF-IDF baseline and
the compare table, on (N, L) 0/1 labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.adapt import FinetuneConfig, finetune
from biofm.adapt.probe import LinearProbe
from biofm.bench.baselines import Baseline
from biofm.bench.compare import compare
from biofm.bench.metrics import multilabel_metrics, primary_metric
from biofm.config import PretrainConfig
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.interop.wordpiece import WordPieceTokenizer
from biofm.modalities.text.features import tfidf_features
from biofm.modalities.text.iu_xray import findings, normalised
from biofm.model import FoundationModel
from biofm.registry import TASKS

WORDS = ("effusion", "cardiomegaly", "opacity")


def test_multilabel_metrics_by_hand():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.5, 0.1], [0.3, 0.8, 0.4], [0.6, 0.4, 0.2], [0.1, 0.1, 0.3]])
    m = multilabel_metrics(y, s)
    # label 3 has no positives: left out of the AUCs; label 1 AUC 1, label 2 AUC 3/4
    assert m["roc_auc"] == pytest.approx((1.0 + 0.75) / 2)
    assert m["pr_auc"] == pytest.approx((1.0 + (1 + 2 / 3) / 2) / 2)
    # at 0.5: label 1 tp 2 → f1 1; label 2 tp 1, fp 1, fn 1 → 1/2; label 3 → 0
    assert m["macro_f1"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    assert primary_metric("multilabel") == ("roc_auc", True)
    with pytest.raises(BiofmError, match="one row of per-label scores"):
        multilabel_metrics(y, s[:, 0])


def notes(n: int, seed: int) -> Split:
    """Short reports naming 0-3 findings; the labels say which (learnable from words)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(n, len(WORDS)))
    texts = [" ".join(["heart and lungs", *(w for w, y in zip(WORDS, row) if y),
                       *rng.choice(["stable", "no change", "clear"], 2)]) for row in labels]
    return Split([f"n{i}" for i in range(n)], texts, labels.astype(np.int64))


def splits() -> Splits:
    return Splits(notes(120, 0), notes(40, 1), notes(40, 2))


def test_probe_and_tfidf_learn_each_label():
    parts = splits()
    rng = np.random.default_rng(0)
    def features(part):  # the labels plus noise, as a stand-in for embeddings
        return part.labels + 0.3 * rng.standard_normal(part.labels.shape)
    probe = LinearProbe.fit("multilabel", features(parts.train), parts.train.labels,
                            features(parts.valid), parts.valid.labels)
    scores = probe.predict(features(parts.test))
    assert scores.shape == (40, 3)
    assert multilabel_metrics(parts.test.labels, scores)["roc_auc"] > 0.95
    constant = parts.train.labels.copy()
    constant[:, 2] = 0  # a label never seen positive in training: its constant log-odds
    probe = LinearProbe.fit("multilabel", features(parts.train), constant,
                            features(parts.valid), parts.valid.labels)
    assert np.ptp(probe.predict(features(parts.test))[:, 2]) < 1e-9
    tfidf = Baseline("tfidf", tfidf_features, "linear-raw", kinds=("multilabel",))
    scores = tfidf.predict("multilabel", parts, 0)
    assert scores.shape == (40, 3)
    assert multilabel_metrics(parts.test.labels, scores)["roc_auc"] > 0.95


def test_gradient_finetuning_and_compare_on_multilabel():
    tok = WordPieceTokenizer.fit(notes(200, 5).inputs, vocab_size=200, min_frequency=1)
    config = PretrainConfig.from_dict({"data": {"modality": "text"},
                                       "backbone": {"size": "tiny", "max_len": 32}})
    torch.manual_seed(0)
    model = FoundationModel(config, tok)
    result = finetune(model, splits(), "multilabel",
                      FinetuneConfig(mode="full", epochs=3, lr=3e-3, batch_size=16))
    assert result.test_predictions.shape == (40, 3)
    assert ((0 <= result.test_predictions) & (result.test_predictions <= 1)).all()
    assert set(result.test_metrics) >= {"roc_auc", "pr_auc", "macro_f1", "micro_f1"}
    task = Task("toy-findings", "text", "multilabel", lambda seed: splits(), "given", "test")
    table = compare(model, task, seeds=1, modes=["probe"], quick=True)
    methods = {r["method"] for r in table.rows}
    assert methods == {"TF-IDF + logistic regression", "pretrained: probe"}
    assert all(set(r) >= {"roc_auc", "micro_f1"} for r in table.rows)


def test_the_findings_task_is_multilabel_over_frequent_headings():
    task = TASKS.get("iu-xray-findings")()
    assert task.kind == "multilabel" and task.classes == findings()
    assert task.classes[:3] == ("lung", "opacity", "cardiomegaly") and len(task.classes) == 12
    assert "pleural effusion" in task.classes and "normal" not in task.classes
    parts = task.load(0)
    assert parts.train.labels.shape[1] == 12 and sum(map(len, (parts.train, parts.valid,
                                                             parts.test))) == 3832
    assert (parts.test.labels.sum(0) > 0).all()  # every heading has test positives
    train, test = ({normalised(t) for t in p.inputs} for p in (parts.train, parts.test))
    assert not train & test
