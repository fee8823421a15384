"""`biofm segment`: a saved segmenter + a volume (+ a box) → a NIfTI mask in the
input's space.

    segment("runs/seg", "head.nii.gz", "mask.nii.gz", box="60,80,100,120,70,90")

The box is in voxel indices of the input's own array (as `nibabel` / `biofm`
read it, end-exclusive): "i0,j0,i1,j1" frames a structure on every slice along
the last axis, "i0,j0,k0,i1,j1,k1" on slices k0..k1-1 only. Each slice is
scaled by the segmenter's intensity policy, a window of the segmenter's crop
size is cut around the box (the crop slides to stay inside the slice), the
mask is predicted there and pasted back; everything outside is 0. The mask has
the input's shape and affine (`writers.write_mask`). A 2D input is one slice.
Nothing is resampled: the input's voxels should be about the size the model
was trained on (1 mm for the atlas tasks), and a box larger than the crop is
an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biofm.errors import BiofmError
from biofm.io import check_new_output
from biofm.modalities.imaging.atlas import crop_origin
from biofm.modalities.imaging.image import Image
from biofm.modalities.imaging.intensity import normalise
from biofm.modalities.imaging.readers import read_image
from biofm.modalities.imaging.segmentation import load_segmenter, predict_masks
from biofm.modalities.imaging.tasks import prompt_channels
from biofm.modalities.imaging.writers import write_mask


def parse_box(text: str, image: Image) -> tuple[tuple[int, int, int, int], range]:
    """((i0, j0, i1, j1), slices) of a --box value, checked against the image."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    depth = image.shape[2] if image.ndim == 3 else 1
    if len(values) == 4:
        (i0, j0, i1, j1), (k0, k1) = values, (0, depth)
    elif len(values) == 6 and image.ndim == 3:
        i0, j0, k0, i1, j1, k1 = values
    else:
        raise BiofmError(f"--box {text!r} is not 4 integers i0,j0,i1,j1 (or 6, "
                         f"i0,j0,k0,i1,j1,k1, for a 3D image)", path=image.source,
                         fix="give voxel indices of the image's array, end-exclusive")
    limits = (*image.shape[:2], depth)
    for low, high, size, axis in ((i0, i1, limits[0], "i"), (j0, j1, limits[1], "j"),
                                  (k0, k1, limits[2], "k")):
        if not 0 <= low < high <= size:
            raise BiofmError(f"--box {text!r}: {axis} range {low}..{high} is outside the image "
                             f"(0..{size}) or empty", path=image.source,
                             fix=f"choose {axis}0 < {axis}1 within the image's shape "
                                 f"{image.shape}")
    return (i0, j0, i1, j1), range(k0, k1)


def segment(model_dir: str | Path, input: str | Path, output: str | Path, *,
            box: str | None = None, overwrite: bool = False, device: str = "auto"
            ) -> np.ndarray:
    """Predict the mask of the boxed structure and write it (see the module docstring)."""
    from biofm.device import resolve_device

    if box is None:
        raise BiofmError("a promptable segmenter needs a box around the structure",
                         fix="pass --box i0,j0,i1,j1 (every slice) or i0,j0,k0,i1,j1,k1")
    check_new_output(output, overwrite)
    model, info = load_segmenter(model_dir)
    model.to(resolve_device(device))
    image = read_image(input)
    if image.channels != 1:
        raise BiofmError(f"the segmenter takes grey images; this one has {image.channels} "
                         "channels", path=input, fix="convert it to grey first")
    (i0, j0, i1, j1), slices = parse_box(box, image)
    size = int(info["crop"][0])
    if i1 - i0 > size or j1 - j0 > size:
        raise BiofmError(f"the box is {i1 - i0} x {j1 - j0} voxels, larger than the "
                         f"segmenter's {size} x {size} field of view", path=input,
                         fix="segment a smaller structure, or train on larger crops")
    scaled = normalise(image, info.get("intensity_policy", "auto")).array
    volume = scaled if image.ndim == 3 else scaled[..., None]
    if min(volume.shape[:2]) < size:
        raise BiofmError(f"the slices are {volume.shape[:2]}, smaller than the segmenter's "
                         f"{size} x {size} crop", path=input, fix="pad the image first")
    origin = crop_origin(((i0 + i1) // 2, (j0 + j1) // 2), size, volume.shape[:2])
    local = np.array([[i0 - origin[0], j0 - origin[1], i1 - origin[0], j1 - origin[1]]])
    crops = np.stack([volume[origin[0]: origin[0] + size, origin[1]: origin[1] + size, k]
                      for k in slices])[:, None].astype(np.float32)
    prompts = np.repeat(prompt_channels(local, (size, size),
                                        np.array([[(i0 + i1) // 2 - origin[0],
                                                   (j0 + j1) // 2 - origin[1]]])
                                        if info.get("point") else None), len(crops), axis=0)
    predicted = predict_masks(model, crops, prompts)
    mask = np.zeros(volume.shape, dtype=np.uint8)
    for n, k in enumerate(slices):
        mask[origin[0]: origin[0] + size, origin[1]: origin[1] + size, k] = predicted[n]
    mask = mask if image.ndim == 3 else mask[..., 0]
    write_mask(mask, image, output)
    return mask


__all__ = ["parse_box", "segment"]
