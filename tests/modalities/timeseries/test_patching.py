"""Patching, the patch tokenizer and instance normalisation."""

import numpy as np
import pytest
import torch

from biofm.errors import BiofmError
from biofm.modalities.timeseries.patching import (PatchTokenizer, denormalise, instance_stats,
                                                  model_inputs, normalise, patchify, unpatchify)
from biofm.registry import TOKENIZERS
from biofm.tokenizer import load_tokenizer


def test_patchify_aligns_on_the_last_value_and_left_pads_with_missing():
    patches = patchify(np.arange(1.0, 11.0), patch_len=4)  # 10 values → 3 patches
    assert patches.shape == (3, 4) and patches.dtype == np.float32
    assert np.isnan(patches[0, :2]).all()
    np.testing.assert_array_equal(unpatchify(patches)[2:], np.arange(1.0, 11.0))
    np.testing.assert_array_equal(patches[-1], [7, 8, 9, 10])  # last patch ends at the origin


def test_patchify_keeps_only_the_last_patches():
    patches = patchify(np.arange(20.0), patch_len=4, n_patches=2)
    np.testing.assert_array_equal(unpatchify(patches), np.arange(12.0, 20.0))


def test_tokenizer_encodes_series_and_round_trips(tmp_path):
    tok = TOKENIZERS.get("ts-patch")(patch_len=4)
    seq = tok.encode_series(np.array([1.0, np.nan, 3.0, 4.0, 5.0]), n_patches=3)
    assert seq.ids.tolist() == [tok.patch_id] * 3
    assert seq.values.shape == (3, 4) and np.isnan(seq.values[:2, :3]).all()
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, PatchTokenizer) and loaded.patch_len == 4
    assert loaded.to_dict() == tok.to_dict() and loaded.mask_id == tok.mask_id


def test_tokenizer_refuses_text():
    with pytest.raises(BiofmError, match="numbers, not text"):
        PatchTokenizer(patch_len=4).encode("1,2,3")


def test_instance_stats_use_visible_values_only():
    values = torch.tensor([[[1.0, 2.0], [3.0, 1000.0]], [[np.nan, 5.0], [5.0, 5.0]]])
    visible = torch.isfinite(values)
    visible[0, 1, 1] = False  # hidden: must not move the statistics
    loc, scale, count = instance_stats(values, visible)
    assert loc.shape == scale.shape == (2, 1, 1)
    torch.testing.assert_close(loc[:, 0, 0], torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(scale[0, 0, 0], torch.tensor(np.std([1.0, 2.0, 3.0])).float())
    assert scale[1, 0, 0] == 1.0  # constant row: scale 1, not 0
    assert count[:, 0, 0].tolist() == [3.0, 3.0]


def test_recent_stats_use_the_last_visible_values_only():
    """A winter peak early in the context must not set the scale of a calm spring."""
    values = torch.tensor([[[100.0, 90.0], [4.0, np.nan], [6.0, 5.0]]])  # (1, 3, 2)
    visible = torch.isfinite(values)
    visible[0, 2, 1] = False  # masked (e.g. the future): not counted either
    loc, scale, count = instance_stats(values, visible, recent=2)
    assert count.item() == 2.0 and loc.item() == 5.0  # 4 and 6: the NaN and the mask skipped
    torch.testing.assert_close(scale[0, 0, 0], torch.tensor(1.0))
    full_loc, _, full_count = instance_stats(values, visible, recent=10)  # more than visible
    assert full_count.item() == 4.0 and full_loc.item() == 50.0


def test_cumulative_stats_equal_the_stats_of_each_prefix():
    rng = np.random.default_rng(0)
    values = torch.tensor(rng.normal(10, 3, (2, 5, 4)), dtype=torch.float32)
    visible = torch.rand(2, 5, 4, generator=torch.Generator().manual_seed(0)) > 0.2
    loc, scale, _ = instance_stats(values, visible, cumulative=True)
    assert loc.shape == (2, 5, 1)
    for t in range(5):
        prefix_loc, prefix_scale, _ = instance_stats(values[:, : t + 1], visible[:, : t + 1])
        torch.testing.assert_close(loc[:, t], prefix_loc[:, 0])
        torch.testing.assert_close(scale[:, t], prefix_scale[:, 0])


def test_normalise_round_trip_and_model_inputs():
    values = torch.tensor([[[2.0, np.nan], [6.0, 4.0]]])
    visible = torch.isfinite(values)
    loc, scale, _ = instance_stats(values, visible)
    restored = denormalise(normalise(values, loc, scale), loc, scale)
    torch.testing.assert_close(restored, values, equal_nan=True)
    inputs = model_inputs(values, visible, loc, scale)
    assert inputs.shape == (1, 2, 4)
    assert inputs[0, 0, 1] == 0.0 and inputs[0, 0, 3] == 0.0  # missing: value 0, flag 0
    torch.testing.assert_close(inputs[0, :, 2:], visible[0].float())
    assert torch.isfinite(inputs).all()
