"""DICOM files and series (pydicom) → `Image`.

- One file: a single frame is a 2D image (columns, rows); a multi-frame file
  (ultrasound cine, enhanced MR / CT, SEG) is 3D (columns, rows, frames),
  positioned by its per-frame plane positions when it has them.
- A folder: one series, its slices sorted by their position along the slice
  normal (not by file name or InstanceNumber), stacked into (columns, rows,
  slices). The slices must share orientation, size and pixel spacing and be
  evenly spaced: a gap (a missing slice), a duplicate position or a tilted
  slice is an error naming the files, never interpolated over. A folder that
  holds several series is an error listing them (pick one with `series=UID`).
- Stored values become real values with each slice's Rescale Slope /
  Intercept (CT: Hounsfield units), as float32. The display window (Window
  Center / Width), photometric interpretation and patient / study / series
  fields are kept in `metadata`; applying a window is the intensity policy's
  job (`intensity.py`), not the reader's. MONOCHROME1 values are kept as
  stored (inverted for display by the policy). Palette and YBR colour become RGB.
- The affine maps (column, row, slice) indices to RAS+ millimetres (DICOM's
  LPS patient axes with x and y negated). A file without Image Position /
  Orientation (secondary captures, ultrasound) has no patient space: its
  affine is the pixel spacing alone (1 mm when unknown) and
  `metadata["patient_space"]` is False.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biofm.modalities.imaging.image import Image, ImageError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
KEPT_FIELDS = ("PatientID", "PatientName", "PatientSex", "PatientAge", "StudyInstanceUID",
               "StudyDate", "StudyDescription", "SeriesInstanceUID", "SeriesNumber",
               "SeriesDescription", "Modality", "Manufacturer", "BodyPartExamined",
               "PhotometricInterpretation", "BitsStored", "SliceThickness")
SPACING_TOLERANCE = 0.01  # relative: slices more unevenly spaced than 1% are an error


def _pydicom():
    import pydicom

    return pydicom


def read_header(path: Path, *, pixels: bool = False):
    """The dataset of one file (headers only unless `pixels`); unreadable → ImageError."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels,
                             force=path.suffix.lower() == ".dcm")
    except pydicom.errors.InvalidDicomError as exc:
        raise ImageError(f"not a readable DICOM file ({exc})", path=path,
                         fix="remove non-DICOM files from the folder, or re-export the image "
                             "from the scanner / PACS") from None
    except (OSError, ValueError, EOFError) as exc:  # truncated or damaged file
        raise ImageError(f"the DICOM file is damaged or truncated ({exc})", path=path,
                         fix="copy the file again from its source") from None
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise ImageError("the DICOM header has no SOP Class and no Rows: not an image, or "
                         "a truncated file", path=path,
                         fix="remove it from the folder, or copy it again from its source")
    return ds


def _pixels(ds, path: Path) -> np.ndarray:
    """Stored values as an array: (rows, cols[, 3]) or (frames, rows, cols[, 3])."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError(f"the DICOM file holds no pixel data (SOP class "
                         f"{getattr(ds.get('SOPClassUID'), 'name', ds.get('SOPClassUID'))})",
                         path=path,
                         fix="pass image files only (structured reports, presentation states "
                             "and DICOMDIR files carry no pixels)")
    try:
        array = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError / NotImplementedError / ValueError
        raise ImageError(f"cannot decode the pixel data ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160]})", path=path,
                         fix="install a decoder for this transfer syntax (pip install "
                             "pylibjpeg pylibjpeg-openjpeg), or decompress the file first "
                             "(gdcmconv --raw IN OUT)") from None
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, ds)
    return array  # YBR colour: pydicom's pixel_array gives RGB already


def _rescaled(ds, array: np.ndarray, frame_groups: Sequence | None = None) -> np.ndarray:
    """Stored → real values (slope, intercept; per frame when the file says so)."""
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if frame_groups:
        first = frame_groups[0]
        if "PixelValueTransformationSequence" in first:
            out = np.empty(array.shape, dtype=np.float32)
            for f, group in enumerate(frame_groups):
                t = group.PixelValueTransformationSequence[0]
                out[f] = array[f] * float(t.RescaleSlope) + float(t.RescaleIntercept)
            return out
    if slope == 1 and intercept == 0 and array.dtype.kind in "ui" and array.dtype.itemsize <= 2:
        return array  # stored values are the real values: keep the compact integer type
    return (array.astype(np.float32) * slope + intercept).astype(np.float32)


def metadata_of(ds) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in KEPT_FIELDS:
        if name in ds and ds.get(name) not in (None, ""):
            value = ds.get(name)
            out[name] = str(value) if not isinstance(value, (int, float)) else value
    for name in ("WindowCenter", "WindowWidth"):
        value = ds.get(name)
        if value is not None:
            value = value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value
            out[name] = float(value)
    out["RescaleSlope"] = float(ds.get("RescaleSlope", 1) or 1)
    out["RescaleIntercept"] = float(ds.get("RescaleIntercept", 0) or 0)
    return out


def _orientation(ds) -> np.ndarray | None:
    """(row cosine, column cosine) (2, 3) of a file, from its header or shared groups."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PlaneOrientationSequence" in shared:
            iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    return None if iop is None else np.asarray([float(v) for v in iop]).reshape(2, 3)


def _pixel_spacing(ds) -> tuple[float, float] | None:
    """(between rows, between columns) in mm."""
    ps = ds.get("PixelSpacing")
    if ps is None and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared:
            ps = shared.PixelMeasuresSequence[0].get("PixelSpacing")
    if ps is None:
        ps = ds.get("ImagerPixelSpacing")
    return None if ps is None else (float(ps[0]), float(ps[1]))


def _affine(iop: np.ndarray, spacing: tuple[float, float], origin: np.ndarray,
            step: np.ndarray | None) -> np.ndarray:
    """(column, row, slice) index → RAS mm, from LPS orientation / position."""
    row_cos, col_cos = iop
    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]  # along a row: next column
    lps[:3, 1] = col_cos * spacing[0]  # down a column: next row
    normal = np.cross(row_cos, col_cos)
    lps[:3, 2] = step if step is not None else normal
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _to_xy(array: np.ndarray, frames: bool, color: bool) -> np.ndarray:
    """pydicom's (frames, rows, cols[, 3]) → (cols, rows[, frames][, 3])."""
    if frames:
        order = (2, 1, 0, 3) if color else (2, 1, 0)
    else:
        order = (1, 0, 2) if color else (1, 0)
    return np.ascontiguousarray(np.transpose(array, order))


def read_dicom_file(path: str | Path) -> Image:
    """One DICOM file (single- or multi-frame) → Image."""
    path = Path(path)
    ds = read_header(path, pixels=True)
    array = _pixels(ds, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1) > 1
    color = int(ds.get("SamplesPerPixel", 1) or 1) > 1 or \
        str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR"
    groups = list(ds.PerFrameFunctionalGroupsSequence) \
        if "PerFrameFunctionalGroupsSequence" in ds else None
    if not color:
        array = _rescaled(ds, array, groups if frames else None)
    meta = metadata_of(ds)
    iop, spacing = _orientation(ds), _pixel_spacing(ds)
    origin = ds.get("ImagePositionPatient")
    if frames and groups and "PlanePositionSequence" in groups[0]:
        positions = np.asarray([[float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient]
                                for g in groups])
        origin = positions[0]
        step = (positions[-1] - positions[0]) / (len(positions) - 1) if len(positions) > 1 else None
    else:
        step = None
    patient_space = iop is not None and origin is not None and spacing is not None
    if patient_space:
        affine = _affine(iop, spacing, np.asarray([float(v) for v in origin]), step)
        if frames and step is None:  # frames without positions: slice thickness apart
            affine[:3, 2] *= float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1)
    else:
        rows_mm, cols_mm = spacing or (1.0, 1.0)
        through = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1)
        affine = np.diag([cols_mm, rows_mm, through, 1.0])
    meta.update(patient_space=patient_space, frames=int(ds.get("NumberOfFrames", 1) or 1),
                files=1)
    return Image(_to_xy(np.asarray(array), frames, color), affine, source=str(path),
                 modality=str(ds.get("Modality", "")), channels=3 if color else 1, metadata=meta)


def read_dicom_series(folder: str | Path, *, series: str | None = None,
                      files: Sequence[Path] | None = None) -> Image:
    """The one series of a folder (or its series `series`) → a 3D Image."""
    folder = Path(folder)
    files = sorted(files if files is not None else _candidate_files(folder))
    if not files:
        raise ImageError("the folder holds no files", path=folder,
                         fix="pass a folder with the .dcm files of one series")
    headers = {f: read_header(f) for f in files}
    by_series: dict[str, list[Path]] = defaultdict(list)
    for f, ds in headers.items():
        by_series[str(ds.get("SeriesInstanceUID", "unknown"))].append(f)
    if series is not None:
        if series not in by_series:
            raise ImageError(f"no series {series!r} in the folder", path=folder,
                             fix="choose one of: " + ", ".join(sorted(by_series)))
        by_series = {series: by_series[series]}
    if len(by_series) > 1:
        listed = "; ".join(f"{uid} ({headers[fs[0]].get('Modality', '?')} "
                           f"{headers[fs[0]].get('SeriesDescription', '')!s}, {len(fs)} files)"
                           for uid, fs in sorted(by_series.items()))
        raise ImageError(f"the folder mixes {len(by_series)} series: {listed}", path=folder,
                         fix="put each series in its own folder, or pick one with series=UID")
    (uid, members), = by_series.items()
    if len(members) == 1:
        return read_dicom_file(members[0])
    return _stack(folder, uid, members, headers)


def _position(ds: Any, path: Path) -> np.ndarray:
    """A slice's Image Position (Patient): (3,) mm, or an ImageError naming its file."""
    try:
        position = np.asarray([float(v) for v in ds.ImagePositionPatient])
    except (AttributeError, TypeError, ValueError):
        position = None
    if position is None or position.shape != (3,):
        raise ImageError("the slice has no valid Image Position (Patient), so it cannot be "
                         "placed among the series' other slices", path=path,
                         fix="remove the file from the folder (or read the files one by one)")
    return position


def _candidate_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
            and p.name.upper() != "DICOMDIR"]


def _stack(folder: Path, uid: str, members: list[Path], headers: dict) -> Image:
    """Sorted, checked, rescaled slices of one series → (cols, rows, slices)."""
    first = headers[members[0]]
    iop, spacing = _orientation(first), _pixel_spacing(first)
    if iop is None or spacing is None or "ImagePositionPatient" not in first:
        raise ImageError("the series has no Image Position / Orientation, so its slices "
                         "cannot be ordered in space", path=members[0],
                         fix="read its files one by one (they are separate images)")
    size = (first.get("Rows"), first.get("Columns"))
    for f in members[1:]:
        ds = headers[f]
        other = _orientation(ds)
        if other is None or np.abs(other - iop).max() > 1e-4:
            raise ImageError(f"slice orientation differs from {members[0].name}'s "
                             f"({None if other is None else other.ravel().round(4).tolist()} vs "
                             f"{iop.ravel().round(4).tolist()})", path=f,
                             fix="a series with mixed orientations (a localizer?) cannot be "
                                 "stacked: remove the odd files or split the folder")
        if (ds.get("Rows"), ds.get("Columns")) != size or _pixel_spacing(ds) != spacing:
            raise ImageError(f"slice size or pixel spacing differs from {members[0].name}'s",
                             path=f, fix="remove the odd files, or split the folder")
    normal = np.cross(iop[0], iop[1])
    position = {f: _position(headers[f], f) for f in members}
    order = sorted(members, key=lambda f: float(position[f] @ normal))
    depth = np.asarray([float(position[f] @ normal) for f in order])
    gaps = np.diff(depth)
    if np.any(gaps < 1e-3):
        k = int(np.argmin(gaps))
        raise ImageError(f"two slices share the position {depth[k]:.3f} mm along the normal "
                         f"({order[k].name} and {order[k + 1].name})", path=folder,
                         fix="remove duplicate files (a series exported twice?)")
    step = float(np.median(gaps))
    odd = np.abs(gaps - step) > max(SPACING_TOLERANCE * step, 1e-3)
    if odd.any():
        k = int(np.argmax(odd))
        raise ImageError(f"inconsistent slice spacing: {gaps[k]:.3f} mm between "
                         f"{order[k].name} and {order[k + 1].name}, {step:.3f} mm elsewhere "
                         f"(a missing slice?)", path=folder,
                         fix="restore the missing files; biofm does not interpolate over gaps")
    slices = []
    for f in order:
        ds = read_header(f, pixels=True)
        slices.append(_rescaled(ds, _pixels(ds, f)).astype(np.float32))
    volume = np.stack(slices)  # (slices, rows, cols)
    vector = (position[order[-1]] - position[order[0]]) / (len(order) - 1)
    affine = _affine(iop, spacing, position[order[0]], vector)
    meta = metadata_of(first)
    meta.update(patient_space=True, files=len(order), slice_files=[f.name for f in order])
    return Image(_to_xy(volume, True, False), affine, source=str(folder),
                 modality=str(first.get("Modality", "")), metadata=meta)


__all__ = ["read_dicom_file", "read_dicom_series", "read_header"]
