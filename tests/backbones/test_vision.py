"""ViT on the shared core: patch layout, positions, features, errors, save / load."""

import numpy as np
import pytest
import torch
from torch import nn

from biofm.backbones.vision import (
    ImagePatchTokenizer,
    build_vit,
    embed_images,
    patchify,
    sincos_positions,
    unpatchify,
    vit_features,
)
from biofm.config import BackboneConfig
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from tests.helpers import tiny_vit_config


def _vit(*overrides, channels=1):
    return build_vit(tiny_vit_config(), channels=channels, overrides=overrides, seed=0)


@pytest.mark.parametrize("spatial,patch", [((12, 8), (4, 2)), ((8, 4, 6), (2, 2, 3))])
def test_patchify_matches_a_strided_conv_and_inverts(spatial, patch):
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, *spatial, generator=gen)
    patches = patchify(images, patch)  # (B, N, C * prod(p))
    conv = (nn.Conv2d if len(spatial) == 2 else nn.Conv3d)(3, 5, patch, stride=patch)
    expected = conv(images).flatten(2).transpose(1, 2)  # (B, N, 5) row-major grid
    got = patches @ conv.weight.reshape(5, -1).T + conv.bias
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grid = [s // p for s, p in zip(spatial, patch)]
    assert torch.equal(unpatchify(patches, patch, grid, 3), images)


def test_sincos_table_is_fixed_and_distinct_per_patch():
    table = sincos_positions((4, 4), 64)
    assert table.shape == (17, 64) and not table[0].any()  # [CLS] at zero
    assert len({tuple(row.tolist()) for row in table[1:]}) == 16
    model = _vit()
    positions = model.backbone.embed_positions.weight
    assert not positions.requires_grad
    torch.testing.assert_close(positions, table)
    assert sincos_positions((2, 2, 2), 48).shape == (9, 48)


def test_config_fills_the_patch_input_and_refuses_bad_geometry():
    cfg = BackboneConfig(image_size=(32, 32, 16), patch_size=(8, 8, 4), channels=2)
    assert (cfg.values, cfg.value_size, cfg.max_len, cfg.grid) == ("patches", 512, 65, (4, 4, 4))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        BackboneConfig(image_size=(30, 32), patch_size=(8, 8), channels=1)
    with pytest.raises(ValueError, match="2 .* or 3"):
        BackboneConfig(image_size=(32,), patch_size=(8,), channels=1)
    with pytest.raises(BiofmError, match="not divisible"):
        _vit("backbone.image_size=[18, 16]")


def test_features_shapes_layers_and_pooling():
    model = _vit().eval()
    images = torch.randn(3, 1, 16, 16)
    out = vit_features(model, images, layers=(1, 2), pooling="mean")
    assert out.patches.shape == (3, 16, 64) and out.cls.shape == (3, 64)
    assert out.patches.dtype == torch.float32
    torch.testing.assert_close(out.pooled, out.patches.mean(1))
    assert sorted(out.layers) == [1, 2] and out.layers[1].shape == (3, 16, 64)
    torch.testing.assert_close(out.layers[2], out.patches)  # the last block, after the norm
    assert not torch.allclose(out.layers[1], out.patches)
    cls = vit_features(model, images).pooled
    torch.testing.assert_close(cls, out.cls)
    with pytest.raises(BiofmError, match="blocks 1..2"):
        vit_features(model, images, layers=(3,))


def test_encode_image_equals_the_batch_path_and_embeddings_follow():
    model = _vit(channels=2).eval()
    images = np.random.default_rng(0).normal(size=(5, 2, 16, 16)).astype(np.float32)
    seq = model.tokenizer.encode_image(images[0])
    batch = model.tokenizer.batch(torch.from_numpy(images))
    assert seq.ids[0] == model.tokenizer.bos_id and len(seq) == 17
    np.testing.assert_array_equal(seq.values, batch.values[0].numpy())
    vectors = embed_images(model, list(images), batch_size=2)
    assert vectors.shape == (5, 64) and vectors.dtype == np.float32
    with torch.no_grad():
        direct = vit_features(model, torch.from_numpy(images)).pooled.numpy()
    np.testing.assert_allclose(vectors, direct, atol=1e-5)


def test_wrong_channels_size_and_nan_are_clear_errors():
    tok = ImagePatchTokenizer(image_size=(16, 16), patch_size=(4, 4), channels=1)
    with pytest.raises(BiofmError, match="3 channel\\(s\\), the model takes 1"):
        tok.encode_image(np.zeros((3, 16, 16)), where="scan.png")
    with pytest.raises(BiofmError, match="scan.png.*image size \\(8, 16\\)"):
        tok.encode_image(np.zeros((1, 8, 16)), where="scan.png")
    with pytest.raises(BiofmError, match="2D \\(C, H, W\\)"):
        tok.encode_image(np.zeros((16, 16)))
    bad = np.zeros((1, 16, 16))
    bad[0, 3, 3] = np.nan
    with pytest.raises(BiofmError, match="NaN"):
        tok.encode_image(bad)
    with pytest.raises(BiofmError, match="pixel arrays, not text"):
        tok.encode("an image")
    with pytest.raises(BiofmError, match="image 1"):
        embed_images(_vit(), [np.zeros((1, 16, 16)), np.zeros((1, 16, 8))])


def test_save_load_round_trip_keeps_outputs_and_frozen_positions(tmp_path):
    model = _vit().eval()
    images = torch.randn(2, 1, 16, 16)
    model.save(tmp_path / "vit")
    loaded = FoundationModel.load(tmp_path / "vit")
    assert isinstance(loaded.tokenizer, ImagePatchTokenizer)
    assert loaded.tokenizer.image_size == (16, 16)
    assert not loaded.backbone.embed_positions.weight.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(vit_features(loaded, images).patches,
                                   vit_features(model, images).patches)


def test_volumes_run_through_the_same_core():
    model = build_vit(tiny_vit_config((16, 16, 8), (4, 4, 4)), seed=0)
    out = vit_features(model, torch.randn(2, 1, 16, 16, 8), layers=(1,))
    assert out.patches.shape == (2, 32, 64) and out.layers[1].shape == (2, 32, 64)
