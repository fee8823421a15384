"""Images on the one transformer (ViT, 2D and 3D): patches in, hidden states out.

An image (C, H, W) or a volume (C, D, H, W) of the backbone's `image_size` is cut
into non-overlapping patches of `patch_size`, each flattened channel first
(C, p1, p2[, p3]) — the order of timm's Conv2d patch embedding, so its kernel is
the value projection reshaped. A ViT is the encoder with

    input_ids  [<bos>, <patch>, ..., <patch>]   (1 + N,)   <bos> is the [CLS] token
    values     [0, patch_1, ..., patch_N]       (1 + N, C * prod(patch_size)) float32
    positions  0 for [CLS], 1 + i for patch i   (row-major over the grid)

so the patch embedding is the transformer's second-input path (`values:
patches`, a linear map added to the `<patch>` embedding) and [CLS] is a token
embedding; positions are timm's learned table or MAE's fixed sin-cos table
(`position: sincos`). Nothing here knows where the pixels came from: the imaging
modality reads files and scales intensities, then calls `encode_image`.

The contract the imaging modality builds on (kept stable):

    model = build_vit(config, image_size=(64, 64), patch_size=(8, 8), channels=1)  # config:
    #   a PretrainConfig, preset name or YAML path whose backbone is a ViT (objective mae)
    batch = model.tokenizer.batch(images)        # (B, C, *spatial) float32 → Batch
    seq = model.tokenizer.encode_image(image)    # (C, *spatial) → ValuedSequence (training data)
    out = vit_features(model, images, layers=(3, 6, 9, 12))
    out.patches (B, N, d), out.cls (B, d), out.pooled (B, d), out.layers[k] (B, N, d)
    vectors = embed_images(model, images)         # (N, d) float32, eval mode, batched
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.outputs import Batch
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from biofm.config import BackboneConfig, PretrainConfig
    from biofm.model import FoundationModel

IMAGE_VOCAB: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<patch>")
IMAGE_SPECIALS: dict[str, str] = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>",
                                  "eos": "<eos>", "mask": "<mask>"}


# -- pixels ↔ patches ---------------------------------------------------------------
def patchify(images: torch.Tensor, patch_size: Sequence[int]) -> torch.Tensor:
    """(B, C, *S) → (B, N, C * prod(p)): patches in row-major grid order, each
    flattened (C, p1, p2[, p3]) as a Conv kernel of stride p sees it."""
    k = len(patch_size)
    B, C, *S = images.shape
    grid = [s // p for s, p in zip(S, patch_size)]
    # (B, C, g1, p1, g2, p2[, g3, p3])
    x = images.reshape(B, C, *[d for g, p in zip(grid, patch_size) for d in (g, p)])
    grid_axes = [2 + 2 * i for i in range(k)]
    patch_axes = [3 + 2 * i for i in range(k)]
    x = x.permute(0, *grid_axes, 1, *patch_axes)  # (B, g1, g2[, g3], C, p1, p2[, p3])
    return x.reshape(B, math.prod(grid), C * math.prod(patch_size))


def unpatchify(patches: torch.Tensor, patch_size: Sequence[int], grid: Sequence[int],
               channels: int) -> torch.Tensor:
    """(B, N, C * prod(p)) → (B, C, *S): the inverse of `patchify`."""
    k = len(patch_size)
    B = patches.shape[0]
    x = patches.reshape(B, *grid, channels, *patch_size)  # (B, g1, g2[, g3], C, p1, p2[, p3])
    order = [k + 1] + [a for i in range(k) for a in (1 + i, k + 2 + i)]
    x = x.permute(0, *order)  # (B, C, g1, p1, g2, p2[, g3, p3])
    return x.reshape(B, channels, *[g * p for g, p in zip(grid, patch_size)])


def sincos_positions(grid: Sequence[int], d_model: int) -> torch.Tensor:
    """(1 + N, d) fixed positions: row 0 ([CLS]) zeros, then per patch the
    concatenated 1D sin-cos codes of its coordinates along each grid axis
    (MAE's 2D table, extended to 3D); each axis gets 2 * (d // (2k)) channels,
    the rest stay zero."""
    k = len(grid)
    per_axis = 2 * (d_model // (2 * k))
    if per_axis == 0:
        raise BiofmError(f"d_model={d_model} is too narrow for sin-cos positions on a {k}D grid",
                         fix=f"use d_model >= {2 * k}, or position=learned")
    half = per_axis // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)  # (half,)
    coords = torch.stack(torch.meshgrid(*[torch.arange(g, dtype=torch.float64) for g in grid],
                                        indexing="ij"), dim=-1).reshape(-1, k)  # (N, k)
    codes = []
    for axis in range(k):
        angle = coords[:, axis, None] * omega  # (N, half)
        codes += [angle.sin(), angle.cos()]
    table = torch.zeros(1 + coords.shape[0], d_model, dtype=torch.float64)
    table[1:, : k * per_axis] = torch.cat(codes, dim=1)
    return table.float()


# -- the tokenizer ----------------------------------------------------------------------
@TOKENIZERS.register("image-patch")
class ImagePatchTokenizer(Tokenizer):
    """[CLS] + one `<patch>` token per patch; the pixels travel as values.

    Holds the geometry (image_size, patch_size, channels) so a checkpoint's
    tokenizer.json says what images its model takes.
    """

    name = "image-patch"

    def __init__(self, vocab: Sequence[str] = IMAGE_VOCAB,
                 specials: dict[str, str] | None = None, *, image_size: Sequence[int] = (),
                 patch_size: Sequence[int] = (), channels: int = 1, **config: Any) -> None:
        super().__init__(vocab, specials or IMAGE_SPECIALS, image_size=list(image_size),
                         patch_size=list(patch_size), channels=int(channels), **config)
        self.image_size = tuple(int(s) for s in image_size)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.channels = int(channels)
        self.grid = tuple(s // p for s, p in zip(self.image_size, self.patch_size))

    @classmethod
    def for_backbone(cls, backbone: "BackboneConfig") -> "ImagePatchTokenizer":
        if not backbone.image_size:
            raise BiofmError("this backbone is not a ViT (no image_size / patch_size / channels)",
                             fix="set backbone.image_size, "
                                 "backbone.patch_size and backbone.channels")
        return cls(image_size=backbone.image_size, patch_size=backbone.patch_size,
                   channels=backbone.channels)

    @property
    def patch_id(self) -> int:
        return self.token_to_id["<patch>"]

    @property
    def n_patches(self) -> int:
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        return self.channels * math.prod(self.patch_size)

    def encode(self, image, *, add_special_tokens: bool = True,  # type: ignore[override]
               max_length: int | None = None):
        """An image array's encoding (`encode_image`), as other modalities' tokenizers
        encode their typed inputs, so the shared fine-tuning code takes images."""
        if isinstance(image, str):
            self.split(image)  # text: the error says what an image model takes
        return self.encode_image(image)

    def split(self, text: str) -> list[str]:
        raise BiofmError("an image model takes pixel arrays, not text",
                         fix="encode images with ImagePatchTokenizer.encode_image, or embed "
                             "them with biofm.backbones.vision.embed_images")

    def check(self, shape: Sequence[int], where: str | Path | None = None,
              record: str | int | None = None) -> None:
        """An image's (C, *spatial) shape against the model's geometry."""
        shape = tuple(int(s) for s in shape)
        want = (self.channels, *self.image_size)
        if shape == want:
            return
        if len(shape) != len(want):
            kind = "2D (C, H, W)" if len(self.image_size) == 2 else "3D (C, D, H, W)"
            raise BiofmError(f"image has shape {shape}, but this model takes {kind} arrays of "
                             f"shape {want}", path=where, record=record,
                             fix="give arrays with a leading channel axis, of the model's size")
        if shape[0] != self.channels:
            raise BiofmError(f"image has {shape[0]} channel(s), the model takes {self.channels}",
                             path=where, record=record,
                             fix=f"convert the images to {self.channels} channel(s) (e.g. grey "
                                 "scale for 1), or use a model built for this channel count")
        raise BiofmError(f"image size {shape[1:]} differs from the model's {self.image_size}",
                         path=where, record=record,
                         fix=f"resize or crop the images to {self.image_size} first (nothing is "
                             "resampled silently)")

    def encode_image(self, image: np.ndarray | torch.Tensor, where: str | Path | None = None,
                     record: str | int | None = None) -> ValuedSequence:
        """(C, *spatial) float → ids (1 + N,) and values (1 + N, C * prod(p)) float32."""
        pixels = torch.as_tensor(np.asarray(image, dtype=np.float32))
        self.check(pixels.shape, where, record)
        if not bool(torch.isfinite(pixels).all()):
            raise BiofmError("image has NaN or infinite pixels", path=where, record=record,
                             fix="fill or mask them before encoding")
        patches = patchify(pixels[None], self.patch_size)[0]  # (N, P)
        values = torch.cat([patches.new_zeros(1, patches.shape[1]), patches])  # (1 + N, P)
        ids = np.full(1 + len(patches), self.patch_id, dtype=np.int64)
        ids[0] = self.bos_id
        return ValuedSequence(ids, values.numpy())

    def batch(self, images: torch.Tensor) -> Batch:
        """(B, C, *spatial) float tensor → a Batch on the images' device (no copy to numpy)."""
        if images.dim() != 2 + len(self.image_size):
            raise BiofmError(f"images have shape {tuple(images.shape)}; expected (batch, "
                             f"{self.channels}, {', '.join(map(str, self.image_size))})",
                             fix="stack images into one (batch, channels, *spatial) tensor")
        self.check(images.shape[1:])
        B = images.shape[0]
        patches = patchify(images.float(), self.patch_size)  # (B, N, P)
        values = torch.cat([patches.new_zeros(B, 1, patches.shape[2]), patches], dim=1)
        ids = torch.full((B, 1 + self.n_patches), self.patch_id, dtype=torch.long,
                         device=images.device)
        ids[:, 0] = self.bos_id
        return Batch(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                     values=values)


# -- models -----------------------------------------------------------------------------
def vit_config(config: "str | PretrainConfig", *, image_size: Sequence[int] | None = None,
               patch_size: Sequence[int] | None = None, channels: int | None = None,
               overrides: Sequence[str] = ()) -> "PretrainConfig":
    """A preset name / YAML path / config with its image geometry changed where given."""
    from biofm.config import PretrainConfig, deep_merge, parse_overrides, preset_path

    if isinstance(config, str):
        path = Path(config) if Path(config).suffix in (".yaml", ".yml") \
            else preset_path("pretrain", config)
        config = PretrainConfig.load(path)
    backbone: dict[str, Any] = {}
    if image_size is not None:
        backbone["image_size"] = list(image_size)
    if patch_size is not None:
        backbone["patch_size"] = list(patch_size)
    if channels is not None:
        backbone["channels"] = int(channels)
    config = config.replace(**deep_merge({"backbone": backbone},
                                         parse_overrides(list(overrides))))
    if not config.backbone.image_size:
        raise BiofmError("the config's backbone is not a ViT",
                         fix="set backbone.image_size, backbone.patch_size and "
                             "backbone.channels, or pass image_size, patch_size and channels")
    return config


def build_vit(config: "str | PretrainConfig", *, image_size: Sequence[int] | None = None,
              patch_size: Sequence[int] | None = None, channels: int | None = None,
              overrides: Sequence[str] = (), seed: int | None = None) -> "FoundationModel":
    """A fresh ViT FoundationModel (encoder + its objective, e.g. mae) for images of
    `image_size` with `channels`, cut into `patch_size` patches (2 or 3 numbers;
    unset: the preset's). Weights drawn from `seed` (default: `train.seed`)."""
    from biofm.model import FoundationModel

    config = vit_config(config, image_size=image_size, patch_size=patch_size,
                        channels=channels, overrides=overrides)
    torch.manual_seed(config.train.seed if seed is None else seed)
    return FoundationModel(config, ImagePatchTokenizer.for_backbone(config.backbone))


@dataclass
class ViTFeatures:
    """What a ViT gives for a batch of images.

    patches: (B, N, d) last hidden states of the patches (after the final norm)
    cls:     (B, d) of the [CLS] token
    pooled:  (B, d) `cls`, or the mean of `patches` (pooling="mean"); with
             backbone.final_norm="pooled" (timm's fc_norm) normalised after pooling,
             while `patches` / `cls` are not
    layers:  {layer: (B, N, d)} patch states after each requested block
             (1-based, as UNETR's 3/6/9/12; before the final norm except the last)
    """

    patches: torch.Tensor
    cls: torch.Tensor
    pooled: torch.Tensor
    layers: dict[int, torch.Tensor]


def vit_features(model: "FoundationModel", images: torch.Tensor, *,
                 layers: Sequence[int] = (), pooling: str = "cls") -> ViTFeatures:
    """Run the backbone on (B, C, *spatial) images (on the model's device, with
    gradients: callers choose no_grad / eval). `layers` are 1-based block indices."""
    tokenizer = _image_tokenizer(model)
    n_layers = model.config.backbone.n_layers
    wrong = [k for k in layers if not 1 <= k <= n_layers]
    if wrong:
        raise BiofmError(f"layers {wrong} do not exist: the backbone has blocks 1..{n_layers}",
                         fix=f"ask for layers between 1 and {n_layers}")
    if pooling not in ("cls", "mean"):
        raise BiofmError(f"unknown pooling {pooling!r}", fix="use 'cls' or 'mean'")
    batch = tokenizer.batch(images.to(model.device))
    out = model.backbone(batch.input_ids, batch.attention_mask, values=batch.values,
                         output_hidden_states=bool(layers))
    hidden = out.last_hidden_state  # (B, 1 + N, d)
    chosen = {k: out.hidden_states[k][:, 1:] for k in layers} if layers else {}  # type: ignore
    patches = hidden[:, 1:]
    pooled = hidden[:, 0] if pooling == "cls" else patches.mean(1)
    if model.config.backbone.final_norm == "pooled":  # timm's fc_norm, after pooling
        pooled = model.backbone.final_norm(pooled)
    return ViTFeatures(patches=patches, cls=hidden[:, 0], pooled=pooled, layers=chosen)


@torch.no_grad()
def embed_images(model: "FoundationModel", images: Iterable[np.ndarray] | torch.Tensor, *,
                 pooling: str = "cls", batch_size: int = 32,
                 progress: Any | None = None) -> np.ndarray:
    """(N, d) float32 embeddings of images (each (C, *spatial)), in eval mode,
    `batch_size` at a time; `progress.advance(n)` is called per batch when given."""
    from biofm.model import evaluating

    tokenizer = _image_tokenizer(model)
    out: list[np.ndarray] = []
    chunk: list[torch.Tensor] = []

    def flush() -> None:
        stacked = torch.stack(chunk)
        out.append(vit_features(model, stacked, pooling=pooling).pooled.float().cpu().numpy())
        if progress is not None:
            progress.advance(len(chunk))
        chunk.clear()

    with evaluating(model):
        for i, image in enumerate(images):
            pixels = torch.as_tensor(np.asarray(image, dtype=np.float32))
            tokenizer.check(pixels.shape, where=f"image {i}")
            chunk.append(pixels)
            if len(chunk) == batch_size:
                flush()
        if chunk:
            flush()
    if not out:
        return np.zeros((0, model.config.backbone.d_model), dtype=np.float32)
    return np.concatenate(out)


def _image_tokenizer(model: "FoundationModel") -> ImagePatchTokenizer:
    if not isinstance(model.tokenizer, ImagePatchTokenizer):
        raise BiofmError(f"this is a {model.tokenizer.name!r} model, not an image (ViT) model",
                         fix="use a model pretrained on images (a ViT config, or a timm / "
                             "open_clip directory)")
    return model.tokenizer


__all__ = ["IMAGE_SPECIALS", "IMAGE_VOCAB", "ImagePatchTokenizer", "ViTFeatures", "build_vit",
           "embed_images", "patchify", "sincos_positions", "unpatchify", "vit_config",
           "vit_features"]
