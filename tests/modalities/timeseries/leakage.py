"""A reusable no-leakage check for any `Forecaster` (baselines here, the patch model in
TS-MODEL's tests):

    from tests.modalities.timeseries.leakage import assert_no_leakage
    assert_no_leakage(forecaster, series, origin=120)

It fails if any value after the forecast origin can influence a forecast made at
that origin, through `forecast_at` and through `rolling_origin`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biofm.modalities.timeseries.evaluation import Forecaster, forecast_at, rolling_origin
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.series import Series

FORECAST_COLUMNS = ["median", "lower50", "upper50", "lower95", "upper95"]


def poisoned(series: Series, after: int) -> Series:
    """The series with every value after position `after` replaced by huge, distinct numbers."""
    values = series.values.copy()
    tail = np.arange(after + 1, len(values))
    values[tail] = 1e9 * (1.0 + tail)
    return Series(series.id, series.dates, values, series.freq, series.source)


def assert_no_leakage(forecaster: Forecaster, series: Series, origin: int, *, horizon: int = 4,
                      quantiles: Sequence[float] = FLUSIGHT_QUANTILES) -> None:
    """Forecasts from `origin` are bitwise equal when everything after it is poisoned;
    rolling-origin rows (forecasts and metrics) are bitwise equal when everything
    after the scored targets is poisoned, and forecasts equal when all the future is."""
    assert origin + horizon < len(series), "pick an origin with `horizon` values after it"
    clean = forecast_at(forecaster, series, origin, horizon, quantiles)
    dirty = forecast_at(forecaster, poisoned(series, origin), origin, horizon, quantiles)
    np.testing.assert_array_equal(clean, dirty, err_msg=f"{forecaster.name}: a value after the "
                                                        "origin changed the forecast")

    def rows(s: Series):
        return rolling_origin([s], [forecaster], horizons=range(1, horizon + 1), context=1,
                              origins=[s.dates[origin]], quantiles=quantiles,
                              reference=forecaster.name).rows

    reference = rows(series)
    beyond_targets = rows(poisoned(series, origin + horizon))
    assert reference.equals(beyond_targets), f"{forecaster.name}: values after the scored " \
                                             "targets changed the rows"
    future = rows(poisoned(series, origin))
    assert reference[FORECAST_COLUMNS].equals(future[FORECAST_COLUMNS]), \
        f"{forecaster.name}: a value after the origin changed a rolling-origin forecast"
