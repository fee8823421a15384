"""Medical imaging: NIfTI, DICOM, PNG / JPEG / TIFF and NumPy images, 2D and 3D.

Importing this package registers the "imaging" modality and the task
"brain-region-patch"; `tasks.SEGMENTATION_TASKS` holds the promptable
segmentation tasks ("brain-box-seg", "brain-box-seg-slab"). Pieces:

    image.py         the `Image` record (array + affine + spacing + metadata + source)
    readers.py       NIfTI, rasters, NumPy, InVesalius; folders (`read_image`, `read_images`)
    dicom.py         DICOM files and series (rescale, multi-frame, sorted by position)
    intensity.py     intensity policies (CT Hounsfield windows, MR percentiles)
    locate.py        the real data (Debian mricron-data / invesalius-examples, nilearn's
                     MNI152, pydicom-data) and how to install it when it is missing
    atlas.py         Colin27 and MNI152 with AAL labels
    tasks.py         region classification and box-prompted segmentation on them
    pretraining.py   tiles of real volumes for MAE pretraining
    segmentation.py  UNETR on a biofm ViT with a box prompt; MONAI UNet and box baselines
    metrics.py       Dice and HD95 (MONAI)
    writers.py       masks written as NIfTI in the input's space (atomic)
    demo.py          the demo's imaging rows (`run`)

Nothing is resampled or reoriented silently; bad input is an `ImageError` that
names the file and the fix. See docs/imaging.md.
"""

from __future__ import annotations

from biofm.bench.baselines import Baseline, per_input
from biofm.modalities.imaging import (
                                               pretraining,  # noqa: F401  (registers the corpora)
                                               tasks,  # noqa: F401  (registers brain-region-patch)
)
from biofm.modalities.imaging.image import Image, ImageError, same_grid
from biofm.modalities.imaging.intensity import CT_WINDOWS, normalise
from biofm.modalities.imaging.locate import DataMissing, atlas_path, volume_path
from biofm.modalities.imaging.metrics import dice, hd95, segmentation_metrics
from biofm.modalities.imaging.modality import (
                                               ImagingModality,
                                               _image_tokenizer,
                                               image_inputs,
                                               pooled_pixels,
                                               read_image_records,
)
from biofm.modalities.imaging.readers import IMAGE_SUFFIXES, read_image, read_images
from biofm.modalities.imaging.writers import write_mask
from biofm.registry import MODALITIES

IMAGING = MODALITIES.register("imaging")(ImagingModality(
    name="imaging", read=read_image_records, build_tokenizer=_image_tokenizer,
    suffixes=IMAGE_SUFFIXES, default_objective="mae", values=("patches",),
    presets={"mae": "imaging-mae-tiny"}, csv_column="image",
    baselines=(Baseline("LR on pooled pixels", per_input(pooled_pixels), "linear",
                        kinds=("classification", "regression")),
               Baseline("RF on pooled pixels", per_input(pooled_pixels), "random-forest",
                        kinds=("classification", "regression"))),
))

__all__ = [
                                               "CT_WINDOWS",
                                               "IMAGING",
                                               "DataMissing",
                                               "Image",
                                               "ImageError",
                                               "atlas_path",
                                               "dice",
                                               "hd95",
                                               "image_inputs",
                                               "normalise",
                                               "read_image",
                                               "read_images",
                                               "same_grid",
                                               "segmentation_metrics",
                                               "volume_path",
                                               "write_mask",
]
