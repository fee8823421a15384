"""UNETR on a biofm ViT with a box prompt; the UNet and box baselines; save / load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.errors import BiofmError
from biofm.modalities.imaging.segmentation import (
    BOX_MARGIN,
    PromptedUNETR,
    SegmentConfig,
    box_baseline,
    build_segmenter,
    load_segmenter,
    near_box,
    predict_masks,
    save_segmenter,
    skip_layers,
    train_segmenter,
)
from biofm.modalities.imaging.tasks import PromptedCrops
from tests.modalities.imaging.conftest import tiny_vit


def _crops(n: int, seed: int = 0) -> PromptedCrops:
    """Bright discs on a darker noisy background, boxed: generated test inputs."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.2, 0.05, (n, 1, 64, 64)).astype(np.float32)
    masks = np.zeros((n, 64, 64), bool)
    boxes, points = [], []
    rows, cols = np.ogrid[:64, :64]
    for k in range(n):
        r, c, radius = rng.integers(16, 48), rng.integers(16, 48), rng.integers(5, 12)
        masks[k] = (rows - r) ** 2 + (cols - c) ** 2 <= radius ** 2
        images[k, 0][masks[k]] += 0.6
        boxes.append([r - radius, c - radius, r + radius + 1, c + radius + 1])
        points.append([r, c])
    return PromptedCrops(images, np.asarray(boxes), masks, np.asarray(points),
                         [f"disc{k}" for k in range(n)])


def test_skip_layers_spread_over_the_depth():
    assert skip_layers(12, 4) == (3, 6, 9)  # UNETR's choice for ViT-B/16
    assert skip_layers(2, 3) == (1, 1)


def test_unetr_maps_image_and_prompt_to_two_class_logits():
    model = PromptedUNETR(tiny_vit(), prompt_channels=2, features=8)
    out = model(torch.zeros(3, 1, 64, 64), torch.zeros(3, 2, 64, 64))
    assert out.shape == (3, 2, 64, 64)


def test_patch_size_must_be_a_power_of_two():
    from biofm.backbones.vision import build_vit
    from tests.modalities.imaging.conftest import tiny_vit_config

    vit = build_vit(tiny_vit_config(), patch_size=(16, 8))
    with pytest.raises(BiofmError, match="power of two"):
        PromptedUNETR(vit)


def test_frozen_mode_trains_the_decoder_only():
    train, valid = _crops(48), _crops(16, seed=1)
    config = SegmentConfig(mode="frozen", epochs=3, batch_size=16, features=8, lr=3e-3)
    model = build_segmenter(config, tiny_vit())
    vit_before = {k: v.clone() for k, v in model.base.state_dict().items()}
    decoder_before = model.out.conv.conv.weight.detach().clone()
    result = train_segmenter(model, train, valid, config)
    assert all(torch.equal(v, result.model.base.state_dict()[k]) for k, v in vit_before.items())
    assert not torch.equal(decoder_before, result.model.out.conv.conv.weight)
    assert len(result.history) >= 1 and result.valid_dice == max(
        h["valid_dice"] for h in result.history)


def test_unet_baseline_and_box_baseline():
    train, valid = _crops(32), _crops(8, seed=1)
    config = SegmentConfig(mode="unet", epochs=2, batch_size=16, features=8)
    result = train_segmenter(build_segmenter(config), train, valid, config)
    masks = predict_masks(result.model, valid.images, valid.prompts())
    assert masks.shape == (8, 64, 64) and masks.dtype == bool
    allowed = near_box(valid.prompts()[:, 0] > 0.5, BOX_MARGIN)
    assert not (masks & ~allowed).any()  # nothing predicted far outside the box
    anywhere = predict_masks(result.model, valid.images, valid.prompts(), box_margin=None)
    assert (masks == (anywhere & allowed)).all()
    box = box_baseline(valid)
    assert 0.5 < box["dice"] < 1.0  # a box around a disc: pi / 4 of it is the disc


def test_saved_segmenter_predicts_the_same(tmp_path):
    train, valid = _crops(16), _crops(8, seed=1)
    config = SegmentConfig(mode="full", epochs=1, batch_size=16, features=8)
    result = train_segmenter(build_segmenter(config, tiny_vit()), train, valid, config)
    save_segmenter(result, tmp_path / "seg", task="discs")
    loaded, info = load_segmenter(tmp_path / "seg")
    assert info["mode"] == "full" and info["crop"] == [64, 64]
    np.testing.assert_array_equal(predict_masks(loaded, valid.images, valid.prompts()),
                                  predict_masks(result.model, valid.images, valid.prompts()))
    with pytest.raises(BiofmError, match="no segmenter.json"):
        load_segmenter(tmp_path)


def test_truncated_or_mismatched_segmenter_weights_are_user_errors(tmp_path):
    import json

    train, valid = _crops(4), _crops(4, seed=1)
    config = SegmentConfig(mode="unet", epochs=1, batch_size=4, features=4)
    result = train_segmenter(build_segmenter(config), train, valid, config)
    directory = save_segmenter(result, tmp_path / "seg", task="discs")
    weights = directory / "weights.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(BiofmError, match=r"weights\.safetensors: weights file is unreadable"):
        load_segmenter(directory)
    weights.write_bytes(intact)
    info_path = directory / "segmenter.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "features": 8}))
    with pytest.raises(BiofmError, match=r"weights\.safetensors: weights do not match .*wrong "
                                         r"shape"):
        load_segmenter(directory)
