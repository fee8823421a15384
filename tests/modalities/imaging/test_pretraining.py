"""MAE pretraining on images through `biofm pretrain` (the one training core)."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.imaging import Image
from biofm.modalities.imaging.pretraining import split_tiles, tiles
from tests.modalities.imaging.conftest import tiny_vit_config

nib = pytest.importorskip("nibabel")


def _head(shape=(96, 96, 20)) -> np.ndarray:
    """A bright ellipsoid in an empty field: foreground in the middle only."""
    grid = np.indices(shape).astype(np.float32)
    centre = (np.asarray(shape, np.float32) - 1)[:, None, None, None] / 2
    r = (((grid - centre) / (np.asarray(shape)[:, None, None, None] / 3)) ** 2).sum(0)
    return np.where(r <= 1.0, 100.0 + 10 * grid[0] / shape[0], 0.0).astype(np.float32)


def test_tiles_keep_foreground_and_the_valid_slab_is_apart():
    image = Image(_head() / 110.0, np.eye(4))
    found, where = tiles(image, (32, 32), channels=1, slice_step=1)
    assert found and all(t.shape == (1, 32, 32) for t in found)
    assert all((t[0] > 0.05).mean() >= 0.25 for t in found)
    train, valid = split_tiles(image, (32, 32), 1, valid_fraction=0.2)
    assert len(train) + len(valid) == len(tiles(image, (32, 32), 1)[0])
    assert valid and train
    grey3 = tiles(image, (32, 32), channels=3)[0][0]
    assert grey3.shape == (3, 32, 32) and np.array_equal(grey3[0], grey3[2])


def test_a_3d_image_for_a_2d_model_gives_slices_and_a_2d_image_cannot_feed_3d():
    with pytest.raises(BiofmError, match="3D model cannot take tiles of a 2D image"):
        tiles(Image(np.ones((40, 40), np.float32), np.eye(4)), (8, 8, 8), 1)


def test_pretrain_mae_on_a_nifti_through_the_cli(tmp_path):
    from biofm.cli import main
    from biofm.model import FoundationModel

    nib.save(nib.Nifti1Image(_head((128, 128, 24)), np.eye(4)), tmp_path / "head.nii.gz")
    config = tmp_path / "vit.yaml"
    tiny_vit_config().save(config)
    main(["pretrain", "--config", str(config), "--set", f"data.input={tmp_path / 'head.nii.gz'}",
          "--output", str(tmp_path / "run"), "--no-progress"])
    model = FoundationModel.load(tmp_path / "run" / "final")
    assert model.config.objective.name == "mae" and model.tokenizer.name == "image-patch"
    assert model.config.data.modality == "imaging"


def test_unknown_input_names_the_corpora():
    from biofm.modalities.imaging.pretraining import load_volumes

    with pytest.raises(BiofmError, match="neither an image file.*atlas-slices"):
        load_volumes("no-such-corpus")


def test_pretrain_the_3d_preset_on_blocks_of_a_volume(tmp_path):
    from biofm.cli import main
    from biofm.model import FoundationModel

    nib.save(nib.Nifti1Image(_head((64, 64, 64)), np.eye(4)), tmp_path / "vol.nii.gz")
    main(["pretrain", "--config", "imaging-mae-3d-tiny", "--set",
          f"data.input={tmp_path / 'vol.nii.gz'}", "--steps", "2", "--batch-size", "4",
          "--output", str(tmp_path / "run"), "--no-progress"])
    model = FoundationModel.load(tmp_path / "run" / "final")
    assert model.tokenizer.image_size == (32, 32, 32)
