"""A labeled task from the user's CSV: one input column, one label column.

    task = csv_task(MODALITIES.get("molecule"), Path("assay.csv"), label="pIC50",
                    kind=None, split="scaffold", seed=0, column="smiles")

Each input cell goes through the modality's `parse_input` (molecules: RDKit-valid
and canonical, as every molecule reader yields). Rows with a missing input or
label are dropped and counted (`Task.notes`). Labels:

- `kind=None` infers it: text labels ("yes" / "no", cell types) and integer
  labels with at most `MAX_INFERRED_CLASSES` values are classes, other numbers
  are a regression target;
- class labels that are text become ids 0..C-1 in sorted order, and the names are
  kept (`Task.classes`, saved with a fine-tuned model); `classes` given (from a
  saved model) fixes that order, so a second file maps the same way;
- a float label asked for as classification, or a single class, is refused.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from biofm.data.fastx import open_text
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.io import GZIP_ERRORS, gzip_error

if TYPE_CHECKING:
    from biofm.modalities.base import Modality

MAX_INFERRED_CLASSES = 20


def csv_task(modality: "Modality", path: Path, *, label: str, kind: str | None, split: str,
             seed: int, column: str, classes: Sequence[str] | None = None) -> Task:
    """`Task` over the rows of `path` (input `column`, label `label`)."""
    frame = read_csv(path)
    lines = csv_lines(path, len(frame))
    for col in (column, label):
        if col not in frame.columns:
            raise BiofmError(f"column {col!r} is missing", path=path,
                             fix=f"available columns: {', '.join(map(str, frame.columns))}")
    notes = _dropped_note(frame, column, label)
    frame = frame.dropna(subset=[column, label])
    if frame.empty:
        raise BiofmError(f"no row has both {column!r} and {label!r}", path=path,
                         fix="fill the label column, or choose another with --label")
    labels, kind, names = labels_of(frame[label], kind, path, label, classes)
    rows = lines[frame.index]
    inputs = [modality.parse_input(str(v), path, int(line), column)
              for line, v in zip(rows, frame[column])]
    whole = Split([f"{path.name}:{line}" for line in rows], inputs, labels)
    modality.split_index(split, whole.inputs, labels, kind, seed)  # unknown strategy: now

    def load(seed: int) -> Splits:
        idx = modality.split_index(split, whole.inputs, labels, kind, seed)
        sizes = {"train": len(idx.train), "valid": len(idx.valid), "test": len(idx.test)}
        if not all(sizes.values()):
            raise BiofmError(f"too few records for a {split} split into train/valid/test "
                             f"({', '.join(f'{k} {v}' for k, v in sizes.items())})", path=path,
                             fix="use more labeled rows (dozens at least), or --split random")
        return Splits(whole.subset(idx.train), whole.subset(idx.valid), whole.subset(idx.test))

    return Task(path.stem, modality.name, kind, load, split, source=str(path),  # type: ignore
                classes=names, notes=notes)


def labels_of(column: pd.Series, kind: str | None, path: Path, name: str,
              classes: Sequence[str] | None = None
              ) -> tuple[np.ndarray, str, tuple[str, ...] | None]:
    """(labels, kind, class names or None) of a label column without missing values."""
    numeric = pd.to_numeric(column, errors="coerce")
    is_text = bool(numeric.isna().any())
    whole = not is_text and bool(np.all(np.mod(numeric.to_numpy(dtype=float), 1) == 0))
    if kind is None:
        kind = "classification" if is_text or (
            whole and numeric.nunique() <= MAX_INFERRED_CLASSES) else "regression"
    if kind == "regression":
        if is_text:
            bad = column[numeric.isna()].iloc[0]
            raise BiofmError(f"column {name!r} holds text ({bad!r}), not numbers for "
                             "regression", path=path,
                             fix="pass --kind classification, or a numeric label column")
        return numeric.to_numpy(dtype=np.float32), kind, None
    if kind != "classification":
        raise BiofmError(f"unknown task kind {kind!r}", fix="use classification or regression")
    if not is_text and not whole:
        raise BiofmError(f"column {name!r} holds fractional numbers "
                         f"({numeric[np.mod(numeric, 1) != 0].iloc[0]!r}); classes are whole "
                         "numbers or names", path=path,
                         fix="pass --kind regression to predict the value")
    values = column.astype(str) if is_text or classes is not None else numeric.astype(np.int64)
    names = tuple(classes) if classes is not None else (
        tuple(sorted(values.unique())) if is_text else None)
    if names is not None:
        index = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(values) - set(index))
        if unknown:
            raise BiofmError(f"column {name!r} holds labels the model does not know "
                             f"({', '.join(map(str, unknown[:5]))})", path=path,
                             fix=f"use the model's classes: {', '.join(names)}")
        labels = values.map(index).to_numpy(dtype=np.int64)
    else:
        labels = values.to_numpy(dtype=np.int64)
        if labels.min() < 0:
            raise BiofmError(f"column {name!r} holds negative class ids", path=path,
                             fix="use class ids 0, 1, ... or class names")
    if classes is None and len(np.unique(labels)) < 2:
        raise BiofmError(f"column {name!r} holds one class only ({column.iloc[0]!r}); "
                         "classification needs at least two", path=path,
                         fix="choose a label column with several classes, or --kind regression")
    return labels, kind, names


def _dropped_note(frame: pd.DataFrame, column: str, label: str) -> tuple[str, ...]:
    missing_label = int(frame[label].isna().sum())
    missing_input = int((frame[column].isna() & frame[label].notna()).sum())
    parts = [f"{n:,} row(s) without a {what}" for n, what in
             ((missing_label, f"label ({label!r})"), (missing_input, f"{column!r} value"))
             if n]
    return (f"left out {' and '.join(parts)}",) if parts else ()


def read_csv(path: Path, *, sep: str = ",", text_columns: Sequence[str] = (),
             empty_ok: bool = False, **options: Any) -> pd.DataFrame:
    """`pd.read_csv` with a `BiofmError` for an unreadable file (a broken gzip too) or,
    unless `empty_ok`, one without data rows. `text_columns` are kept as written ("001"
    stays "001", an empty cell is ""): ids, not numbers; `options` go to pandas."""
    kind = "tab" if sep == "\t" else "comma"
    converters = {c: str for c in text_columns} or None
    try:
        frame = pd.read_csv(path, sep=sep, converters=converters, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BiofmError(f"not a readable CSV file ({exc})", path=path,
                         fix=f"pass a {kind}-separated file with a header row") from None
    except GZIP_ERRORS as exc:
        raise gzip_error(path, exc) from None
    if frame.empty and not empty_ok:
        raise BiofmError("the CSV has a header but no rows", path=path,
                         fix="pass a file with at least one data row")
    return frame


def csv_lines(path: Path, rows: int, sep: str = ",") -> np.ndarray:
    """The line (1-based) each of the `rows` data rows of `read_csv(path)` starts on:
    pandas skips lines of only whitespace (above the header too) and a quoted cell may
    span lines, so row i is not always on line i + 2. When the scan does not find
    `rows` rows (a format pandas reads differently), it falls back to i + 2."""
    lines: list[int] = []
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=sep)
        start, header = 1, False
        try:
            for row in reader:
                if row and (len(row) > 1 or row[0].strip()):
                    if header:
                        lines.append(start)
                    header = True
                start = reader.line_num + 1
        except (csv.Error, *GZIP_ERRORS):
            lines = []
    return np.asarray(lines if len(lines) == rows else np.arange(rows) + 2, dtype=np.int64)


__all__ = ["MAX_INFERRED_CLASSES", "csv_lines", "csv_task", "labels_of", "read_csv"]
