import importlib

import numpy as np
import pytest
import torch

from biofm.adapt import FinetuneConfig, finetune, load_finetuned, save_finetuned
from biofm.adapt.finetune import TaskModel
from biofm.adapt.probe import LinearProbe
from biofm.adapt.saving import merged_base
from biofm.data.tasks import Split, Splits
from tests.helpers import random_proteins, tiny_model

finetune_module = importlib.import_module("biofm.adapt.finetune")  # `biofm.adapt.finetune` is the function


def _splits(kind: str) -> Splits:
    """Generated sequences with a learnable label: the fraction of K residues."""
    parts = []
    for seed, n in ((0, 96), (1, 32), (2, 32)):
        seqs = random_proteins(n, seed=seed)
        frac = np.array([s.count("K") / len(s) for s in seqs], dtype=np.float32)
        labels = frac if kind == "regression" else (frac > np.median(frac)).astype(np.int64)
        parts.append(Split([f"s{seed}_{i}" for i in range(n)], seqs, labels))
    return Splits(*parts)


FAST = dict(epochs=2, patience=2, batch_size=16)
LEARN = dict(epochs=4, patience=4, batch_size=16, lr=1e-3)  # all epochs run: no early stop


@pytest.mark.parametrize("mode", ["probe", "full", "lora", "scratch"])
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_each_mode_learns_the_toy_label(mode, kind):
    torch.manual_seed(0)  # the base's random weights
    result = finetune(tiny_model(), _splits(kind), kind, FinetuneConfig(mode=mode, **LEARN))
    expected = {"rmse", "mae", "spearman"} if kind == "regression" else {"roc_auc", "pr_auc", "accuracy"}
    assert expected <= set(result.test_metrics) and expected <= set(result.valid_metrics)
    assert result.test_predictions.shape == (32,)
    if kind == "classification":
        assert ((result.test_predictions >= 0) & (result.test_predictions <= 1)).all()
    # chance is a Spearman of 0 and a ROC AUC of 0.5; every mode scores 0.82 or more
    # (valid and test, bases drawn with seeds 0-3)
    metric, floor = ("spearman", 0.6) if kind == "regression" else ("roc_auc", 0.75)
    assert result.valid_metrics[metric] > floor and result.test_metrics[metric] > floor
    if mode != "probe":
        losses = [h["train_loss"] for h in result.history]
        assert len(losses) == 4 and losses[-1] < losses[0]


def test_patience_stops_when_the_validation_metric_stalls():
    # lr 0: the weights and so the validation metric never change after epoch 1
    result = finetune(tiny_model(), _splits("classification"), "classification",
                      FinetuneConfig(mode="full", epochs=10, patience=2, batch_size=16, lr=0.0))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert len({h["valid_roc_auc"] for h in result.history}) == 1


def test_the_best_validation_epoch_is_kept(monkeypatch):
    # a metric that peaks at epoch 2: the returned model predicts as it did then
    scores = iter([0.6, 0.9, 0.7, 0.65])
    snapshots = []
    real = TaskModel.predict

    def predict(self, texts, batch_size=64):
        out = real(self, texts, batch_size)
        snapshots.append(out)
        return out

    monkeypatch.setattr(TaskModel, "predict", predict)
    monkeypatch.setattr(finetune_module, "task_metrics",
                        lambda kind, y, p: {"roc_auc": next(scores, 0.0), "pr_auc": 0.0,
                                            "accuracy": 0.0})
    splits = _splits("classification")
    result = finetune(tiny_model(), splits, "classification",
                      FinetuneConfig(mode="full", epochs=4, patience=4, batch_size=16))
    assert [h["valid_roc_auc"] for h in result.history] == [0.6, 0.9, 0.7, 0.65]
    assert not np.allclose(snapshots[3], snapshots[1])  # the weights did move after epoch 2
    np.testing.assert_allclose(snapshots[-2], snapshots[1], atol=1e-6)  # valid preds: epoch 2


def test_lora_trains_adapters_only_and_leaves_the_base_untouched():
    base = tiny_model()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    result = finetune(base, _splits("regression"), "regression",
                      FinetuneConfig(mode="lora", lr=1e-2, **FAST))
    model = result.model
    assert isinstance(model, TaskModel)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    for name, value in base.state_dict().items():  # the caller's model is not modified
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)


def test_merged_lora_gives_the_same_predictions(tmp_path):
    splits = _splits("regression")
    result = finetune(tiny_model(), splits, "regression", FinetuneConfig(mode="lora", lr=1e-2, **FAST))
    merged = merged_base(result.model.base)
    assert not any("lora" in k for k in merged.state_dict())
    adapted = TaskModel(merged, "regression", 1, result.model.config,
                        (result.model.target_mean, result.model.target_std))
    adapted.head.load_state_dict(result.model.head.state_dict())
    np.testing.assert_allclose(adapted.predict(splits.test.inputs),
                               result.model.predict(splits.test.inputs), atol=1e-5)


@pytest.mark.parametrize("mode", ["probe", "full", "lora"])
def test_save_load_round_trip(mode, tmp_path):
    splits, base = _splits("classification"), tiny_model()
    config = FinetuneConfig(mode=mode, **FAST)
    result = finetune(base, splits, "classification", config)
    save_finetuned(result, base, tmp_path / "ft", config, "classification", "toy")
    loaded = load_finetuned(tmp_path / "ft")
    np.testing.assert_allclose(loaded.predict(splits.test.inputs), result.test_predictions, atol=1e-5)
    assert loaded.info["task"] == "toy" and loaded.info["mode"] == mode


def test_probe_picks_regularisation_on_validation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    probe = LinearProbe.fit("regression", x[:150], y[:150], x[150:], y[150:])
    np.testing.assert_allclose(probe.predict(x[150:]), y[150:], atol=0.05)


def test_multiclass_heads_output_probabilities():
    splits = _splits("regression")
    for part in (splits.train, splits.valid, splits.test):
        part.labels = np.digitize(part.labels, [0.03, 0.07]).astype(np.int64)
    result = finetune(tiny_model(), splits, "classification", FinetuneConfig(mode="full", **FAST))
    assert result.test_predictions.shape == (32, 3)
    np.testing.assert_allclose(result.test_predictions.sum(1), 1.0, atol=1e-5)
    assert {"accuracy", "macro_f1"} <= set(result.test_metrics)
