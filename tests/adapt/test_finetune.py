import numpy as np
import pytest
import torch

from biofm.adapt import FinetuneConfig, finetune, load_finetuned, save_finetuned
from biofm.adapt.finetune import TaskModel
from biofm.adapt.probe import LinearProbe
from biofm.adapt.saving import merged_base
from biofm.data.tasks import Split, Splits
from tests.helpers import random_proteins, tiny_model


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


@pytest.mark.parametrize("mode", ["probe", "full", "lora", "scratch"])
@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_each_mode_trains_and_reports_metrics(mode, kind):
    result = finetune(tiny_model(), _splits(kind), kind, FinetuneConfig(mode=mode, **FAST))
    expected = {"rmse", "mae", "spearman"} if kind == "regression" else {"roc_auc", "pr_auc", "accuracy"}
    assert expected <= set(result.test_metrics) and expected <= set(result.valid_metrics)
    assert result.test_predictions.shape == (32,)
    if kind == "classification":
        assert ((result.test_predictions >= 0) & (result.test_predictions <= 1)).all()


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
