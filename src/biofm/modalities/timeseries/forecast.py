"""`biofm forecast`: quantile forecasts of every series of a CSV or packaged corpus,
from a biofm time-series checkpoint (zero-shot, or fine-tuned on the series'
history) or from a baseline, with FluSight CSV, plots and optional rolling-origin
evaluation against the baselines.

    biofm forecast runs/ts/final flu-boston --output out --evaluate --origins 8
    biofm forecast arima my_ili.csv --output out          # no checkpoint needed

MODEL is a checkpoint directory, or a baseline name: "seasonal-naive",
"last-value", "arima", "ets" ("baselines" = "seasonal-naive").

Writes into OUTPUT:
- forecasts.csv: FluSight quantile layout, the forecast from each series' last date;
- plots/<series>.png: observed values, median, 50% and 95% bands;
- repairs.txt: what the reader repaired, per series (when anything was);
- with --evaluate, evaluation/{rows,summary,summary_by_horizon}.csv + summary.json:
  the rolling-origin scores of the model and the four baselines, with relative
  WIS against seasonal naive.

Several modes (`--mode zero-shot --mode lora`) are evaluated in one table (the
baselines run once); the first mode writes forecasts.csv and the plots, each
other one forecasts-<forecaster>.csv.

Strict temporal split of fine-tuning (--mode full | lora): with --evaluate the
model is fine-tuned once on each series' values *before its first evaluation
origin* (so no scored value and nothing after any origin is trained on), and
that model also makes the final forecast; without --evaluate it is fine-tuned
on all values.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence

import pandas as pd

from biofm.errors import BiofmError
from biofm.io import atomic_write_text
from biofm.modalities.timeseries.baselines import Arima, Ets, LastValue, SeasonalNaive
from biofm.modalities.timeseries.corpora import load_input
from biofm.modalities.timeseries.evaluation import (Evaluation, Forecaster, choose_origins,
                                                    forecasts_at, rolling_origin)
from biofm.modalities.timeseries.metrics import FLUSIGHT_QUANTILES
from biofm.modalities.timeseries.readers import RepairLog, check_length
from biofm.modalities.timeseries.report import flusight_frame, plot_forecast, slug, write_flusight
from biofm.modalities.timeseries.series import Series

Mode = Literal["zero-shot", "full", "lora", "scratch"]
BASELINE_NAMES = ("seasonal-naive", "last-value", "arima", "ets", "baselines")
# the FluSight `target` column when none is given: FluSight's own for weekly ILI
DEFAULT_TARGETS = {"W": "wk inc ili", "D": "day inc", "Y": "yr inc"}


@dataclass
class ForecastResult:
    """What `run_forecast` wrote and computed."""

    forecaster: str
    forecasts: pd.DataFrame
    paths: dict[str, Path]
    plots: list[Path]
    repairs: RepairLog
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)


def baselines_for(series: Sequence[Series]) -> list[Forecaster]:
    """Seasonal naive (the reference, period from the series' frequency), last value,
    ARIMA and ETS."""
    return [SeasonalNaive(period=series[0].season), LastValue(), Arima(), Ets()]


def _baseline(name: str, series: Sequence[Series]) -> Forecaster:
    return {b.name: b for b in baselines_for(series)}["seasonal-naive" if name == "baselines"
                                                        else name]


def build_forecaster(model: str, series: list[Series], *, mode: Mode, steps: int, seed: int,
                     first_origins: dict[str, int] | None) -> Forecaster:
    """A baseline by name, or a checkpoint (zero-shot, or fine-tuned on the history
    before each series' first evaluation origin when `first_origins` is given)."""
    if model in BASELINE_NAMES and not Path(model).exists():
        if mode != "zero-shot":
            raise BiofmError(f"a baseline ({model}) cannot be fine-tuned",
                             fix="use --mode zero-shot, or pass a checkpoint directory")
        return _baseline(model, series)
    if not Path(model).is_dir():
        raise BiofmError(f"{model!r} is not a checkpoint directory or a baseline", path=model,
                         fix=f"pass a `biofm pretrain` output (DIR/final) or one of: "
                             f"{', '.join(BASELINE_NAMES)}")
    from biofm.modalities.timeseries.model import PatchForecaster

    if mode == "zero-shot":
        return PatchForecaster.load(model)
    if mode not in ("full", "lora", "scratch"):
        raise BiofmError(f"unknown mode {mode!r}", fix="use zero-shot, full, lora or scratch "
                                                       "(the architecture trained from random "
                                                       "weights on the same history)")
    from biofm.modalities.timeseries.finetune import finetune_forecaster

    train = [s.head(first_origins[s.id]) if first_origins else s for s in series]
    train = [s for s in train if s.n_observed > 0]
    if not train:
        raise BiofmError("no observed values before the first evaluation origin to fine-tune on",
                         fix="lower --origins, or use --mode zero-shot")
    return finetune_forecaster(model, train, mode=mode, steps=steps, seed=seed)


def run_forecast(model: str, input: str, output: str | Path, *, horizon: int = 4,
                 mode: Mode | Sequence[Mode] = "zero-shot", evaluate: bool = False,
                 origins: int = 10, context: int = 52, steps: int = 100, seed: int = 0,
                 target: str | None = None, plots: bool = True,
                 quantiles: Sequence[float] = FLUSIGHT_QUANTILES, series_ids: Sequence[str] = (),
                 progress: bool = False, **read_options) -> ForecastResult:
    """Forecast every series of `input` with `model`; see the module docstring.

    `mode` may list several modes ("zero-shot", "lora"): each becomes a forecaster,
    all are evaluated in one table; the first writes forecasts.csv and the plots,
    the others forecasts-<name>.csv.
    """
    output = Path(output)
    repairs = RepairLog()
    series = _checked(_select(load_input(input, repairs=repairs, **read_options), series_ids,
                              input), input, horizon)
    chosen = {s.id for s in series}
    repairs.notes = {k: v for k, v in repairs.notes.items() if k in chosen}
    positions = {s.id: choose_origins(s, n_origins=origins, max_horizon=horizon,
                                      context=context) for s in series} if evaluate else None
    first = {k: v[0] for k, v in positions.items()} if positions else None
    modes = [mode] if isinstance(mode, str) else list(dict.fromkeys(mode))
    if not modes:
        raise BiofmError("no forecasting mode given", fix="pass --mode zero-shot, full or lora")
    forecasters = [build_forecaster(model, series, mode=m, steps=steps, seed=seed,
                                    first_origins=first) for m in modes]
    paths: dict[str, Path] = {}
    frames: list[pd.DataFrame] = []
    plotted: list[Path] = []
    for i, forecaster in enumerate(forecasters):
        final = [forecasts_at(forecaster, s, [len(s) - 1], horizon, quantiles)[0] for s in series]
        frame = [flusight_frame(s, q, quantiles, target=target or DEFAULT_TARGETS[s.freq])
                 for s, q in zip(series, final)]
        key = "forecasts" if i == 0 else f"forecasts-{forecaster.name}"
        paths[key] = write_flusight(frame, output / f"{key}.csv")
        if i == 0:
            frames = frame
            plotted = [plot_forecast(s, q, quantiles, output / "plots" / f"{slug(s.id)}.png",
                                     title=f"{s.id} — {forecaster.name}")
                       for s, q in zip(series, final)] if plots else []
    if len(repairs):
        paths["repairs"] = output / "repairs.txt"
        atomic_write_text(paths["repairs"], repairs.summary(limit=10**9) + "\n")
    result = ForecastResult(forecasters[0].name, pd.concat(frames, ignore_index=True), paths,
                            plotted, repairs)
    if evaluate:
        _evaluate(result, series, forecasters, output, progress, horizon=horizon,
                  context=context, origins=origins, quantiles=quantiles)
    return result


def _checked(series: list[Series], source: str, horizon: int) -> list[Series]:
    """At least one observed value per series, one frequency, a positive horizon."""
    if horizon < 1:
        raise BiofmError(f"--horizon must be at least 1, got {horizon}", fix="pass --horizon 4")
    if not series:
        raise BiofmError("no series to forecast", path=source,
                         fix="pass a CSV with at least one series, or a corpus name")
    check_length(series, 1, what="forecast", source=source)
    freqs = sorted({s.freq for s in series})
    if len(freqs) > 1:
        raise BiofmError(f"the series mix frequencies {freqs}", path=source,
                         fix="forecast daily and weekly series in separate runs (--series)")
    return series


def _evaluate(result: ForecastResult, series: list[Series], forecasters: list[Forecaster],
              output: Path, progress: bool, **options) -> None:
    """Rolling-origin scores of `forecasters` and the baselines, saved under evaluation/."""
    names = {f.name for f in forecasters}
    everyone = [*forecasters, *(b for b in baselines_for(series) if b.name not in names)]
    others = everyone[len(forecasters):]
    horizon = options.pop("horizon")
    with _progress_bar(progress, len(series) * len(everyone)) as tick:
        result.evaluation = rolling_origin(series, everyone, horizons=range(1, horizon + 1),
                                           on_forecast=tick, **options)
    saved = result.evaluation.save(output / "evaluation")
    result.paths.update({f"evaluation_{k}": v for k, v in saved.items()})
    result.notes += [f"{b.name}: {len(b.failures)} fit(s) fell back to last value "
                     f"({b.failures[0]})" for b in others if getattr(b, "failures", None)]


@contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[], None] | None]:
    """A transient rich bar on stderr, advanced once per (series, forecaster)."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("rolling-origin forecasts", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("forecast", total=total)
        yield lambda: bar.advance(task)


def _select(series: list[Series], ids: Sequence[str], source: str) -> list[Series]:
    if not ids:
        return series
    known = {s.id: s for s in series}
    missing = [i for i in ids if i not in known]
    if missing:
        raise BiofmError(f"no series named {missing}", path=source,
                         fix=f"choose among: {', '.join(list(known)[:20])}")
    return [known[i] for i in ids]


__all__ = ["BASELINE_NAMES", "ForecastResult", "baselines_for", "build_forecaster", "load_input",
           "run_forecast"]
