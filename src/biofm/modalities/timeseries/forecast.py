"""`biofm forecast`: quantile forecasts of every series of a CSV or packaged corpus,
from a biofm time-series checkpoint (zero-shot, or fine-tuned on the series'
history) or from a baseline, with FluSight CSV, plots and optional rolling-origin
evaluation against the baselines.

    biofm forecast runs/ts/final flu-boston --output out --evaluate --origins 8
    biofm forecast arima my_ili.csv --output out          # no checkpoint needed

MODEL is a checkpoint directory, or a baseline name: "seasonal-naive",
"last-value", "arima", "ets" ("baselines" = "seasonal-naive").

Writes into OUTPUT (refused when an earlier forecast is there, unless
--overwrite, which replaces all of it; checked before any work):
- forecasts.csv: FluSight quantile layout, the forecast from each series' last date;
- plots/<series>.png: observed values, median, 50% and 95% bands;
- repairs.txt: what the reader repaired, per series (when anything was);
- with --evaluate, evaluation/{rows,summary,summary_by_horizon}.csv + summary.json:
  the rolling-origin scores of the model and the four baselines, with relative
  WIS against seasonal naive.

Several modes (`--mode zero-shot --mode lora`) are evaluated in one table (the
baselines run once), and every mode's forecasts are written, labelled by the
forecaster that made them (e.g. "biofm-masked-patch", "biofm-masked-patch-lora"):
forecasts-<forecaster>.csv and plots/<forecaster>/<series>.png, each file in
the plain FluSight layout.

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
from biofm.modalities.timeseries.baselines import default_baselines
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
DEFAULT_TARGETS = {"W": "wk inc ili", "D": "day inc", "M": "mo inc", "Y": "yr inc"}
# what a forecast run writes into its output directory (replaced as a whole by --overwrite)
OUTPUT_FILES = ("forecasts.csv", "forecasts-*.csv", "repairs.txt", "plots/*.png",
                "plots/*/*.png", "evaluation/rows.csv", "evaluation/summary.csv",
                "evaluation/summary_by_horizon.csv", "evaluation/summary.json")


@dataclass
class ForecastResult:
    """What `run_forecast` wrote and computed.

    `forecasters`: one name per mode, in the order given. `forecasts`: every
    mode's FluSight rows, with a `model` column naming the forecaster (the files
    hold one forecaster each, in the plain FluSight layout). `files`: forecaster →
    its CSV; `plots`: forecaster → its PNGs.
    """

    forecasters: list[str]
    forecasts: pd.DataFrame
    paths: dict[str, Path]
    files: dict[str, Path]
    plots: dict[str, list[Path]]
    repairs: RepairLog
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)


def baselines_for(series: Sequence[Series]) -> list[Forecaster]:
    """Seasonal naive (the reference, period from the series' frequency), last value,
    ARIMA and ETS (seasonal, with that period, for monthly series)."""
    return default_baselines(series[0].season, seasonal_models=series[0].freq == "M")


def _baseline(name: str, series: Sequence[Series]) -> Forecaster:
    return {b.name: b for b in baselines_for(series)}["seasonal-naive" if name == "baselines"
                                                        else name]


def build_forecaster(model: str, series: list[Series], *, mode: Mode, steps: int, seed: int,
                     first_origins: dict[str, int] | None, device: str = "auto") -> Forecaster:
    """A baseline by name, or a checkpoint (zero-shot, or fine-tuned on the history
    before each series' first evaluation origin when `first_origins` is given) on
    `device` (auto: CUDA when there is a GPU, with bf16 autocast)."""
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
        return PatchForecaster.load(model, device=device)
    if mode not in ("full", "lora", "scratch"):
        raise BiofmError(f"unknown mode {mode!r}",
                         fix="pass --mode zero-shot, full, lora or scratch (the architecture "
                             "trained from random weights on the same history)")
    from biofm.modalities.timeseries.finetune import finetune_forecaster

    train = [s.head(first_origins[s.id]) if first_origins else s for s in series]
    train = [s for s in train if s.n_observed > 0]
    if not train:
        raise BiofmError("no observed values before the first evaluation origin to fine-tune on",
                         fix="lower --origins, or use --mode zero-shot")
    return finetune_forecaster(model, train, mode=mode, steps=steps, seed=seed, device=device)


def run_forecast(model: str, input: str, output: str | Path, *, horizon: int = 4,
                 mode: Mode | Sequence[Mode] = "zero-shot", evaluate: bool = False,
                 origins: int = 10, context: int = 52, steps: int = 100, seed: int = 0,
                 target: str | None = None, plots: bool = True,
                 quantiles: Sequence[float] = FLUSIGHT_QUANTILES, series_ids: Sequence[str] = (),
                 progress: bool = False, overwrite: bool = False, device: str = "auto",
                 **read_options) -> ForecastResult:
    """Forecast every series of `input` with `model`; see the module docstring.

    `mode` may list several modes ("zero-shot", "lora"): each becomes a forecaster,
    all are evaluated in one table and each writes its own labelled forecasts and
    plots. `read_options` go to the reader (layout, id_column, date_format, freq, ...).
    `device`: where checkpoints forecast and fine-tune (auto | cpu | cuda[:N]).
    """
    output = Path(output)
    _check_output(output, overwrite, input)
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
                                    first_origins=first, device=device) for m in modes]
    finals = {f.name: [forecasts_at(f, s, [len(s) - 1], horizon, quantiles)[0] for s in series]
              for f in forecasters}
    for stale in previous_outputs(output):  # --overwrite: nothing of the last run is left over
        stale.unlink()
    result = ForecastResult(forecasters=list(finals), forecasts=pd.DataFrame(), paths={},
                            files={}, plots={}, repairs=repairs)
    frames = [_write_forecasts(result, name, series, final, output, labelled=len(finals) > 1,
                               plots=plots, target=target, quantiles=quantiles)
              for name, final in finals.items()]
    result.forecasts = pd.concat(frames, ignore_index=True)
    if len(repairs):
        result.paths["repairs"] = output / "repairs.txt"
        atomic_write_text(result.paths["repairs"], repairs.summary(limit=10**9) + "\n")
    if evaluate:
        _evaluate(result, series, forecasters, output, progress, horizon=horizon,
                  context=context, origins=origins, quantiles=quantiles)
    return result


def _write_forecasts(result: ForecastResult, name: str, series: list[Series],
                     final: list, output: Path, *, labelled: bool, plots: bool,
                     target: str | None, quantiles: Sequence[float]) -> pd.DataFrame:
    """One forecaster's FluSight CSV and plots (named after it when several modes ran);
    returns its rows with a `model` column."""
    frame = [flusight_frame(s, q, quantiles, target=target or DEFAULT_TARGETS[s.freq])
             for s, q in zip(series, final)]
    key = f"forecasts-{slug(name)}" if labelled else "forecasts"
    result.paths[key] = result.files[name] = write_flusight(frame, output / f"{key}.csv")
    folder = output / "plots" / slug(name) if labelled else output / "plots"
    result.plots[name] = [plot_forecast(s, q, quantiles, folder / f"{slug(s.id)}.png",
                                        title=f"{s.id} — {name}")
                          for s, q in zip(series, final)] if plots else []
    return pd.concat(frame, ignore_index=True).assign(model=name)


def previous_outputs(output: Path) -> list[Path]:
    """The files an earlier `biofm forecast` wrote into `output` (see OUTPUT_FILES)."""
    if not output.is_dir():
        return []
    return sorted({p for pattern in OUTPUT_FILES for p in output.glob(pattern) if p.is_file()})


def _check_output(output: Path, overwrite: bool, input: str) -> None:
    """Refuse an output directory that holds an earlier forecast, unless `overwrite`
    (never when the input is one of its files: replacing them would delete it)."""
    if output.exists() and not output.is_dir():
        raise BiofmError("--output names a file, not a directory", path=output,
                         fix="pass a directory for forecasts.csv, plots/ and evaluation/")
    found = previous_outputs(output)
    if found and not overwrite:
        names = ", ".join(str(p.relative_to(output)) for p in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise BiofmError(f"the output directory already holds a forecast ({names}{more})",
                         path=output, fix="choose another --output, or pass --overwrite to "
                                          "replace that forecast")
    if Path(input).exists() and Path(input).resolve() in {p.resolve() for p in found}:
        raise BiofmError("the input is a file of an earlier forecast in --output, which "
                         "--overwrite would delete", path=input,
                         fix="move the input out of the output directory, or choose another "
                             "--output")


def _checked(series: list[Series], source: str, horizon: int) -> list[Series]:
    """At least one observed value per series, one frequency, a positive horizon."""
    if horizon < 1:
        raise BiofmError(f"--horizon must be at least 1, got {horizon}", fix="pass --horizon 4")
    if not series:
        raise BiofmError("no series to forecast", path=source,
                         fix="pass a CSV with at least one series, or a corpus name")
    check_length(series, 1, what="forecast", source=source,
                 fix="give each series at least one observed value, or name the others with "
                     "--series")
    freqs = sorted({s.freq for s in series})
    if len(freqs) > 1:
        raise BiofmError(f"the series mix frequencies {freqs}", path=source,
                         fix="forecast the daily, weekly and monthly series in separate runs "
                             "(--series)")
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
           "previous_outputs", "run_forecast"]
