import math

import pytest

from biofm.config import BackboneConfig, PretrainConfig, TrainConfig, parse_overrides, preset_path
from biofm.errors import BiofmError


def test_yaml_round_trip(tmp_path):
    config = PretrainConfig.from_dict({"backbone": {"size": "mini"}, "train": {"lr": 3e-4}})
    config.save(tmp_path / "c.yaml")
    assert PretrainConfig.load(tmp_path / "c.yaml") == config


def test_size_fills_shape_and_explicit_fields_win():
    cfg = BackboneConfig(size="esm2-8m")
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff) == (320, 6, 20, 1280)
    assert BackboneConfig(size="tiny", n_layers=3).n_layers == 3


def test_configs_are_frozen():
    with pytest.raises(Exception):
        TrainConfig().lr = 1.0  # type: ignore[misc]


def test_unknown_field_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {learning_rate: 0.1}\n")
    with pytest.raises(BiofmError, match=r"bad.yaml.*train.learning_rate"):
        PretrainConfig.load(path)


def test_invalid_values_rejected():
    with pytest.raises(BiofmError, match="mask_rate"):
        PretrainConfig.from_dict({"objective": {"mask_rate": 1.5}})
    with pytest.raises(BiofmError, match="d_model"):
        PretrainConfig.from_dict({"backbone": {"size": None, "d_model": 30, "n_heads": 4,
                                               "n_layers": 1, "d_ff": 8}})


def test_overrides_are_typed_and_nested():
    assert parse_overrides(["train.lr=1e-3", "backbone.size=small", "train.progress=false"]) == {
        "train": {"lr": 1e-3, "progress": False}, "backbone": {"size": "small"}}
    with pytest.raises(BiofmError, match="KEY=VALUE"):
        parse_overrides(["train.lr"])


PRESETS = sorted(p.stem for p in preset_path("pretrain", "protein-mlm-tiny").parent.glob("*.yaml"))
# one optimizer step on a few records: seconds per preset whatever its tier
ONE_STEP = {"data": {"max_records": 64}, "train": {"max_steps": 1, "batch_size": 4,
                                                   "warmup_steps": 0, "eval_every": 1,
                                                   "save_every": 1, "progress": False}}
SHORT_CONTEXT = 64  # tokens (or patches): longer presets are cut to this


def test_every_shipped_preset_is_tested():
    assert len(PRESETS) >= 12 and {"protein-mlm-tiny", "ts-patch-small"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_builds_and_trains_one_step(name, tmp_path):
    import biofm

    preset = PretrainConfig.load(preset_path("pretrain", name))  # the preset as shipped validates
    assert preset.train.max_steps >= 1 and preset.backbone.kind in ("encoder", "decoder")
    if preset.data.modality == "imaging":  # its corpora are the Debian volumes
        from tests.modalities.imaging.conftest import require_installed

        require_installed()
    config = preset.replace(**ONE_STEP)
    if preset.backbone.size != "tiny" or preset.backbone.max_len > SHORT_CONTEXT:
        config = config.replace(backbone={"size": "tiny", "d_model": 0, "n_layers": 0,
                                          "n_heads": 0, "d_ff": 0,  # 0: filled from the size
                                          "max_len": min(preset.backbone.max_len, SHORT_CONTEXT)})
    result = biofm.pretrain(config, tmp_path / "run")
    assert result.steps == 1 and math.isfinite(result.final_loss)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_unknown_preset_lists_known():
    with pytest.raises(BiofmError, match="protein-mlm-tiny"):
        preset_path("pretrain", "nope")


def test_saved_config_lists_its_own_fields_before_inherited_settings():
    """FinetuneConfig inherits the LoRA settings: its YAML still starts at `mode`, and
    reads back to the same config."""
    import yaml

    from biofm.adapt.finetune import FinetuneConfig

    config = FinetuneConfig(mode="lora", lora_r=4)
    keys = list(yaml.safe_load(config.to_yaml()))
    assert keys[0] == "mode" and keys[-4:] == ["lora_r", "lora_alpha", "lora_dropout",
                                                "lora_targets"]
    assert FinetuneConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
