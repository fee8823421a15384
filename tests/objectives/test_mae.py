"""MAE: masking ratio, visible-only encoder, loss on masked patches, training, 2D and 3D."""

import math

import numpy as np
import pytest
import torch

from biofm.backbones.vision import build_vit
from biofm.config import TrainConfig
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.objectives.mae import choose_visible, normalised_pixels
from biofm.train import train
from tests.helpers import tiny_vit_config

GEOMETRIES = {"2d": ((16, 16), (4, 4)), "3d": ((8, 8, 8), (2, 2, 4))}


def _model(dim, *overrides):
    return build_vit(tiny_vit_config(*GEOMETRIES[dim]), overrides=overrides, seed=0)


def _images(model, n, seed=0):
    shape = (n, model.tokenizer.channels, *model.tokenizer.image_size)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_exactly_three_quarters_hidden_and_the_encoder_sees_only_the_rest(dim):
    model = _model(dim)
    n = model.tokenizer.n_patches
    batch = model.objective.prepare(model.tokenizer.batch(_images(model, 4)),
                                    torch.Generator().manual_seed(1))
    assert batch.input_ids.shape == (4, 1 + n // 4)  # [CLS] + the visible quarter
    assert batch.values.shape == (4, 1 + n // 4, model.tokenizer.patch_dim)
    hidden_patches = torch.isfinite(batch.value_labels).all(-1)  # (B, N) masked ones
    assert (hidden_patches.sum(1) == 3 * n // 4).all()
    visible = batch.positions[:, 1:] - 1
    assert not hidden_patches.gather(1, visible).any()  # no masked patch enters the encoder
    assert (batch.positions[:, 0] == 0).all()
    # different images get different masks
    assert not torch.equal(hidden_patches[0], hidden_patches[1])


def test_visible_patches_keep_their_pixels_and_grid_positions():
    model = _model("2d")
    images = _images(model, 2)
    full = model.tokenizer.batch(images)
    batch = model.objective.prepare(full, torch.Generator().manual_seed(0))
    for row in range(2):
        torch.testing.assert_close(batch.values[row, 1:],
                                   full.values[row, batch.positions[row, 1:]])


def test_masked_pixels_do_not_reach_the_encoder_and_loss_is_on_masked_patches_only():
    model = _model("2d").eval()
    images = _images(model, 2)
    prepared = model.objective.prepare(model.tokenizer.batch(images),
                                       torch.Generator().manual_seed(3))
    hidden = model.backbone(prepared.input_ids, prepared.attention_mask,
                            values=prepared.values, positions=prepared.positions)
    # changing every masked pixel leaves the encoder's output unchanged
    masked = torch.isfinite(prepared.value_labels).all(-1)  # (B, N)
    pixel_mask = model.tokenizer.batch(images).values.clone()
    pixel_mask[:, 1:][masked] += 100.0
    again = prepared.with_(values=torch.cat(
        [pixel_mask[:, :1], pixel_mask.gather(
            1, prepared.positions[..., None].expand(-1, -1, pixel_mask.shape[2]))[:, 1:]], 1))
    hidden2 = model.backbone(again.input_ids, again.attention_mask, values=again.values,
                             positions=again.positions)
    torch.testing.assert_close(hidden.last_hidden_state, hidden2.last_hidden_state)
    out = model.objective(hidden, prepared)
    pred = out.logits
    target = normalised_pixels(model.tokenizer.batch(images).values[:, 1:])
    expected = ((pred - target) ** 2)[masked].mean()
    torch.testing.assert_close(out.loss, expected)
    assert out.num_predicted == int(masked.sum()) * model.tokenizer.patch_dim


def test_targets_are_normalised_per_patch():
    patches = torch.randn(3, 5, 48) * 7 + 2
    norm = normalised_pixels(patches)
    torch.testing.assert_close(norm.mean(-1), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.std(-1), torch.ones(3, 5), atol=1e-4, rtol=0)


def test_masking_follows_the_generator_and_the_rate():
    a = choose_visible(3, 10, 0.75, torch.Generator().manual_seed(5))
    b = choose_visible(3, 10, 0.75, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (3, 10 - round(7.5))
    assert (a.diff(dim=1) > 0).all()  # ascending grid order
    assert choose_visible(2, 4, 0.99, None).shape == (2, 1)  # one stays visible


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_mae_trains_through_the_one_loop_and_reloads(tmp_path, dim):
    model = _model(dim)
    images = _images(model, 24).numpy()
    # smooth images (a blurred field) so there is something to reconstruct
    images = np.cumsum(np.cumsum(images, axis=-1), axis=-2)
    data = [model.tokenizer.encode_image(x / np.abs(x).max()) for x in images]
    config = TrainConfig(max_steps=8, batch_size=8, lr=3e-3, warmup_steps=1, eval_every=4,
                         save_every=4, log_every=1, progress=False)
    result = train(model, data[:20], data[20:], config, tmp_path / "run")
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 8 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < losses[0]
    loaded = FoundationModel.load(tmp_path / "run" / "final")
    assert loaded.config.objective.name == "mae"
    assert not loaded.backbone.embed_positions.weight.requires_grad


def test_mae_refuses_a_backbone_that_is_not_a_vit():
    from biofm.config import PretrainConfig
    from biofm.modalities.timeseries.patching import PatchTokenizer

    config = PretrainConfig.from_dict({"objective": {"name": "mae", "mask_rate": 0.75}})
    with pytest.raises(BiofmError, match="needs a ViT backbone"):
        FoundationModel(config, PatchTokenizer(patch_len=4))


def test_decoder_settings_belong_to_mae_only():
    from biofm.config import PretrainConfig
    from biofm.modalities.timeseries.patching import PatchTokenizer

    config = PretrainConfig.from_dict({"objective": {"name": "mlm", "decoder_layers": 2}})
    with pytest.raises(BiofmError, match="has no decoder"):
        FoundationModel(config, PatchTokenizer(patch_len=4))
    model = _model("2d", "objective.decoder_dim=64", "objective.decoder_layers=3")
    assert len(model.objective.decoder_blocks) == 3
    assert model.objective.decoder_embed.out_features == 64
