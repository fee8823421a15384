"""Masks back into the input's space: a NIfTI with the input's shape and affine.

    write_mask(mask, like=image, path="mask.nii.gz")

The mask must have the image's spatial shape (it is never resampled); it is
written as uint8 with the image's affine (sform and qform, code 1 = scanner /
aligned space for files with a patient space, 0 otherwise), atomically (a temp
file beside the output, then renamed). `.nii` and `.nii.gz` are accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biofm.io import atomic_path
from biofm.modalities.imaging.image import Image, ImageError


def write_mask(mask: np.ndarray, like: Image, path: str | Path) -> Path:
    import nibabel as nib

    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ImageError("a mask is written as NIfTI", path=path,
                         fix="name the output .nii.gz (or .nii)")
    mask = np.asarray(mask)
    if mask.shape != like.shape:
        raise ImageError(f"the mask is {mask.shape}, the image it belongs to is {like.shape}",
                         path=like.source, fix="predict the mask on the image's own grid")
    image = nib.Nifti1Image(mask.astype(np.uint8), like.affine)
    code = 1 if like.metadata.get("patient_space", True) else 0
    image.set_sform(like.affine, code=code)
    image.set_qform(like.affine, code=code)
    image.header["descrip"] = b"biofm mask"
    suffix = ".nii.gz" if name.endswith(".gz") else ".nii"
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + suffix)  # nibabel picks gzip by the suffix
        try:
            nib.save(image, str(target))
            target.replace(tmp)
        finally:
            if target.exists():
                target.unlink()
    return path


__all__ = ["write_mask"]
