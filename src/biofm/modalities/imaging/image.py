"""The typed record of one image: voxels + where they are in the world + what they are.

    image = read_image("ch2.nii.gz")
    image.array.shape, image.spacing, image.orientation   # (181, 217, 181), (1.0, 1.0, 1.0), "RAS"

Conventions (the same for every reader, so masks go back into the input's space):

- `array` holds the voxels in the file's own order, never reoriented or
  resampled: spatial axes first ((X, Y) or (X, Y, Z) in the affine's voxel
  index order), then a last channel axis only when `channels > 1` (RGB).
  NIfTI arrays are as nibabel gives them; DICOM slices are (columns, rows[,
  slices]) as dcm2niix and nibabel order them; a 2D raster (PNG / JPEG /
  TIFF) is (rows, columns).
- `affine` (4, 4) maps voxel indices (i, j, k, 1) to world millimetres in
  RAS+ (NIfTI's convention; DICOM's LPS is converted). A 2D array gets a 4x4
  affine over (i, j) with k unused. Photographs without a patient space get
  the identity scaled by their pixel spacing (1 when unknown).
- `spacing` is the voxel size along each spatial axis in mm (the affine's
  column norms); `metadata` keeps what the file says (DICOM patient / study /
  series fields, rescale slope / intercept, window, NIfTI header codes);
  `modality` is "CT", "MR", "US", … as the file says, or "" when unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biofm.errors import BiofmError


class ImageError(BiofmError):
    """A problem with an image file or folder (names the file and the fix)."""


@dataclass(frozen=True)
class Image:
    """One 2D or 3D image (see the module docstring for the conventions)."""

    array: np.ndarray
    affine: np.ndarray
    source: str = ""
    modality: str = ""
    channels: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ImageError(f"the affine is {affine.shape}, expected (4, 4)", path=self.source,
                             fix="give a 4x4 voxel-to-world matrix")
        object.__setattr__(self, "affine", affine)
        if self.ndim not in (2, 3):
            raise ImageError(f"an image has 2 or 3 spatial axes, this one has {self.ndim} "
                             f"(array {self.array.shape}, {self.channels} channel(s))",
                             path=self.source,
                             fix="pass one volume (split 4D series into 3D volumes first)")

    @property
    def ndim(self) -> int:
        """Spatial dimensions (2 or 3)."""
        return self.array.ndim - (self.channels > 1)

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape."""
        return tuple(self.array.shape[: self.ndim])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis (the affine's column norms)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, : self.ndim], axis=0))

    @property
    def orientation(self) -> str:
        """Axis codes of the voxel axes, e.g. "RAS" or "LPS" ("" for 2D rasters)."""
        if self.ndim == 2 and not self.metadata.get("patient_space"):
            return ""
        import nibabel as nib

        codes = nib.aff2axcodes(self.affine)
        return "".join(c or "?" for c in codes[: self.ndim])

    def channels_first(self) -> np.ndarray:
        """(C, *spatial) float32: what a model takes."""
        data = self.array.astype(np.float32, copy=False)
        if self.channels > 1:
            return np.moveaxis(data, -1, 0)
        return data[None]

    def with_array(self, array: np.ndarray, **changes: Any) -> Image:
        """The same image with other voxel values (same grid)."""
        values = {"array": array, "affine": self.affine, "source": self.source,
                  "modality": self.modality, "channels": self.channels,
                  "metadata": dict(self.metadata)}
        values.update(changes)
        return Image(**values)


def same_grid(a: Image, b: Image, *, tolerance: float = 1e-3) -> None:
    """Raise unless `b` lies on `a`'s voxel grid (same spatial shape and affine):
    masks and images are paired voxel by voxel, never resampled silently."""
    if a.shape != b.shape:
        raise ImageError(f"the shape {b.shape} differs from the image's {a.shape} "
                         f"({a.source})", path=b.source,
                         fix="give a mask on the image's own grid, or resample it explicitly "
                             "(e.g. nilearn.image.resample_to_img(mask, image, "
                             "interpolation='nearest')); biofm does not resample silently")
    gap = float(np.abs(a.affine - b.affine).max())
    if gap > tolerance:
        raise ImageError(f"the affine differs from the image's ({a.source}) by up to "
                         f"{gap:.3g} mm: same shape, but the voxels are elsewhere in space",
                         path=b.source,
                         fix="pair files written on the same grid, or resample one onto the "
                             "other explicitly; biofm does not reorient or resample silently")


def affine_from_spacing(spacing: tuple[float, ...]) -> np.ndarray:
    """A diagonal 4x4 affine for `spacing` (2 or 3 values)."""
    affine = np.eye(4)
    for i, s in enumerate(spacing):
        affine[i, i] = float(s)
    return affine


__all__ = ["Image", "ImageError", "affine_from_spacing", "same_grid"]
