"""Tiny patch forecasters for the time-series model tests (random weights, built in-process)."""

from __future__ import annotations

import numpy as np
import torch

from biofm.config import PretrainConfig
from biofm.model import FoundationModel
from biofm.modalities.timeseries.patching import PatchTokenizer
from biofm.modalities.timeseries.series import Series

PATCH = 4
CONTEXT_PATCHES = 8


def tiny_forecaster_model(objective: str = "masked-patch", seed: int = 0) -> FoundationModel:
    """A 2-layer, 64-wide patch transformer: patches of 4 steps, 8 patches of context."""
    kind = "encoder" if objective == "masked-patch" else "decoder"
    config = PretrainConfig.from_dict({
        "data": {"modality": "timeseries", "input": "flu-chicago"},
        "backbone": {"kind": kind, "size": "tiny", "max_len": CONTEXT_PATCHES,
                     "values": "patches", "value_size": 2 * PATCH},
        "objective": {"name": objective, "mask_rate": 0.3,
                      "norm_window": 16 if objective == "masked-patch" else 0},
        "train": {"device": "cpu"},
    })
    torch.manual_seed(seed)
    return FoundationModel(config, PatchTokenizer(patch_len=PATCH))


def seasonal_series(n: int = 120, seed: int = 0, series_id: str = "s") -> Series:
    """A positive weekly series with a yearly cycle and noise (synthetic, for unit tests only)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = 50 + 30 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 3, n)
    dates = np.datetime64("2018-01-07") + np.arange(n) * np.timedelta64(7, "D")
    return Series(series_id, dates, np.clip(values, 0, None), "W", source="synthetic")
