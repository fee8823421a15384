"""Image files and folders → `Image` records (see `image.py` for the conventions).

    read_image("ch2.nii.gz")           NIfTI (.nii, .nii.gz; nibabel): affine, spacing and
                                       orientation as stored, scl_slope / inter applied
    read_image("series/")              a folder of one DICOM series (`dicom.py`)
    read_image("slice.dcm")            one DICOM file, single- or multi-frame
    read_image("xray.png")             PNG / JPEG / TIFF (Pillow): 8- and 16-bit grey, RGB;
                                       multi-page TIFF → 3D (rows, cols, pages)
    read_image("volume.npy")           NumPy: .npy (2D / 3D, 1 mm, no patient space) or
                                       .npz with "image" [+ "affine" (4, 4) or "spacing"]
    read_image("Cranium.inv3")         an InVesalius project (a CT volume + its window)
    read_images("folder/")             every image of a folder: one per raster / NIfTI /
                                       NumPy file, one per DICOM series (a subfolder each,
                                       or the folder's own .dcm files), sorted by name

Rules (each raises an `ImageError` naming the file and the fix, or is counted):
- nothing is resampled, reoriented or flipped; a 4D NIfTI is refused (pick a volume);
- 16-bit PNG / TIFF keep all 16 bits (uint16), never cut to 8;
- RGBA keeps RGB and drops alpha (`metadata["alpha_dropped"]`); palette images become RGB;
- NaN / infinite voxels are an error by default; `nan="zero"` sets them to 0 and
  records how many in `metadata["non_finite_voxels"]` (the modality prints the count);
- an empty folder, a file of unknown type in a folder, and DICOM problems (no
  pixels, mixed series, uneven spacing, mixed orientation) are errors; sidecar
  files (.txt, .json, .csv, .md, .lut) in a folder are ignored.
"""

from __future__ import annotations

import plistlib
import tarfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from biofm.modalities.imaging.dicom import read_dicom_file, read_dicom_series
from biofm.modalities.imaging.image import Image, ImageError, affine_from_spacing

NanRule = Literal["raise", "zero"]
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NUMPY_SUFFIXES = (".npy", ".npz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
OTHER_SUFFIXES = (".inv3",)
IMAGE_SUFFIXES = NIFTI_SUFFIXES + DICOM_SUFFIXES + RASTER_SUFFIXES + NUMPY_SUFFIXES + OTHER_SUFFIXES
SIDECAR_SUFFIXES = (".txt", ".json", ".csv", ".md", ".lut")


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def is_dicom(path: Path) -> bool:
    """A .dcm-like suffix, or the DICM marker at byte 128 (files without a suffix)."""
    if suffix_of(path) in DICOM_SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_image(path: str | Path, *, nan: NanRule = "raise", modality: str | None = None,
               series: str | None = None) -> Image:
    """One image from a file or a DICOM series folder; `modality` ("CT", "MR", …)
    overrides what the file says (NIfTI and rasters say nothing)."""
    path = Path(path)
    if not path.exists():
        raise ImageError("the image does not exist", path=path,
                         fix="check the path and the current directory")
    if path.is_dir():
        image = read_dicom_series(path, series=series)
    else:
        if path.stat().st_size == 0:
            raise ImageError("the file is empty", path=path, fix="copy the image again")
        image = _read_file(path)
    if modality:
        image = image.with_array(image.array, modality=modality.upper())
    return check_finite(image, nan)


def _read_file(path: Path) -> Image:
    suffix = suffix_of(path)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path)
    if suffix in RASTER_SUFFIXES:
        return read_raster(path)
    if suffix in NUMPY_SUFFIXES:
        return read_numpy(path)
    if suffix == ".inv3":
        return read_inv3(path)
    if is_dicom(path):
        return read_dicom_file(path)
    raise ImageError(f"unknown image format {suffix or '(no suffix)'!r}", path=path,
                     fix=f"pass one of: {', '.join(IMAGE_SUFFIXES)}, or a DICOM series folder")


def read_images(path: str | Path, *, nan: NanRule = "raise",
                modality: str | None = None) -> Iterator[Image]:
    """Every image of a file or folder (see the module docstring)."""
    for _, read in image_readers(path, nan=nan, modality=modality):
        yield read()


def image_readers(path: str | Path, *, nan: NanRule = "raise", modality: str | None = None
                  ) -> Iterator[tuple[Path, Callable[[], Image]]]:
    """(source, read) for every image of a file or folder, in `read_images`' order.

    A folder's own problems (empty, a file of unknown type) raise here; an image's
    when its `read()` is called, so a caller can skip a bad image and go on.
    """
    path = Path(path)
    if not path.is_dir():
        yield path, partial(read_image, path, nan=nan, modality=modality)
        return
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file() and suffix_of(p) not in SIDECAR_SUFFIXES
             and p.name.upper() != "DICOMDIR"]
    folders = [p for p in entries if p.is_dir()]
    if not files and not folders:
        raise ImageError("the folder holds no images", path=path,
                         fix=f"pass a folder with image files ({', '.join(IMAGE_SUFFIXES)}) "
                             "or DICOM series")
    dicoms = [p for p in files if is_dicom(p)]
    for p in files:
        if p not in dicoms and suffix_of(p) not in IMAGE_SUFFIXES:
            raise ImageError(f"a file of unknown type in an image folder "
                             f"({suffix_of(p) or 'no suffix'})", path=p,
                             fix=f"remove it, or give it its format's suffix "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
    if dicoms:
        yield path, lambda: check_finite(
            _with_modality(read_dicom_series(path, files=dicoms), modality), nan)
    for p in files:
        if p not in dicoms:
            yield p, partial(read_image, p, nan=nan, modality=modality)
    for folder in folders:
        yield from image_readers(folder, nan=nan, modality=modality)


def _with_modality(image: Image, modality: str | None) -> Image:
    return image.with_array(image.array, modality=modality.upper()) if modality else image


def check_finite(image: Image, nan: NanRule = "raise") -> Image:
    """NaN / inf voxels: an error naming the file and the count, or (nan="zero")
    set to 0 with the count in `metadata["non_finite_voxels"]`."""
    if image.array.dtype.kind != "f":
        return image
    bad = ~np.isfinite(image.array)
    count = int(bad.sum())
    if not count:
        return image
    if nan == "raise":
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ImageError(f"{count:,} of {image.array.size:,} voxels are NaN or infinite "
                         f"(first at voxel {first})", path=image.source,
                         fix="fix the file, or pass nan='zero' (--set data.nan=zero) to set "
                             "them to 0; the count is reported")
    array = np.where(bad, 0, image.array).astype(image.array.dtype)
    return image.with_array(array, metadata={**image.metadata, "non_finite_voxels": count})


# -- formats ------------------------------------------------------------------------
def read_nifti(path: Path) -> Image:
    import nibabel as nib

    try:
        nifti = nib.load(str(path))
        array = np.asanyarray(nifti.dataobj)  # scl_slope / scl_inter applied by nibabel
    except Exception as exc:  # nibabel raises ImageFileError, EOFError, zlib / gzip errors
        raise ImageError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path=path,
                         fix="check the file is complete (gzip -t FILE.nii.gz) and is NIfTI-1/2"
                         ) from None
    header = nifti.header
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ImageError(f"the NIfTI holds a {array.ndim}D array {array.shape}; biofm reads one "
                         f"2D or 3D volume at a time", path=path,
                         fix="split it first (e.g. nibabel.funcs.four_to_three, or fslsplit)")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    meta: dict[str, Any] = {"patient_space": True,
                            "sform_code": int(header.get("sform_code", 0)),
                            "qform_code": int(header.get("qform_code", 0)),
                            "descrip": _text(header.get("descrip")),
                            "stored_dtype": str(header.get_data_dtype())}
    return Image(np.ascontiguousarray(array), nifti.affine, source=str(path), metadata=meta)


def _text(value: Any) -> str:
    try:
        raw = value.item() if hasattr(value, "item") else value
        return raw.decode(errors="replace").strip("\x00 ") if isinstance(raw, bytes) else str(raw)
    except Exception:
        return ""


def read_raster(path: Path) -> Image:
    """PNG / JPEG / TIFF / BMP via Pillow: (rows, cols[, pages][, 3])."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(path) as im:
            pages = [_raster_page(im, path)]
            for k in range(1, getattr(im, "n_frames", 1)):
                im.seek(k)
                pages.append(_raster_page(im, path))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"not a readable image ({exc})", path=path,
                         fix="check the file is complete and of the format its suffix says"
                         ) from None
    arrays = [a for a, _ in pages]
    color = arrays[0].ndim == 3
    if len(pages) > 1 and any(a.shape != arrays[0].shape for a in arrays):
        raise ImageError("the pages of the TIFF differ in size", path=path,
                         fix="save one image per file")
    array = np.stack(arrays, axis=2) if len(arrays) > 1 else arrays[0]
    meta = {"patient_space": False, "mode": pages[0][1], "pages": len(arrays),
            "bits": int(array.dtype.itemsize * 8)}
    if pages[0][1] in ("RGBA", "LA"):
        meta["alpha_dropped"] = True
    affine = affine_from_spacing((1.0, 1.0, 1.0) if array.ndim - color == 3 else (1.0, 1.0))
    return Image(array, affine, source=str(path), channels=3 if color else 1, metadata=meta)


def _raster_page(im, path: Path) -> tuple[np.ndarray, str]:
    mode = im.mode
    if mode.startswith("I;16"):
        array = np.array(im).astype(np.uint16)  # 16-bit grey: all 16 bits kept
    elif mode == "I":  # 32-bit signed; Pillow's 16-bit PNG mode in some versions
        array = np.array(im)
        if array.min() >= 0 and array.max() < 2**16:
            array = array.astype(np.uint16)
    elif mode in ("L", "F"):
        array = np.array(im)
    elif mode == "1":
        array = np.array(im).astype(np.uint8)
    elif mode == "LA":
        array = np.array(im.convert("L"))
    elif mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        array = np.array(im.convert("RGB"))
        if mode == "P" and np.all(array[..., 0] == array[..., 1]) and \
                np.all(array[..., 1] == array[..., 2]):
            array = array[..., 0]  # a grey palette
    else:
        raise ImageError(f"unsupported image mode {mode!r}", path=path,
                         fix="save it as 8/16-bit grey or RGB PNG / TIFF")
    return np.ascontiguousarray(array), mode


def read_numpy(path: Path) -> Image:
    """.npy: a 2D / 3D grey array on a 1 mm grid without patient space; .npz: an
    "image" array with an optional "affine" (4, 4, then in patient space) or "spacing"."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"not a readable NumPy file ({exc})", path=path,
                         fix="save with numpy.save / numpy.savez (no pickled objects)") from None
    affine, spacing, meta = None, None, {"patient_space": False}
    if isinstance(loaded, np.ndarray):
        array = loaded
    else:
        with loaded:
            keys = list(loaded.keys())
            name = next((k for k in ("image", "array", "arr_0") if k in keys), None)
            if name is None:
                raise ImageError(f"no 'image' array in the .npz (keys: {', '.join(keys)})",
                                 path=path, fix="save it as numpy.savez(path, image=array)")
            array = loaded[name]
            if "affine" in keys:
                affine, meta = np.asarray(loaded["affine"], dtype=np.float64), \
                    {"patient_space": True}
            elif "spacing" in keys:
                spacing = tuple(float(s) for s in loaded["spacing"])
    if array.dtype.kind not in "biuf":
        raise ImageError(f"the array holds {array.dtype} values, not numbers", path=path,
                         fix="save a numeric array")
    if array.ndim not in (2, 3):
        raise ImageError(f"the array is {array.ndim}D {array.shape}; an image is 2D or 3D",
                         path=path, fix="save one grey 2D / 3D image per file")
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if affine is None:
        spacing = spacing or (1.0,) * array.ndim
        if len(spacing) != array.ndim:
            raise ImageError(f"spacing has {len(spacing)} values for a {array.ndim}D image",
                             path=path, fix="give one spacing per axis")
        affine = affine_from_spacing(spacing)
    return Image(np.ascontiguousarray(array), affine, source=str(path), metadata=meta)


def read_inv3(path: Path) -> Image:
    """An InVesalius 3 project (a tar.gz: main.plist + the raw volume matrix.dat).

    The volume is stored (slices, rows, cols); it becomes (cols, rows, slices)
    with the plist's spacing. The project keeps no patient orientation, so the
    affine is the spacing alone (`metadata["patient_space"]` False)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "main.plist" not in members:
                raise ImageError("no main.plist in the InVesalius project", path=path,
                                 fix="pass an .inv3 file saved by InVesalius 3")
            main = plistlib.loads(tar.extractfile(members["main.plist"]).read())
            matrix = main["matrix"]
            raw = tar.extractfile(members[matrix["filename"]]).read()
    except (tarfile.TarError, OSError, KeyError, plistlib.InvalidFileException) as exc:
        raise ImageError(f"not a readable InVesalius project ({type(exc).__name__}: {exc})",
                         path=path, fix="pass an .inv3 file saved by InVesalius 3") from None
    shape, dtype = tuple(int(s) for s in matrix["shape"]), np.dtype(matrix["dtype"])
    if len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise ImageError(f"matrix.dat holds {len(raw):,} bytes, {shape} {dtype} needs "
                         f"{int(np.prod(shape)) * dtype.itemsize:,}", path=path,
                         fix="the project is truncated: copy it again")
    volume = np.frombuffer(raw, dtype=dtype).reshape(shape)  # (slices, rows, cols)
    spacing = tuple(float(s) for s in main.get("spacing", (1.0, 1.0, 1.0)))
    meta = {"patient_space": False, "name": main.get("name", ""),
            "WindowCenter": float(main.get("window_level", 0.0)),
            "WindowWidth": float(main.get("window_width", 0.0)),
            "scalar_range": list(main.get("scalar_range", []))}
    return Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine_from_spacing(spacing),
                 source=str(path), modality=str(main.get("modality", "")), metadata=meta)


__all__ = ["IMAGE_SUFFIXES", "NanRule", "check_finite", "image_readers", "is_dicom",
           "read_image", "read_images", "read_inv3", "read_nifti", "read_numpy", "read_raster",
           "suffix_of"]
