"""A cell-annotation task from the user's `.h5ad`: counts → label in an `obs` column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biofm.data.splits import random_split
from biofm.data.tasks import Split, Splits, Task, TaskKind
from biofm.errors import BiofmError
from biofm.modalities.singlecell.reader import open_h5ad, read_h5ad


def task_from_h5ad(path: str | Path, label: str, kind: TaskKind = "classification",
                   split: str = "random", seed: int = 0, layer: str | None = None) -> Task:
    """Cells with a non-missing `obs[label]`; classes are the sorted label values
    (integer columns keep their ids); split 80/10/10 at random (stratified by class)."""
    path = Path(path)
    adata = open_h5ad(path)
    try:
        if label not in adata.obs.columns:
            raise BiofmError(f"obs has no column {label!r}", path=path,
                             fix=f"choose --label from: {', '.join(map(str, adata.obs.columns))}")
        column = adata.obs[label]
    finally:
        adata.file.close()
    if split != "random":
        raise BiofmError(f"split {split!r} does not apply to cells", path=path,
                         fix="use --split random")
    keep = column.notna().to_numpy()
    if not keep.any():
        raise BiofmError(f"obs[{label!r}] has no values (every cell is missing it)", path=path,
                         fix="choose a filled obs column as --label")
    labels = _labels(column[keep], kind, path, label)
    if kind == "classification" and len(np.unique(labels)) < 2:
        raise BiofmError(f"obs[{label!r}] holds one class only ({column[keep].iloc[0]!r}); "
                         "classification needs at least two", path=path,
                         fix="choose a column with several cell types, or --kind regression "
                             "for a numeric one")
    by_cell = dict(zip(column.index[keep].astype(str), labels))
    records = [r for r in read_h5ad(path, layer=layer) if r.id in by_cell]
    whole = Split([f"{path.name}:{r.id}" for r in records], [r.data for r in records],
                  np.asarray([by_cell[r.id] for r in records]))

    def load(seed: int) -> Splits:
        idx = random_split(len(whole), seed=seed,
                           stratify=whole.labels if kind == "classification" else None)
        if not (len(idx.train) and len(idx.valid) and len(idx.test)):
            raise BiofmError(f"too few labeled cells ({len(whole)}) for train/valid/test",
                             path=path, fix="use more labeled cells (dozens at least)")
        return Splits(whole.subset(idx.train), whole.subset(idx.valid), whole.subset(idx.test))

    return Task(path.stem, "singlecell", kind, load, split, source=str(path),
                description=f"obs[{label!r}] of {path.name}")


def _labels(values, kind: TaskKind, path: Path, label: str) -> np.ndarray:
    if kind == "regression":
        try:
            return values.to_numpy(dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise BiofmError(f"obs[{label!r}] does not hold numbers ({exc})", path=path,
                             fix="use a numeric column for regression") from None
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    classes = sorted(set(map(str, values)))
    return np.asarray([classes.index(str(v)) for v in values], dtype=np.int64)
