"""Masked autoencoding of image patches (MAE; the RETFound recipe), for any ViT.

    batch = mae.prepare(tokenizer.batch(images), generator)   # drop 75% of the patches
    out = mae(backbone(batch.input_ids, ..., values=batch.values,
                       positions=batch.positions), batch)

`prepare` draws, per image, a random `objective.mask_rate` (RETFound: 0.75) of
its N patches — exactly round(N * mask_rate), at least one hidden and one
visible — and keeps only [CLS] and the visible patches in the batch, with
their grid positions: the encoder never sees a masked patch (nor a mask token).
The targets are every patch's pixels normalised per patch (zero mean, unit
variance: MAE's norm_pix_loss), NaN on the visible patches, so the loss is the
mean squared error over the masked patches only.

The light decoder (owned here, dropped after pretraining) embeds the encoder's
states to `decoder_dim`, puts a learned mask token at every hidden patch,
adds fixed sin-cos positions, runs `decoder_layers` pre-norm blocks of the
shared core and predicts each patch's C * prod(patch_size) pixels.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from biofm.backbones.layers import Block
from biofm.backbones.vision import sincos_positions
from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.errors import BiofmError
from biofm.objectives.base import Objective
from biofm.outputs import BackboneOutput, Batch, ObjectiveOutput
from biofm.registry import OBJECTIVES

PIXEL_NORM_EPS = 1e-6  # MAE: target = (x - mean) / sqrt(var + 1e-6) per patch
DECODER_HEAD_DIM = 32  # MAE's decoder: 512 wide, 16 heads


def mae_decoder_shape(config: ObjectiveConfig, backbone: BackboneConfig) -> tuple[int, int, int]:
    """(width, depth, heads) of the decoder: the config's, else half the encoder's
    width (at least 32) and a third of its depth (at least 1)."""
    width = config.decoder_dim or max(32, backbone.d_model // 2)
    depth = config.decoder_layers or max(1, backbone.n_layers // 3)
    heads = max(1, width // DECODER_HEAD_DIM)
    if width % heads:
        raise BiofmError(f"objective.decoder_dim={width} is not a multiple of its "
                         f"{heads} heads of {DECODER_HEAD_DIM}",
                         fix=f"use a multiple of {DECODER_HEAD_DIM} (or less than it)")
    return width, depth, heads


def normalised_pixels(patches: torch.Tensor) -> torch.Tensor:
    """(..., P) → each patch at zero mean and unit variance (MAE's norm_pix_loss)."""
    mean = patches.mean(-1, keepdim=True)
    var = patches.var(-1, keepdim=True)
    return (patches - mean) / (var + PIXEL_NORM_EPS).sqrt()


def choose_visible(batch_size: int, n_patches: int, mask_rate: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """(B, n_keep) indices of the visible patches per row, ascending; n_keep =
    N - round(N * mask_rate), clamped so one patch is hidden and one visible."""
    n_masked = min(max(round(n_patches * mask_rate), 1), n_patches - 1)
    noise = torch.rand(batch_size, n_patches, generator=generator)
    return noise.argsort(dim=1)[:, : n_patches - n_masked].sort(dim=1).values


@OBJECTIVES.register("mae")
class MaskedAutoencoder(Objective):
    """Encoder on the visible patches, light decoder, MSE on the masked ones."""

    backbone_kind = "encoder"
    values: ClassVar[str] = "patches"
    has_decoder: ClassVar[bool] = True
    images: ClassVar[bool] = True

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__(config, backbone, special_ids)
        if not backbone.image_size:
            raise BiofmError("objective 'mae' needs a ViT backbone (backbone.image_size, "
                             "patch_size and channels)",
                             fix="set backbone.image_size, "
                                 "backbone.patch_size and backbone.channels")
        self.grid = backbone.grid
        self.n_patches = math.prod(self.grid)
        self.patch_dim = backbone.value_size
        width, depth, heads = mae_decoder_shape(config, backbone)
        self.decoder_embed = nn.Linear(backbone.d_model, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("decoder_positions", sincos_positions(self.grid, width)[None],
                             persistent=False)  # (1, 1 + N, width), fixed
        self.decoder_blocks = nn.ModuleList(
            Block(width, heads, 4 * width, backbone.norm_eps, 0.0) for _ in range(depth))
        self.decoder_norm = nn.LayerNorm(width, eps=backbone.norm_eps)
        self.decoder_pred = nn.Linear(width, self.patch_dim)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.mask_token, std=0.02)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        values = self._check(batch)
        B = values.shape[0]
        patches = values[:, 1:].float()  # (B, N, P)
        visible = choose_visible(B, self.n_patches, self.config.mask_rate, generator)  # (B, k)
        masked = torch.ones(B, self.n_patches, dtype=torch.bool)
        masked[torch.arange(B)[:, None], visible] = False
        targets = torch.where(masked[..., None], normalised_pixels(patches),
                              torch.full_like(patches, float("nan")))  # (B, N, P)
        kept = patches.gather(1, visible[..., None].expand(-1, -1, patches.shape[2]))
        cls = torch.zeros(B, 1, dtype=torch.long)
        ids = torch.cat([batch.input_ids[:, :1], batch.input_ids[:, 1:].gather(1, visible)], 1)
        return batch.with_(input_ids=ids, attention_mask=torch.ones_like(ids, dtype=torch.bool),
                           values=torch.cat([values[:, :1].float(), kept], dim=1),
                           positions=torch.cat([cls, visible + 1], dim=1),
                           value_labels=targets)

    def _check(self, batch: Batch) -> torch.Tensor:
        values = batch.values
        want = (1 + self.n_patches, self.patch_dim)
        if values is None or values.dim() != 3 or tuple(values.shape[1:]) != want:
            got = None if values is None else tuple(values.shape)
            raise ValueError(f"an mae batch holds [CLS] + {self.n_patches} patches of "
                             f"{self.patch_dim} pixels: values (B, {want[0]}, {want[1]}); got "
                             f"{got} (build it with ImagePatchTokenizer.batch / encode_image)")
        if batch.document_ids is not None:
            raise BiofmError("image patches cannot be packed (every image has the same length)",
                             fix="set train.packing=false")
        return values

    def reconstruct(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Encoder states (B, 1 + k, d) at `positions` (B, 1 + k) → predicted pixels of
        every patch (B, N, P), normalised per patch as the targets."""
        x = self.decoder_embed(hidden)  # (B, 1 + k, w)
        B, _, width = x.shape
        full = self.mask_token.to(x.dtype).expand(B, 1 + self.n_patches, width)
        full = full.scatter(1, positions[..., None].expand(-1, -1, width), x)  # (B, 1 + N, w)
        full = full + self.decoder_positions.to(x.dtype)
        for block in self.decoder_blocks:
            full = block(full, None, False, None)
        return self.decoder_pred(self.decoder_norm(full))[:, 1:]  # (B, N, P)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Encoder states (B, T, d) of [CLS] and the first T - 1 patches in grid order
        (T = 1 + N: a whole, unmasked image) → predicted pixels of every patch (B, N, P)."""
        B, T = hidden.shape[:2]
        positions = torch.arange(T, device=hidden.device).expand(B, T)
        return self.reconstruct(hidden, positions)

    def forward(self, hidden: BackboneOutput, batch: Batch) -> ObjectiveOutput:
        if batch.value_labels is None or batch.positions is None:
            raise ValueError("batch is not prepared: call objective.prepare(batch) first")
        pred = self.reconstruct(hidden.last_hidden_state, batch.positions).float()
        target = batch.value_labels.float()
        finite = torch.isfinite(target)
        count = int(finite.sum())
        error = (pred - torch.where(finite, target, torch.zeros_like(target))) ** 2
        loss = (error * finite).sum() / max(count, 1)
        return ObjectiveOutput(loss=loss, logits=pred, num_predicted=count)


__all__ = ["MaskedAutoencoder", "choose_visible", "mae_decoder_shape", "normalised_pixels"]
