"""Labels in MEDS label form, and tasks whose inputs stop at each prediction time.

    labels = read_labels("labels.parquet")    # subject_id, prediction_time, boolean_value | ...
    task = labeled_task("mytask", timelines, labels, ...)

A label row asks: given the subject's events at or before `prediction_time`, what
is the label? The task builder cuts each timeline there (`Timeline.cut`): the
model, the probe and the baselines only ever receive the cut timeline, so no
event after the prediction time can reach them (no look-ahead by construction).

Label columns (MEDS): `boolean_value` (classification 0 / 1), `integer_value`
(classes), `categorical_value` (named classes), `float_value` (regression); the
first one present with values is used. Splits are by subject: all of a subject's
label rows go to one split ("random": subjects shuffled with the seed, stratified
by whether a subject has a positive label; "given": the MEDS dataset's
metadata/subject_splits.parquet, train / tuning / held_out).

Time to event (`kind="survival"`, `--kind survival`): `boolean_value` says whether
the event was seen (true) or the subject was censored (false), and `float_value`
is the number of days from `prediction_time` to the event or to the censoring.

Errors name the label file, the column and the subject: a subject the data does
not hold, a prediction time before the subject's first dated event, a prediction
time at or after the subject's MEDS_DEATH (the input would hold the outcome), a
prediction time that does not parse, a negative time to event. Rows without a
label are left out and counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from biofm.data.splits import SplitIndices, random_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.modalities.ehr.timeline import DEATH, TIME_UNIT, Timeline

LABEL_COLUMNS = ("boolean_value", "integer_value", "categorical_value", "float_value")
FRACTIONS = (0.8, 0.1, 0.1)


def read_labels(path: str | Path, survival: bool = False
                ) -> tuple[pd.DataFrame, str, tuple[str, ...]]:
    """(rows with subject_id (str), prediction_time (datetime64[us]) and `value`, the label
    column used, notes) of a MEDS label file (.parquet or .csv). `survival`: `value` is
    boolean_value (the event was seen) and `time` float_value (days to event or censoring)."""
    path = Path(path)
    if not path.is_file():
        raise BiofmError("label file does not exist", path=path,
                         fix="pass a MEDS label file (.parquet or .csv: subject_id, "
                             "prediction_time, boolean_value | integer_value | float_value)")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BiofmError(f"not a readable label file ({exc})", path=path,
                         fix="write labels as parquet or CSV with a header") from None
    missing = [c for c in ("subject_id", "prediction_time") if c not in frame.columns]
    if missing:
        raise BiofmError(f"missing label column(s) {', '.join(map(repr, missing))} (found: "
                         f"{', '.join(map(str, frame.columns))})", path=path,
                         fix="write MEDS labels: subject_id, prediction_time and one of "
                             + ", ".join(LABEL_COLUMNS))
    column = next((c for c in LABEL_COLUMNS if c in frame.columns and frame[c].notna().any()),
                  None)
    if survival:
        column = _survival_columns(frame, path)
    if column is None:
        raise BiofmError(f"no label values (looked for {', '.join(LABEL_COLUMNS)})", path=path,
                         fix="fill boolean_value (yes / no tasks) or float_value (numbers)")
    times = pd.to_datetime(frame["prediction_time"], errors="coerce", format="mixed")
    bad = times.isna() & frame["prediction_time"].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BiofmError(f"column 'prediction_time', subject {frame['subject_id'].iloc[row]}: "
                         f"{frame['prediction_time'].iloc[row]!r} is not a date or time",
                         path=path, fix="write ISO times, e.g. 2015-03-01T00:00:00")
    out = pd.DataFrame({"subject_id": _ids(frame["subject_id"]),
                        "prediction_time": times.dt.tz_localize(None) if times.dt.tz else times,
                        "value": frame[column]})
    if survival:
        out["time"] = frame["float_value"].to_numpy(dtype=np.float64)
        negative = out["time"] < 0
        if negative.any():
            row = int(np.flatnonzero(negative.to_numpy())[0])
            raise BiofmError(f"column 'float_value', subject {out['subject_id'].iloc[row]}: "
                             f"{out['time'].iloc[row]:g} days to the event is negative",
                             path=path, fix="give the days from prediction_time to the event "
                                            "or censoring (>= 0)")
    unusable = out["value"].isna() | out["prediction_time"].isna()
    if survival:
        unusable |= out["time"].isna()
    notes = (f"left out {int(unusable.sum()):,} label row(s) without a {column} or a "
             "prediction_time",) if unusable.any() else ()
    out = out[~unusable].reset_index(drop=True)
    if out.empty:
        raise BiofmError(f"no row has both a prediction_time and a {column}", path=path,
                         fix="fill the label rows")
    return out, column, notes


def _survival_columns(frame: pd.DataFrame, path: Path) -> str:
    missing = [c for c in ("boolean_value", "float_value") if c not in frame.columns]
    if missing:
        raise BiofmError(f"time-to-event labels need column(s) {', '.join(map(repr, missing))}",
                         path=path, fix="write boolean_value (the event was seen, else "
                                        "censored) and float_value (days from prediction_time "
                                        "to the event or censoring)")
    if not pd.api.types.is_numeric_dtype(frame["float_value"]):
        raise BiofmError("column 'float_value' holds non-numbers", path=path,
                         fix="write days to the event or censoring as numbers")
    return "boolean_value"


def survival_values(labels: pd.DataFrame, path: Path) -> np.ndarray:
    """(N, 2) float of (days to event or censoring, event 1 | 0) from `time` and `value`."""
    event, _, _ = label_values(labels["value"], "boolean_value", "classification", path, None)
    return np.stack([labels["time"].to_numpy(dtype=np.float64), event.astype(np.float64)],
                    axis=1)


def _ids(column: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
        column = column.astype("Int64")
    return column.astype(str)


def label_values(values: pd.Series, column: str, kind: str | None, path: Path,
                 classes: Sequence[str] | None) -> tuple[np.ndarray, str, tuple[str, ...] | None]:
    """(labels, task kind, class names) of a label column."""
    from biofm.data.labeled import labels_of

    if column == "boolean_value":
        if kind == "regression":
            raise BiofmError("boolean_value labels are classes", path=path,
                             fix="drop --kind regression, or give float_value labels")
        mapped = values.map(lambda v: {"true": 1, "false": 0, "1": 1, "0": 0}.get(
            str(v).strip().lower(), np.nan))
        if mapped.isna().any():
            bad = values[mapped.isna()].iloc[0]
            raise BiofmError(f"column 'boolean_value' holds {bad!r}", path=path,
                             fix="write true / false (or 1 / 0)")
        return labels_of(mapped.astype(np.int64), "classification", path, column, classes)
    if column == "float_value" and kind is None:
        kind = "regression"
    return labels_of(values, kind, path, column, classes)


def examples(timelines: Mapping[str, Timeline], labels: pd.DataFrame,
             path: str | Path) -> tuple[list[str], list[Timeline], np.ndarray]:
    """(example ids, timelines cut at each prediction time, subject of each example)."""
    unknown = sorted(set(labels["subject_id"]) - set(timelines))
    if unknown:
        raise BiofmError(f"column 'subject_id': {len(unknown):,} subject(s) of the label file "
                         f"are not in the data (e.g. {', '.join(unknown[:5])})", path=path,
                         fix="label only subjects of the --input data (or drop those rows)")
    ids, inputs = [], []
    times = labels["prediction_time"].to_numpy().astype(TIME_UNIT)
    for subject, time in zip(labels["subject_id"], times):
        timeline = timelines[subject]
        if not np.isnat(timeline.first_time) and time < timeline.first_time:
            raise BiofmError(f"column 'prediction_time', subject {subject}: the prediction time "
                             f"{time} is before the subject's first event "
                             f"({timeline.first_time}), so there is nothing to predict from",
                             path=path, fix="predict at or after each subject's first event "
                                            "(or drop the row)")
        death = timeline.times[timeline.codes == DEATH]
        if len(death) and not np.isnat(death[0]) and time >= death[0]:
            raise BiofmError(f"column 'prediction_time', subject {subject}: the prediction time "
                             f"{time} is at or after the subject's death ({death[0]}), so the "
                             "input would hold the outcome", path=path,
                             fix="predict before each subject's death (or drop the row)")
        ids.append(f"{subject}@{np.datetime_as_string(time, unit='s')}")
        inputs.append(timeline.cut(time))
    return ids, inputs, labels["subject_id"].to_numpy()


def subject_split(subjects: np.ndarray, labels: np.ndarray, kind: str, seed: int,
                  given: Mapping[str, str] | None = None,
                  source: str | Path | None = None) -> SplitIndices:
    """Row indices of train / valid / test with every subject in one split only.

    `given`: subject → "train" | "tuning" | "held_out" (MEDS subject_splits);
    otherwise subjects are shuffled by `seed` (stratified by any positive label)."""
    unique, row_subject = np.unique(subjects.astype(str), return_inverse=True)
    if given is not None:
        names = np.array([given.get(s, "") for s in unique])
        missing = unique[names == ""]
        if len(missing):
            raise BiofmError(f"column 'subject_id', subject {missing[0]}: {len(missing):,} "
                             "labeled subject(s) are in no split of metadata/"
                             "subject_splits.parquet", path=source,
                             fix="assign every subject to train, tuning or held_out, or use "
                                 "--split random")
        part = np.array([{"train": 0, "tuning": 1, "held_out": 2}.get(n, 0) for n in names])
    else:
        stratify = None
        if kind in ("classification", "survival"):  # survival: by whether the event was seen
            flags = labels[:, 1] if kind == "survival" else labels
            positive = np.zeros(len(unique), dtype=np.int64)
            np.maximum.at(positive, row_subject, (flags > 0).astype(np.int64))
            stratify = positive if 0 < positive.sum() < len(positive) else None
        index = random_split(len(unique), FRACTIONS, seed=seed, stratify=stratify)
        part = np.zeros(len(unique), dtype=np.int64)
        part[index.valid], part[index.test] = 1, 2
    rows = part[row_subject]
    return SplitIndices(*(np.flatnonzero(rows == k).astype(np.int64) for k in range(3)))


def read_subject_splits(root: Path | None) -> dict[str, str] | None:
    """subject → split name of a MEDS dataset's metadata/subject_splits.parquet, or None."""
    path = root / "metadata" / "subject_splits.parquet" if root is not None else None
    if path is None or not path.is_file():
        return None
    frame = pd.read_parquet(path)
    if not {"subject_id", "split"} <= set(frame.columns):
        raise BiofmError("subject_splits.parquet needs columns subject_id and split", path=path,
                         fix="write the MEDS subject splits (subject_id, split)")
    return dict(zip(_ids(frame["subject_id"]), frame["split"].astype(str)))


def labeled_task(name: str, timelines: Mapping[str, Timeline], labels: pd.DataFrame, *,
                 column: str, path: str | Path, kind: str | None, split: str,
                 given: Mapping[str, str] | None = None, classes: Sequence[str] | None = None,
                 source: str = "", description: str = "", notes: tuple[str, ...] = ()) -> Task:
    """A `Task` over label rows; inputs are the timelines cut at each prediction time.
    `kind="survival"`: `labels` also holds `time` (days to the event or censoring) and
    `value` says whether the event was seen."""
    if kind == "survival":
        values, names = survival_values(labels, Path(path)), None
    else:
        values, kind, names = label_values(labels["value"], column, kind, Path(path), classes)
    ids, inputs, subjects = examples(timelines, labels, path)
    whole = Split(ids, inputs, values)

    def load(seed: int) -> Splits:
        index = subject_split(subjects, values, kind, seed, given if split == "given" else None,
                              path)
        sizes = dict(zip(("train", "valid", "test"), map(len, index)))
        if not all(sizes.values()):
            raise BiofmError(f"too few labeled subjects for a train / valid / test split "
                             f"({', '.join(f'{k} {v}' for k, v in sizes.items())})", path=path,
                             fix="label more subjects (dozens at least)")
        return Splits(*(whole.subset(i) for i in index))

    load(0)  # a split that cannot be made fails now, not after pretraining
    return Task(name, "ehr", kind, load, split, source=source or str(path),  # type: ignore
                description=description, classes=names, notes=notes)


__all__ = ["LABEL_COLUMNS", "examples", "label_values", "labeled_task", "read_labels",
           "read_subject_splits", "subject_split", "survival_values"]
