"""Intensity policies (closed forms), Dice / HD95 on known masks, masks written back."""

from __future__ import annotations

import os

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.imaging import (
    Image,
    dice,
    hd95,
    normalise,
    read_image,
    write_mask,
)
from biofm.modalities.imaging.intensity import resolve_policy, window


def _ct(values, **meta) -> Image:
    return Image(np.asarray(values, np.float32), np.eye(4), modality="CT", metadata=meta)


def test_ct_brain_window_closed_form():
    out = normalise(_ct([[-1000, 0, 40, 80, 3000]]), "ct:brain").array  # level 40, width 80
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(window(np.array([-600.0]), -600, 1500), [0.5])


def test_auto_policy_by_modality():
    assert resolve_policy(_ct([[0, 1]])) == "ct"
    assert resolve_policy(_ct([[0, 1]], WindowCenter=40.0, WindowWidth=400.0)) == "dicom-window"
    mr = Image(np.zeros((2, 2)), np.eye(4), modality="MR")
    assert resolve_policy(mr) == "mr"
    assert resolve_policy(Image(np.zeros((2, 2)), np.eye(4))) == "percentile"
    with pytest.raises(BiofmError, match="unknown intensity policy 'hu'"):
        normalise(mr, "hu")


def test_dicom_window_uses_the_files_window():
    out = normalise(_ct([[-18 - 203, -18, -18 + 203]], WindowCenter=-18.0, WindowWidth=406.0))
    np.testing.assert_allclose(out.array, [[0.0, 0.5, 1.0]], atol=1e-6)
    assert out.metadata["intensity_policy"] == "dicom-window"


def test_mr_percentiles_ignore_background_and_outliers():
    values = np.zeros(1000, np.float32)
    values[500:] = np.linspace(100, 200, 500)
    values[-1] = 10_000  # one hot voxel
    image = Image(values.reshape(10, 100), np.eye(4), modality="MR")
    out = normalise(image).array.ravel()
    assert out[:500].max() == 0.0 and out[-1] == 1.0
    fg = values[500:-1]
    lo, hi = np.percentile(values[values > 0], [1, 99])
    np.testing.assert_allclose(out[500:-1], np.clip((fg - lo) / (hi - lo), 0, 1), atol=1e-6)


def test_monochrome1_is_inverted_by_the_percentile_policy():
    image = Image(np.arange(1000, dtype=np.float32).reshape(10, 100), np.eye(4),
                  metadata={"PhotometricInterpretation": "MONOCHROME1"})
    out = normalise(image).array
    assert out[0, 0] == 1.0 and out[-1, -1] == 0.0


def _square(shape, top, left, size):
    mask = np.zeros(shape, bool)
    mask[top: top + size, left: left + size] = True
    return mask


def _brute_hd95(a, b, spacing):
    """Surface-to-surface distances by brute force (MONAI's definition: boundary voxels)."""
    from scipy import ndimage

    def surface(m):
        return np.argwhere(m & ~ndimage.binary_erosion(m)) * np.asarray(spacing)

    sa, sb = surface(a), surface(b)
    d = np.sqrt(((sa[:, None] - sb[None]) ** 2).sum(-1))
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


def test_dice_and_hd95_on_known_masks():
    a, b = _square((40, 40), 10, 10, 10), _square((40, 40), 10, 12, 10)  # shifted by 2
    assert dice(a, b) == pytest.approx(2 * 80 / 200)
    assert dice(a, a) == pytest.approx(1.0) and hd95(a, a) == pytest.approx(0.0)
    assert hd95(a, b) == pytest.approx(_brute_hd95(a, b, (1, 1)), abs=1e-4)
    p, q = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    p[3, 4], q[3, 9] = True, True  # single pixels 5 apart along the second axis
    assert hd95(p, q) == pytest.approx(5.0)
    assert hd95(p, q, spacing=(2.0, 0.5)) == pytest.approx(2.5)
    c = np.zeros((16, 16, 16), bool)
    c[2:8, 2:8, 2:8] = True
    shifted = np.roll(c, 3, axis=2)
    assert hd95(c, shifted, (1, 1, 1)) == pytest.approx(_brute_hd95(c, shifted, (1, 1, 1)),
                                                          abs=1e-4)
    assert 0 < hd95(c, shifted, (1, 1, 1)) <= 3.0


def test_empty_mask_rules():
    empty, full = np.zeros((10, 20), bool), _square((10, 20), 2, 2, 3)
    assert dice(empty, empty) == 1.0 and hd95(empty, empty) == 0.0
    assert dice(empty, full) == 0.0
    assert hd95(empty, full, (1.0, 2.0)) == pytest.approx(np.hypot(10, 40))


def test_mask_is_written_in_the_inputs_space(tmp_path):
    import nibabel as nib

    affine = np.diag([-0.8, 1.2, 2.5, 1.0])
    affine[:3, 3] = [5, -7, 9]
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8), np.int16), affine), tmp_path / "in.nii.gz")
    image = read_image(tmp_path / "in.nii.gz")
    mask = np.zeros(image.shape, np.uint8)
    mask[1:3, 2:5, 4] = 1
    out = write_mask(mask, image, tmp_path / "out" / "mask.nii.gz")
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, affine)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), mask)
    assert back.header.get_data_dtype() == np.uint8
    assert os.listdir(tmp_path / "out") == ["mask.nii.gz"]  # no temp file left behind
    with pytest.raises(BiofmError, match=r"in\.nii\.gz: the mask is \(6, 7\)"):
        write_mask(mask[..., 0], image, tmp_path / "bad.nii.gz")
    with pytest.raises(BiofmError, match="written as NIfTI"):
        write_mask(mask, image, tmp_path / "mask.png")


def test_missing_data_says_how_to_install(monkeypatch, tmp_path):
    from biofm.modalities.imaging import locate

    monkeypatch.setattr(locate, "debian_roots", lambda: [tmp_path])
    with pytest.raises(locate.DataMissing, match=r"'colin27'.*mricron-data is missing.*make data"):
        locate.volume_path("colin27")
    ok, why = locate.available()
    assert not ok and "apt-get download" in why
