"""Baseline forecasters that run beside any model in the same evaluation:
last value, seasonal naive, ARIMA and ETS (statsmodels).

Every baseline implements `evaluation.Forecaster`: `forecast(history, horizon,
quantiles)` takes (n,) float history (NaN = missing; only values up to the
forecast origin) and returns (horizon, Q) quantiles, non-decreasing along Q.
Nothing is fitted ahead of time: each call fits on the history it is given.

Quantiles:
- naive baselines (last value, seasonal naive) use the empirical distribution
  of their own errors on the history: the point forecast plus the q-quantile
  of the changes `y[t+g] - y[t]` seen in the history over the gap g between
  the value the forecast repeats and its target, symmetrised (each change also
  counted with its sign flipped, like the CDC FluSight baseline) so the median
  is the point forecast. For last value g = h + the run of missing values that
  ends the history (the last observation is that much further from the
  target); for seasonal naive g is the period (k periods for horizons beyond k
  - 1 seasons). With fewer than `MIN_RESIDUALS` such changes, last value falls
  back to the 1-step changes times sqrt(g), seasonal naive to the one-season
  changes times sqrt(k), and with fewer still the forecast is a point (all
  quantiles equal);
- ARIMA / ETS use the model's Gaussian predictive distribution
  (mean + z_q * standard error). With `period` set (12 for monthly series) and
  at least two seasons of history they are seasonal: ARIMA(1,1,1) with a
  seasonal AR(1) term of that period, ETS with an additive seasonal component.
If all the history is non-negative (counts, rates) quantiles are clipped at 0.
When a statsmodels fit fails or returns non-finite numbers the baseline falls
back to last value for that call and counts it in `failures` (with the reason);
the rolling-origin evaluation reports these fallbacks beside the scores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.stats import norm

MIN_RESIDUALS = 5


def _finite(history: np.ndarray) -> np.ndarray:
    history = np.asarray(history, dtype=np.float64)
    return history[np.isfinite(history)]


def _finish(quantiles: np.ndarray, history: np.ndarray) -> np.ndarray:
    """(H, Q) made non-decreasing along Q and clipped at 0 for non-negative data."""
    quantiles = np.maximum.accumulate(quantiles, axis=-1)
    observed = _finite(history)
    if observed.size and observed.min() >= 0:
        quantiles = np.maximum(quantiles, 0.0)
    return quantiles


def _empirical(point: np.ndarray, changes: list[np.ndarray], levels: np.ndarray) -> np.ndarray:
    """(H, Q): point[h] + quantiles of changes[h] (empty → no spread)."""
    out = np.repeat(point[:, None], levels.size, axis=1)
    for h, diffs in enumerate(changes):
        if diffs.size:
            out[h] += np.quantile(diffs, levels)
    return out


def _changes(history: np.ndarray, lag: int) -> np.ndarray:
    """Finite values of y[t] - y[t - lag] over the history, symmetrised (each change
    also with its sign flipped, as the CDC FluSight baseline does), so the median
    forecast is the point forecast itself."""
    if lag >= len(history):
        return np.empty(0)
    diffs = history[lag:] - history[:-lag]
    diffs = diffs[np.isfinite(diffs)]
    return np.concatenate([diffs, -diffs])


@dataclass
class LastValue:
    """Every horizon repeats the last observed value; spread from the changes over the
    gap to the target (h plus any missing values at the end of the history)."""

    name: str = "last-value"

    def forecast(self, history: np.ndarray, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
        history = np.asarray(history, dtype=np.float64)
        observed = np.flatnonzero(np.isfinite(history))
        if observed.size == 0:
            raise ValueError("last-value needs at least one observed value in the history")
        levels = np.asarray(quantiles, dtype=np.float64)
        missing_run = len(history) - 1 - observed[-1]  # NaNs after the last observation
        point = np.full(horizon, history[observed[-1]])
        one_step = _changes(history, 1)
        changes = []
        for gap in range(1 + missing_run, horizon + 1 + missing_run):
            diffs = _changes(history, gap)
            if diffs.size < MIN_RESIDUALS:
                diffs = one_step * np.sqrt(gap) if one_step.size >= MIN_RESIDUALS else np.empty(0)
            changes.append(diffs)
        return _finish(_empirical(point, changes, levels), history)


@dataclass
class SeasonalNaive:
    """y[origin + h - period] (one season back); last value when the history is
    shorter than a season plus MIN_RESIDUALS or that value is missing."""

    period: int = 52
    name: str = "seasonal-naive"

    def forecast(self, history: np.ndarray, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
        history = np.asarray(history, dtype=np.float64)
        n = len(history)
        index = n - 1 + np.arange(1, horizon + 1) - self.period
        while np.any(index >= n):  # horizons beyond a season reuse the last season
            index = np.where(index >= n, index - self.period, index)
        seasonal = _changes(history, self.period)
        if index.min() < 0 or seasonal.size < MIN_RESIDUALS or \
                not np.all(np.isfinite(history[np.maximum(index, 0)])):
            return LastValue().forecast(history, horizon, quantiles)
        levels = np.asarray(quantiles, dtype=np.float64)
        seasons = (n - 1 + np.arange(1, horizon + 1) - index) // self.period  # k: gap k periods
        changes = []
        for k in seasons:
            diffs = seasonal if k == 1 else _changes(history, int(k) * self.period)
            changes.append(diffs if diffs.size >= MIN_RESIDUALS else seasonal * np.sqrt(k))
        return _finish(_empirical(history[index], changes, levels), history)


@dataclass
class _StatsmodelsBaseline:
    """Shared fit-or-fall-back logic; subclasses implement `_mean_and_se`."""

    window: int = 208  # fit on at most the last `window` values (speed)
    name: str = "statsmodels"
    failures: list[str] = field(default_factory=list)

    def forecast(self, history: np.ndarray, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
        history = np.asarray(history, dtype=np.float64)
        recent = history[-self.window:]
        levels = np.asarray(quantiles, dtype=np.float64)
        if np.isfinite(recent).sum() < 2 * MIN_RESIDUALS:
            return self._fallback(history, horizon, quantiles, "history too short")
        try:
            with warnings.catch_warnings():
                _import_statsmodels()  # its first import installs warning filters of its own
                warnings.simplefilter("ignore")  # convergence chatter: failures are recorded
                mean, se = self._mean_and_se(recent, horizon)
        except Exception as exc:  # noqa: BLE001  (any statsmodels failure → baseline)
            return self._fallback(history, horizon, quantiles, f"{type(exc).__name__}: {exc}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(se))):
            return self._fallback(history, horizon, quantiles, "non-finite forecast")
        out = mean[:, None] + norm.ppf(levels)[None, :] * np.maximum(se, 0.0)[:, None]
        return _finish(out, history)

    def _fallback(self, history: np.ndarray, horizon: int, quantiles: Sequence[float],
                  why: str) -> np.ndarray:
        self.failures.append(why)
        return LastValue().forecast(history, horizon, quantiles)

    def _mean_and_se(self, history: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _import_statsmodels() -> None:
    import statsmodels.tsa.arima.model  # noqa: F401
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401


def _seasonal(period: int | None, history: np.ndarray) -> bool:
    """Whether a seasonal model of `period` steps fits: two whole seasons of history."""
    return bool(period) and len(history) >= 2 * period


@dataclass
class Arima(_StatsmodelsBaseline):
    """ARIMA(p, d, q) by statsmodels' state-space model (missing values handled by
    the Kalman filter), fitted on the last `window` (104) values; with `period`
    (and two seasons of history), a seasonal AR(1) term of that period too."""

    order: tuple[int, int, int] = (1, 1, 1)
    name: str = "arima"
    window: int = 104  # two years of weeks: the exact likelihood is slow on long windows
    period: int | None = None

    def _mean_and_se(self, history: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        from statsmodels.tsa.arima.model import ARIMA

        seasonal = (1, 0, 0, self.period) if _seasonal(self.period, history) else (0, 0, 0, 0)
        fitted = ARIMA(history, order=self.order, seasonal_order=seasonal,
                       concentrate_scale=True).fit()  # concentrated scale: 3x faster
        prediction = fitted.get_forecast(horizon)
        return np.asarray(prediction.predicted_mean), np.asarray(prediction.se_mean)


@dataclass
class Ets(_StatsmodelsBaseline):
    """Additive-error, damped additive-trend exponential smoothing (statsmodels
    ETSModel), fitted on the last `window` (208) values with interior gaps filled by
    linear interpolation between observed history values (never later ones); with
    `period` (and two seasons of history), an additive seasonal component too."""

    name: str = "ets"
    period: int | None = None

    def _mean_and_se(self, history: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        import pandas as pd

        filled = pd.Series(_interpolate(history))  # a bare array trips get_prediction
        seasonal = dict(seasonal="add", seasonal_periods=self.period) \
            if _seasonal(self.period, filled.to_numpy()) else {}
        fitted = ETSModel(filled, error="add", trend="add", damped_trend=True,
                          **seasonal).fit(disp=False)
        frame = fitted.get_prediction(start=len(filled), end=len(filled) + horizon - 1)
        return np.asarray(frame.predicted_mean), np.sqrt(np.asarray(frame.var_pred_mean))


def _interpolate(history: np.ndarray) -> np.ndarray:
    """Drop leading NaNs, fill interior ones linearly, carry the last value forward."""
    observed = np.flatnonzero(np.isfinite(history))
    history = history[observed[0]:]
    positions = np.arange(len(history))
    finite = np.isfinite(history)
    return np.interp(positions, positions[finite], history[finite])


def default_baselines(season: int = 52, seasonal_models: bool = False) -> list:
    """The four baselines of every evaluation, seasonal naive first (the reference);
    `seasonal_models`: ARIMA and ETS seasonal with period `season` too (monthly)."""
    period = season if seasonal_models else None
    return [SeasonalNaive(period=season), LastValue(), Arima(period=period), Ets(period=period)]


__all__ = ["Arima", "Ets", "LastValue", "MIN_RESIDUALS", "SeasonalNaive", "default_baselines"]
