"""The "imaging" modality: images are read as typed `Image` records, never as text.

Hooks (see `biofm.modalities.base`):

- `read` yields one `Record` per image of a file or folder (data = the `Image`);
- `pretraining_data`: tiles of real volumes cut to the ViT's size (`pretraining.py`);
- labeled CSVs name an image file per row (column "image", paths relative to the
  CSV): each is read, scaled by the "auto" intensity policy and given to the
  model as (C, *spatial), which must be the model's input size (nothing is
  resized silently);
- `predict` takes an image, a folder of images or such a CSV (inputs of the
  model's size);
- `embed_file`: one row per image; an image larger than the model's input is
  cut into the pretraining tiles (every tile when none has enough foreground)
  and its vector is the mean of theirs;
- baselines: logistic regression and a random forest on 8 x 8 average-pooled
  pixels (2D; 4 x 4 x 4 in 3D).

The model side is `biofm.backbones.vision` (ViT, `ImagePatchTokenizer`, whose
`encode` takes image arrays, so the shared fine-tuning code runs on images);
`image_inputs(model)` refuses a model that is not a ViT, naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from biofm.data.records import Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError
from biofm.modalities.base import Log, Modality
from biofm.modalities.imaging.image import ImageError
from biofm.modalities.imaging.readers import image_readers, read_image

if TYPE_CHECKING:
    from biofm.config import BackboneConfig, PretrainConfig
    from biofm.model import FoundationModel
    from biofm.tokenizer import Tokenizer


def read_image_records(path: str | Path, *, on_error: str = "raise",
                       skipped: SkipLog | None = None, **options) -> Iterator[Record]:
    """One Record per image of a file or folder (data = the `Image`). A bad image
    raises, or (on_error="skip") is skipped and logged; a folder's unknown files and
    an empty folder always raise."""
    path = Path(path)
    for index, (source, read) in enumerate(image_readers(path, **options), start=1):
        try:
            image = read()
        except ImageError as exc:
            handle_bad_record(exc, on_error, skipped, exc.path or str(source), index)  # type: ignore
            continue
        name = Path(image.source)
        ident = str(name.relative_to(path)) if path.is_dir() and path in name.parents \
            else name.name
        yield Record(ident, image, image.source, index)


def image_tokenizer_for(backbone: BackboneConfig) -> Tokenizer:
    """The tokenizer of a ViT backbone, encoding image arrays."""
    from biofm.backbones.vision import ImagePatchTokenizer

    return ImagePatchTokenizer.for_backbone(backbone)


def image_inputs(model: FoundationModel) -> FoundationModel:
    """`model`, checked to be an image (ViT) model: its tokenizer encodes image arrays."""
    from biofm.backbones.vision import ImagePatchTokenizer

    tokenizer = model.tokenizer
    if not isinstance(tokenizer, ImagePatchTokenizer):
        raise BiofmError(f"this is a {tokenizer.name!r} model, not an image (ViT) model",
                         fix="use a model pretrained on images (an imaging-* preset)")
    return model


def _image_tokenizer(inputs: Sequence[Any]) -> Tokenizer:
    raise BiofmError("an image tokenizer follows the ViT's geometry, not a corpus",
                     fix="pretrain with an imaging-* preset (biofm pretrain --config "
                         "imaging-mae-tiny), which builds it from backbone.image_size")


@dataclass(frozen=True)
class ImagingModality(Modality):
    """NIfTI, DICOM, PNG / JPEG / TIFF, NumPy images (2D and 3D)."""

    def pretraining_data(self, config: PretrainConfig,
                         new_model: Callable) -> tuple[Any, Sequence, Sequence | None]:
        from biofm.modalities.imaging.pretraining import imaging_run_data

        return imaging_run_data(config, new_model)

    def parse_input(self, value: str, path: Path, line: int, column: str) -> Any:
        """A labeled CSV's cell: an image path (relative to the CSV) → (C, *spatial)."""
        from biofm.modalities.imaging.intensity import normalise

        image_path = Path(value.strip())
        if not image_path.is_absolute():
            image_path = path.parent / image_path
        if not image_path.exists():
            raise BiofmError(f"the image {value!r} in column {column!r} does not exist",
                             path=path, record=line,
                             fix="give paths relative to the CSV's folder, or absolute ones")
        return normalise(read_image(image_path)).channels_first()

    def unlabeled(self, path: Path, *, column: str | None = None, layer: str | None = None,
                  on_error="raise", skipped: SkipLog | None = None
                  ) -> tuple[list[str], list[Any]]:
        """(ids, (C, *spatial) arrays) of an image file or folder (scaled by the "auto"
        policy), or of a CSV naming image files (column "image")."""
        from biofm.modalities.imaging.intensity import normalise

        if path.suffix.lower() == ".csv":
            return super().unlabeled(path, column=column, layer=layer, on_error=on_error,
                                     skipped=skipped)
        self.read_options({"column": column, "layer": layer})
        records = self.load(path, on_error, skipped)
        return [r.id for r in records], [normalise(r.data).channels_first() for r in records]

    def check_inputs(self, model: FoundationModel, inputs: Sequence[Any], where: str | Path,
                     log: Log) -> None:
        """Every input must have the model's (C, *spatial) shape; the model then
        encodes image arrays (`image_inputs`)."""
        image_inputs(model)
        tokenizer = model.tokenizer
        for i, x in enumerate(inputs):
            tokenizer.check(np.shape(x), where=where, record=f"image {i + 1}")  # type: ignore

    def embed_file(self, model: FoundationModel, input: Path, *, pooling: str,
                   batch_size: int, on_error, skipped: SkipLog, progress: Any, log: Log,
                   column: str | None = None, layer: str | None = None
                   ) -> tuple[list[str], np.ndarray]:
        """(ids, (N, d)): one vector per image, the mean over its tiles."""
        from biofm.backbones.vision import embed_images
        from biofm.modalities.imaging.intensity import normalise
        from biofm.modalities.imaging.pretraining import tiles

        self.read_options({"column": column, "layer": layer})
        image_inputs(model)
        tokenizer = model.tokenizer
        size = tuple(tokenizer.image_size)  # type: ignore[attr-defined]
        records = self.load(input, on_error, skipped)
        progress.set_total(len(records))
        ids, vectors = [], []
        for record in records:
            image = normalise(record.data)
            channels = tokenizer.channels  # type: ignore[attr-defined]
            found, _ = tiles(image, size, channels)
            if not found:  # little foreground anywhere: every tile counts
                found, _ = tiles(image, size, channels, min_foreground=0.0)
            if not found:
                raise BiofmError(f"the image {image.shape} is smaller than the model's input "
                                 f"{size}", path=record.source,
                                 fix="pad images to the model's input size first")
            tile_vectors = embed_images(model, found, pooling=pooling, batch_size=batch_size)
            ids.append(record.id)
            vectors.append(tile_vectors.mean(0))
            progress.advance(1)
        return ids, np.stack(vectors)


def pooled_pixels(inputs: Sequence[np.ndarray]) -> np.ndarray:
    """(N, F) features: each image average-pooled to 8 x 8 (2D) or 4 x 4 x 4 (3D) per channel."""
    out = []
    for x in inputs:
        x = np.asarray(x, dtype=np.float32)
        cells = 8 if x.ndim == 3 else 4
        for axis in range(1, x.ndim):
            parts = np.array_split(x, cells, axis=axis)
            x = np.stack([p.mean(axis=axis) for p in parts], axis=axis)
        out.append(x.ravel())
    return np.stack(out)


__all__ = ["ImagingModality", "image_inputs", "image_tokenizer_for", "pooled_pixels",
           "read_image_records"]
