"""Forecast outputs: the FluSight quantile CSV and one plot per series.

FluSight layout (CDC FluSight hub, one row per quantile):

    reference_date, target, horizon, target_end_date, location, output_type,
    output_type_id, value

Here `reference_date` is the forecast origin (the last date of the history),
`horizon` h = 1..H counts periods after it and `target_end_date` is the date h
periods later (FluSight itself dates reference weeks by their Saturday and
counts horizon 0..3 from there; shift when submitting), `location` is the
series id, `output_type` is "quantile" and `output_type_id` the quantile level.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from biofm.io import atomic_path
from biofm.modalities.timeseries.metrics import median_index
from biofm.modalities.timeseries.series import Series

FLUSIGHT_COLUMNS = ("reference_date", "target", "horizon", "target_end_date", "location",
                    "output_type", "output_type_id", "value")


def flusight_frame(series: Series, predicted: np.ndarray, quantiles: Sequence[float], *,
                   target: str = "wk inc ili", origin: int | None = None) -> pd.DataFrame:
    """(H * Q) rows for the (H, Q) quantile forecast of `series` from `origin` (default: last)."""
    origin = len(series) - 1 if origin is None else origin
    horizon, n_levels = predicted.shape
    future = series.head(origin + 1).future_dates(horizon)
    return pd.DataFrame({
        "reference_date": str(series.dates[origin]),
        "target": target,
        "horizon": np.repeat(np.arange(1, horizon + 1), n_levels),
        "target_end_date": np.repeat(future.astype(str), n_levels),
        "location": series.id,
        "output_type": "quantile",
        "output_type_id": np.tile(np.round(np.asarray(quantiles, dtype=np.float64), 4), horizon),
        "value": predicted.reshape(-1),
    }, columns=list(FLUSIGHT_COLUMNS))


def write_flusight(frames: list[pd.DataFrame], path: str | Path) -> Path:
    """Concatenate FluSight frames and write them as CSV (atomically)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    return path


def slug(text: str) -> str:
    """A file-name-safe series id ("Back Bay/Beacon Hill" → "Back_Bay_Beacon_Hill")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "series"


def plot_forecast(series: Series, predicted: np.ndarray, quantiles: Sequence[float],
                  path: str | Path, *, title: str | None = None, show_last: int = 104) -> Path:
    """PNG: the last `show_last` observed values, the median and the 50% / 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = np.asarray(quantiles, dtype=np.float64)
    band = {lv: int(np.flatnonzero(np.isclose(levels, lv))[0]) for lv in (0.025, 0.25, 0.75, 0.975)
            if np.isclose(levels, lv).any()}
    future = series.future_dates(predicted.shape[0])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(series.dates[-show_last:], series.values[-show_last:], color="black", lw=1.2,
            label="observed")
    if 0.025 in band and 0.975 in band:
        ax.fill_between(future, predicted[:, band[0.025]], predicted[:, band[0.975]],
                        color="tab:blue", alpha=0.2, label="95% interval")
    if 0.25 in band and 0.75 in band:
        ax.fill_between(future, predicted[:, band[0.25]], predicted[:, band[0.75]],
                        color="tab:blue", alpha=0.4, label="50% interval")
    ax.plot(future, predicted[:, median_index(quantiles)], color="tab:blue", marker="o", ms=3,
            label="median")
    ax.set_title(title or series.id)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


__all__ = ["FLUSIGHT_COLUMNS", "flusight_frame", "plot_forecast", "slug", "write_flusight"]
