"""Imaging test helpers: real data when installed (skipped with the install command
otherwise), and tiny files the tests write themselves."""

from __future__ import annotations

import pytest


def require(name: str, kind: str = "volume"):
    """The path of a packaged volume / atlas, or skip saying how to install it."""
    from biofm.modalities.imaging.locate import DataMissing, atlas_path, volume_path

    try:
        return volume_path(name) if kind == "volume" else atlas_path(name)
    except DataMissing as exc:
        pytest.skip(f"imaging data not installed (make data): {exc}")


def require_installed() -> None:
    """Skip, saying how to install it, when the packaged imaging data is missing."""
    from biofm.modalities.imaging.locate import available

    ok, why = available()
    if not ok:
        pytest.skip(f"imaging data not installed (make data): {why}")


def tiny_vit_config(**train):
    """A 2-layer ViT with MAE on 64 x 64 one-channel images (seconds on a CPU)."""
    from biofm.config import PretrainConfig

    return PretrainConfig.from_dict({
        "data": {"modality": "imaging", "input": "colin27-slices", "valid_fraction": 0.1},
        "backbone": {"kind": "encoder", "size": "tiny", "image_size": [64, 64],
                     "patch_size": [8, 8], "channels": 1, "position": "sincos"},
        "objective": {"name": "mae", "mask_rate": 0.75},
        "train": {"max_steps": 2, "batch_size": 8, "eval_every": 2, "save_every": 2,
                  "warmup_steps": 1, "progress": False, **train}})


def tiny_vit():
    from biofm.backbones.vision import build_vit

    return build_vit(tiny_vit_config(), seed=0)
