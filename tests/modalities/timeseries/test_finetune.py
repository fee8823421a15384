"""Fine-tuning a forecaster (full and LoRA) on the history of one series."""

import numpy as np
import pytest
import torch

from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.timeseries.finetune import finetune_forecaster, forecast_windows
from biofm.modalities.timeseries.model import PatchForecaster
from tests.modalities.timeseries.forecaster_helpers import (PATCH, seasonal_series,
                                                             tiny_forecaster_model)

SERIES = seasonal_series(90, seed=4)
HISTORY = SERIES.values


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ts-base") / "ckpt"
    tiny_forecaster_model("masked-patch").save(directory)
    return directory


def _weights(model: FoundationModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["full", "lora", "scratch"])
def test_finetuning_changes_the_model_and_keeps_shapes(checkpoint, mode):
    base = FoundationModel.load(checkpoint)
    tuned = finetune_forecaster(checkpoint, [SERIES], mode=mode, steps=3, seed=0, device="cpu")
    before, after = _weights(base), _weights(tuned.model)
    assert before.keys() == after.keys()  # LoRA is merged: a plain checkpoint again
    assert all(before[k].shape == after[k].shape for k in before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed
    if mode == "lora":  # only the adapted linears of the backbone move
        assert all(k.startswith("backbone.layers.") and k.endswith(".weight") for k in changed)
    q = tuned.forecast(HISTORY, 4)
    assert q.shape == (4, 23) and (np.diff(q, axis=1) >= 0).all()
    assert not np.array_equal(q, PatchForecaster(base, device="cpu").forecast(HISTORY, 4))
    assert tuned.name.endswith(mode)


def test_finetuning_is_deterministic_and_leaves_the_checkpoint_alone(checkpoint):
    on_disk = (checkpoint / "model.safetensors").read_bytes()
    a = finetune_forecaster(checkpoint, [SERIES], mode="lora", steps=2, seed=7, device="cpu")
    b = finetune_forecaster(checkpoint, [SERIES], mode="lora", steps=2, seed=7, device="cpu")
    np.testing.assert_array_equal(a.forecast(HISTORY, 4), b.forecast(HISTORY, 4))
    assert (checkpoint / "model.safetensors").read_bytes() == on_disk


def test_finetuned_forecaster_round_trips(checkpoint, tmp_path):
    tuned = finetune_forecaster(checkpoint, [SERIES], mode="full", steps=2, seed=0, device="cpu")
    tuned.save(tmp_path / "tuned")
    loaded = PatchForecaster.load(tmp_path / "tuned", device="cpu")
    np.testing.assert_array_equal(loaded.forecast(HISTORY, 4), tuned.forecast(HISTORY, 4))


def test_a_short_single_series_can_be_finetuned(checkpoint):
    short = seasonal_series(12, seed=1)  # shorter than the 32-step context
    forecaster = PatchForecaster.load(checkpoint, device="cpu")
    windows = forecast_windows(forecaster, [short])
    assert len(windows) > 1 and all(len(w) == forecaster.context_patches for w in windows)
    tuned = finetune_forecaster(checkpoint, [short], mode="full", steps=2, seed=0, device="cpu")
    assert np.isfinite(tuned.forecast(short.values, 4)).all()


def test_bad_arguments_are_reported(checkpoint):
    with pytest.raises(BiofmError, match="unknown fine-tuning mode"):
        finetune_forecaster(checkpoint, [SERIES], mode="probe", steps=1)
    too_short = seasonal_series(PATCH, seed=0)
    with pytest.raises(BiofmError, match="no window"):
        finetune_forecaster(checkpoint, [too_short], mode="full", steps=1)
