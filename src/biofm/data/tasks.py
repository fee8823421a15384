"""A task = data split + label kind + metrics. Tasks register in `TASKS`.

    @TASKS.register("freesolv")
    def freesolv() -> Task: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

TaskKind = Literal["classification", "regression", "multilabel", "survival", "segmentation"]


@dataclass
class Split:
    """Inputs (what the modality's tokenizer encodes: a sequence, a SMILES, a cell's
    counts, a series) with labels, aligned."""

    ids: list[str]
    inputs: list
    labels: np.ndarray  # (N,) float regression, int classification; (N, L) 0/1 multilabel
    # (NaN: that label not measured for that example); (N, 2) survival: time from the
    # prediction time to the event or censoring, event 1 | 0

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index: np.ndarray | list[int]) -> "Split":
        index = np.asarray(index, dtype=int)
        return Split([self.ids[i] for i in index], [self.inputs[i] for i in index],
                     self.labels[index])


@dataclass
class Splits:
    train: Split
    valid: Split
    test: Split


@dataclass(frozen=True)
class Task:
    """A labeled benchmark: `load(seed)` returns train/valid/test splits.

    `split` says how the splits were made (e.g. "scaffold", "random",
    "given") so reports can state it; `source` records provenance and licence.
    `classes` names the class ids 0..C-1 when the labels were names; `notes` are
    what the user should be told about the data (rows left out, and why). `compare`,
    when set, is the task's own comparison (same arguments as
    `biofm.bench.compare.compare`): a multi-task set compares one model over all its
    labels with one model per label, which is not one row per transfer mode.
    """

    name: str
    modality: str
    kind: TaskKind
    load: Callable[[int], Splits]
    split: str
    source: str
    description: str = ""
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    compare: Callable[..., Any] | None = None
