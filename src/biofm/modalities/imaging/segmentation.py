"""Promptable segmentation (MedSAM-style) on a ViT, and its baselines.

    seg = PromptedUNETR(pretrained_vit, prompt_channels=1)        # the model
    result = train_segmenter(seg, train, valid, SegmentConfig())  # one training core
    metrics = evaluate_segmenter(result.model, test)              # Dice, HD95 (mm)

The model (`PromptedUNETR`) is UNETR (Hatamizadeh et al. 2022) on the ViT of a
biofm checkpoint: intermediate hidden states of the ViT, reshaped onto the patch
grid, are upsampled by MONAI's UNETR blocks and joined, level by level, with a
convolutional branch on the full-resolution input. The prompt (a filled box,
optionally a point disk; `tasks.prompt_channels`) enters twice: as extra input
channels of the convolutional branch, and patch by patch through a linear
embedding added to the ViT's last hidden states (the role of MedSAM's prompt
encoder). The ViT itself sees the image only, as in pretraining.

Baselines on the same splits: MONAI's `UNet` from scratch with the same prompt
channels, and the filled box itself. Every model's prediction is kept within the
box grown by `BOX_MARGIN` pixels (the box is the user's statement of where the
structure is; the margin exceeds the tasks' box jitter). Training is the shared optimizer step
(`biofm.train.trainer.fit`: AdamW, warmup + cosine, gradient clipping, bf16 on
CUDA), Dice + cross-entropy loss (MONAI `DiceCELoss`), the epoch with the best
validation Dice kept.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from biofm.config import Config
from biofm.device import autocast_context, resolve_device
from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text
from biofm.modalities.imaging.metrics import segmentation_metrics
from biofm.modalities.imaging.tasks import PromptedCrops
from biofm.train.trainer import BestEpoch, FitConfig, Loss, Trainer, fit

Mode = Literal["scratch", "frozen", "full", "lora", "unet"]
SEGMENTER_FILE = "segmenter.json"
BOX_MARGIN = 4  # predictions are kept within the box grown by this many pixels (> the jitter)


class SegmentConfig(Config):
    """How a segmenter trains.

    Args:
        mode: "scratch" (the ViT's architecture, random weights), "frozen" (the
            pretrained ViT frozen, the decoder trained: segmentation's linear
            probe), "full" (everything trained), "lora" (LoRA adapters in the
            ViT + the decoder), "unet" (MONAI UNet from scratch).
        features: channels of the first decoder / UNet level (doubling per level).
        point: add the point prompt channel to the box.
    """

    mode: Mode = "full"
    epochs: int = 30
    patience: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    features: int = 16
    point: bool = False
    lora_r: int = 8
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"


def skip_layers(n_layers: int, levels: int) -> tuple[int, ...]:
    """ViT blocks (1-based) feeding the decoder's levels 1..levels-1 (UNETR: 3, 6, 9 of 12)."""
    return tuple(max(1, round(n_layers * j / levels)) for j in range(1, levels))


class PromptedUNETR(nn.Module):
    """ViT encoder (a biofm FoundationModel's backbone) + UNETR decoder + prompt.

    images (B, C, *S) and prompts (B, K, *S) → logits (B, 2, *S). The patch size
    must be a power of two ≥ 4 (one decoder level per halving).
    """

    def __init__(self, base, prompt_channels: int = 1, features: int = 16) -> None:
        super().__init__()
        from monai.networks.blocks import (
            UnetOutBlock,
            UnetrBasicBlock,
            UnetrPrUpBlock,
            UnetrUpBlock,
        )

        cfg = base.config.backbone
        if not cfg.image_size:
            raise BiofmError("segmentation needs a ViT model (an imaging-* preset)",
                             fix="pretrain with --config imaging-mae-tiny, or load a timm ViT")
        patch = set(cfg.patch_size)
        p = patch.pop() if len(patch) == 1 else 0
        levels = int(math.log2(p)) if p >= 4 else 0
        if not levels or 2 ** levels != p:
            raise BiofmError(f"a UNETR decoder needs one square / cubic patch size that is a "
                             f"power of two >= 4; the ViT has {list(cfg.patch_size)}",
                             fix="pretrain a ViT with backbone.patch_size=[8, 8] (or 16)")
        self.base = base
        self.dims, self.grid, self.levels = len(cfg.grid), tuple(cfg.grid), levels
        self.patch_size = tuple(cfg.patch_size)
        self.prompt_channels, self.features = prompt_channels, features
        self.layers = skip_layers(cfg.n_layers, levels)
        d, f, dims = cfg.d_model, features, self.dims
        # plain (not residual) conv blocks: ~30% less time on a CPU than UNETR's residual ones
        block = {"spatial_dims": dims, "kernel_size": 3, "norm_name": "instance",
                 "res_block": False}
        self.encoder1 = UnetrBasicBlock(in_channels=cfg.channels + prompt_channels,
                                        out_channels=f, stride=1, **block)
        self.skips = nn.ModuleList(
            UnetrPrUpBlock(in_channels=d, out_channels=f * 2 ** j, num_layer=levels - 1 - j,
                           stride=1, upsample_kernel_size=2, conv_block=True, **block)
            for j in range(1, levels))
        widths = [d] + [f * 2 ** j for j in range(levels - 1, 0, -1)]
        self.ups = nn.ModuleList(
            UnetrUpBlock(in_channels=w, out_channels=f * 2 ** j, upsample_kernel_size=2, **block)
            for w, j in zip(widths, range(levels - 1, -1, -1)))
        self.out = UnetOutBlock(spatial_dims=dims, in_channels=f, out_channels=2)
        self.prompt_embed = nn.Linear(prompt_channels * math.prod(self.patch_size), d)

    def _grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, d) → (B, d, *grid)."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self.grid)

    def forward(self, images: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        from biofm.backbones.vision import patchify, vit_features

        feats = vit_features(self.base, images, layers=self.layers)
        last = feats.patches + self.prompt_embed(patchify(prompts, self.patch_size))  # (B, N, d)
        skips = [self.encoder1(torch.cat([images, prompts], 1))]  # full resolution
        skips += [up(self._grid(feats.layers[k])) for up, k in zip(self.skips, self.layers)]
        x = self._grid(last)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.out(x)  # (B, 2, *S)


class PromptedUNet(nn.Module):
    """MONAI's UNet from scratch on [image, prompt channels] (the classical baseline)."""

    def __init__(self, channels: int, prompt_channels: int, dims: int = 2,
                 features: int = 16) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        self.prompt_channels, self.features, self.channels = prompt_channels, features, channels
        self.net = UNet(spatial_dims=dims, in_channels=channels + prompt_channels,
                        out_channels=2, channels=tuple(features * 2 ** j for j in range(4)),
                        strides=(2, 2, 2), num_res_units=2, norm="instance")

    def forward(self, images: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([images, prompts], 1))


def build_segmenter(config: SegmentConfig, base=None, channels: int = 1) -> nn.Module:
    """The model of `config.mode` (base: the pretrained FoundationModel, a ViT)."""
    prompt_channels = 2 if config.point else 1
    torch.manual_seed(config.seed)
    if config.mode == "unet":
        return PromptedUNet(channels, prompt_channels, features=config.features)
    if base is None:
        raise BiofmError(f"mode {config.mode!r} needs a pretrained ViT model",
                         fix="pass --model DIR of an imaging model")
    from biofm.model import FoundationModel

    base = copy.deepcopy(base)
    if config.mode == "scratch":
        base = FoundationModel(base.config, base.tokenizer)
    model = PromptedUNETR(base, prompt_channels, config.features)
    if config.mode == "frozen":
        for p in model.base.parameters():
            p.requires_grad_(False)
    elif config.mode == "lora":
        from biofm.adapt.finetune import inject_lora

        inject_lora(model.base, r=config.lora_r, alpha=2 * config.lora_r,
                    targets=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))
    return model


@dataclass
class SegmentResult:
    model: nn.Module
    config: SegmentConfig
    valid_dice: float
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def predict_masks(model: nn.Module, images: np.ndarray, prompts: np.ndarray,
                  batch_size: int = 64, box_margin: int | None = BOX_MARGIN) -> np.ndarray:
    """(N, C, *S), (N, K, *S) → (N, *S) bool masks: the argmax of the two classes,
    kept within the box (channel 0 of the prompts) grown by `box_margin` pixels
    (None: anywhere)."""
    from biofm.model import evaluating

    device = next(model.parameters()).device
    out = np.zeros((len(images), *images.shape[2:]), dtype=bool)
    with evaluating(model), autocast_context(device, "auto"):
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(images[i: i + batch_size], device=device)
            p = torch.as_tensor(prompts[i: i + batch_size], device=device)
            out[i: i + batch_size] = (model(x, p).float().argmax(1) == 1).cpu().numpy()
    if box_margin is not None:
        out &= near_box(prompts[:, 0] > 0.5, box_margin)
    return out


def near_box(boxes: np.ndarray, margin: int) -> np.ndarray:
    """(N, *S) filled boxes grown by `margin` pixels along every axis."""
    from scipy import ndimage

    if margin <= 0:
        return boxes
    grow = np.ones((1, *(2 * margin + 1,) * (boxes.ndim - 1)), dtype=bool)
    return ndimage.binary_dilation(boxes, structure=grow)


def evaluate_segmenter(model: nn.Module, data: PromptedCrops, point: bool = False, *,
                       intervals: bool = False, seed: int = 0) -> dict[str, float]:
    """Mean Dice and HD95 (mm) of `model` on `data` (with `intervals`, bootstrap 95%
    intervals of both over the examples: `metrics.segmentation_metrics`)."""
    masks = predict_masks(model, data.images, data.prompts(point))
    return segmentation_metrics(list(masks), list(data.masks), data.spacing,
                                intervals=intervals, seed=seed)


def box_baseline(data: PromptedCrops, *, intervals: bool = False,
                 seed: int = 0) -> dict[str, float]:
    """The filled box as the mask: what the prompt alone gives."""
    return segmentation_metrics(list(data.prompts()[:, 0] > 0.5), list(data.masks), data.spacing,
                                intervals=intervals, seed=seed)


def train_segmenter(model: nn.Module, train: PromptedCrops, valid: PromptedCrops,
                    config: SegmentConfig, log: Callable[[str], None] | None = None
                    ) -> SegmentResult:
    """Train with Dice + CE for up to `epochs`, keep the best validation-Dice epoch."""
    from monai.losses import DiceCELoss

    if len(train) == 0 or len(valid) == 0:
        raise BiofmError("a segmentation split is empty",
                         fix="give more slices (or smaller structures) to train and validate on")
    device = resolve_device(config.device)
    model.to(device)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)
    images, prompts = train.images, train.prompts(config.point)
    targets = train.masks[:, None].astype(np.int64)
    per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    rng = np.random.default_rng(config.seed)
    order: list[int] = []

    def next_batch():
        nonlocal order
        if not order:
            order = list(rng.permutation(len(train)))
        index, order = order[: config.batch_size], order[config.batch_size:]
        return tuple(torch.as_tensor(a[index], device=device) for a in (images, prompts, targets))

    def loss_fn(batch) -> Loss:
        x, p, y = batch
        return Loss(loss(model(x, p).float(), y))

    def evaluate() -> dict[str, float]:  # predict_masks restores the train mode
        return {"dice": evaluate_segmenter(model, valid, config.point)["dice"]}

    epochs = BestEpoch(model, evaluate, "dice", higher_is_better=True,
                       patience=config.patience, per_epoch=per_epoch, labels={"dice": "Dice"},
                       log=None if log is None else (lambda line: log(f"{config.mode}: {line}")))
    steps = config.epochs * per_epoch
    fit_config = FitConfig(lr=config.lr, max_steps=steps, weight_decay=config.weight_decay,
                           warmup_steps=max(1, steps // 20), precision=config.precision)
    model.train()
    fit(Trainer(model, fit_config, device), next_batch, loss_fn, epochs)
    history = epochs.restore()
    return SegmentResult(model.eval(), config, float(epochs.stopper.best or 0.0), history)


# -- persistence (what `biofm segment` loads) ---------------------------------------------
def save_segmenter(result: SegmentResult, directory: str | Path, *,
                   intensity_policy: str = "mr", task: str = "") -> Path:
    """A self-describing directory: segmenter.json, weights.safetensors, and the ViT
    checkpoint under base/ (UNETR)."""
    from safetensors.torch import save_file

    from biofm.model import weights_for_saving

    model, directory = result.model, Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if result.config.mode == "lora":
        raise BiofmError("a LoRA segmenter is not saved", fix="save a full or frozen one")
    info = {"format": "biofm-segmenter", "version": 1, "mode": result.config.mode,
            "prompt_channels": model.prompt_channels, "features": model.features,
            "point": result.config.point, "intensity_policy": intensity_policy, "task": task,
            "valid_dice": result.valid_dice}
    if isinstance(model, PromptedUNETR):
        model.base.save(directory / "base")
        info["crop"] = list(model.base.config.backbone.image_size)
        weights = {k: v for k, v in weights_for_saving(model).items()
                   if not k.startswith("base.")}
    else:
        info.update(crop=[64, 64], channels=model.channels)
        weights = weights_for_saving(model)
    with atomic_path(directory / "weights.safetensors") as tmp:
        save_file(weights, str(tmp))
    atomic_write_text(directory / SEGMENTER_FILE, json.dumps(info, indent=1))
    return directory


def load_segmenter(directory: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, segmenter.json) of a directory written by `save_segmenter`;
    unreadable or mismatched weights are a BiofmError naming the file."""
    from biofm.model import FoundationModel, load_weights, read_safetensors

    directory = Path(directory)
    info_path = directory / SEGMENTER_FILE
    if not info_path.is_file():
        raise BiofmError("not a segmentation model directory (no segmenter.json)",
                         path=directory,
                         fix="pass a directory written by a biofm segmentation run (the demo "
                             "writes one under OUTPUT/imaging/segmenter)")
    info = json.loads(info_path.read_text())
    weights = directory / "weights.safetensors"
    state = read_safetensors(weights)
    if info["mode"] == "unet":
        model: nn.Module = PromptedUNet(int(info.get("channels", 1)), info["prompt_channels"],
                                        features=info["features"])
    else:
        base = FoundationModel.load(directory / "base")
        model = PromptedUNETR(base, info["prompt_channels"], info["features"])
        # the encoder is saved apart (base/) and loaded already; the file holds the rest
        state = {**{k: v for k, v in model.state_dict().items() if k.startswith("base.")},
                 **state}
    load_weights(model, state, weights)
    return model.eval(), info


# the comparison recipe (`compare_segmenters`): epochs, patience, first-level channels
COMPARE_EPOCHS, COMPARE_PATIENCE, COMPARE_FEATURES = 10, 3, 8
COMPARE_LABELS = {"scratch": "UNETR scratch", "frozen": "pretrained: frozen encoder",
                  "full": "pretrained: fine-tune", "lora": "pretrained: LoRA",
                  "unet": "MONAI UNet (scratch)"}


def compare_segmenters(model, task_name: str, seeds: int, *, modes: Sequence[str],
                       quick: bool = False, say: Callable[[str], None] | None = None,
                       save_to: Path | None = None, device: str = "auto", max_train: int = 0,
                       intervals: bool = False):
    """The filled box, then each of `modes` (UNETR scratch / frozen / full / lora, MONAI
    UNet) on the segmentation task `task_name` (a `tasks.SEGMENTATION_TASKS` name), per
    seed: a `ResultTable` of Dice and HD95. `save_to`: where the first seed's fine-tuned
    segmenter goes (for `biofm segment`); `quick`: small subsets, two epochs;
    `max_train`: at most that many training crops per seed (a seeded sample, validation
    and test kept); `intervals`: bootstrap 95% intervals of mean Dice and HD95 over the
    test crops (`dice_lo`, `dice_hi`, `hd95_lo`, `hd95_hi`)."""
    import time

    from biofm.bench.compare import cap_examples
    from biofm.bench.report import ResultTable
    from biofm.modalities.imaging.tasks import segmentation_task

    task = segmentation_task(task_name)
    full_train, valid, test = task.load()
    if quick:
        full_train, valid, test = (d.subset(range(min(len(d), n)))
                                   for d, n in ((full_train, 48), (valid, 16), (test, 24)))
    table = ResultTable()
    table.add(task.name, "box prompt (filled box)", 0,
              _dice_hd95(box_baseline(test, intervals=intervals)))
    start = time.perf_counter()
    for seed in range(seeds):
        train = cap_examples(full_train, max_train, seed)
        for mode in modes:
            label = COMPARE_LABELS[mode]
            config = SegmentConfig(mode=mode, seed=seed, epochs=2 if quick else COMPARE_EPOCHS,
                                   patience=1 if quick else COMPARE_PATIENCE,
                                   features=COMPARE_FEATURES,
                                   lr=3e-3 if mode == "lora" else 1e-3, device=device)
            result = train_segmenter(build_segmenter(config, model), train, valid, config)
            metrics = _dice_hd95(evaluate_segmenter(result.model, test, intervals=intervals,
                                                    seed=seed))
            table.add(task.name, label, seed, metrics)
            if say is not None:
                say(f"{task.name} seed {seed + 1}/{seeds}: {label}: Dice "
                    f"{metrics['dice']:.3f}, HD95 {metrics['hd95']:.1f} mm "
                    f"({time.perf_counter() - start:.0f} s)")
            if save_to is not None and seed == 0 and mode == "full":
                save_segmenter(result, save_to, task=task.name)
    return table


def _dice_hd95(metrics: dict[str, float]) -> dict[str, float]:
    """The table's columns: Dice and HD95, and their intervals when computed."""
    return {k: v for k, v in metrics.items() if k != "n"}


__all__ = ["PromptedUNETR", "PromptedUNet", "SegmentConfig", "SegmentResult", "box_baseline",
           "build_segmenter", "compare_segmenters", "evaluate_segmenter", "load_segmenter",
           "predict_masks", "save_segmenter", "skip_layers", "train_segmenter"]
