"""Labelled subjects from the packaged atlases, and crops of their axial slices.

Two real T1 MRI subjects carry the AAL atlas (116 regions):

- **Colin27** (`colin27`): one person scanned 27 times (Holmes et al. 1998); the
  AAL atlas was drawn on exactly this brain and ships on its grid (181 x 217 x
  181, 1 mm, RAS), so its labels are native.
- **MNI152 2009c** (`mni152`): the average of 152 brains (Fonov et al. 2011),
  197 x 233 x 189, 1 mm, RAS, in the same MNI world space. AAL labels are
  carried over by world coordinates: both grids are 1 mm RAS, so this is an
  exact integer shift of (8, 9, 1) voxels, no interpolation. It is not a
  registration: the template's anatomy matches Colin27's only as well as two
  MNI-space brains do (the AAL cortical labels sit on voxels with a mean
  grey-matter probability of 0.55 in nilearn's MNI152 map, 0.02 outside).

Intensities are the MR policy of `intensity.py` (percentiles 1 / 99 of the
head) on each subject. Nothing is resampled: crops are cut from the subjects'
own 1 mm axial slices (array axis 2, inferior → superior).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from biofm.modalities.imaging.image import Image, ImageError, same_grid
from biofm.modalities.imaging.intensity import normalise
from biofm.modalities.imaging.locate import atlas_names, atlas_path, volume_path
from biofm.modalities.imaging.readers import read_image

# AAL regions → 7 anatomical groups (by the AAL name's prefix)
LOBES: dict[str, tuple[str, ...]] = {
    "frontal": ("Precentral", "Frontal_", "Rolandic_Oper", "Supp_Motor_Area", "Olfactory",
                "Rectus", "Paracentral_Lobule"),
    "parietal": ("Postcentral", "Parietal_", "SupraMarginal", "Angular", "Precuneus"),
    "temporal": ("Temporal_", "Heschl", "Fusiform"),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital_"),
    "limbic": ("Cingulum_", "Insula", "Hippocampus", "ParaHippocampal", "Amygdala"),
    "deep grey": ("Caudate", "Putamen", "Pallidum", "Thalamus"),
    "cerebellum": ("Cerebelum_", "Vermis_"),
}


@dataclass(frozen=True)
class Subject:
    """A normalised T1 volume with AAL labels on its own grid."""

    name: str
    image: Image  # intensities in [0, 1]
    labels: np.ndarray  # (X, Y, Z) int16 AAL ids, 0 = none
    note: str


def carry_labels(labels: Image, onto: Image) -> tuple[np.ndarray, str]:
    """`labels` looked up at `onto`'s voxel centres by world coordinates (nearest
    voxel; 0 outside). Returns the labels on `onto`'s grid and what was done."""
    to_source = np.linalg.inv(labels.affine) @ onto.affine  # onto index → labels index
    ijk = np.indices(onto.shape).reshape(3, -1)
    src = np.rint(to_source[:3, :3] @ ijk + to_source[:3, 3:]).astype(int)
    inside = np.all((src >= 0) & (src < np.asarray(labels.shape)[:, None]), axis=0)
    out = np.zeros(ijk.shape[1], dtype=np.int16)
    out[inside] = labels.array[tuple(src[:, inside])]
    shift = to_source[:3, 3]
    exact = np.allclose(to_source[:3, :3], np.eye(3)) and np.allclose(shift, np.rint(shift))
    how = (f"an integer shift of {tuple(int(v) for v in np.rint(shift))} voxels "
           "(no interpolation)" if exact else "nearest-neighbour lookup by world coordinates")
    return out.reshape(onto.shape), how


@cache
def subject(name: str) -> Subject:
    """"colin27" (native AAL) or "mni152" (AAL carried over by world coordinates)."""
    aal = read_image(atlas_path("aal"))
    if name == "colin27":
        raw = read_image(volume_path("colin27"), modality="MR")
        same_grid(raw, aal)
        return Subject(name, normalise(raw), aal.array.astype(np.int16),
                       "AAL drawn on this brain (native labels)")
    if name == "mni152":
        raw = read_image(volume_path("mni152"), modality="MR")
        labels, how = carry_labels(aal, raw)
        return Subject(name, normalise(raw), labels,
                       f"AAL carried over from Colin27 by world coordinates: {how}")
    raise ImageError(f"no labelled subject {name!r}", fix="choose colin27 or mni152")


@cache
def lobe_of_label() -> dict[int, int]:
    """AAL id → index into `LOBES` (every one of the 116 regions has a group)."""
    groups = list(LOBES)
    out = {}
    for ident, region in atlas_names("aal").items():
        for k, group in enumerate(groups):
            if region.startswith(LOBES[group]):
                out[ident] = k
                break
        else:  # pragma: no cover (the AAL names are fixed)
            raise ImageError(f"AAL region {region!r} has no group", fix="extend LOBES")
    return out


def crop_origin(center: tuple[int, int], size: int, shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of a `size` x `size` window centred on `center`, kept inside."""
    return tuple(int(min(max(c - size // 2, 0), s - size)) for c, s in zip(center, shape))


def crop(array: np.ndarray, origin: tuple[int, int], size: int) -> np.ndarray:
    return array[origin[0]: origin[0] + size, origin[1]: origin[1] + size]


def brain_slices(sub: Subject) -> np.ndarray:
    """Axial slice indices that hold any label, inferior → superior."""
    return np.flatnonzero(sub.labels.reshape(-1, sub.labels.shape[2]).any(0))


def slab_split(z: np.ndarray, fractions: tuple[float, float], gap_mm: float,
               spacing_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three slabs of consecutive slices (inferior → superior) of the given
    fractions of `z` (the rest last), separated by at least `gap_mm`: every slice
    of a later slab is ≥ gap_mm from every slice of an earlier one."""
    gap = int(np.ceil(gap_mm / spacing_mm))
    n = len(z) - 2 * gap
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return z[:a], z[a + gap: b + gap], z[b + 2 * gap:]


__all__ = ["LOBES", "Subject", "brain_slices", "carry_labels", "crop", "crop_origin",
           "lobe_of_label", "slab_split", "subject"]
