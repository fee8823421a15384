"""Public health time series: surveillance-series readers (long / wide CSV, daily,
weekly and monthly, epi-weeks, day-first or month-first dates), packaged real
corpora, forecast metrics (pinball loss, WIS, interval coverage), baselines (last
value, seasonal naive, ARIMA, ETS) and rolling-origin evaluation with strict
temporal splits.

Importing this package registers the "timeseries" modality and the corpora
"flu-boston", "flu-chicago", "us-contagious", "covid-daily". Like the modality's
CSV reader, a registered corpus gives `list[Record]` (id, data = the `Series`,
source), so `Modality.records` treats a corpus name and a file alike;
`load_corpus(name)` gives the series themselves (`list[Series]`), as forecasting
and pretraining read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from biofm.data.records import Record
from biofm.modalities.timeseries import corpora  # noqa: F401  (registers corpora)
from biofm.modalities.timeseries.baselines import Arima, Ets, LastValue, SeasonalNaive
from biofm.modalities.timeseries.corpora import TIMESERIES_CORPORA, load_corpus
from biofm.modalities.timeseries.evaluation import Evaluation, Forecaster, rolling_origin
from biofm.modalities.timeseries.modality import TimeSeriesModality
from biofm.modalities.timeseries.metrics import (FLUSIGHT_QUANTILES, coverage, mae, pinball_loss,
                                                 wis)
from biofm.modalities.timeseries.readers import RepairLog, check_length, read_series
from biofm.modalities.timeseries.series import Series
from biofm.registry import MODALITIES, TOKENIZERS
from biofm.tokenizer import Tokenizer


def _read_records(path: str | Path, *, on_error: str = "raise", skipped=None,
                  **options) -> Iterator[Record]:
    """The Record view of a CSV's series (data = the `Series`: dates and float values,
    NaN = missing); bad input always raises (a series is not a record that can be skipped)."""
    for series in read_series(path, **options):
        yield Record(series.id, series, series.source)


def _patch_tokenizer(texts: Sequence[str]) -> Tokenizer:
    """The patch tokenizer needs no corpus (a named function so the modality pickles)."""
    return TOKENIZERS.get("ts-patch")()


TIMESERIES = MODALITIES.register("timeseries")(TimeSeriesModality(
    name="timeseries", read=_read_records, build_tokenizer=_patch_tokenizer, suffixes=(".csv",),
    default_objective="masked-patch", values=("patches",),
    presets={"masked-patch": "ts-patch-tiny", "next-patch": "ts-next-patch-tiny"},
))


__all__ = ["Arima", "Ets", "Evaluation", "FLUSIGHT_QUANTILES", "Forecaster", "LastValue",
           "RepairLog", "SeasonalNaive", "Series", "TIMESERIES", "TIMESERIES_CORPORA",
           "check_length", "coverage", "load_corpus", "mae", "pinball_loss", "read_series",
           "rolling_origin", "wis"]

# The patch forecaster (registers the "ts-patch" tokenizer, the "masked-patch" and
# "next-patch" objectives): pretraining windows, zero-shot forecasts, fine-tuning.
from biofm.modalities.timeseries import patching  # noqa: E402,F401
from biofm.modalities.timeseries.finetune import finetune_forecaster  # noqa: E402
from biofm.modalities.timeseries.model import PatchForecaster  # noqa: E402

__all__ += ["PatchForecaster", "finetune_forecaster"]
