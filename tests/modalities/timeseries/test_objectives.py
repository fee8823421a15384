"""The masked-patch and next-patch objectives on time series, the torch pinball loss,
and quantile levels other than FluSight's (`objective.quantiles`)."""

import numpy as np
import pytest
import torch
import yaml

from biofm.cli import main
from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.metrics import pinball_loss as numpy_pinball
from biofm.modalities.timeseries.model import PatchForecaster
from biofm.modalities.timeseries.patching import PatchTokenizer, instance_stats
from biofm.objectives.patch import DEFAULT_QUANTILES, TARGET_CLIP, MaskedPatch, pinball_loss
from tests.modalities.timeseries.forecaster_helpers import (PATCH, seasonal_series,
                                                             tiny_forecaster_model)

THREE = (0.1, 0.5, 0.9)


def _batch(model, n_rows=6, seed=0, length=32):
    rng = np.random.default_rng(seed)
    rows = [rng.gamma(2.0, 10.0, length) for _ in range(n_rows)]
    rows[0][3:9] = np.nan  # missing weeks
    tok = model.tokenizer
    return pad_collate([tok.encode_series(r, length // PATCH) for r in rows], tok.pad_id)


def test_pinball_loss_on_known_inputs():
    pred = torch.tensor([[0.0, 1.0, 2.0]])
    loss, count = pinball_loss(pred, torch.tensor([1.0]), [0.1, 0.5, 0.9])
    # y - q = 1, 0, -1: 0.1 * 1, 0, (0.9 - 1) * -1 → mean (0.1 + 0 + 0.1) / 3
    assert count == 1 and loss.item() == pytest.approx(0.2 / 3)


def test_pinball_loss_matches_the_numpy_metric_and_skips_nan():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(4, 5))
    y[0, 1] = y[3, 4] = np.nan
    q = np.sort(rng.normal(size=(4, 5, 23)), axis=-1)
    loss, count = pinball_loss(torch.tensor(q), torch.tensor(y), FLUSIGHT_QUANTILES)
    assert count == 18
    assert loss.item() == pytest.approx(numpy_pinball(y, q, FLUSIGHT_QUANTILES), rel=1e-10)


def test_pinball_loss_has_no_nan_gradient():
    pred = torch.zeros(3, 23, requires_grad=True)
    loss, _ = pinball_loss(pred, torch.tensor([1.0, np.nan, -1.0]), FLUSIGHT_QUANTILES)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[1] == 0).all()


@pytest.mark.parametrize("objective", ["masked-patch", "next-patch"])
def test_prepare_is_reproducible_from_the_generator(objective):
    model = tiny_forecaster_model(objective)
    a = model.objective.prepare(_batch(model), torch.Generator().manual_seed(3))
    b = model.objective.prepare(_batch(model), torch.Generator().manual_seed(3))
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.values, b.values)
    torch.testing.assert_close(a.value_labels, b.value_labels, equal_nan=True)


def test_masked_patch_hides_patches_and_targets_only_them():
    model = tiny_forecaster_model("masked-patch")
    before = _batch(model, n_rows=16)
    after = model.objective.prepare(before, torch.Generator().manual_seed(0))
    masked = after.input_ids == model.tokenizer.mask_id  # (B, T)
    assert masked.any(1).all() and (~masked).any(1).all()
    assert (after.values[masked] == 0).all()  # no value and no "observed" flag
    targets = torch.isfinite(after.value_labels)
    assert not targets[~masked].any()
    assert after.values.shape == (*before.values.shape[:2], 2 * PATCH)
    # the targets are the hidden raw values in the units of the last visible ones
    visible = torch.isfinite(before.values) & (after.values[..., PATCH:] > 0)
    loc, scale, _ = instance_stats(before.values, visible,
                                   recent=model.config.objective.norm_window)
    expected = ((before.values - loc) / scale).clamp(-TARGET_CLIP, TARGET_CLIP)[targets]
    torch.testing.assert_close(after.value_labels[targets], expected)


def test_masked_values_never_reach_the_inputs():
    """Leakage: what is hidden may change freely without changing the model's input."""
    model = tiny_forecaster_model("masked-patch")
    batch = _batch(model)
    a = model.objective.prepare(batch, torch.Generator().manual_seed(5))
    masked = a.input_ids == model.tokenizer.mask_id
    changed = batch.values.clone()
    changed[masked] = changed[masked] * 100 + 7
    b = model.objective.prepare(batch.with_(values=changed), torch.Generator().manual_seed(5))
    assert torch.equal(a.values, b.values) and torch.equal(a.input_ids, b.input_ids)


def test_exploding_targets_are_clipped():
    model = tiny_forecaster_model("masked-patch")
    batch = _batch(model, n_rows=8)
    values = batch.values.clone()
    values[:, -1] = 1e6  # an outbreak in the last patch, which tail rows hide
    out = model.objective.prepare(batch.with_(values=values), torch.Generator().manual_seed(0))
    labels = out.value_labels[torch.isfinite(out.value_labels)]
    assert labels.abs().max() == TARGET_CLIP  # reached, never exceeded


def test_next_patch_targets_are_the_next_patch_and_inputs_are_causal():
    model = tiny_forecaster_model("next-patch")
    batch = _batch(model, n_rows=1)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731  (rows kept whole at this seed)
    out = model.objective.prepare(batch, g())
    raw = batch.values[0]
    assert torch.isnan(out.value_labels[0, -1]).all()
    loc, scale, _ = instance_stats(batch.values, torch.isfinite(batch.values), cumulative=True)
    t = 4
    torch.testing.assert_close(out.value_labels[0, t], (raw[t + 1] - loc[0, t]) / scale[0, t])
    future = batch.values.clone()
    future[0, t + 1:] += 50.0  # a later change leaves positions 0..t as they were
    changed = model.objective.prepare(batch.with_(values=future), g())
    torch.testing.assert_close(changed.values[0, : t + 1], out.values[0, : t + 1])


@pytest.mark.parametrize("objective", ["masked-patch", "next-patch"])
def test_forward_shapes_loss_and_backward(objective):
    model = tiny_forecaster_model(objective)
    batch = model.objective.prepare(_batch(model), torch.Generator().manual_seed(0))
    out = model(batch)
    B, T = batch.input_ids.shape
    assert out.logits.shape == (B, T, PATCH, len(FLUSIGHT_QUANTILES))
    assert out.num_predicted == int(torch.isfinite(batch.value_labels).sum()) > 0
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_objective_needs_a_patch_backbone():
    backbone = BackboneConfig(size="tiny", vocab_size=6, values="none")
    with pytest.raises(BiofmError, match="values=patches"):
        MaskedPatch(ObjectiveConfig(name="masked-patch"), backbone, [0, 1])


# -- quantile levels from the config ---------------------------------------------------

def _with_levels(objective: str, levels) -> FoundationModel:
    config = tiny_forecaster_model(objective).config.replace(objective={"quantiles": levels})
    torch.manual_seed(0)
    return FoundationModel(config, PatchTokenizer(patch_len=PATCH))


def test_the_default_levels_are_flusight():
    assert DEFAULT_QUANTILES == FLUSIGHT_QUANTILES
    assert tiny_forecaster_model().objective.levels == FLUSIGHT_QUANTILES


@pytest.mark.parametrize("objective", ["masked-patch", "next-patch"])
def test_three_levels_train_a_step_and_forecast_three_quantiles(objective):
    model = _with_levels(objective, list(THREE))
    assert model.objective.levels == THREE
    batch = model.objective.prepare(_batch(model), torch.Generator().manual_seed(0))
    out = model(batch)
    B, T = batch.input_ids.shape
    assert out.logits.shape == (B, T, PATCH, 3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out.loss.backward()
    optimizer.step()
    assert torch.isfinite(out.loss)
    assert not torch.equal(before["objective.head.mlp.bias"], model.objective.head.mlp.bias)
    forecaster = PatchForecaster(model, device="cpu")
    np.testing.assert_array_equal(forecaster.levels, THREE)
    q = forecaster.forecast(seasonal_series(60).values, 5, THREE)
    assert q.shape == (5, 3) and np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()


def test_pretraining_records_its_levels_and_the_checkpoint_forecasts_them(tmp_path):
    main(["pretrain", "--config", "ts-next-patch-tiny", "--output", str(tmp_path),
          "--steps", "1", "--batch-size", "4", "--set", "data.max_records=2",
          "--set", "objective.quantiles=[0.1, 0.5, 0.9]", "--no-progress"])
    saved = yaml.safe_load((tmp_path / "final" / "config.yaml").read_text())
    assert saved["objective"]["quantiles"] == list(THREE)
    forecaster = PatchForecaster.load(tmp_path / "final", device="cpu")
    assert forecaster.forecast(seasonal_series(60).values, 3, THREE).shape == (3, 3)


def test_a_checkpoint_saved_before_the_field_existed_loads_with_flusight_levels(tmp_path):
    model = tiny_forecaster_model("next-patch").eval()
    model.save(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["objective"].pop("quantiles")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = FoundationModel.load(tmp_path)
    assert loaded.config.objective.quantiles is None
    assert loaded.objective.levels == FLUSIGHT_QUANTILES
    history = seasonal_series(60).values
    np.testing.assert_array_equal(PatchForecaster(loaded, device="cpu").forecast(history, 4),
                                  PatchForecaster(model, device="cpu").forecast(history, 4))


def test_levels_of_another_checkpoint_do_not_fit_the_head(tmp_path):
    _with_levels("masked-patch", list(THREE)).save(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["objective"]["quantiles"] = None
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(BiofmError, match="do not match the architecture"):
        FoundationModel.load(tmp_path)
