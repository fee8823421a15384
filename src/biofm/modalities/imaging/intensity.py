"""Intensity policies: real voxel values → model inputs in [0, 1], per modality.

Models see intensities on one scale whatever the scanner wrote. The policy is
chosen by name (`normalise(image, "auto")`), saved with what is trained on it,
and never changes the grid.

- `ct` / `ct:NAME`: a Hounsfield window, `(HU - (level - width/2)) / width`
  clipped to [0, 1]; NAME one of `CT_WINDOWS` (default `soft-tissue`, level 40,
  width 400). HU are absolute, so a window keeps the contrast radiologists read
  and is the same on every scanner.
- `dicom-window`: the file's own Window Center / Width (DICOM, InVesalius),
  else `ct`: the window the acquisition chose.
- `mr`: percentiles 1 and 99 of the foreground (voxels > 0; all voxels when
  fewer than 1% are > 0) → 0 and 1, clipped. MR intensities are arbitrary
  units that differ per scanner and sequence; percentiles ignore a few hot
  voxels and the empty background.
- `percentile`: percentiles 0.5 and 99.5 of all pixels → 0 and 1, clipped;
  MONOCHROME1 (the X-ray film convention) inverted. For projection X-ray,
  ultrasound, photographs and unknown sources.
- `none`: values as they are (float32), for inputs already normalised.

`auto` picks by `Image.modality`: CT → `dicom-window` when the file carries a
window, else `ct`; MR → `mr`; everything else → `percentile`. NIfTI files say
nothing about their modality: pass `modality="MR"` / `"CT"` to the reader, or
a policy by name; an unknown modality gets `percentile`, which is the `mr`
rule without the foreground mask. RGB images scale each channel by the same
rule (8-bit: / 255).
"""

from __future__ import annotations

import numpy as np

from biofm.modalities.imaging.image import Image, ImageError

# (level, width) in Hounsfield units: the usual radiology presets
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "soft-tissue": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
}
POLICIES = ("auto", "ct", "dicom-window", "mr", "percentile", "none")


def window(values: np.ndarray, level: float, width: float) -> np.ndarray:
    """(values - (level - width / 2)) / width, clipped to [0, 1], float32."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = level - width / 2.0
    return np.clip((np.asarray(values, dtype=np.float32) - low) / width, 0.0, 1.0)


def percentile_scale(values: np.ndarray, low: float = 1.0, high: float = 99.0,
                     foreground: bool = False) -> np.ndarray:
    """Map the `low` / `high` percentiles to 0 / 1, clipped; with `foreground`, the
    percentiles come from voxels > 0 only (MR background is empty)."""
    values = np.asarray(values, dtype=np.float32)
    sample = values
    if foreground:
        positive = values[values > 0]
        if positive.size >= 0.01 * values.size:
            sample = positive
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:  # a constant image
        return np.zeros_like(values)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def resolve_policy(image: Image, policy: str = "auto") -> str:
    """The concrete policy `auto` means for this image (see the module table)."""
    name = policy.split(":", 1)[0]
    if name not in POLICIES:
        raise ImageError(f"unknown intensity policy {policy!r}",
                         fix=f"choose one of: {', '.join(POLICIES)} (ct:WINDOW with WINDOW in "
                             f"{', '.join(CT_WINDOWS)})")
    if name != "auto":
        return policy
    modality = image.modality.upper()
    if modality == "CT":
        has_window = image.metadata.get("WindowWidth", 0) and "WindowCenter" in image.metadata
        return "dicom-window" if has_window else "ct"
    if modality == "MR":
        return "mr"
    return "percentile"


def normalise(image: Image, policy: str = "auto") -> Image:
    """The image with intensities in [0, 1] by `policy` (float32, same grid)."""
    chosen = resolve_policy(image, policy)
    name, _, option = chosen.partition(":")
    values = image.array
    if name == "none":
        out = values.astype(np.float32)
    elif name == "ct" or (name == "dicom-window" and not image.metadata.get("WindowWidth")):
        preset = option or "soft-tissue"
        if preset not in CT_WINDOWS:
            raise ImageError(f"unknown CT window {preset!r}",
                             fix=f"choose one of: {', '.join(CT_WINDOWS)}")
        out = window(values, *CT_WINDOWS[preset])
    elif name == "dicom-window":
        out = window(values, float(image.metadata["WindowCenter"]),
                     float(image.metadata["WindowWidth"]))
    elif image.channels > 1 and values.dtype == np.uint8:
        out = values.astype(np.float32) / 255.0
    elif name == "mr":
        out = percentile_scale(values, 1.0, 99.0, foreground=True)
    else:
        out = percentile_scale(values, 0.5, 99.5)
        if image.metadata.get("PhotometricInterpretation") == "MONOCHROME1":
            out = 1.0 - out
    return image.with_array(out.astype(np.float32),
                            metadata={**image.metadata, "intensity_policy": chosen})


__all__ = ["CT_WINDOWS", "POLICIES", "normalise", "percentile_scale", "resolve_policy", "window"]
