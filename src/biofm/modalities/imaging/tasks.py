"""Imaging tasks on the real atlases (see `atlas.py` for the subjects).

**brain-region-patch** (classification, 7 classes): a 64 x 64 mm axial patch of a
T1 MRI → the anatomical group (`atlas.LOBES`: frontal, parietal, temporal,
occipital, limbic, deep grey, cerebellum) of the AAL region at its centre:
anatomical localisation from local context, which no single intensity gives.
Train and valid: Colin27 (valid a slab ≥ 10 mm from every training slice);
test: MNI152 2009c, a subject (the average of 152) never seen in training,
nor in pretraining on the `atlas-slices` corpus. Balanced per class.

**brain-box-seg** (promptable segmentation, MedSAM-style): (64 x 64 crop of an
axial slice, box around one AAL structure with a few pixels of jitter, mask of
that structure) triples; the structure is the largest connected piece of one
AAL region in the slice, at least `MIN_AREA` pixels, small enough that its box
fits in the crop with a margin. Train / valid: Colin27 (valid a slab ≥ 10 mm
from training); test: MNI152 ("subject" split). **brain-box-seg-slab**: the same
triples from Colin27 only, the test slab ≥ 10 mm from every training and
validation slice ("slab" split), for labels native to the test subject.

Examples are drawn with a fixed generator (seed 0), so every transfer seed sees
the same data; seeds change the training only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from biofm.data.tasks import Split, Splits, Task
from biofm.modalities.imaging.atlas import (
    LOBES,
    Subject,
    brain_slices,
    crop,
    crop_origin,
    lobe_of_label,
    slab_split,
    subject,
)
from biofm.registry import TASKS

SIZE = 64  # crop side in voxels (1 mm): the imaging-mae-tiny ViT's input
GAP_MM = 10.0  # between slabs of one subject
MIN_AREA = 30  # pixels of a structure in its slice
MARGIN = 4  # pixels between a structure's box and the crop's edge
JITTER = 3  # box sides move by up to this many pixels (MedSAM's box perturbation)
SOURCE = ("Colin27 T1 + AAL atlas (Debian mricron-data; Holmes 1998, Tzourio-Mazoyer 2002); "
          "MNI152 2009c T1 (nilearn 0.14.1; Fonov 2011)")


# -- classification: which part of the brain is this patch from? -------------------------
def _patches(sub: Subject, z_allowed: np.ndarray, per_class: int,
             rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    groups = lobe_of_label()
    lobe = np.full(sub.labels.shape, -1, dtype=np.int8)
    for ident, k in groups.items():
        lobe[sub.labels == ident] = k
    allowed = np.zeros(sub.labels.shape[2], bool)
    allowed[z_allowed] = True
    shape = sub.labels.shape[:2]
    inputs, labels, ids = [], [], []
    for k in range(len(LOBES)):
        voxels = np.argwhere(lobe == k)
        voxels = voxels[allowed[voxels[:, 2]]]
        if not len(voxels):
            continue
        for x, y, z in voxels[rng.choice(len(voxels), min(per_class, len(voxels)),
                                         replace=False)]:
            origin = crop_origin((x, y), SIZE, shape)
            inputs.append(crop(sub.image.array[:, :, z], origin, SIZE)[None].astype(np.float32))
            labels.append(k)
            ids.append(f"{sub.name}:x{x}y{y}z{z}")
    return inputs, np.asarray(labels, dtype=np.int64), ids


@lru_cache(maxsize=4)
def region_patch_splits(per_class: int = 120) -> Splits:
    """Colin27 train (`per_class` per group) / valid slab; MNI152 test (per_class / 2)."""
    rng = np.random.default_rng(0)
    colin = subject("colin27")
    z = brain_slices(colin)
    valid_slab = z[int(0.55 * len(z)): int(0.55 * len(z)) + 12]
    far = np.abs(z[:, None] - valid_slab[None]).min(1) > GAP_MM
    train = Split(*_reorder(_patches(colin, z[far], per_class, rng)))
    valid = Split(*_reorder(_patches(colin, valid_slab, per_class // 4, rng)))
    mni = subject("mni152")
    test = Split(*_reorder(_patches(mni, brain_slices(mni), per_class // 2, rng)))
    return Splits(train, valid, test)


def _reorder(parts: tuple[list, np.ndarray, list]) -> tuple[list, list, np.ndarray]:
    inputs, labels, ids = parts
    return ids, inputs, labels


@TASKS.register("brain-region-patch")
def brain_region_patch() -> Task:
    return Task(name="brain-region-patch", modality="imaging", kind="classification",
                load=lambda seed: region_patch_splits(), split="subject",
                source=SOURCE, classes=tuple(LOBES),
                description="64 mm axial T1 patch -> AAL anatomical group at its centre "
                            "(7 classes); train Colin27, test MNI152 (unseen subject)")


# -- promptable segmentation -------------------------------------------------------------
@dataclass
class PromptedCrops:
    """(crop, box, mask) triples: images (N, 1, S, S) float32 in [0, 1]; boxes (N, 4)
    (row0, col0, row1, col1), end-exclusive, in crop pixels; masks (N, S, S) bool;
    points (N, 2) a pixel inside each structure (its deepest one); where each came from."""

    images: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray
    points: np.ndarray
    ids: list[str] = field(default_factory=list)
    spacing: tuple[float, float] = (1.0, 1.0)

    def __len__(self) -> int:
        return len(self.images)

    def prompts(self, point: bool = False) -> np.ndarray:
        """(N, 1 or 2, S, S) float32: the filled box [+ a 5-pixel disk at the point]."""
        return prompt_channels(self.boxes, self.images.shape[-2:],
                               self.points if point else None)

    def subset(self, index) -> PromptedCrops:
        index = np.asarray(index, dtype=int)
        return PromptedCrops(self.images[index], self.boxes[index], self.masks[index],
                             self.points[index], [self.ids[i] for i in index], self.spacing)


def prompt_channels(boxes: np.ndarray, shape: tuple[int, int],
                    points: np.ndarray | None = None) -> np.ndarray:
    """Boxes (N, 4) → (N, 1, H, W) filled boxes; with points (N, 2), a second channel
    holding a disk of radius 2 around each point."""
    n = len(boxes)
    out = np.zeros((n, 1 if points is None else 2, *shape), dtype=np.float32)
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None]
    for i, (r0, c0, r1, c1) in enumerate(np.asarray(boxes, dtype=int)):
        out[i, 0, r0:r1, c0:c1] = 1.0
        if points is not None:
            r, c = points[i]
            out[i, 1] = ((rows - r) ** 2 + (cols - c) ** 2 <= 4).astype(np.float32)
    return out


def _structures(sub: Subject, z: int, rng: np.random.Generator, per_slice: int):
    """Up to `per_slice` structures of slice z: (mask (X, Y) bool, label id)."""
    from scipy import ndimage

    labels = sub.labels[:, :, z]
    found = []
    for ident in np.unique(labels[labels > 0]):
        parts, n = ndimage.label(labels == ident)
        if not n:
            continue
        sizes = np.bincount(parts.ravel())[1:]
        biggest = int(np.argmax(sizes)) + 1
        if sizes[biggest - 1] < MIN_AREA:
            continue
        mask = parts == biggest
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows[-1] - rows[0] + 1 > SIZE - 2 * MARGIN or cols[-1] - cols[0] + 1 > SIZE - 2 * MARGIN:
            continue
        found.append((mask, int(ident)))
    if len(found) > per_slice:
        found = [found[i] for i in sorted(rng.choice(len(found), per_slice, replace=False))]
    return found


def prompted_crops(sub: Subject, slices: np.ndarray, per_slice: int,
                   rng: np.random.Generator) -> PromptedCrops:
    """Triples from the axial `slices` of `sub` (see the module docstring)."""
    from scipy import ndimage

    images, boxes, masks, points, ids = [], [], [], [], []
    for z in slices:
        for mask, ident in _structures(sub, int(z), rng, per_slice):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            center = ((rows[0] + rows[-1]) // 2, (cols[0] + cols[-1]) // 2)
            origin = crop_origin(center, SIZE, mask.shape)
            local = crop(mask, origin, SIZE)
            box = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]) - np.tile(origin, 2)
            box = np.clip(box + rng.integers(-JITTER, JITTER + 1, 4), 0, SIZE)
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            depth = ndimage.distance_transform_edt(local)
            images.append(crop(sub.image.array[:, :, z], origin, SIZE)[None])
            boxes.append(box)
            masks.append(local)
            points.append(np.unravel_index(int(np.argmax(depth)), local.shape))
            ids.append(f"{sub.name}:z{int(z)}:aal{ident}")
    spacing = tuple(float(s) for s in sub.image.spacing[:2])
    return PromptedCrops(np.asarray(images, dtype=np.float32), np.asarray(boxes, dtype=np.int64),
                         np.asarray(masks, dtype=bool), np.asarray(points, dtype=np.int64), ids,
                         spacing)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SegmentationTask:
    """A promptable segmentation task: `load()` gives train / valid / test triples."""

    name: str
    split: str  # "subject" (test on an unseen subject) or "slab" (≥ 10 mm away)
    description: str
    load: Callable[[], tuple[PromptedCrops, PromptedCrops, PromptedCrops]]
    source: str = SOURCE


@lru_cache(maxsize=4)
def box_seg_splits(split: str = "subject", per_slice: int = 6, step: int = 2
                   ) -> tuple[PromptedCrops, PromptedCrops, PromptedCrops]:
    """Colin27 slices every `step` mm, up to `per_slice` structures each (train / valid /
    [slab: test]); subject split: MNI152 test slices every `2 * step` mm."""
    rng = np.random.default_rng(0)
    colin = subject("colin27")
    z = brain_slices(colin)
    if split == "slab":
        train_z, valid_z, test_z = slab_split(z, (0.6, 0.15), GAP_MM, colin.image.spacing[2])
        test = prompted_crops(colin, test_z[::step], per_slice, rng)
    else:
        train_z, valid_z, _ = slab_split(z, (0.8, 0.2), GAP_MM, colin.image.spacing[2])
        mni = subject("mni152")
        test = prompted_crops(mni, brain_slices(mni)[::2 * step], per_slice, rng)
    return (prompted_crops(colin, train_z[::step], per_slice, rng),
            prompted_crops(colin, valid_z[::step], per_slice, rng), test)


SEGMENTATION_TASKS: dict[str, SegmentationTask] = {
    "brain-box-seg": SegmentationTask(
        "brain-box-seg", "subject",
        "box-prompted AAL structure in a 64 mm axial T1 crop; train Colin27, test MNI152 "
        "(a subject never seen in pretraining or training)",
        lambda: box_seg_splits("subject")),
    "brain-box-seg-slab": SegmentationTask(
        "brain-box-seg-slab", "slab",
        "box-prompted AAL structure; Colin27 only, test slab >= 10 mm from every training "
        "and validation slice", lambda: box_seg_splits("slab")),
}


# `biofm compare` modes -> segmenter modes (a frozen encoder is segmentation's probe)
COMPARE_MODES = {"scratch": "scratch", "probe": "frozen", "full": "full", "lora": "lora"}


def _segmentation_compare(model, task: Task, *, seeds: int, modes, quick: bool = False,
                          say=None, device: str = "auto", max_train: int = 0,
                          intervals: bool = False):
    """`biofm compare` on a segmentation task: the filled box and a MONAI UNet from
    scratch (the baselines), then UNETR on the model for each transfer mode;
    `max_train` caps the training crops, `intervals` adds bootstrap intervals of Dice
    and HD95."""
    from biofm.modalities.imaging.segmentation import compare_segmenters

    chosen = tuple(COMPARE_MODES[m] for m in modes) + ("unet",)
    return compare_segmenters(model, task.name, seeds, modes=chosen, quick=quick, say=say,
                              device=device, max_train=max_train, intervals=intervals)


def _segmentation_entry(name: str) -> Callable[[], Task]:
    def entry() -> Task:
        seg = SEGMENTATION_TASKS[name]

        def load(seed: int) -> Splits:
            from biofm.errors import BiofmError

            raise BiofmError(f"{name!r} is a box-prompted segmentation task: its examples are "
                             "(image, box, mask) crops, not labeled inputs",
                             fix=f"compare segmenters with `biofm compare --model DIR --task "
                                 f"{name}`; apply one with `biofm segment`")

        return Task(name=name, modality="imaging", kind="segmentation", load=load,
                    split=seg.split, source=seg.source, description=seg.description,
                    compare=_segmentation_compare)

    return entry


for _name in ("brain-box-seg", "brain-box-seg-slab"):
    TASKS.register(_name)(_segmentation_entry(_name))


def segmentation_task(name: str) -> SegmentationTask:
    from biofm.errors import BiofmError

    if name not in SEGMENTATION_TASKS:
        raise BiofmError(f"unknown segmentation task {name!r}",
                         fix=f"choose one of: {', '.join(SEGMENTATION_TASKS)}")
    return SEGMENTATION_TASKS[name]


__all__ = [
    "GAP_MM",
    "SEGMENTATION_TASKS",
    "SIZE",
    "PromptedCrops",
    "SegmentationTask",
    "box_seg_splits",
    "brain_region_patch",
    "prompt_channels",
    "prompted_crops",
    "region_patch_splits",
    "segmentation_task",
]
