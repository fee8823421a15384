"""A cell-annotation task from the user's `.h5ad`: counts → label in an `obs` column."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from biofm.data.labeled import labels_of
from biofm.data.splits import random_split
from biofm.data.tasks import Split, Splits, Task, TaskKind
from biofm.errors import BiofmError
from biofm.modalities.singlecell.reader import open_h5ad, read_h5ad


def task_from_h5ad(path: str | Path, label: str, kind: TaskKind = "classification",
                   split: str = "random", seed: int = 0, layer: str | None = None,
                   classes: Sequence[str] | None = None) -> Task:
    """Cells with a non-missing `obs[label]`; classes are the sorted label names
    (whole numbers are class ids), or `classes` (saved with a fine-tuned model) when
    given, so every file maps a cell type to the same id; split 80/10/10 at random
    (stratified by class)."""
    path = Path(path)
    adata = open_h5ad(path, unique_cells=True)
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
    if kind == "classification" and classes is None and column[keep].astype(str).nunique() < 2:
        raise BiofmError(f"obs[{label!r}] holds one class only ({column[keep].iloc[0]!r}); "
                         "classification needs at least two", path=path,
                         fix="choose a column with several cell types, or --kind regression "
                             "for a numeric one")
    labels, kind, names = labels_of(column[keep], kind, path, label, classes)  # type: ignore
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

    return Task(path.stem, "singlecell", kind, load, split, source=str(path),  # type: ignore
                description=f"obs[{label!r}] of {path.name}", classes=names)
