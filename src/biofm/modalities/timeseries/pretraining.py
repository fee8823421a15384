"""Pretraining data for time-series models: windows of every series, split in time.

`biofm pretrain --config ts-patch-tiny --set data.input=flu-chicago` reads the
series (packaged corpus names or CSVs read by `readers.read_series`, several
joined by commas: `flu-chicago,us-contagious`), cuts each
into windows of `data.window` steps (default: `backbone.max_len` patches) every
`data.stride` steps (default: one patch), and encodes each window with the
`PatchTokenizer` as `backbone.max_len`-or-fewer patches. A series shorter than
a window gives one window, left-padded with missing values.

Validation is a split in time, per series: windows ending in the last
`data.valid_fraction` of a series are validation windows, the others end
before that stretch begins, so no training window holds a validation target.
Only the series passed in are read: hold a series out by not naming it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console

from biofm.config import BackboneConfig, DataConfig, PretrainConfig
from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.timeseries.corpora import TIMESERIES_CORPORA, load_input
from biofm.modalities.timeseries.patching import PatchTokenizer
from biofm.modalities.timeseries.series import Series
from biofm.registry import CORPORA
from biofm.tokenizer import Tokenizer

MODALITY = "timeseries"
console = Console(stderr=True)


def patch_tokenizer(backbone: BackboneConfig) -> PatchTokenizer:
    """The tokenizer matching a backbone: patch_len = value_size / 2 (values + flags)."""
    if backbone.values != "patches" or backbone.value_size % 2:
        raise BiofmError(f"a time-series backbone needs values=patches and an even value_size "
                         f"(2 * patch_len); got values={backbone.values!r}, "
                         f"value_size={backbone.value_size}",
                         fix="use a ts-* preset, or --set backbone.values=patches "
                             "--set backbone.value_size=16")
    return PatchTokenizer(patch_len=backbone.value_size // 2)


def window_length(config: PretrainConfig, patch_len: int) -> int:
    """Steps per window: `data.window`, or the backbone's whole context."""
    window = config.data.window or config.backbone.max_len * patch_len
    if math.ceil(window / patch_len) > config.backbone.max_len:
        raise BiofmError(f"data.window={window} steps is {math.ceil(window / patch_len)} patches "
                         f"of {patch_len}; the backbone takes at most {config.backbone.max_len}",
                         fix=f"pass --set data.window={config.backbone.max_len * patch_len} "
                             "(or less), or raise --set backbone.max_len")
    return window


def load_series(data: DataConfig) -> list[Series]:
    """The series named by `data.input`: CSV files (long or wide) or packaged corpora,
    several joined by commas (`flu-chicago,us-contagious`); `data.max_records` caps
    the number of series."""
    names = [data.input] if Path(data.input).exists() else \
        [name.strip() for name in data.input.split(",") if name.strip()]
    series = [s for name in names for s in _series_of(name, data.column)]
    series = series[: data.max_records or None]
    if not series:
        raise BiofmError("no series to pretrain on", path=data.input,
                         fix="pass a CSV with at least one series, or a time-series corpus")
    return series


def _series_of(name: str, column: str | None) -> list[Series]:
    if Path(name).exists() or name in TIMESERIES_CORPORA:
        return load_input(name, value_column=column or "value")
    if name in CORPORA:
        raise BiofmError(f"corpus {name!r} holds records of another modality, not time series",
                         fix="name a time-series corpus: " + ", ".join(TIMESERIES_CORPORA))
    raise BiofmError(f"{name!r} is neither a file nor a packaged corpus", path=name,
                     fix="pass a CSV path or a time-series corpus: "
                         + ", ".join(TIMESERIES_CORPORA))


def window_ends(n: int, window: int, stride: int) -> list[int]:
    """Exclusive end positions of the windows of a length-n series, latest first."""
    if n <= window:
        return [n]
    return list(range(n, window - 1, -stride))


def series_windows(series: Series, window: int, stride: int,
                   valid_fraction: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, valid) windows of one series; valid ones end in its last `valid_fraction`."""
    n = len(series)
    cut = n - math.ceil(valid_fraction * n) if valid_fraction > 0 and n > window else n
    train, valid = [], []
    for end in window_ends(n, window, stride):
        values = series.values[max(0, end - window): end]
        (train if end <= cut else valid).append(values)
    return train, valid


def timeseries_run_data(config: PretrainConfig,
                        new_model: Callable[[Callable[[], Tokenizer]], FoundationModel]
                        ) -> tuple[FoundationModel, list[ValuedSequence],
                                   list[ValuedSequence] | None]:
    """The model and the train / valid windows of a `biofm pretrain` run.

    `new_model(tokenizer_factory)` builds the model (fresh, with weights drawn
    from `train.seed`, or from `--init`).
    """
    model = new_model(lambda: patch_tokenizer(config.backbone))
    if not isinstance(model.tokenizer, PatchTokenizer):
        raise BiofmError(f"--init names a {model.tokenizer.name!r} model, not a time-series one",
                         fix="continue pretraining from a checkpoint written with a ts-* preset")
    train, valid = timeseries_data(model.config, model.tokenizer)
    return model, train, valid


def timeseries_data(config: PretrainConfig, tokenizer: PatchTokenizer
                    ) -> tuple[list[ValuedSequence], list[ValuedSequence] | None]:
    """Train and validation windows of every series, encoded as patches.

    A window needs more than one patch of observed values to carry a target;
    emptier windows are left out and counted in a printed note.
    """
    if config.train.packing:
        raise BiofmError("time-series windows are not packed (instance statistics are per row)",
                         fix="pass --set train.packing=false")
    P = tokenizer.patch_len
    window = window_length(config, P)
    stride = config.data.stride or P
    n_patches = math.ceil(window / P)
    out: dict[str, list[ValuedSequence]] = {"train": [], "valid": []}
    empty = 0
    for s in load_series(config.data):
        for split, windows in zip(("train", "valid"),
                                  series_windows(s, window, stride, config.data.valid_fraction)):
            for values in windows:
                if np.isfinite(values).sum() <= P:
                    empty += 1
                    continue
                out[split].append(tokenizer.encode_series(values, n_patches))
    if empty:
        console.print(f"{empty} windows with at most {P} observed values left out "
                      "(nothing to predict)", markup=False, highlight=False)
    if not out["train"]:
        raise BiofmError(f"no training window has more than {P} observed values",
                         path=config.data.input,
                         fix="give longer series, or shorter patches (--set "
                             "backbone.value_size=8: patches of 4 steps)")
    return out["train"], out["valid"] or None


__all__ = ["MODALITY", "load_series", "patch_tokenizer", "series_windows", "timeseries_data",
           "timeseries_run_data", "window_ends", "window_length"]
