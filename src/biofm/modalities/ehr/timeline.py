"""A patient's timeline (MEDS semantics) and the checks that turn an event table into them.

    Timeline(subject_id="17", times=(n,) datetime64[us], codes=(n,) str, values=(n,) float64)

Events are sorted by time; static events (no time, NaT: sex, race) come first.
Codes keep their vocabulary prefix ("LOINC/2085-9", "ICD10CM/E11.9"); the MEDS
codes `MEDS_BIRTH` and `MEDS_DEATH` mark birth and death. `values` holds each
event's numeric value (NaN: none). A visit is the events of one calendar day
(static events belong to no visit), as in day-level claims models.

`timelines_from_frame` builds timelines from a MEDS-shaped table (subject_id,
time, code, numeric_value[, text_value]) and applies the documented rules; each
rule's count goes into a `ReadReport` that readers print:

- rows of a subject not in time order: sorted (MEDS requires sorted shards);
- events dated after the subject's `MEDS_DEATH`: dropped;
- codes whose vocabulary prefix is none of `KNOWN_VOCABULARIES` (and not
  described in the dataset's metadata/codes.parquet): kept, counted by prefix.

And what stops (a `BiofmError` naming the file, the column and the subject): a
missing MEDS column, an empty subject id or code, a code without any vocabulary
prefix, a time or numeric value that does not parse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Collection, Iterator

import numpy as np
import pandas as pd

from biofm.data.records import OnError, SkipLog, handle_bad_record
from biofm.errors import BiofmError

BIRTH, DEATH = "MEDS_BIRTH", "MEDS_DEATH"
MEDS_COLUMNS = ("subject_id", "time", "code", "numeric_value")
TIME_UNIT = "datetime64[us]"
DAY = np.timedelta64(1, "D")
KNOWN_VOCABULARIES = frozenset({
    "ATC", "CPT4", "CVX", "Ethnicity", "Gender", "HCPCS", "ICD9CM", "ICD9Proc", "ICD10CM",
    "ICD10PCS", "LOINC", "NDC", "OMOP_CONCEPT", "Race", "RxNorm", "RxNorm Extension", "SNOMED",
    "UCUM", "Visit"})


@dataclass(frozen=True, eq=False)
class Timeline:
    """One subject's events in time order: times (n,) datetime64[us] (NaT: static, first),
    codes (n,) str, values (n,) float64 (NaN: no numeric value). `end`: the prediction
    time a task cut the timeline at (NaT: not cut)."""

    subject_id: str
    times: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    end: np.datetime64 = field(default_factory=lambda: np.datetime64("NaT", "us"))

    def __post_init__(self) -> None:
        if not (len(self.times) == len(self.codes) == len(self.values)):
            raise ValueError(f"subject {self.subject_id}: {len(self.times)} times, "
                             f"{len(self.codes)} codes, {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def static(self) -> np.ndarray:
        """(n,) bool: events without a time."""
        return np.isnat(self.times)

    @cached_property
    def birth(self) -> np.datetime64:
        """Time of the first MEDS_BIRTH (NaT when the timeline has none)."""
        at = np.flatnonzero(self.codes == BIRTH)
        return self.times[at[0]] if len(at) else np.datetime64("NaT", "us")

    @cached_property
    def visits(self) -> np.ndarray:
        """(n,) int: visit number of each event (the events of one calendar day), -1 static."""
        days = self.times.astype("datetime64[D]")
        out = np.full(len(self), -1, dtype=np.int64)
        dated = ~np.isnat(days)
        if dated.any():
            d = days[dated]
            out[dated] = np.concatenate([[0], np.cumsum(d[1:] != d[:-1])])
        return out

    @property
    def first_time(self) -> np.datetime64:
        """Time of the first dated event (NaT when none is dated)."""
        dated = self.times[~self.static]
        return dated[0] if len(dated) else np.datetime64("NaT", "us")

    @property
    def last_time(self) -> np.datetime64:
        dated = self.times[~self.static]
        return dated[-1] if len(dated) else np.datetime64("NaT", "us")

    def age_years(self, at: np.ndarray | np.datetime64) -> np.ndarray:
        """Age in years at `at` (NaN without a birth or a time)."""
        if np.isnat(self.birth):
            return np.full(np.shape(at), np.nan)
        return (np.asarray(at, dtype=TIME_UNIT) - self.birth) / DAY / 365.25

    def cut(self, time: np.datetime64) -> "Timeline":
        """The events at or before `time` (static ones kept): what a prediction made at
        `time` may see. The cut timeline remembers `time` as its `end`."""
        time = np.datetime64(time, "us")
        keep = self.static | (self.times <= time)
        return Timeline(self.subject_id, self.times[keep], self.codes[keep], self.values[keep],
                        end=time)


@dataclass
class ReadReport:
    """What the documented rules changed while reading, per source (printed by readers)."""

    unsorted_subjects: int = 0
    after_death: int = 0
    after_death_subjects: int = 0
    unknown_vocabularies: Counter = field(default_factory=Counter)  # prefix → events
    notes: list[str] = field(default_factory=list)  # reader-specific rules (OMOP)

    def __bool__(self) -> bool:
        return bool(self.unsorted_subjects or self.after_death or self.unknown_vocabularies
                    or self.notes)

    def lines(self) -> list[str]:
        out = []
        if self.unsorted_subjects:
            out.append(f"{self.unsorted_subjects:,} subject(s) had events out of time order: "
                       "sorted by time")
        if self.after_death:
            out.append(f"{self.after_death:,} event(s) of {self.after_death_subjects:,} "
                       "subject(s) were dated after MEDS_DEATH: dropped")
        if self.unknown_vocabularies:
            listed = ", ".join(f"{p}/ ({n:,})" for p, n in self.unknown_vocabularies.most_common(5))
            out.append(f"{sum(self.unknown_vocabularies.values()):,} event(s) have a vocabulary "
                       f"prefix outside the known ones (kept as codes): {listed}")
        return out + self.notes


def require_columns(columns: Collection[str], source: str,
                    required: tuple[str, ...] = MEDS_COLUMNS) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise BiofmError(f"missing MEDS column(s) {', '.join(map(repr, missing))} (found: "
                         f"{', '.join(map(str, columns))})", path=source,
                         fix="write MEDS columns subject_id, time, code, numeric_value (and "
                             "optionally text_value), or convert the data with `biofm convert "
                             "--to meds`")


def vocabulary(code: str) -> str | None:
    """The vocabulary prefix of a code ("LOINC/2085-9" → "LOINC"); "MEDS" for MEDS_*
    codes; None when there is none."""
    if code.startswith("MEDS_"):
        return "MEDS"
    prefix, slash, rest = code.partition("/")
    return prefix if slash and prefix and rest else None


def timelines_from_frame(frame: pd.DataFrame, source: str, report: ReadReport, *,
                         on_error: OnError = "raise", skipped: SkipLog | None = None,
                         known_codes: Collection[str] = ()) -> Iterator[Timeline]:
    """Timelines of a MEDS-shaped table, in subject order (see module docstring)."""
    require_columns(frame.columns, source)
    frame = frame.reset_index(drop=True)
    subjects = _subject_ids(frame["subject_id"], source)
    times = _times(frame["time"], subjects, source)
    codes = _codes(frame["code"], subjects, source)
    values = _values(frame["numeric_value"], subjects, source)
    bad_codes = _check_vocabularies(codes, report, known_codes)

    order_id, ids = pd.factorize(subjects, sort=True)
    by_subject = np.argsort(order_id, kind="stable")  # file order within each subject
    starts = np.flatnonzero(np.diff(order_id[by_subject], prepend=-1))
    key = times.view(np.int64)  # NaT is the smallest int64: static events sort first
    for k, (a, b) in enumerate(zip(starts, [*starts[1:], len(by_subject)])):
        rows = by_subject[a:b]
        subject = str(ids[k])
        if bad_codes and (bad := [c for c in codes[rows] if c in bad_codes]):
            handle_bad_record(BiofmError(
                f"column 'code', subject {subject}: {len(bad)} code(s) without a vocabulary "
                f"prefix (e.g. {bad[0]!r})", path=source,
                fix="prefix each code with its vocabulary, e.g. ICD10CM/E11.9, LOINC/2085-9, "
                    "SNOMED/44054006 (MEDS_BIRTH / MEDS_DEATH need none)"),
                on_error, skipped, source, 0)
            continue
        if (key[rows][1:] < key[rows][:-1]).any():  # (not np.diff: NaT - t overflows)
            report.unsorted_subjects += 1
            rows = rows[np.argsort(key[rows], kind="stable")]
        yield _drop_after_death(Timeline(subject, times[rows], codes[rows], values[rows]),
                                report)


def _drop_after_death(timeline: Timeline, report: ReadReport) -> Timeline:
    deaths = timeline.times[timeline.codes == DEATH]
    deaths = deaths[~np.isnat(deaths)]
    if not len(deaths):
        return timeline
    keep = timeline.static | (timeline.times <= deaths.min())
    if keep.all():
        return timeline
    report.after_death += int((~keep).sum())
    report.after_death_subjects += 1
    return Timeline(timeline.subject_id, timeline.times[keep], timeline.codes[keep],
                    timeline.values[keep])


def _first_bad(mask: np.ndarray, subjects: np.ndarray) -> tuple[int, str]:
    row = int(np.flatnonzero(mask)[0])
    return row, str(subjects[row]) if subjects is not None else "?"


def _subject_ids(column: pd.Series, source: str) -> np.ndarray:
    missing = column.isna().to_numpy()
    if missing.any():
        raise BiofmError(f"column 'subject_id' is empty on {int(missing.sum()):,} row(s) (first: "
                         f"data row {int(np.flatnonzero(missing)[0]) + 1})", path=source,
                         fix="give every event the id of its subject")
    if pd.api.types.is_float_dtype(column) and (column % 1 == 0).all():
        column = column.astype(np.int64)
    return column.to_numpy() if pd.api.types.is_integer_dtype(column) \
        else column.astype(str).to_numpy()


def _times(column: pd.Series, subjects: np.ndarray, source: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column.dt.tz_localize(None) if getattr(column.dt, "tz", None) else column
    else:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed")
        bad = (parsed.isna() & column.notna() & (column.astype(str).str.strip() != "")).to_numpy()
        if bad.any():
            row, subject = _first_bad(bad, subjects)
            raise BiofmError(f"column 'time', subject {subject}: {column.iloc[row]!r} is not a "
                             f"date or time ({int(bad.sum()):,} such row(s))", path=source,
                             fix="write times as ISO dates (2015-03-01 or 2015-03-01T08:30:00); "
                                 "leave static events (sex, race) without a time")
    return parsed.to_numpy().astype(TIME_UNIT)


def _codes(column: pd.Series, subjects: np.ndarray, source: str) -> np.ndarray:
    codes = column.astype("string").str.strip()
    empty = (codes.isna() | (codes == "")).to_numpy(dtype=bool)
    if empty.any():
        row, subject = _first_bad(empty, subjects)
        raise BiofmError(f"column 'code', subject {subject}: {int(empty.sum()):,} event(s) "
                         f"without a code (first: data row {row + 1})", path=source,
                         fix="give every event a vocabulary-prefixed code, or drop those rows")
    return codes.to_numpy(dtype=object)


def _values(column: pd.Series, subjects: np.ndarray, source: str) -> np.ndarray:
    parsed = pd.to_numeric(column, errors="coerce")
    bad = (parsed.isna() & column.notna()).to_numpy()
    if bad.any() and column.dtype == object:
        text = column.astype(str).str.strip()
        bad &= ~text.isin(["", "nan", "NaN", "NA", "None"]).to_numpy()
    if bad.any():
        row, subject = _first_bad(bad, subjects)
        raise BiofmError(f"column 'numeric_value', subject {subject}: {column.iloc[row]!r} is "
                         "not a number", path=source,
                         fix="put numbers in numeric_value and text in text_value")
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_vocabularies(codes: np.ndarray, report: ReadReport,
                        known_codes: Collection[str]) -> set[str]:
    """Codes without a prefix (returned); unknown prefixes counted into `report`."""
    unique, counts = np.unique(codes.astype(str), return_counts=True)
    bad = set()
    for code, n in zip(unique, counts):
        prefix = vocabulary(code)
        if prefix is None:
            bad.add(code)
        elif prefix != "MEDS" and prefix not in KNOWN_VOCABULARIES and code not in known_codes:
            report.unknown_vocabularies[prefix] += int(n)
    return bad


__all__ = ["BIRTH", "DEATH", "KNOWN_VOCABULARIES", "MEDS_COLUMNS", "ReadReport", "Timeline",
           "require_columns", "timelines_from_frame", "vocabulary"]
