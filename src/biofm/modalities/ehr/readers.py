"""Readers of the formats the field uses, all to `Timeline`s (see `timeline`).

    read_timelines(path) → (timelines, report)      read_ehr(path) → Records (the modality's reader)

- MEDS: a directory with `data/**/*.parquet` (subject_id, time, code,
  numeric_value, optional text_value; one subject per shard), or one such
  parquet file. Codes that `metadata/codes.parquet` describes count as known
  whatever their vocabulary prefix. Shards are read one at a time.
- OMOP CDM: a DuckDB file, or a directory of `<table>.csv` / `.csv.gz` /
  `.parquet` files (table and column names in any case). Tables read: person
  (birth → MEDS_BIRTH; gender, race, ethnicity as static codes), death
  (MEDS_DEATH), visit_occurrence, condition_occurrence, drug_exposure,
  procedure_occurrence, measurement (value_as_number), observation. Concept ids
  become "VOCABULARY_ID/CONCEPT_CODE" through the `concept` table; ids it does
  not hold become "OMOP_CONCEPT/<id>" (counted); concept id 0 ("no matching
  concept") and events of persons missing from `person` are dropped (counted).
  A person_id twice in `person` is an error.
- A plain events CSV (.csv / .tsv, optionally .gz) with named columns: subject
  (subject_id | patient_id | person_id), time (time | date | datetime |
  timestamp), code (code | event | concept) and optionally a value (numeric_value |
  value) and text_value.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from biofm.data.records import OnError, Record, SkipLog
from biofm.errors import BiofmError
from biofm.modalities.ehr.timeline import (BIRTH, DEATH, MEDS_COLUMNS, ReadReport, Timeline,
                                          require_columns, timelines_from_frame)

logger = logging.getLogger("biofm")

CSV_ALIASES = {"subject_id": ("subject_id", "patient_id", "person_id", "subject", "patient"),
               "time": ("time", "datetime", "date", "timestamp", "event_time"),
               "code": ("code", "event", "concept"),
               "numeric_value": ("numeric_value", "value"),
               "text_value": ("text_value", "text")}
FORMATS = ("meds", "omop", "events-csv")
CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")


def source_format(path: str | Path) -> str:
    """"meds", "omop" or "events-csv", from the path's layout and suffix."""
    path = Path(path)
    if not path.exists():
        raise BiofmError("EHR input does not exist", path=path,
                         fix="pass a MEDS directory, a MEDS .parquet, an OMOP DuckDB file or "
                             "CSV directory, or an events CSV")
    name = path.name.lower()
    if path.is_dir():
        if (path / "data").is_dir():
            return "meds"
        if _table_file(path, "person") is not None:
            return "omop"
        if any(path.glob("*.parquet")):
            return "meds"
        raise BiofmError("this directory is neither MEDS (data/*.parquet) nor OMOP (person.csv "
                         "or person.parquet, ...)", path=path,
                         fix="pass the MEDS root (the folder holding data/) or the folder of "
                             "OMOP table files")
    if name.endswith((".duckdb", ".db")):
        return "omop"
    if name.endswith(".parquet"):
        return "meds"
    if name.endswith(CSV_SUFFIXES):
        return "events-csv"
    raise BiofmError(f"unknown EHR file type {path.suffix!r}", path=path,
                     fix="pass a MEDS .parquet or directory, an OMOP .duckdb, or an events .csv")


def read_timelines(path: str | Path, *, on_error: OnError = "raise",
                   skipped: SkipLog | None = None,
                   report: ReadReport | None = None) -> Iterator[Timeline]:
    """Timelines of any supported input (streamed per MEDS shard); rules into `report`."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    kind = source_format(path)
    if kind == "meds":
        yield from read_meds(path, on_error=on_error, skipped=skipped, report=report)
    elif kind == "omop":
        yield from read_omop(path, on_error=on_error, skipped=skipped, report=report)
    else:
        yield from read_events_csv(path, on_error=on_error, skipped=skipped, report=report)


def load_timelines(path: str | Path, *, on_error: OnError = "raise",
                   skipped: SkipLog | None = None) -> tuple[list[Timeline], ReadReport]:
    """All timelines of `path` in memory, and what the rules changed."""
    report = ReadReport()
    timelines = list(read_timelines(path, on_error=on_error, skipped=skipped, report=report))
    if not timelines:
        raise BiofmError("no subjects with events", path=path,
                         fix="check the file, or use --on-error skip only for a few bad subjects")
    return timelines, report


def read_ehr(path: str | Path, *, on_error: OnError = "raise",
             skipped: SkipLog | None = None) -> Iterator[Record]:
    """The modality's reader: one `Record(subject_id, Timeline)` per subject; the rules'
    counts are logged at the end (stderr)."""
    report = ReadReport()
    for timeline in read_timelines(path, on_error=on_error, skipped=skipped, report=report):
        yield Record(timeline.subject_id, timeline, str(path))
    log_report(report, path)


def log_report(report: ReadReport, where: str | Path) -> None:
    for line in report.lines():
        logger.warning("%s: %s", where, line)


# -- MEDS ------------------------------------------------------------------------------
def meds_shards(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    root = path / "data" if (path / "data").is_dir() else path
    shards = sorted(root.rglob("*.parquet"))
    if not shards:
        raise BiofmError("no parquet shards in the MEDS directory", path=root,
                         fix="write the events as data/*.parquet (MEDS layout)")
    return shards


def meds_root(path: Path) -> Path | None:
    """The MEDS dataset root of a directory or shard (the folder holding data/)."""
    for candidate in (path, *path.parents):
        if (candidate / "data").is_dir() and candidate.is_dir():
            return candidate
    return None


def described_codes(path: Path) -> frozenset[str]:
    """Codes listed in the dataset's metadata/codes.parquet (empty when there is none)."""
    root = meds_root(path)
    codes = root / "metadata" / "codes.parquet" if root is not None else None
    if codes is None or not codes.is_file():
        return frozenset()
    frame = pd.read_parquet(codes, columns=None)
    return frozenset(frame["code"].astype(str)) if "code" in frame.columns else frozenset()


def read_meds(path: Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
              report: ReadReport | None = None) -> Iterator[Timeline]:
    import pyarrow.parquet as pq

    report = report if report is not None else ReadReport()
    known = described_codes(path)
    seen: dict[str, Path] = {}
    for shard in meds_shards(path):
        try:
            schema = pq.read_schema(shard)
            require_columns(schema.names, str(shard))
            columns = [*MEDS_COLUMNS, *(["text_value"] if "text_value" in schema.names else [])]
            frame = pq.read_table(shard, columns=columns).to_pandas()
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise BiofmError(f"not a readable parquet file ({exc})", path=shard,
                             fix="write MEDS shards with pyarrow / pandas .to_parquet") from None
        for timeline in timelines_from_frame(frame, str(shard), report, on_error=on_error,
                                             skipped=skipped, known_codes=known):
            if timeline.subject_id in seen:
                raise BiofmError(f"column 'subject_id', subject {timeline.subject_id}: the "
                                 f"subject's events are split over {seen[timeline.subject_id]} "
                                 "and this shard", path=shard,
                                 fix="keep each subject's events in one shard (MEDS layout)")
            seen[timeline.subject_id] = shard
            yield timeline


# -- events CSV --------------------------------------------------------------------------
def read_events_csv(path: Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
                    report: ReadReport | None = None) -> Iterator[Timeline]:
    from biofm.data.labeled import read_csv

    report = report if report is not None else ReadReport()
    frame = read_csv(path, sep="\t" if ".tsv" in path.name.lower() else ",")
    frame = named_columns(frame, path)
    yield from timelines_from_frame(frame, str(path), report, on_error=on_error, skipped=skipped)


def named_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The MEDS columns of an events table whose columns go by common names."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    out = {}
    for target, aliases in CSV_ALIASES.items():
        found = next((lower[a] for a in aliases if a in lower), None)
        if found is not None:
            out[target] = frame[found]
        elif target in ("subject_id", "time", "code"):
            raise BiofmError(f"no {target} column (looked for {', '.join(aliases)}; found "
                             f"{', '.join(map(str, frame.columns))})", path=path,
                             fix=f"name the column {target!r}")
    if "numeric_value" not in out:
        out["numeric_value"] = pd.Series(np.nan, index=frame.index)
    return pd.DataFrame(out)


# -- OMOP CDM ----------------------------------------------------------------------------
# table → (concept column, start datetime column, start date column, value column)
OMOP_EVENTS = {
    "visit_occurrence": ("visit_concept_id", "visit_start_datetime", "visit_start_date", None),
    "condition_occurrence": ("condition_concept_id", "condition_start_datetime",
                             "condition_start_date", None),
    "drug_exposure": ("drug_concept_id", "drug_exposure_start_datetime",
                      "drug_exposure_start_date", None),
    "procedure_occurrence": ("procedure_concept_id", "procedure_datetime", "procedure_date", None),
    "measurement": ("measurement_concept_id", "measurement_datetime", "measurement_date",
                    "value_as_number"),
    "observation": ("observation_concept_id", "observation_datetime", "observation_date",
                    "value_as_number"),
}
STATIC_CONCEPTS = ("gender_concept_id", "race_concept_id", "ethnicity_concept_id")
# standard OMOP gender concepts, for CDMs whose concept table leaves them out (Eunomia)
GENDER_CONCEPTS = {8507: "Gender/M", 8532: "Gender/F"}


class OmopSource:
    """The tables of an OMOP CDM in a DuckDB file or a directory of CSV / parquet files;
    `table(name)` → DataFrame with lower-case columns, or None when absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = None
        if path.is_file():
            import duckdb

            try:
                self._con = duckdb.connect(str(path), read_only=True)
                self._tables = {r[0].lower(): r[0] for r in
                                self._con.execute("SHOW TABLES").fetchall()}
            except duckdb.Error as exc:
                raise BiofmError(f"not a readable DuckDB database ({exc})", path=path,
                                 fix="pass an OMOP CDM DuckDB file (e.g. Eunomia's)") from None

    def where(self, name: str) -> str:
        if self._con is not None:
            return f"{self.path} (table {name})"
        found = _table_file(self.path, name)
        return str(found if found is not None else self.path / name)

    def table(self, name: str) -> pd.DataFrame | None:
        if self._con is not None:
            if name not in self._tables:
                return None
            frame = self._con.execute(f'SELECT * FROM "{self._tables[name]}"').df()
        else:
            from biofm.data.labeled import read_csv

            found = _table_file(self.path, name)
            if found is None:
                return None
            frame = (pd.read_parquet(found) if found.name.lower().endswith(".parquet")
                     else read_csv(found, empty_ok=True, low_memory=False))
        frame.columns = [str(c).lower() for c in frame.columns]
        return frame

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def _table_file(directory: Path, name: str) -> Path | None:
    for candidate in directory.iterdir():
        lower = candidate.name.lower()
        if candidate.is_file() and lower in (f"{name}.csv", f"{name}.csv.gz", f"{name}.parquet"):
            return candidate
    return None


def read_omop(path: Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
              report: ReadReport | None = None) -> Iterator[Timeline]:
    report = report if report is not None else ReadReport()
    frame = omop_events(path, report)
    yield from timelines_from_frame(frame, str(path), report, on_error=on_error, skipped=skipped)


def omop_events(path: Path, report: ReadReport) -> pd.DataFrame:
    """A MEDS-shaped event table (subject_id, time, code, numeric_value) of an OMOP CDM."""
    source = OmopSource(path)
    try:
        person = source.table("person")
        if person is None:
            raise BiofmError("no person table", path=path,
                             fix="an OMOP CDM needs person (person.csv / person.parquet)")
        codes = _ConceptCodes(source.table("concept"), report)
        parts = [_person_events(person, source.where("person"), codes)]
        parts.append(_death_events(source.table("death"), source.where("death"), codes, report))
        for table, columns in OMOP_EVENTS.items():
            frame = source.table(table)
            if frame is not None:
                parts.append(_table_events(frame, table, columns, source.where(table), codes,
                                           report))
    finally:
        source.close()
    events = pd.concat([p for p in parts if p is not None], ignore_index=True)
    known = set(person["person_id"].tolist())
    unknown = ~events["subject_id"].isin(known)
    if unknown.any():
        report.notes.append(f"{int(unknown.sum()):,} event(s) of "
                            f"{events.loc[unknown, 'subject_id'].nunique():,} person_id(s) "
                            "missing from the person table: dropped")
        events = events[~unknown]
    codes.note_unmapped()
    # tables come one after another: order the events as MEDS does (static first)
    return events.sort_values(["subject_id", "time"], kind="stable",
                              na_position="first").reset_index(drop=True)


class _ConceptCodes:
    """concept_id → "VOCABULARY_ID/CONCEPT_CODE" (the concept table), else "OMOP_CONCEPT/<id>"."""

    def __init__(self, concept: pd.DataFrame | None, report: ReadReport) -> None:
        self.report = report
        self.table: dict[int, str] = {}
        self.unmapped: set[int] = set()
        if concept is not None and {"concept_id", "vocabulary_id", "concept_code"} <= set(
                concept.columns):
            self.table = {int(i): f"{v}/{c}" for i, v, c in zip(
                concept["concept_id"], concept["vocabulary_id"], concept["concept_code"])}
        self.table = {**GENDER_CONCEPTS, **self.table}

    def __call__(self, ids: pd.Series) -> np.ndarray:
        ids = ids.astype(np.int64)
        out = ids.map(self.table)
        missing = out.isna()
        self.unmapped.update(ids[missing].unique().tolist())
        out[missing] = "OMOP_CONCEPT/" + ids[missing].astype(str)
        return out.to_numpy(dtype=object)

    def note_unmapped(self) -> None:
        if self.unmapped:
            self.report.notes.append(f"{len(self.unmapped):,} concept id(s) are not in the "
                                     "concept table: coded OMOP_CONCEPT/<id>")


def _require(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BiofmError(f"missing OMOP column(s) {', '.join(missing)} (found: "
                         f"{', '.join(frame.columns[:12])})", path=where,
                         fix="write the table with the OMOP CDM v5 column names")


def _person_events(person: pd.DataFrame, where: str, codes: _ConceptCodes) -> pd.DataFrame:
    _require(person, ["person_id", "year_of_birth"], where)
    duplicated = person["person_id"].duplicated(keep=False)
    if duplicated.any():
        first = person.loc[duplicated, "person_id"].iloc[0]
        raise BiofmError(f"column 'person_id', subject {first}: "
                         f"{int(person['person_id'].duplicated().sum()):,} duplicate person "
                         f"row(s) ({int(duplicated.sum())} rows share "
                         f"{person.loc[duplicated, 'person_id'].nunique()} id(s))", path=where,
                         fix="keep one row per person in the person table")
    birth = pd.to_datetime(person.get("birth_datetime"), errors="coerce") \
        if "birth_datetime" in person.columns else pd.Series(pd.NaT, index=person.index)
    parts = {"year": person["year_of_birth"],
             "month": person.get("month_of_birth", pd.Series(1, index=person.index)),
             "day": person.get("day_of_birth", pd.Series(1, index=person.index))}
    ymd = pd.to_datetime(pd.DataFrame({k: pd.to_numeric(v, errors="coerce").fillna(1)
                                       .astype(int).clip(lower=1) for k, v in parts.items()}),
                         errors="coerce")
    birth = birth.fillna(ymd)
    rows = [pd.DataFrame({"subject_id": person["person_id"],
                          "time": birth.astype("datetime64[ns]"), "code": BIRTH,
                          "numeric_value": np.nan})]
    for column in STATIC_CONCEPTS:
        if column in person.columns:
            ids = pd.to_numeric(person[column], errors="coerce").fillna(0)
            keep = ids != 0
            rows.append(pd.DataFrame({"subject_id": person.loc[keep, "person_id"],
                                      "time": pd.Series(pd.NaT, index=person.index[keep],
                                                        dtype="datetime64[ns]"),
                                      "code": codes(ids[keep]),
                                      "numeric_value": np.nan}))
    return pd.concat(rows, ignore_index=True)


def _death_events(death: pd.DataFrame | None, where: str, codes: _ConceptCodes,
                  report: ReadReport) -> pd.DataFrame | None:
    if death is None or death.empty:
        return None
    if "person_id" not in death.columns or not {"death_date", "death_datetime"} & set(
            death.columns):
        report.notes.append(f"the death table is not in CDM layout (columns: "
                            f"{', '.join(death.columns[:6])}): ignored")
        return None
    time = _event_time(death, "death_datetime", "death_date")
    return pd.DataFrame({"subject_id": death["person_id"], "time": time, "code": DEATH,
                         "numeric_value": np.nan})


def _event_time(frame: pd.DataFrame, datetime_column: str, date_column: str) -> pd.Series:
    time = pd.to_datetime(frame[datetime_column], errors="coerce") \
        if datetime_column in frame.columns else pd.Series(pd.NaT, index=frame.index)
    if date_column in frame.columns:
        time = time.fillna(pd.to_datetime(frame[date_column], errors="coerce"))
    return time


def _table_events(frame: pd.DataFrame, table: str, columns: tuple, where: str,
                  codes: _ConceptCodes, report: ReadReport) -> pd.DataFrame:
    concept, datetime_column, date_column, value = columns
    _require(frame, ["person_id", concept, date_column], where)
    ids = pd.to_numeric(frame[concept], errors="coerce").fillna(0)
    time = _event_time(frame, datetime_column, date_column)
    keep = (ids != 0) & time.notna()
    if (~keep).any():
        report.notes.append(f"{table}: {int((~keep).sum()):,} row(s) without a concept "
                            f"({concept} 0) or a start date: dropped")
    values = pd.to_numeric(frame[value], errors="coerce") if value in frame.columns \
        else pd.Series(np.nan, index=frame.index)
    return pd.DataFrame({"subject_id": frame.loc[keep, "person_id"], "time": time[keep],
                         "code": codes(ids[keep]), "numeric_value": values[keep]})


__all__ = ["FORMATS", "OmopSource", "described_codes", "load_timelines", "log_report",
           "meds_root", "named_columns", "omop_events", "read_ehr", "read_events_csv",
           "read_meds", "read_omop", "read_timelines", "source_format"]
