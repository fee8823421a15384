"""Rolling-origin evaluation with strict temporal splits.

For each series and each forecast origin t (a position in the series), every
forecaster is called with `history_until(series, t)` = values[: t + 1], a copy:
nothing after the origin exists for it, so any statistic it computes (instance
normalisation, model fit, residual quantiles) is computed on the past only. Its
(H, Q) quantiles for horizons 1..H are scored against values[t + h].

Rows: one per (series, origin, horizon, forecaster) with the truth, median,
absolute error, WIS and whether the truth fell in the central 50% / 95%
intervals. Summary: per forecaster (all horizons, and per horizon) the mean
MAE, WIS, coverage, and the relative WIS = mean WIS / mean WIS of the reference
forecaster (seasonal naive) over the same points, as the FluSight evaluations
report it. Points whose truth is missing are kept in the rows (NaN metrics) and
left out of the means; `n` counts the scored points.

A baseline whose fit can fail (ARIMA, ETS: a `failures` list) forecasts last
value instead; such forecasts are flagged in the rows (`fallback`) and the
summaries count them (`fallbacks`: scored points, `fallback_series`: series with
at least one), so a table never passes last value off as ARIMA.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text
from biofm.modalities.timeseries.metrics import (FLUSIGHT_QUANTILES, coverage_per_point,
                                                 median_index, wis_per_point)
from biofm.modalities.timeseries.series import Series, date_range

REFERENCE = "seasonal-naive"


@runtime_checkable
class Forecaster(Protocol):
    """Anything that turns a past into quantile forecasts."""

    name: str

    def forecast(self, history: np.ndarray, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
        """history (n,) float, NaN = missing, only values up to and including the forecast origin.
        Returns (horizon, len(quantiles)), non-decreasing along the quantile axis."""
        ...


def history_until(series: Series, origin: int) -> np.ndarray:
    """(origin + 1,) float64 copy of the values up to and including position `origin`."""
    return series.values[: origin + 1].copy()


def forecast_at(forecaster: Forecaster, series: Series, origin: int, horizon: int,
                quantiles: Sequence[float] = FLUSIGHT_QUANTILES) -> np.ndarray:
    """(horizon, Q) quantile forecast of `series` from position `origin`, checked."""
    return forecasts_at(forecaster, series, [origin], horizon, quantiles)[0]


def forecasts_at(forecaster: Forecaster, series: Series, origins: Sequence[int], horizon: int,
                 quantiles: Sequence[float] = FLUSIGHT_QUANTILES) -> np.ndarray:
    """(len(origins), horizon, Q) forecasts, one per origin, each from its own history
    slice; a forecaster with `forecast_many(histories, horizon, quantiles)` (a model
    that batches) gets all slices in one call."""
    histories = [history_until(series, origin) for origin in origins]
    for origin, history in zip(origins, histories):
        if not np.isfinite(history).any():
            raise BiofmError(f"series {series.id!r} has no observed value up to "
                             f"{series.dates[origin]}: nothing to forecast from",
                             path=series.source or None, record=series.id,
                             fix="use later origins (--origins fewer / --context longer), or "
                                 "leave this series out")
    if hasattr(forecaster, "forecast_many"):
        out = np.asarray(forecaster.forecast_many(histories, horizon, quantiles), dtype=np.float64)
    else:
        out = np.stack([np.asarray(forecaster.forecast(h, horizon, quantiles), dtype=np.float64)
                        for h in histories]) if histories else \
            np.empty((0, horizon, len(quantiles)))
    if out.shape != (len(origins), horizon, len(quantiles)):
        raise ValueError(f"{forecaster.name} returned shape {out.shape[1:]}, expected "
                         f"{(horizon, len(quantiles))}")
    if not np.all(np.isfinite(out)) or np.any(np.diff(out, axis=-1) < 0):
        raise ValueError(f"{forecaster.name}: quantiles for {series.id!r} are not finite and "
                         "non-decreasing")
    return out


def choose_origins(series: Series, *, n_origins: int, max_horizon: int, context: int,
                   step: int = 1) -> list[int]:
    """The last `n_origins` positions, `step` apart, that leave `max_horizon` values of
    truth after them and `context` values (origin included) before them."""
    last = len(series) - 1 - max_horizon
    first = context - 1
    if last < first:
        raise BiofmError(f"series {series.id!r} has {len(series)} periods; rolling-origin "
                         f"evaluation needs at least context {context} + horizon {max_horizon}",
                         path=series.source or None, record=series.id,
                         fix="lower --context / --horizon, or leave this series out")
    return sorted(range(last, first - 1, -step))[-n_origins:]


def origins_for_dates(series: Series, dates: Sequence[str | np.datetime64]) -> list[int]:
    """Positions of the given origin dates in `series` (BiofmError if one is absent)."""
    out = []
    for date in dates:
        hits = np.flatnonzero(series.dates == np.datetime64(date, "D"))
        if hits.size == 0:
            raise BiofmError(f"origin {date} is not a date of series {series.id!r} "
                             f"({series.dates[0]} .. {series.dates[-1]})",
                             path=series.source or None, fix="pick origins on the series' dates")
        out.append(int(hits[0]))
    return out


@dataclass
class Evaluation:
    """Scored rows, summaries, and the quantiles behind them."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    by_horizon: pd.DataFrame
    quantiles: tuple[float, ...]
    reference: str

    def save(self, directory: str | Path) -> dict[str, Path]:
        """rows.csv, summary.csv, summary_by_horizon.csv and summary.json (atomic writes)."""
        directory = Path(directory)
        paths = {"rows": directory / "rows.csv", "summary": directory / "summary.csv",
                 "by_horizon": directory / "summary_by_horizon.csv",
                 "json": directory / "summary.json"}
        for key in ("rows", "summary", "by_horizon"):
            frame = {"rows": self.rows, "summary": self.summary, "by_horizon": self.by_horizon}[key]
            with atomic_path(paths[key]) as tmp:
                frame.to_csv(tmp, index=False)
        payload = {"reference": self.reference,
                   "summary": json.loads(self.summary.to_json(orient="records")),
                   "by_horizon": json.loads(self.by_horizon.to_json(orient="records"))}
        atomic_write_text(paths["json"], json.dumps(payload, indent=2))
        return paths

    def table(self, title: str = "rolling-origin evaluation"):
        """A rich Table of the summary (relative WIS < 1 beats the reference)."""
        from rich.table import Table

        fell_back = self.summary[self.summary["fallbacks"] > 0]
        caption = "; ".join(f"{row.forecaster}: {row.fallbacks} of {row.n} points "
                            f"({row.fallback_series} series) are last-value fallbacks "
                            f"(failed fits)" for row in fell_back.itertuples(index=False))
        table = Table(title=title, caption=caption or None)
        columns = ["forecaster", "n", "MAE", "WIS", "cov50", "cov95", "rel_WIS"]
        for column in columns + (["fallbacks"] if len(fell_back) else []):
            table.add_column(column, justify="left" if column == "forecaster" else "right")
        for row in self.summary.itertuples(index=False):
            cells = [row.forecaster, str(row.n), f"{row.MAE:.3f}", f"{row.WIS:.3f}",
                     f"{row.cov50:.2f}", f"{row.cov95:.2f}", f"{row.rel_WIS:.3f}"]
            if len(fell_back):
                cells.append(f"{row.fallbacks} ({row.fallback_series} series)"
                             if row.fallbacks else "0")
            table.add_row(*cells)
        return table


def rolling_origin(series_list: Sequence[Series], forecasters: Sequence[Forecaster], *,
                   horizons: Sequence[int] = (1, 2, 3, 4), context: int = 52,
                   origins: int | Sequence[str | np.datetime64] = 10, step: int = 1,
                   quantiles: Sequence[float] = FLUSIGHT_QUANTILES, reference: str = REFERENCE,
                   on_forecast: Callable[[], None] | None = None) -> Evaluation:
    """Score every forecaster on every series from each origin; see the module docstring.

    `origins`: how many of the latest origins per series (int), or explicit origin dates.
    `on_forecast`: called after each (series, forecaster) pair (progress bars).
    """
    if not series_list or not forecasters:
        raise BiofmError("nothing to evaluate: no series or no forecasters",
                         fix="pass at least one series and one forecaster")
    names = [f.name for f in forecasters]
    if len(set(names)) != len(names):
        raise ValueError(f"forecaster names must be unique: {names}")
    horizons = sorted(set(int(h) for h in horizons))
    if horizons[0] < 1:
        raise BiofmError(f"horizons must be >= 1, got {horizons}", fix="use e.g. --horizon 4")
    records = []
    for series in series_list:
        positions = choose_origins(series, n_origins=origins, max_horizon=horizons[-1],
                                   context=context, step=step) if isinstance(origins, int) \
            else origins_for_dates(series, origins)
        for forecaster in forecasters:
            predicted, fell_back = _forecasts_and_fallbacks(forecaster, series, positions,
                                                            horizons[-1], quantiles)
            for origin, one, fallback in zip(positions, predicted, fell_back):
                records += _score(series, origin, horizons, forecaster.name, one, quantiles,
                                  fallback)
            if on_forecast is not None:
                on_forecast()
    rows = pd.DataFrame.from_records(records)
    return Evaluation(rows, summarise(rows, reference), summarise(rows, reference, ["horizon"]),
                      tuple(quantiles), reference)


def _forecasts_and_fallbacks(forecaster: Forecaster, series: Series, origins: Sequence[int],
                             horizon: int, quantiles: Sequence[float]
                             ) -> tuple[np.ndarray, list[bool]]:
    """(len(origins), horizon, Q) forecasts and, per origin, whether the forecaster fell
    back to last value (its `failures` list grew during that call)."""
    failures = getattr(forecaster, "failures", None)
    if failures is None:
        return forecasts_at(forecaster, series, origins, horizon, quantiles), [False] * len(origins)
    out, fell_back = [], []
    for origin in origins:  # one call per origin, to tell which ones fell back
        before = len(failures)
        out.append(forecasts_at(forecaster, series, [origin], horizon, quantiles))
        fell_back.append(len(failures) > before)
    return (np.concatenate(out) if out else np.empty((0, horizon, len(quantiles))), fell_back)


def _score(series: Series, origin: int, horizons: list[int], name: str, predicted: np.ndarray,
           quantiles: Sequence[float], fallback: bool = False) -> list[dict]:
    """One row per horizon: truth (NaN when beyond the series or missing) and metrics."""
    out = []
    mid = median_index(quantiles)
    for h in horizons:
        target = origin + h
        y = series.values[target] if target < len(series) else np.nan
        q = predicted[h - 1]
        out.append({
            "series": series.id, "origin_date": str(series.dates[origin]), "origin": origin,
            "horizon": h, "target_date": str(date_range(series.dates[origin], h + 1,
                                                        series.freq)[-1]),
            "forecaster": name, "y": y, "median": q[mid],
            "lower50": _level(q, quantiles, 0.25), "upper50": _level(q, quantiles, 0.75),
            "lower95": _level(q, quantiles, 0.025), "upper95": _level(q, quantiles, 0.975),
            "ae": abs(y - q[mid]), "wis": float(wis_per_point(np.array(y), q, quantiles)),
            "cov50": float(coverage_per_point(np.array(y), q, quantiles, 0.5)),
            "cov95": float(coverage_per_point(np.array(y), q, quantiles, 0.95)),
            "fallback": fallback,
        })
    return out


def _level(q: np.ndarray, quantiles: Sequence[float], level: float) -> float:
    hits = np.flatnonzero(np.isclose(np.asarray(quantiles), level))
    return float(q[hits[0]]) if hits.size else float("nan")


def summarise(rows: pd.DataFrame, reference: str = REFERENCE,
              by: Sequence[str] = ()) -> pd.DataFrame:
    """Mean metrics per forecaster (and `by` columns) over scored points; rel_WIS is
    the ratio of mean WIS to the reference's mean WIS on the same (series, origin,
    horizon) points (NaN when the reference was not run). `fallbacks` counts the
    scored points forecast by last value instead (a failed fit), `fallback_series`
    the series with at least one such point."""
    scored = rows[np.isfinite(rows["y"].to_numpy(dtype=np.float64))]
    if "fallback" not in scored:  # rows saved before fallbacks were recorded
        scored = scored.assign(fallback=False)
    scored = scored.assign(fallback_series=scored["series"].where(scored["fallback"]))
    keys = ["series", "origin", "horizon"]
    ref = scored[scored["forecaster"] == reference][keys + ["wis"]].rename(columns={"wis": "ref"})
    scored = scored.merge(ref, on=keys, how="left")
    group = [*by, "forecaster"]
    summary = scored.groupby(group, sort=False).agg(
        n=("wis", "size"), MAE=("ae", "mean"), WIS=("wis", "mean"), cov50=("cov50", "mean"),
        cov95=("cov95", "mean"), ref_WIS=("ref", "mean"), fallbacks=("fallback", "sum"),
        fallback_series=("fallback_series", "nunique")).reset_index()
    summary["rel_WIS"] = summary["WIS"] / summary["ref_WIS"]
    summary["fallbacks"] = summary["fallbacks"].astype(int)
    columns = [c for c in summary.columns if c not in ("ref_WIS", "fallbacks", "fallback_series")]
    return summary[columns + ["fallbacks", "fallback_series"]]


__all__ = ["Evaluation", "Forecaster", "REFERENCE", "choose_origins", "forecast_at",
           "forecasts_at", "history_until", "origins_for_dates", "rolling_origin", "summarise"]
