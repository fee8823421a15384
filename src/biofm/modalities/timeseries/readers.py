"""Read surveillance series from CSV, in either layout they come in:

- long: one row per (series, date): `series_id,date,value` (names configurable);
  any other numeric column is kept as a covariate of its series;
- wide: a date column and one value column per series (region, ZIP code, ...):
  the layout of the packaged Boston / Chicago ILI files.

`layout="auto"` picks long when the id and value columns are present, wide when a
date column is present without them, and asks otherwise.

Dates are ISO dates (`2020-01-05`), months (`2020-01`, dated by their first
day), MMWR epi-weeks written `YYYYWW` (`202002`, dated by the Sunday that starts
the week), or day/month/year numbers (`13/01/1849`): their order is read from
the data (a first field above 12 means day first, a second one month first) and
a file where every date reads both ways is refused; `date_format=` (a strftime
format, `--date-format %d/%m/%Y`) names the format outright.

The frequency (daily, weekly or monthly; monthly series are dated by the first
day of each month, or each by the last) is the period that most steps between a
series' dates take exactly, so a weekly series with one mistyped date stays
weekly and that date is named as off its grid; a series with one row, or only
gaps, takes its long file's frequency; `freq=` ("D", "W", "M") sets it.

What is repaired (and written into the `RepairLog`, per series) and what stops
with a `BiofmError` naming the file, the series and the CSV line:

| problem | default | alternative |
|---|---|---|
| dates out of order | sorted, reported | `sort=False`: error |
| missing periods (gaps) | inserted as NaN, reported | — |
| blank / NA value | kept as NaN, reported | — |
| duplicate date in a series | error (which value is right is unknowable) | — |
| negative value (counts and rates cannot be < 0) | error | `negative="nan"`: set to NaN, reported |
| date off the weekly / monthly grid | error | — |
| day/month order that no date settles | error | `date_format=` |
| unparseable date or value | error | — |
| named column absent | error listing the columns present | — |
| long file read as wide (text series column) | error naming the id column | `id_column=` |
| series shorter than a model's context | `check_length`: error | — |

Nothing is dropped silently: a non-numeric extra column of a long file is not
kept as a covariate, and that too is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from biofm.data.labeled import csv_lines, read_csv
from biofm.errors import BiofmError, require_file
from biofm.modalities.timeseries.series import (FREQ_NAMES, PERIOD_DAYS, Series, date_range,
                                                month_anchor)

Layout = Literal["auto", "long", "wide"]
FREQS = ("D", "W", "M")  # what a CSV can hold ("Y" only comes from the yearly corpus)
NA_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a", "-", "."})
DATE_COLUMNS = ("date", "week", "week_start", "week_ending", "epiweek", "ds", "time", "day",
                "month")
EPIWEEK = re.compile(r"^(\d{4})(\d{2})$")
NUMERIC_DATE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})$")  # 13/01/1849


@dataclass
class RepairLog:
    """What a reader changed or noticed, per series: `notes[series_id] -> [message, ...]`."""

    notes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, series_id: str, message: str) -> None:
        self.notes.setdefault(series_id, []).append(message)

    def __len__(self) -> int:
        return sum(len(v) for v in self.notes.values())

    def summary(self, limit: int = 20) -> str:
        if not self.notes:
            return "no repairs"
        lines = [f"{len(self.notes)} series repaired or with missing values:"]
        items = [(sid, msg) for sid, msgs in self.notes.items() for msg in msgs]
        lines += [f"  {sid}: {msg}" for sid, msg in items[:limit]]
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")
        return "\n".join(lines)


def read_series(path: str | Path, *, layout: Layout = "auto", id_column: str = "series_id",
                date_column: str | None = None, value_column: str = "value",
                freq: str | None = None, sort: bool = True,
                negative: Literal["error", "nan"] = "error", date_format: str | None = None,
                repairs: RepairLog | None = None) -> list[Series]:
    """All series of a long or wide CSV, regular at their frequency (gaps as NaN).

    `date_column=None` means the first of `DATE_COLUMNS` present ("date", "week",
    "epiweek", ...; for wide files else the first column). `date_format`: a strftime
    format for every date (default: detected, see the module docstring). Returns
    series in file order.
    """
    path = require_file(path, "time-series CSV")
    freq = _checked_freq(freq)
    if negative not in ("error", "nan"):
        raise BiofmError(f"unknown --negative {negative!r}",
                         fix="pass --negative error (refuse negative values) or --negative nan "
                             "(treat them as missing)")
    repairs = repairs if repairs is not None else RepairLog()
    table = read_csv(path, empty_ok=True,  # no rows: said below, naming the columns
                     dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    if table.empty:
        raise BiofmError(f"the CSV has a header ({', '.join(list(table.columns)[:12])}) but no "
                         "data rows", path=path, record="line 2",
                         fix="add one row per date (wide) or per series and date (long)")
    if date_column is None and layout != "wide" and id_column in table.columns:
        date_column = _long_date_column(table)
    chosen = _layout(table, path, layout, id_column, value_column, date_column)
    options = dict(freq=freq, sort=sort, negative=negative, repairs=repairs)
    if chosen == "long":
        return _read_long(table, path, id_column, date_column or "date", value_column,
                          date_format, **options)
    return _read_wide(table, path, date_column or _wide_date_column(table), date_format,
                      (id_column, value_column), **options)


def check_length(series: list[Series], needed: int, *, what: str = "context",
                 source: str | Path | None = None, fix: str | None = None) -> None:
    """Raise a BiofmError naming every series with fewer than `needed` observed values
    (`fix`: what to do instead; default: longer series or a lower `what`)."""
    short = [s for s in series if s.n_observed < needed]
    if short:
        names = ", ".join(f"{s.id!r} ({s.n_observed})" for s in short[:10])
        more = f" and {len(short) - 10} more" if len(short) > 10 else ""
        raise BiofmError(f"{len(short)} series have fewer observed values than the {needed} the "
                         f"{what} needs: {names}{more}", path=source or short[0].source or None,
                         fix=fix or f"give at least {needed} observed periods per series, or "
                                    f"lower the {what}")


def _checked_freq(freq: str | None) -> str | None:
    if freq is None:
        return None
    if freq.strip().upper() not in FREQS:
        raise BiofmError(f"unknown frequency {freq!r}",
                         fix="pass --freq D (daily), W (weekly) or M (monthly), or leave it out "
                             "to detect it from the dates")
    return freq.strip().upper()


# -- layout --------------------------------------------------------------------------------
def _layout(table: pd.DataFrame, path: Path, layout: str, id_column: str, value_column: str,
            date_column: str | None) -> str:
    columns = list(table.columns)
    if layout == "long":
        _require_columns(path, columns, [id_column, date_column or "date", value_column], "long")
        return "long"
    if layout == "wide":
        if date_column:
            _require_columns(path, columns, [date_column], "wide")
        if len(columns) < 2:
            raise BiofmError("a wide CSV needs a date column and at least one series column",
                             path=path, fix="add one column per series beside the dates")
        return "wide"
    if layout != "auto":
        raise BiofmError(f"unknown layout {layout!r}", fix="pass --layout auto, long or wide")
    if id_column in columns:  # an id column means long, even when another column is misnamed
        _require_columns(path, columns, [id_column, date_column or "date", value_column], "long")
        return "long"
    if (date_column and date_column in columns) or any(c.lower() in DATE_COLUMNS for c in columns):
        return "wide"
    raise BiofmError(f"cannot tell the layout: no {id_column!r}/{value_column!r} columns (long) "
                     f"and no date column (wide); columns are {columns[:12]}", path=path,
                     fix="name the columns with --id-column/--date-column/--value-column, "
                         "or rename them to series_id,date,value (long) or date,<series>... (wide)")


def _require_columns(path: Path, columns: list[str], needed: list[str], layout: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise BiofmError(f"the {layout} layout needs column(s) {missing}, but the header has "
                         f"{columns[:12]}", path=path, record="line 1",
                         fix="rename the columns or name them with --id-column / --date-column "
                             "/ --value-column")


def _long_date_column(table: pd.DataFrame) -> str | None:
    """The first of `DATE_COLUMNS` in a long file's header ("date", "week", ...), or None."""
    return next((c for c in table.columns if c.lower() in DATE_COLUMNS), None)


def _wide_date_column(table: pd.DataFrame) -> str:
    for column in table.columns:
        if column.lower() in DATE_COLUMNS:
            return column
    return table.columns[0]


# -- parsing -------------------------------------------------------------------------------
def date_format_of(texts: list[str], path: Path, lines: np.ndarray, column: str,
                   given: str | None = None) -> str | None:
    """The strftime format of a date column: `given`; for day/month/year numbers
    (`13/01/1849`) the order the data show (a first field above 12: day first, a
    second one: month first); None for ISO dates and epi-weeks (read as they are)."""
    if given:
        return given
    numeric = [(i, m) for i, text in enumerate(texts) if (m := NUMERIC_DATE.match(text.strip()))]
    if not numeric:
        return None
    first, match = numeric[0]
    sep, year = match[2], "%Y" if len(match[4]) == 4 else "%y"
    day_first, month_first = f"%d{sep}%m{sep}{year}", f"%m{sep}%d{sep}{year}"
    days = next((i for i, m in numeric if int(m[1]) > 12), None)
    months = next((i for i, m in numeric if int(m[3]) > 12), None)
    if days is not None and months is not None:
        raise BiofmError(f"column {column!r} mixes day-first and month-first dates: "
                         f"{texts[days].strip()!r} (line {lines[days]}) is day/month, "
                         f"{texts[months].strip()!r} (line {lines[months]}) month/day",
                         path=path, record=int(lines[max(days, months)]),
                         fix="write every date in one order, or as YYYY-MM-DD")
    if days is not None or months is not None:
        return day_first if days is not None else month_first
    raise BiofmError(f"column {column!r} holds dates like {texts[first].strip()!r} that read "
                     "both day/month and month/day (no first or second field is above 12)",
                     path=path, record=int(lines[first]),
                     fix=f"name the order with --date-format {day_first} (day first) or "
                         f"--date-format {month_first} (month first), or write the dates as "
                         "YYYY-MM-DD")


def parse_dates(texts: list[str], path: Path, lines: np.ndarray, column: str,
                date_format: str | None = None) -> np.ndarray:
    """(n,) datetime64[D] from ISO dates or MMWR epi-weeks `YYYYWW`, or every date in
    `date_format` (strftime, see `date_format_of`); an error names the line."""
    if date_format:
        return _parse_formatted(texts, path, lines, column, date_format)
    out = np.empty(len(texts), dtype="datetime64[D]")
    for i, text in enumerate(texts):
        text = text.strip()
        try:
            match = EPIWEEK.match(text)
            out[i] = mmwr_week_start(int(match[1]), int(match[2])) if match \
                else np.datetime64(pd.Timestamp(text).date(), "D")
        except (ValueError, TypeError) as exc:
            reason = f" ({exc})" if match else ""  # e.g. "2021 has no epi-week 53"
            raise BiofmError(f"column {column!r} holds {text!r}, which is not a date{reason}",
                             path=path,
                             record=int(lines[i]),
                             fix="write dates as YYYY-MM-DD, or epi-weeks as YYYYWW") from None
    return out


def _parse_formatted(texts: list[str], path: Path, lines: np.ndarray, column: str,
                     date_format: str) -> np.ndarray:
    out = np.empty(len(texts), dtype="datetime64[D]")
    for i, text in enumerate(texts):
        try:
            out[i] = np.datetime64(datetime.strptime(text.strip(), date_format).date(), "D")
        except ValueError:
            raise BiofmError(f"column {column!r} holds {text.strip()!r}, which is not a date in "
                             f"the format {date_format}", path=path, record=int(lines[i]),
                             fix="correct the date, or pass the format every date is written "
                                 "in (--date-format, e.g. %d/%m/%Y)") from None
    return out


def mmwr_week_start(year: int, week: int) -> np.datetime64:
    """The Sunday that starts MMWR epi-week `week` of `year` (week 1 holds 4 January)."""
    if not 1 <= week <= 53:
        raise ValueError(f"epi-week {week} out of range")
    jan4 = np.datetime64(f"{year:04d}-01-04", "D")
    weekday = (jan4.astype(np.int64) + 4) % 7  # 1970-01-01 was a Thursday; 0 = Sunday
    start = jan4 - np.timedelta64(int(weekday), "D") + np.timedelta64(7 * (week - 1), "D")
    if week == 53 and mmwr_week_start(year + 1, 1) <= start:
        raise ValueError(f"{year} has no epi-week 53")
    return start


def parse_values(texts: list[str], path: Path, lines: np.ndarray, column: str,
                 series_id: str) -> np.ndarray:
    """(n,) float64; NA tokens → NaN; anything else unparseable is an error naming the line."""
    out = np.empty(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        text = text.strip()
        if text.lower() in NA_TOKENS:
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            raise BiofmError(f"series {series_id!r}: {text!r} in column {column!r} is not a "
                             "number", path=path, record=int(lines[i]),
                             fix="write numbers, or leave the cell blank / NA for a missing "
                                 "value") from None
        if not np.isfinite(out[i]):
            raise BiofmError(f"series {series_id!r}: value {text!r} is not finite", path=path,
                             record=int(lines[i]), fix="leave the cell blank for a missing value")
    return out


# -- one series: order, duplicates, negatives, grid, gaps -------------------------------
def _build(series_id: str, dates: np.ndarray, values: np.ndarray, lines: np.ndarray,
           covariates: dict[str, np.ndarray], path: Path, freq: str | None, sort: bool,
           negative: str, repairs: RepairLog) -> Series:
    if len(dates) == 0:
        raise BiofmError(f"series {series_id!r} has no rows", path=path,
                         fix="remove its column or give it values")
    order = np.argsort(dates, kind="stable")
    if np.any(order != np.arange(len(order))):
        if not sort:
            bad = int(np.flatnonzero(np.diff(dates).astype(np.int64) < 0)[0]) + 1
            raise BiofmError(f"series {series_id!r}: dates are not in increasing order "
                             f"({dates[bad - 1]} then {dates[bad]})", path=path,
                             record=int(lines[bad]), fix="sort the rows by date (or allow the "
                                                         "reader to sort them)")
        repairs.add(series_id, "rows were not in date order: sorted")
        dates, values, lines = dates[order], values[order], lines[order]
        covariates = {k: v[order] for k, v in covariates.items()}
    same = np.flatnonzero(np.diff(dates).astype(np.int64) == 0)
    if same.size:
        i = int(same[0])
        raise BiofmError(f"series {series_id!r}: date {dates[i]} appears twice (lines "
                         f"{lines[i]} and {lines[i + 1]})", path=path, record=int(lines[i + 1]),
                         fix="keep one row per series and date (sum or average duplicates "
                             "before reading)")
    values = _negatives(series_id, values, lines, path, negative, repairs)
    freq = freq or detect_freq(dates, path, series_id, lines)
    return _regular(series_id, dates, values, lines, covariates, path, freq, repairs)


def _negatives(series_id: str, values: np.ndarray, lines: np.ndarray, path: Path,
               negative: str, repairs: RepairLog) -> np.ndarray:
    below = np.flatnonzero(values < 0)
    if not below.size:
        return values
    if negative != "nan":
        i = int(below[0])
        raise BiofmError(f"series {series_id!r}: negative value {values[i]:g} "
                         f"({below.size} in this series)", path=path, record=int(lines[i]),
                         fix="correct the counts/rates, or pass --negative nan to treat "
                             "them as missing")
    repairs.add(series_id, f"{below.size} negative value(s) set to missing (lines "
                           f"{', '.join(str(int(x)) for x in lines[below][:5])}"
                           f"{' ...' if below.size > 5 else ''})")
    values = values.copy()
    values[below] = np.nan
    return values


def detect_freq(dates: np.ndarray, path: Path, series_id: str, lines: np.ndarray) -> str:
    """"D", "W" or "M" from the spacing of sorted unique dates (see `_spacing_freq`); an
    error names the closest two dates and their lines when no step is a day, a week or
    a month."""
    if len(dates) < 2:
        raise BiofmError(f"series {series_id!r} has one date: its frequency cannot be detected",
                         path=path, record=int(lines[0]), fix="pass --freq D, W or M")
    freq = _spacing_freq(dates)
    if freq is not None:
        return freq
    steps = np.diff(dates).astype(np.int64)
    i = int(np.argmin(steps))
    monthly = 28 <= steps[i] <= 31
    raise BiofmError(f"series {series_id!r}: dates are {steps[i]} days apart at the closest "
                     f"({dates[i]} on line {lines[i]}, {dates[i + 1]} on line {lines[i + 1]}); "
                     "a series must be daily, weekly or monthly", path=path,
                     record=int(lines[i + 1]),
                     fix="date every month by its first day (YYYY-MM-01), or every one by its "
                         "last" if monthly else
                         "aggregate to days, weeks or months, or pass --freq D, W or M")


def _spacing_counts(dates: np.ndarray) -> dict[str, int]:
    """How many steps between consecutive unique dates are exactly one day, one week,
    one month (both dates month-starts, or both month-ends)."""
    dates = np.unique(dates)
    days = np.diff(dates).astype(np.int64)
    months = dates.astype("datetime64[M]")
    start = dates == months.astype("datetime64[D]")
    end = dates == (months + 1).astype("datetime64[D]") - 1
    same_anchor = (start[1:] & start[:-1]) | (end[1:] & end[:-1])
    one_month = np.diff(months).astype(np.int64) == 1
    return {"D": int((days == 1).sum()), "W": int((days == 7).sum()),
            "M": int((one_month & same_anchor).sum())}


def _spacing_freq(dates: np.ndarray) -> str | None:
    """The period most steps take exactly ("D" first on a tie), so one mistyped date
    does not make a weekly series daily; None when no step is one period."""
    return _majority(_spacing_counts(dates))


def _majority(counts: dict[str, int]) -> str | None:
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else None


def _on_grid(dates: np.ndarray, freq: str) -> bool:
    """Whether every date is a whole number of `freq` periods after the first."""
    if freq == "M":
        anchor = month_anchor(dates[0])
        return anchor is not None and all(month_anchor(d) == anchor for d in dates)
    return not np.any((dates - dates[0]).astype(np.int64) % PERIOD_DAYS[freq])


def _grid_index(series_id: str, dates: np.ndarray, lines: np.ndarray, path: Path,
                freq: str) -> np.ndarray:
    """(n,) int64 position of each date on the `freq` grid that starts at dates[0]; a
    date off that grid is an error naming its line."""
    if freq == "M":
        anchor = month_anchor(dates[0])
        off = [i for i, d in enumerate(dates) if anchor is None or month_anchor(d) != anchor]
        if off:
            i = off[0]
            day = "neither the first nor the last day of its month" if anchor is None else \
                f"not the {'first' if anchor == 'start' else 'last'} day of its month, as " \
                f"{dates[0]} is"
            raise BiofmError(f"series {series_id!r}: monthly date {dates[i]} is {day}",
                             path=path, record=int(lines[i]),
                             fix="date every month by its first day (YYYY-MM-01), or every "
                                 "one by its last")
        return (dates.astype("datetime64[M]") - dates[0].astype("datetime64[M]")).astype(np.int64)
    offsets = (dates - dates[0]).astype(np.int64)
    off_grid = np.flatnonzero(offsets % PERIOD_DAYS[freq])
    if off_grid.size:
        i = int(off_grid[0])
        raise BiofmError(f"series {series_id!r}: date {dates[i]} (a {_weekday(dates[i])}) is "
                         f"not a whole number of {FREQ_NAMES[freq]}s after {dates[0]} (a "
                         f"{_weekday(dates[0])})", path=path, record=int(lines[i]),
                         fix="put every date on the same weekday (e.g. the Sunday that starts "
                             "each epi-week), or pass --freq D for a daily series")
    return offsets // PERIOD_DAYS[freq]


def _weekday(date: np.datetime64) -> str:
    return pd.Timestamp(date).day_name()


def _regular(series_id: str, dates: np.ndarray, values: np.ndarray, lines: np.ndarray,
             covariates: dict[str, np.ndarray], path: Path, freq: str,
             repairs: RepairLog) -> Series:
    index = _grid_index(series_id, dates, lines, path, freq)
    n = int(index[-1]) + 1
    full = np.full(n, np.nan)
    full[index] = values
    grid = date_range(dates[0], n, freq)
    if n > len(dates):
        missing = np.setdiff1d(np.arange(n), index)
        repairs.add(series_id, f"{missing.size} missing {FREQ_NAMES[freq]}(s) inserted as NaN "
                               f"(first {grid[missing[0]]})")
    blank = int(np.isnan(values).sum())
    if blank:
        repairs.add(series_id, f"{blank} blank/NA value(s) kept as missing")
    covs = {}
    for name, column in covariates.items():
        covs[name] = np.full(n, np.nan)
        covs[name][index] = column
    return Series(series_id, grid, full, freq, str(path), covs)


# -- the two layouts -----------------------------------------------------------------------
def _read_long(table: pd.DataFrame, path: Path, id_column: str, date_column: str,
               value_column: str, date_format: str | None, **options) -> list[Series]:
    repairs: RepairLog = options["repairs"]
    lines = csv_lines(path, len(table))
    extra = [c for c in table.columns if c not in (id_column, date_column, value_column)]
    ids = table[id_column].str.strip().to_numpy()
    blank = np.flatnonzero(ids == "")
    if blank.size:
        raise BiofmError(f"empty {id_column!r}", path=path, record=int(lines[blank[0]]),
                         fix="give every row a series id")
    date_format = date_format_of(table[date_column].tolist(), path, lines, date_column,
                                 date_format)
    parsed = []
    for series_id in dict.fromkeys(ids):  # first-appearance order
        rows = np.flatnonzero(ids == series_id)
        sub, sub_lines = table.iloc[rows], lines[rows]
        dates = parse_dates(sub[date_column].tolist(), path, sub_lines, date_column, date_format)
        values = parse_values(sub[value_column].tolist(), path, sub_lines, value_column, series_id)
        covariates = {}
        for name in extra:
            try:
                covariates[name] = parse_values(sub[name].tolist(), path, sub_lines, name,
                                                series_id)
            except BiofmError:
                repairs.add(series_id, f"column {name!r} is not numeric: not kept as a covariate")
        parsed.append((str(series_id), dates, values, sub_lines, covariates))
    if options["freq"] is not None:
        return [_build(*one, path, **options) for one in parsed]
    fallback = _file_freq(parsed)
    return [_build(*one, path, **{**options, "freq": _series_freq(one[1], fallback)})
            for one in parsed]


def _file_freq(parsed: list[tuple]) -> str | None:
    """The period most steps of a long file's series take exactly (None: no step is
    a day, a week or a month)."""
    totals = dict.fromkeys(FREQS, 0)
    for _, dates, *_ in parsed:
        for freq, count in _spacing_counts(dates).items():
            totals[freq] += count
    return _majority(totals)


def _series_freq(dates: np.ndarray, fallback: str | None) -> str | None:
    """A series' own frequency when its dates show it; else the file's when its dates
    lie on that grid (a series with one row, or only gaps, in a weekly file is
    weekly); None lets `detect_freq` explain what is wrong."""
    own = _spacing_freq(dates)
    if own is not None:
        return own
    if fallback is not None and _on_grid(np.unique(dates), fallback):
        return fallback
    return None


def _read_wide(table: pd.DataFrame, path: Path, date_column: str, date_format: str | None,
               long_columns: tuple[str, str], **options) -> list[Series]:
    lines = csv_lines(path, len(table))
    if date_column not in table.columns:
        _require_columns(path, list(table.columns), [date_column], "wide")
    if len(table.columns) < 2:
        raise BiofmError(f"the wide CSV has only its date column {date_column!r}: no series",
                         path=path, record="line 1",
                         fix="add one column per series beside the dates, or pass the long "
                             "layout's columns (series_id,date,value)")
    _refuse_long(table, path, date_column, lines, *long_columns)
    texts = table[date_column].tolist()
    dates = parse_dates(texts, path, lines, date_column,
                        date_format_of(texts, path, lines, date_column, date_format))
    out = []
    for column in table.columns:
        if column == date_column:
            continue
        values = parse_values(table[column].tolist(), path, lines, column, column)
        out.append(_build(column, dates, values, lines, {}, path, **options))
    return out


def _refuse_long(table: pd.DataFrame, path: Path, date_column: str, lines: np.ndarray,
                 id_column: str, value_column: str) -> None:
    """A wide file has one numeric column per series: a column of mostly text holds a
    long file's series names (read as wide for want of its id column); say so."""
    text = [c for c in table.columns if c != date_column and _mostly_text(table[c].tolist())]
    if not text:
        return
    name = text[0]
    row = next(i for i, cell in enumerate(table[name]) if _is_text(cell))
    seen = table[date_column].str.strip()
    repeat = np.flatnonzero(seen.duplicated().to_numpy())
    numbers = [c for c in table.columns if c != date_column and c not in text]
    value = f" --value-column {numbers[0]}" if len(numbers) == 1 and numbers[0] != value_column \
        else ""
    where = f"column {name!r} holds text such as {table[name].iloc[row].strip()!r} " \
            f"(line {lines[row]})"
    if repeat.size:
        j = int(repeat[0])
        k = int(np.flatnonzero((seen == seen.iloc[j]).to_numpy())[0])
        raise BiofmError(f"the file looks long (one row per series and date): {where} and date "
                         f"{seen.iloc[j]!r} repeats (lines {lines[k]} and {lines[j]}), but with "
                         f"no {id_column!r} column it was read as wide (one numeric column per "
                         "series)", path=path, record=int(lines[row]),
                         fix=f"name the column of series names: --id-column {name}{value}")
    raise BiofmError(f"{where}, not numbers: with no {id_column!r} column the file was read as "
                     "wide, where every column beside the dates is a series", path=path,
                     record=int(lines[row]),
                     fix=f"if the file is long (one row per series and date), name the column "
                         f"of series names: --id-column {name}{value}; else drop the column")


def _is_text(cell: str) -> bool:
    cell = cell.strip()
    if cell.lower() in NA_TOKENS:
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _mostly_text(cells: list[str]) -> bool:
    """More than half of the non-blank cells are not numbers."""
    filled = [c for c in cells if c.strip().lower() not in NA_TOKENS]
    return bool(filled) and sum(map(_is_text, filled)) > len(filled) / 2


__all__ = ["RepairLog", "check_length", "date_format_of", "detect_freq", "mmwr_week_start",
           "parse_dates", "parse_values", "read_series"]
