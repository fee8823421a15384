"""Readers keep voxels, affine, spacing and orientation as stored; bad input names the file."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.imaging import Image, read_image, read_images, same_grid
from biofm.modalities.imaging.readers import read_inv3
from tests.modalities.imaging.conftest import require

nib = pytest.importorskip("nibabel")


def _oblique_affine() -> np.ndarray:
    """LPS-ish axes, anisotropic spacing, a rotation and an offset: nothing trivial."""
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-0.8, -1.2, 2.5])
    affine[:3, 3] = [12.0, -30.0, 7.5]
    return affine


def test_nifti_keeps_values_affine_spacing_and_orientation(tmp_path):
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(data, _oblique_affine()), path)
    image = read_image(path)
    np.testing.assert_array_equal(image.array, data)
    np.testing.assert_allclose(image.affine, _oblique_affine(), atol=1e-6)
    np.testing.assert_allclose(image.spacing, (0.8, 1.2, 2.5), atol=1e-6)
    assert image.orientation == "LPS"
    assert image.shape == (5, 6, 7) and image.ndim == 3 and image.source == str(path)


def test_nifti_scaling_is_applied(tmp_path):
    nifti = nib.Nifti1Image(np.array([[[0, 10]]], dtype=np.int16), np.eye(4))
    nifti.header.set_slope_inter(2.0, -5.0)
    nib.save(nifti, tmp_path / "s.nii")
    np.testing.assert_allclose(read_image(tmp_path / "s.nii").array.ravel(), [-5.0, 15.0])


def test_real_colin27_is_read_in_mni_space():
    image = read_image(require("colin27"), modality="MR")
    assert image.shape == (181, 217, 181) and image.spacing == (1.0, 1.0, 1.0)
    assert image.orientation == "RAS" and image.modality == "MR"
    np.testing.assert_allclose(image.affine[:3, 3], (-90, -125, -71))
    aal = read_image(require("aal", "atlas"))
    same_grid(image, aal)  # the AAL atlas lies on Colin27's grid voxel for voxel
    assert len(np.unique(aal.array)) == 117  # background + 116 regions


def test_real_head_ct_is_in_hounsfield_units():
    image = read_inv3(require("head-ct"))
    assert image.shape == (256, 256, 108) and image.modality == "CT"
    np.testing.assert_allclose(image.spacing, (0.957, 0.957, 1.5), atol=1e-3)
    assert image.array.min() == -1024 and image.array.max() > 1500  # air and bone
    assert image.metadata["WindowWidth"] == 406.0


def test_four_d_nifti_is_refused_with_the_fix(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), tmp_path / "f.nii")
    with pytest.raises(BiofmError, match=r"f\.nii.*4D.*Split it first"):
        read_image(tmp_path / "f.nii")


def test_nan_voxels_raise_or_are_zeroed_and_counted(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "n.nii.gz")
    with pytest.raises(BiofmError, match=r"n\.nii\.gz: 2 of 64 voxels are NaN"):
        read_image(tmp_path / "n.nii.gz")
    image = read_image(tmp_path / "n.nii.gz", nan="zero")
    assert image.metadata["non_finite_voxels"] == 2
    assert image.array[1, 2, 3] == 0 and np.isfinite(image.array).all()


def test_png_16_bit_keeps_every_bit(tmp_path):
    from PIL import Image as PILImage

    data = (np.arange(12 * 10, dtype=np.uint32).reshape(12, 10) * 500).astype(np.uint16)
    PILImage.fromarray(data).save(tmp_path / "x16.png")
    image = read_image(tmp_path / "x16.png")
    assert image.array.dtype == np.uint16 and image.array.max() > 255
    np.testing.assert_array_equal(image.array, data)
    assert image.shape == (12, 10) and image.metadata["bits"] == 16


def test_rgba_png_drops_alpha_and_says_so(tmp_path):
    from PIL import Image as PILImage

    rgba = np.random.default_rng(0).integers(0, 255, (8, 9, 4), dtype=np.uint8)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    image = read_image(tmp_path / "c.png")
    assert image.channels == 3 and image.shape == (8, 9)
    np.testing.assert_array_equal(image.array, rgba[..., :3])
    assert image.metadata["alpha_dropped"] is True
    assert image.channels_first().shape == (3, 8, 9)


def test_multipage_tiff_is_a_volume(tmp_path):
    from PIL import Image as PILImage

    pages = [PILImage.fromarray(np.full((5, 6), k, np.uint8)) for k in range(3)]
    pages[0].save(tmp_path / "s.tif", save_all=True, append_images=pages[1:])
    image = read_image(tmp_path / "s.tif")
    assert image.shape == (5, 6, 3)
    assert [int(image.array[0, 0, k]) for k in range(3)] == [0, 1, 2]


def test_numpy_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 5), np.float64))
    image = read_image(tmp_path / "a.npy")
    assert image.array.dtype == np.float32 and image.spacing == (1.0, 1.0)
    np.savez(tmp_path / "b.npz", image=np.zeros((2, 3, 4), np.int16), affine=_oblique_affine())
    np.testing.assert_allclose(read_image(tmp_path / "b.npz").affine, _oblique_affine())
    np.savez(tmp_path / "c.npz", pixels=np.zeros((2, 3)))
    with pytest.raises(BiofmError, match=r"c\.npz: no 'image' array.*savez\(path, image=array\)"):
        read_image(tmp_path / "c.npz")
    np.save(tmp_path / "d.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(BiofmError, match=r"d\.npy: the array is 4D"):
        read_image(tmp_path / "d.npy")


def test_folder_of_images_gives_one_image_each(tmp_path):
    from PIL import Image as PILImage

    for k in range(3):
        PILImage.fromarray(np.full((4, 4), k, np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "notes.txt").write_text("sidecar, ignored")
    images = list(read_images(tmp_path))
    assert [int(i.array[0, 0]) for i in images] == [0, 1, 2]


def test_empty_folder_and_unknown_files_are_errors(tmp_path):
    with pytest.raises(BiofmError, match="holds no images"):
        list(read_images(tmp_path))
    (tmp_path / "scan.xyz").write_bytes(b"123")
    with pytest.raises(BiofmError, match=r"scan\.xyz: a file of unknown type"):
        list(read_images(tmp_path))


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(BiofmError, match="does not exist"):
        read_image(tmp_path / "nope.nii.gz")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BiofmError, match=r"empty\.png: the file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "bad.nii.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BiofmError, match=r"bad\.nii\.gz: not a readable NIfTI"):
        read_image(tmp_path / "bad.nii.gz")


def test_image_and_mask_grid_mismatch_names_both(tmp_path):
    image = Image(np.zeros((4, 5, 6)), np.eye(4), source="img.nii.gz")
    with pytest.raises(BiofmError, match=r"mask\.nii\.gz: the shape \(4, 5, 5\) differs"):
        same_grid(image, Image(np.zeros((4, 5, 5)), np.eye(4), source="mask.nii.gz"))
    shifted = np.eye(4)
    shifted[0, 3] = 2.0
    with pytest.raises(BiofmError, match=r"mask\.nii\.gz: the affine differs.*2 mm.*resample"):
        same_grid(image, Image(np.zeros((4, 5, 6)), shifted, source="mask.nii.gz"))
