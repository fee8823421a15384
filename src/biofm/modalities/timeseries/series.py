"""The one container every time-series reader returns and every forecaster reads.

A `Series` is regular by construction: `dates` advance by exactly one period of
`freq` ("D" = one day, "W" = seven days, e.g. the Sundays that start MMWR
epi-weeks; "M" = one calendar month, every date the first day of its month or
every date the last; "Y" = one calendar year, dated 1 January, used only by the
yearly "us-contagious" corpus), and a period with no observation is present with
a NaN value, so position i always means "i periods after dates[0]".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Freq = Literal["D", "W", "M", "Y"]
PERIOD_DAYS: dict[str, int] = {"D": 1, "W": 7}  # "M" and "Y" have no fixed length in days
SEASON: dict[str, int] = {"D": 7, "W": 52, "M": 12, "Y": 1}  # seasonal period in steps
FREQ_NAMES: dict[str, str] = {"D": "day", "W": "week", "M": "month", "Y": "year"}


@dataclass(frozen=True, eq=False)
class Series:
    """One univariate surveillance series (compared by identity: fields hold arrays).

    Args:
        id: series name (region, ZIP code, country, "disease/state", ...).
        dates: (n,) datetime64[D], strictly increasing, one `freq` period apart.
        values: (n,) float64; NaN marks a missing period.
        freq: "D" (daily), "W" (weekly), "M" (monthly: month-start or month-end dates)
            or "Y" (yearly, 1 January).
        source: the file or corpus the series came from (provenance).
        covariates: optional extra columns, name -> (n,) float64 aligned with `values`.
    """

    id: str
    dates: np.ndarray
    values: np.ndarray
    freq: Freq
    source: str = ""
    covariates: dict[str, np.ndarray] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates).astype("datetime64[D]")
        values = np.asarray(self.values, dtype=np.float64)
        if self.freq not in SEASON:
            raise ValueError(f"series {self.id!r}: freq must be 'D', 'W', 'M' or 'Y', got "
                             f"{self.freq!r}")
        if dates.ndim != 1 or values.shape != dates.shape:
            raise ValueError(f"series {self.id!r}: dates {dates.shape} and values "
                             f"{values.shape} must be 1-D of equal length")
        if len(dates) and self.freq == "M" and month_anchor(dates[0]) is None:
            raise ValueError(f"series {self.id!r}: monthly dates must be the first or the last "
                             f"day of their month, got {dates[0]}")
        if len(dates) and not np.array_equal(dates, date_range(dates[0], len(dates), self.freq)):
            raise ValueError(f"series {self.id!r}: dates must be strictly increasing and one "
                             f"{FREQ_NAMES[self.freq]} apart (use the readers, which insert "
                             "missing periods as NaN)")
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_observed(self) -> int:
        """Number of non-missing values."""
        return int(np.isfinite(self.values).sum())

    @property
    def season(self) -> int:
        """Seasonal period in steps (52 weekly, 12 monthly, 7 daily)."""
        return SEASON[self.freq]

    def future_dates(self, horizon: int) -> np.ndarray:
        """(horizon,) datetime64[D] dates of the `horizon` periods after the last one."""
        return date_range(self.dates[-1], horizon + 1, self.freq)[1:]

    def head(self, n: int) -> "Series":
        """The first `n` periods (the history up to and including position n - 1)."""
        return Series(self.id, self.dates[:n], self.values[:n], self.freq, self.source,
                      {k: v[:n] for k, v in self.covariates.items()})


def month_anchor(date: np.datetime64) -> str | None:
    """"start" when `date` is the first day of its month, "end" when it is the last,
    else None (a day in between: not a date of a monthly series)."""
    date = np.datetime64(date, "D")
    if date == date.astype("datetime64[M]").astype("datetime64[D]"):
        return "start"
    if date == (date.astype("datetime64[M]") + 1).astype("datetime64[D]") - 1:
        return "end"
    return None


def date_range(start: np.datetime64, n: int, freq: str) -> np.ndarray:
    """(n,) datetime64[D]: `start` and the n - 1 periods after it (monthly: month-start
    dates from a month-start `start`, month-end dates from a month-end one)."""
    start = np.datetime64(start, "D")
    if freq == "M":
        months = start.astype("datetime64[M]") + np.arange(n)
        if month_anchor(start) == "end":
            return (months + 1).astype("datetime64[D]") - 1
        return months.astype("datetime64[D]")
    if freq == "Y":
        years = start.astype("datetime64[Y]") + np.arange(n)
        return years.astype("datetime64[D]")
    return start + np.timedelta64(PERIOD_DAYS[freq], "D") * np.arange(n)


__all__ = ["FREQ_NAMES", "Freq", "PERIOD_DAYS", "SEASON", "Series", "date_range", "month_anchor"]
