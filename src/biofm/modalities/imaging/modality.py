"""The "imaging" modality: images are read as typed `Image` records, never as text.

Hooks (see `biofm.modalities.base`): `read` yields one `Record` per image of a
file or folder (data = the `Image`); `matches` knows the image suffixes; the
pretraining preset of "mae" is `imaging-mae-tiny`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from biofm.data.records import Record, SkipLog, handle_bad_record
from biofm.modalities.base import Modality
from biofm.modalities.imaging.image import ImageError
from biofm.modalities.imaging.readers import IMAGE_SUFFIXES, read_images


def read_image_records(path: str | Path, *, on_error: str = "raise",
                       skipped: SkipLog | None = None, **options) -> Iterator[Record]:
    """One Record per image of a file or folder (data = the `Image`). A bad image
    raises, or (on_error="skip") is skipped and logged; a folder's unknown files and
    an empty folder always raise."""
    path = Path(path)
    images = read_images(path, **options)
    index = 0
    while True:
        try:
            image = next(images)
        except StopIteration:
            return
        except ImageError as exc:
            handle_bad_record(exc, on_error, skipped, exc.path or str(path), 0)  # type: ignore
            if on_error == "raise":  # pragma: no cover (handle_bad_record raised)
                raise
            return  # a generator that raised cannot go on
        index += 1
        name = Path(image.source)
        ident = str(name.relative_to(path)) if path.is_dir() and name != path and \
            path in name.parents else name.name
        yield Record(ident, image, image.source, index)


def _image_tokenizer(inputs):
    """Images need no corpus-fitted vocabulary: the ViT's patch tokenizer is built from
    the backbone's geometry when the model is (see `pretraining_data`)."""
    from biofm.backbones.vision import ImagePatchTokenizer

    return ImagePatchTokenizer()


@dataclass(frozen=True)
class ImagingModality(Modality):
    """NIfTI, DICOM, PNG / JPEG / TIFF, NumPy images (2D and 3D)."""


__all__ = ["ImagingModality", "read_image_records"]
