"""A labeled task from the user's CSV: one input column, one label column.

    task = csv_task(MODALITIES.get("molecule"), Path("assay.csv"), label="pIC50",
                    kind="regression", split="scaffold", seed=0, column="smiles")

Each input cell goes through the modality's `parse_input` (molecules: RDKit-valid
and canonical, as every molecule reader yields); rows with a missing input or
label are dropped. The split is the modality's `split_index` for `split`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError

if TYPE_CHECKING:
    from biofm.modalities.base import Modality


def csv_task(modality: "Modality", path: Path, *, label: str, kind: str, split: str, seed: int,
             column: str) -> Task:
    """`Task` over the rows of `path` (input `column`, label `label`)."""
    frame = read_csv(path)
    for col in (column, label):
        if col not in frame.columns:
            raise BiofmError(f"column {col!r} is missing", path=path,
                             fix=f"available columns: {', '.join(map(str, frame.columns))}")
    frame = frame.dropna(subset=[column, label])
    labels = _labels(frame[label], kind, path, label)
    inputs = [modality.parse_input(str(v), path, int(i) + 2, column)
              for i, v in zip(frame.index, frame[column])]
    whole = Split([f"{path.name}:{i + 2}" for i in frame.index], inputs, labels)
    modality.split_index(split, whole.inputs, labels, kind, seed)  # unknown strategy: now

    def load(seed: int) -> Splits:
        idx = modality.split_index(split, whole.inputs, labels, kind, seed)
        sizes = {"train": len(idx.train), "valid": len(idx.valid), "test": len(idx.test)}
        if not all(sizes.values()):
            raise BiofmError(f"too few records for a {split} split into train/valid/test "
                             f"({', '.join(f'{k} {v}' for k, v in sizes.items())})", path=path,
                             fix="use more labeled rows (dozens at least), or --split random")
        return Splits(whole.subset(idx.train), whole.subset(idx.valid), whole.subset(idx.test))

    return Task(path.stem, modality.name, kind, load, split, source=str(path))  # type: ignore


def read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BiofmError(f"not a readable CSV file ({exc})", path=path,
                         fix="pass a comma-separated file with a header row") from None


def _labels(column: pd.Series, kind: str, path: Path, name: str) -> np.ndarray:
    try:
        return column.to_numpy(dtype=np.float32 if kind == "regression" else np.int64)
    except (ValueError, TypeError) as exc:
        raise BiofmError(f"column {name!r} does not hold {kind} labels ({exc})", path=path,
                         fix="use numbers (regression) or integer class ids 0, 1, ... "
                             "(classification)") from None


__all__ = ["csv_task", "read_csv"]
