"""Pretraining a forecaster through `biofm pretrain` on real surveillance series."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from biofm.cli import main
from biofm.config import PretrainConfig, preset_path
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.timeseries.model import PatchForecaster
from biofm.modalities.timeseries.pretraining import series_windows, window_ends
from tests.modalities.timeseries.forecaster_helpers import seasonal_series

# 4 Chicago ZIP codes, 4 steps of 8 windows: seconds, yet the real CLI path and run directory
TINY = ("--steps", "4", "--batch-size", "8", "--set", "data.max_records=4",
        "--set", "train.eval_every=2", "--set", "train.save_every=2", "--no-progress")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts-pretrain")
    main(["pretrain", "--config", "ts-patch-tiny", "--output", str(out), *TINY])
    return out


def test_pretrain_writes_a_checkpoint_that_forecasts(run):
    model = FoundationModel.load(run / "final")
    assert model.config.data.modality == "timeseries"
    assert model.config.objective.name == "masked-patch"
    forecaster = PatchForecaster.load(run / "final", device="cpu")
    history = seasonal_series(80).values
    q = forecaster.forecast(history, 4)
    assert q.shape == (4, 23) and np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
    assert (run / "metrics.jsonl").is_file()


class Killed(Exception):
    pass


def test_killed_pretraining_resumes_to_identical_weights(run, tmp_path, monkeypatch):
    import biofm.train.loop as loop_module

    real_save = loop_module.save_training_checkpoint

    def save_then_die(run_dir, model, *args, **kwargs):
        path = real_save(run_dir, model, *args, **kwargs)
        if args[-1].step == 2:
            raise Killed
        return path

    monkeypatch.setattr(loop_module, "save_training_checkpoint", save_then_die)
    with pytest.raises(Killed):
        main(["pretrain", "--config", "ts-patch-tiny", "--output", str(tmp_path), *TINY])
    monkeypatch.undo()
    main(["pretrain", "--config", "ts-patch-tiny", "--output", str(tmp_path), "--resume", *TINY])
    a, b = (load_file(str(d / "final" / "model.safetensors")) for d in (run, tmp_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_next_patch_preset_pretrains(tmp_path):
    main(["pretrain", "--config", "ts-next-patch-tiny", "--output", str(tmp_path), "--steps", "2",
          "--batch-size", "4", "--set", "data.max_records=2", "--no-progress"])
    forecaster = PatchForecaster.load(tmp_path / "final", device="cpu")
    assert forecaster.forecast(seasonal_series(60).values, 6).shape == (6, 23)


def test_presets_are_valid():
    for name in ("ts-patch-tiny", "ts-next-patch-tiny", "ts-patch-small"):
        config = PretrainConfig.load(preset_path("pretrain", name))
        assert config.backbone.values == "patches" and config.backbone.value_size % 2 == 0


def test_validation_windows_come_after_every_training_window():
    series = seasonal_series(100)
    train, valid = series_windows(series, window=20, stride=4, valid_fraction=0.1)
    assert train and valid
    ends = window_ends(100, 20, 4)  # latest first: 100, 96, ...
    assert len(train) + len(valid) == len(ends)
    cut = 100 - 10
    assert all(e <= cut for e in ends[len(valid):]) and all(e > cut for e in ends[: len(valid)])
    np.testing.assert_array_equal(valid[0], series.values[80:100])


def test_a_series_shorter_than_a_window_gives_one_window():
    train, valid = series_windows(seasonal_series(7), window=20, stride=4, valid_fraction=0.1)
    assert len(train) == 1 and len(train[0]) == 7 and not valid


def test_unknown_input_and_packing_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--config", "ts-patch-tiny", "--output", str(tmp_path), "--steps", "1",
              "--set", "data.input=flu-atlantis", "--no-progress"])
    assert exit_info.value.code == 2
    assert "neither a file nor a packaged corpus" in capsys.readouterr().err
    from biofm.commands import pretrain

    config = PretrainConfig.load(preset_path("pretrain", "ts-patch-tiny")).replace(
        train={"packing": True})
    with pytest.raises(BiofmError, match="not packed"):
        pretrain(config, tmp_path)


def test_pretrain_reads_the_users_csv(tmp_path):
    from biofm.modalities.timeseries import load_corpus

    rows = ["series_id,date,value"]
    for s in load_corpus("flu-boston")[:2]:  # real series, written as the user's long CSV
        rows += [f"{s.id},{d},{'' if np.isnan(v) else v}" for d, v in zip(s.dates, s.values)]
    csv = tmp_path / "boston.csv"
    csv.write_text("\n".join(rows) + "\n")
    main(["pretrain", "--config", "ts-patch-tiny", "--output", str(tmp_path / "run"),
          "--steps", "2", "--batch-size", "4", "--set", f"data.input={csv}", "--no-progress"])
    model = FoundationModel.load(tmp_path / "run" / "final")
    assert model.config.data.input == str(csv)
