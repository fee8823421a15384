"""timm ViT directories → biofm: parity with timm on tiny random models, round trip, errors."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from biofm.backbones.vision import build_vit, vit_features
from biofm.errors import BiofmError
from biofm.interop import load_pretrained
from biofm.interop.timm_vit import biofm_to_timm, load_timm_vit, timm_to_biofm
from tests.helpers import tiny_vit_config
from tests.interop.reference_models import make_reference

TOKEN_POOLED = {"architecture": "vit_tiny_patch16_224",
                "model_args": {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2,
                               "num_heads": 3, "num_classes": 5}}
# mean-pooled, one channel, LayerScale, no qkv bias, narrower MLP, weights as a .bin
AVG_LAYERSCALE = {"architecture": "vit_small_patch16_224", "safe_serialization": False,
                  "model_args": {"img_size": 24, "patch_size": 4, "embed_dim": 32, "depth": 3,
                                 "num_heads": 2, "in_chans": 1, "global_pool": "avg",
                                 "fc_norm": False, "init_values": 0.1, "qkv_bias": False,
                                 "mlp_ratio": 2.0, "num_classes": 0}}


# timm's default for mean pooling (RETFound's fine-tuned models): LayerNorm after pooling
AVG_FC_NORM = {"architecture": "vit_tiny_patch16_224",
               "model_args": {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2,
                              "num_heads": 2, "global_pool": "avg", "num_classes": 3}}


@pytest.mark.parametrize("spec,pooling", [(TOKEN_POOLED, "cls"), (AVG_LAYERSCALE, "mean"),
                                          (AVG_FC_NORM, "mean")])
def test_parity_with_timm(tmp_path, spec, pooling):
    directory, ref = make_reference("timm", spec, tmp_path)
    model = load_pretrained(directory)  # detected as a timm directory
    assert model.config.data.modality == "imaging"
    with torch.no_grad():
        out = vit_features(model, torch.from_numpy(ref["images"]), pooling=pooling)
    tokens = torch.cat([out.cls[:, None], out.patches], dim=1)
    torch.testing.assert_close(tokens, torch.from_numpy(ref["tokens"]), rtol=0, atol=1e-4)
    torch.testing.assert_close(out.pooled, torch.from_numpy(ref["pooled"]), rtol=0, atol=1e-4)


def _timm_dir(tmp_path, model, **model_args):
    """A timm-layout directory written from a biofm ViT (no timm needed)."""
    directory = tmp_path / "timm"
    directory.mkdir()
    b = model.config.backbone
    args = {"img_size": list(b.image_size), "patch_size": b.patch_size[0],
            "in_chans": b.channels, "embed_dim": b.d_model, "depth": b.n_layers,
            "num_heads": b.n_heads, "mlp_ratio": b.d_ff / b.d_model, **model_args}
    (directory / "config.json").write_text(json.dumps(
        {"architecture": "vit_base_patch16_224", "num_classes": 0, "global_pool": "token",
         "model_args": args}))
    save_file(biofm_to_timm(model.state_dict(), model.tokenizer),
              str(directory / "model.safetensors"))
    return directory


def _learned_vit(channels=2):
    model = build_vit(tiny_vit_config(channels=channels), seed=0,
                      overrides=["backbone.position=learned"])
    with torch.no_grad():  # away from the init, so norms and biases matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_round_trip_through_the_timm_layout(tmp_path):
    model = _learned_vit()
    loaded = load_timm_vit(_timm_dir(tmp_path, model))
    images = torch.randn(3, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(vit_features(loaded, images).patches,
                                   vit_features(model, images).patches, rtol=0, atol=1e-5)
    once, dropped = timm_to_biofm(biofm_to_timm(model.state_dict(), model.tokenizer),
                                  model.tokenizer)
    assert dropped == [] and set(once) == {k for k in model.state_dict()
                                           if k.startswith("backbone.")}
    twice, _ = timm_to_biofm(biofm_to_timm(once, model.tokenizer), model.tokenizer)
    for key, value in once.items():  # the converters are inverse once the bias sits in timm's place
        torch.testing.assert_close(twice[key], value, rtol=0, atol=1e-6)


def test_the_classifier_head_is_left_out_and_layerscale_folded(tmp_path):
    model = _learned_vit()
    state = biofm_to_timm(model.state_dict(), model.tokenizer)
    d = model.config.backbone.d_model
    state.update({"head.weight": torch.randn(4, d), "head.bias": torch.randn(4)})
    gamma = torch.full((d,), 0.5)
    state["blocks.0.ls1.gamma"] = gamma
    converted, dropped = timm_to_biofm(state, model.tokenizer)
    assert dropped == ["head.bias", "head.weight"]
    torch.testing.assert_close(converted["backbone.layers.0.attn.out_proj.weight"],
                               model.state_dict()["backbone.layers.0.attn.out_proj.weight"] * 0.5)


def test_unknown_architecture_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"architecture": "swin_tiny_patch4_window7_224", "num_classes": 0}))
    with pytest.raises(BiofmError, match="unknown timm architecture 'swin_tiny"):
        load_pretrained(tmp_path)


@pytest.mark.parametrize("args,why", [({"reg_tokens": 4}, "register tokens"),
                                      ({"class_token": False, "global_pool": "avg"},
                                       "no class token"),
                                      ({"final_norm": False}, "final_norm=False"),
                                      ({"use_fancy_thing": 1}, "use_fancy_thing")])
def test_unsupported_settings_are_named(tmp_path, args, why):
    directory = _timm_dir(tmp_path, _learned_vit(), **args)
    with pytest.raises(BiofmError, match=why):
        load_timm_vit(directory)


def test_truncated_weights_are_a_clear_error(tmp_path):
    directory = _timm_dir(tmp_path, _learned_vit())
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(BiofmError, match="model.safetensors.*truncated"):
        load_timm_vit(directory)


def test_weights_of_another_model_are_a_clear_error(tmp_path):
    directory = _timm_dir(tmp_path, _learned_vit())
    config = json.loads((directory / "config.json").read_text())
    config["model_args"]["depth"] = 5  # shapes still fit, blocks are missing
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(BiofmError, match="missing"):
        load_timm_vit(directory)


def test_biofm_embed_reads_a_timm_directory_as_the_model_it_holds(cli, tmp_path):
    import pandas as pd
    from PIL import Image as PILImage

    model = _learned_vit(channels=1)
    timm_dir = _timm_dir(tmp_path, model)
    model.save(tmp_path / "biofm")
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        PILImage.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(folder / f"{k}.png")
    frames = []
    for name, directory in (("timm", timm_dir), ("biofm", tmp_path / "biofm")):
        run = cli("embed", "--model", directory, "--input", folder, "--pooling", "cls",
                  "--output", tmp_path / f"{name}.parquet")
        assert run.code == 0, run.err
        frames.append(pd.read_parquet(tmp_path / f"{name}.parquet"))
    assert frames[0]["id"].tolist() == ["0.png", "1.png"]
    np.testing.assert_allclose(np.stack(frames[0]["embedding"]), np.stack(frames[1]["embedding"]),
                               atol=1e-5)
