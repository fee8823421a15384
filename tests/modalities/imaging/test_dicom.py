"""DICOM: real files from pydicom / pydicom-data, series the tests write from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.imaging import read_image, read_images
from biofm.modalities.imaging.locate import DataMissing, dicom_files, pydicom_test_file

pydicom = pytest.importorskip("pydicom")


def _real(name: str) -> Path:
    try:
        if name in ("CT_small.dcm", "MR_small.dcm"):
            return pydicom_test_file(name)
        return next(f for f in dicom_files() if f.name == name)
    except (DataMissing, StopIteration) as exc:
        pytest.skip(f"DICOM test data not installed (make data): {exc}")


def _series(folder: Path, z: list[float], *, uid: str = "1.2.3.4", intercepts=None,
            names=None) -> list[Path]:
    """Slices of the real CT_small at positions `z` (mm), written in a shuffled order."""
    folder.mkdir(exist_ok=True)
    paths = []
    for k, pos in enumerate(z):
        ds = pydicom.dcmread(_real("CT_small.dcm"))
        ds.ImagePositionPatient = [-158.1, -179.0, pos]
        ds.SeriesInstanceUID = uid
        ds.InstanceNumber = len(z) - k  # deliberately the reverse of the position order
        ds.SOPInstanceUID = f"{uid}.{k}"
        if intercepts is not None:
            ds.RescaleIntercept = intercepts[k]
        path = folder / (names[k] if names else f"im{(7 * k) % len(z)}_{k}.dcm")
        ds.save_as(path)
        paths.append(path)
    return paths


def test_single_ct_slice_in_hounsfield_units_with_metadata():
    path = _real("CT_small.dcm")
    image = read_image(path)
    raw = pydicom.dcmread(path)
    assert image.shape == (128, 128) and image.modality == "CT"
    # (columns, rows) order; stored * slope + intercept
    expected = raw.pixel_array.T * float(raw.RescaleSlope) + float(raw.RescaleIntercept)
    np.testing.assert_allclose(image.array, expected)
    assert image.metadata["PatientID"] == str(raw.PatientID)
    assert image.metadata["SeriesInstanceUID"] == str(raw.SeriesInstanceUID)
    assert image.metadata["RescaleIntercept"] == float(raw.RescaleIntercept)
    np.testing.assert_allclose(image.spacing, [float(v) for v in raw.PixelSpacing[::-1]])
    # LPS position → RAS affine origin: x and y negated
    ipp = [float(v) for v in raw.ImagePositionPatient]
    np.testing.assert_allclose(image.affine[:3, 3], [-ipp[0], -ipp[1], ipp[2]])


def test_series_sorted_by_position_with_per_slice_rescale(tmp_path):
    z = [10.0, 15.0, 20.0, 25.0]
    _series(tmp_path / "s", z, intercepts=[-1024, -1000, -1024, -1000])
    image = read_image(tmp_path / "s")
    assert image.shape == (128, 128, 4)
    raw = pydicom.dcmread(_real("CT_small.dcm")).pixel_array.T.astype(np.float32)
    for k, intercept in enumerate([-1024, -1000, -1024, -1000]):
        np.testing.assert_allclose(image.array[..., k], raw * float(
            pydicom.dcmread(_real("CT_small.dcm")).RescaleSlope) + intercept)
    np.testing.assert_allclose(image.affine[:3, 2], [0, 0, 5.0])  # slice step along +z
    assert image.affine[2, 3] == 10.0 and image.metadata["files"] == 4
    assert image.spacing[2] == pytest.approx(5.0)


def test_series_gap_is_an_error_naming_the_files(tmp_path):
    _series(tmp_path / "g", [0.0, 5.0, 15.0, 20.0],
            names=["a.dcm", "b.dcm", "c.dcm", "d.dcm"])
    with pytest.raises(BiofmError, match=r"inconsistent slice spacing: 10\.000 mm between "
                                         r"b\.dcm and c\.dcm.*missing"):
        read_image(tmp_path / "g")


def test_duplicate_positions_are_an_error(tmp_path):
    _series(tmp_path / "d", [0.0, 5.0, 5.0], names=["a.dcm", "b.dcm", "c.dcm"])
    with pytest.raises(BiofmError, match="share the position"):
        read_image(tmp_path / "d")


def test_mixed_series_in_one_folder_are_listed(tmp_path):
    _series(tmp_path / "m", [0.0, 5.0], uid="1.2.3.4", names=["a.dcm", "b.dcm"])
    _series(tmp_path / "m", [0.0, 5.0], uid="1.2.3.5", names=["c.dcm", "d.dcm"])
    with pytest.raises(BiofmError, match=r"mixes 2 series: 1\.2\.3\.4 .*2 files.*1\.2\.3\.5.*"
                                         r"series=UID"):
        read_image(tmp_path / "m")
    assert read_image(tmp_path / "m", series="1.2.3.5").shape == (128, 128, 2)


def test_mixed_orientation_is_an_error(tmp_path):
    paths = _series(tmp_path / "o", [0.0, 5.0, 10.0], names=["a.dcm", "b.dcm", "c.dcm"])
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal localizer
    ds.save_as(paths[2])
    with pytest.raises(BiofmError, match=r"c\.dcm: slice orientation differs"):
        read_image(tmp_path / "o")


def test_a_slice_without_a_position_is_an_error_naming_it(tmp_path):
    paths = _series(tmp_path / "p", [0.0, 5.0, 10.0], names=["a.dcm", "b.dcm", "c.dcm"])
    ds = pydicom.dcmread(paths[1])
    del ds.ImagePositionPatient
    ds.save_as(paths[1])
    with pytest.raises(BiofmError, match=r"b\.dcm: the slice has no valid Image Position"):
        read_image(tmp_path / "p")


def test_pixel_less_and_unreadable_dicom(tmp_path):
    ds = pydicom.dcmread(_real("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(BiofmError, match=r"nopix\.dcm: the DICOM file holds no pixel data"):
        read_image(tmp_path / "nopix.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 50 + b"not dicom")
    with pytest.raises(BiofmError, match=r"junk\.dcm: .*(not a readable DICOM|no SOP Class)"):
        read_image(tmp_path / "junk.dcm")


def test_multiframe_mr_is_a_volume():
    path = _real("emri_small.dcm")
    image = read_image(path)
    frames = pydicom.dcmread(path).pixel_array  # (frames, rows, cols)
    assert image.shape == (64, 64, 10) and image.modality == "MR"
    np.testing.assert_array_equal(image.array[..., 3], frames[3].T)


def test_ultrasound_palette_and_multiframe_rgb():
    image = read_image(_real("OBXXXX1A_2frame.dcm"))
    assert image.channels == 3 and image.shape == (800, 600, 2)  # (cols, rows, frames)


def test_liver_segmentation_object_reads_as_frames():
    image = read_image(_real("liver.dcm"))
    assert image.modality == "SEG" and image.shape == (512, 512, 3)
    assert set(np.unique(image.array)) <= {0, 1} and image.array.any()


def test_folder_with_a_series_and_its_sidecar(tmp_path):
    _series(tmp_path / "f", [0.0, 2.5, 5.0])
    (tmp_path / "f" / "README.txt").write_text("exported from PACS")
    images = list(read_images(tmp_path / "f"))
    assert len(images) == 1 and images[0].shape == (128, 128, 3)


def test_every_pydicom_data_file_reads_or_says_why():
    """The 68 real files of pydicom-data: CT, MR, CR, US (multi-frame), NM, SEG, RGB..."""
    from biofm.modalities.imaging import ImageError

    try:
        files = dicom_files()
    except DataMissing as exc:
        pytest.skip(f"pydicom-data not installed (make data): {exc}")
    read, why = {}, {}
    for path in files:
        try:
            read[path.name] = read_image(path)
        except ImageError as exc:  # anything else is a bug
            why[path.name] = str(exc)
    assert len(files) == 68 and len(read) >= 60
    assert {i.modality for i in read.values()} >= {"CT", "MR", "CR", "US", "NM", "SEG"}
    assert read["color3d_jpeg_baseline.dcm"].shape == (640, 480, 120)  # 120-frame echo
    for name, message in why.items():
        assert name in message and ("decoder" in message or "truncated" in message
                                    or "damaged" in message), message
