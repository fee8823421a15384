"""Pretraining data for image models: tiles of real volumes and images, cut to the
ViT's input size, never resampled.

`biofm pretrain --config imaging-mae-tiny --set data.input=atlas-slices` reads the
volumes named by `data.input` (packaged corpora below, or image files / folders,
several joined by commas), scales their intensities by the modality's policy
(`intensity.py`, "auto"), and cuts each into tiles of `backbone.image_size`,
half a tile apart:

- a 2D ViT takes 2D tiles from the slices along a volume's last axis (axial
  for RAS NIfTI, the acquisition plane for DICOM series), every `SLICE_STEP`-th
  slice; a 2D image gives its own tiles;
- a 3D ViT takes 3D blocks;
- a tile is kept when at least `MIN_FOREGROUND` of it is above 5% of the
  intensity range (air and empty background carry nothing to reconstruct);
- grey images go to a 1-channel model; RGB to a 3-channel one (grey images are
  repeated into 3 channels for a 3-channel model, and said so);
- validation: the tiles of the central `data.valid_fraction` of each volume's
  slices (a slab, so no validation tile overlaps a training one).

Packaged corpora (installed by `make data`; `locate.py`):

| name | volumes |
|---|---|
| `colin27-slices` | Colin27 T1, 1 mm |
| `atlas-slices` | Colin27 T1 1 mm, INIA19 macaque T1 0.5 mm, InVesalius head CT (its window) |

MNI152 is in neither: it is the unseen test subject of the imaging tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console

from biofm.config import PretrainConfig
from biofm.data.collate import ValuedSequence
from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.modalities.imaging.image import Image
from biofm.modalities.imaging.intensity import normalise
from biofm.modalities.imaging.locate import volume_path
from biofm.modalities.imaging.readers import read_image, read_images
from biofm.registry import CORPORA

SLICE_STEP = 2
MIN_FOREGROUND = 0.25
PRETRAIN_CORPORA: dict[str, tuple[tuple[str, str | None], ...]] = {
    "colin27-slices": (("colin27", "MR"),),
    "atlas-slices": (("colin27", "MR"), ("macaque", "MR"), ("head-ct", None)),
}
console = Console(stderr=True)


def _corpus(name: str) -> Callable[[], list[Record]]:
    def records() -> list[Record]:
        images = [read_image(volume_path(v), modality=m) for v, m in PRETRAIN_CORPORA[name]]
        return [Record(Path(i.source).name, i, i.source) for i in images]
    records.__name__ = name.replace("-", "_")
    return records


for _name in PRETRAIN_CORPORA:  # listed by `biofm list`; records = the volumes
    CORPORA.register(_name)(_corpus(_name))


def load_volumes(spec: str) -> list[Image]:
    """The normalised images named by `spec` (corpora and / or paths, comma-separated)."""
    names = [spec] if Path(spec).exists() else [s.strip() for s in spec.split(",") if s.strip()]
    images: list[Image] = []
    for name in names:
        if name in PRETRAIN_CORPORA:
            images += [read_image(volume_path(v), modality=m) for v, m in PRETRAIN_CORPORA[name]]
        elif Path(name).exists():
            images += list(read_images(name))
        else:
            raise BiofmError(f"{name!r} is neither an image file / folder nor an imaging corpus",
                             path=name, fix="pass image paths or one of: "
                                            + ", ".join(PRETRAIN_CORPORA))
    for image in images:
        if image.metadata.get("non_finite_voxels"):
            console.print(f"{image.source}: {image.metadata['non_finite_voxels']:,} NaN / "
                          "infinite voxels set to 0", markup=False, highlight=False)
    return [normalise(image) for image in images]


def tiles(image: Image, size: tuple[int, ...], channels: int, slice_step: int = SLICE_STEP,
          min_foreground: float = MIN_FOREGROUND) -> tuple[list[np.ndarray], list[int]]:
    """(C, *size) float32 tiles of `image` with at least `min_foreground` of their
    pixels above 0.05, and the slice index each comes from."""
    data = _channels(image, channels)  # (C, *spatial)
    spatial = data.shape[1:]
    if len(size) == 2 and len(spatial) == 3:
        planes = [(data[..., z], z) for z in range(0, spatial[2], slice_step)]
    elif len(size) == len(spatial):
        planes = [(data, 0)]
    else:
        raise BiofmError(f"a {len(size)}D model cannot take tiles of a {len(spatial)}D image",
                         path=image.source, fix="pretrain a 2D ViT on 2D images")
    out, where = [], []
    for plane, z in planes:
        starts = [range(0, s - t + 1, max(1, t // 2)) for s, t in zip(plane.shape[1:], size)]
        for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(size)):
            block = plane[(slice(None), *[slice(c, c + t) for c, t in zip(corner, size)])]
            if (block.max(0) > 0.05).mean() >= min_foreground:
                out.append(np.ascontiguousarray(block, dtype=np.float32))
                where.append(int(z))
    return out, where


def _channels(image: Image, channels: int) -> np.ndarray:
    data = image.channels_first()
    if data.shape[0] == channels:
        return data
    if data.shape[0] == 1:
        return np.repeat(data, channels, axis=0)
    raise BiofmError(f"the image has {data.shape[0]} channels, the model takes {channels}",
                     path=image.source,
                     fix="convert the images to grey, or use a model with as many channels")


def split_tiles(image: Image, size: tuple[int, ...], channels: int, valid_fraction: float
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, valid) tiles of one image: valid = the central `valid_fraction` of its
    slices (where the anatomy is; the end slices of a head are mostly air)."""
    found, where = tiles(image, size, channels)
    depth = image.shape[-1] if image.ndim == 3 and len(size) == 2 else 1
    width = math.ceil(valid_fraction * depth) if depth > 1 and valid_fraction else 0
    low = (depth - width) // 2
    held = [low <= z < low + width for z in where]
    train = [t for t, h in zip(found, held) if not h]
    valid = [t for t, h in zip(found, held) if h]
    return train, valid


def imaging_run_data(config: PretrainConfig, new_model: Callable
                     ) -> tuple[object, list[ValuedSequence], list[ValuedSequence] | None]:
    """The model and the train / valid tiles of a `biofm pretrain` run."""
    from biofm.modalities.imaging.modality import image_tokenizer_for

    model = new_model(lambda: image_tokenizer_for(config.backbone))
    tokenizer = model.tokenizer
    size, channels = tuple(tokenizer.image_size), tokenizer.channels
    if config.train.packing:
        raise BiofmError("image tiles are not packed (every tile has the same length)",
                         fix="pass --set train.packing=false")
    train: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    for image in load_volumes(config.data.input):
        t, v = split_tiles(image, size, channels, config.data.valid_fraction)
        train += t
        valid += v
    if config.data.max_records and len(train) > config.data.max_records:
        keep = np.random.default_rng(config.train.seed).choice(len(train),
                                                               config.data.max_records,
                                                               replace=False)
        train = [train[i] for i in np.sort(keep)]
    if not train:
        raise BiofmError(f"no tile of {size} has enough foreground to pretrain on",
                         path=config.data.input,
                         fix="give larger images, or a smaller backbone.image_size")
    encode = tokenizer.encode_image
    return model, [encode(t) for t in train], [encode(v) for v in valid] or None


__all__ = ["PRETRAIN_CORPORA", "imaging_run_data", "load_volumes", "split_tiles", "tiles"]
