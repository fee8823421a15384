"""Pair data: two inputs of two modalities per labeled example.

    data = read_pairs(Path("kiba.csv"), (Side("target", "aa_sequence", "protein"),
                                         Side("drug", "smiles", "molecule")),
                      label="affinity_score", parsers=(tower_a.parse, tower_b.parse))

Each side keeps its distinct inputs once (`PairData.items`) and every example points
at one item per side (`PairData.index`): 5,000 KIBA pairs hold 189 proteins and 458
ligands, so a tower runs over each distinct input once, and splits that keep an
entity (or its cluster) on one side are index arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from biofm.data.records import OnError, SkipLog, handle_bad_record
from biofm.errors import BiofmError
from biofm.registry import Registry

# (cell text, file, line, column) → what the side's tokenizer encodes; raises BiofmError
Parser = Callable[[str, Path, int, str], object]


@dataclass(frozen=True)
class Side:
    """One input of a pair: its role (`name`, e.g. "target"), CSV column and modality;
    `id_column` names its entities (default: the input itself)."""

    name: str
    column: str
    modality: str
    id_column: str | None = None


@dataclass
class PairData:
    """Labeled pairs as indices into each side's distinct items.

    items[s]: the distinct inputs of side s; item_ids[s]: their ids;
    index: (N, 2) int, row i pairs items[0][index[i, 0]] with items[1][index[i, 1]];
    labels: (N,) float32; lines: (N,) the CSV line of each pair (0: not from a file).
    """

    sides: tuple[Side, Side]
    items: tuple[list, list]
    item_ids: tuple[list[str], list[str]]
    index: np.ndarray
    labels: np.ndarray
    lines: np.ndarray
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray | Sequence[int]) -> "PairData":
        """The pairs `rows` (the item lists are shared, not copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(self, index=self.index[rows], labels=self.labels[rows],
                       lines=self.lines[rows])

    def inputs(self, side: int) -> list:
        """Side `side`'s input of every pair (N,)."""
        return [self.items[side][i] for i in self.index[:, side]]

    def used_items(self, side: int) -> np.ndarray:
        """Indices of side `side`'s items that some pair of this data uses (sorted)."""
        return np.unique(self.index[:, side])


@dataclass
class PairSplits:
    train: PairData
    valid: PairData
    test: PairData
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PairTask:
    """A labeled pair benchmark: `load(split, seed)` → PairSplits.

    `splits` names the split strategies it offers; `query_side` is the side that is
    screened against (the target of a drug–target task): per-target ranking metrics
    group test pairs by it. `source` records provenance and licence. `positive_at`: the
    value from which a pair counts as a positive in contrastive co-embedding (KIBA
    binders: 12.1); `retrieval_baselines(splits, threshold)` → name → test recall@k
    (default: random and popularity rankings). kind "retrieval": every pair is a
    positive and there is no value to regress (pair-pretrain only).
    """

    name: str
    sides: tuple[Side, Side]
    load: Callable[[str, int], PairSplits]
    splits: tuple[str, ...]
    source: str
    description: str = ""
    kind: str = "regression"
    query_side: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    positive_at: float | None = None
    retrieval_baselines: Callable[[PairSplits, float], dict] | None = None


PAIR_TASKS: Registry = Registry("pair task")


def read_pairs(path: Path, sides: tuple[Side, Side], label: str,
               parsers: tuple[Parser, Parser], *, on_error: OnError = "raise",
               skipped: SkipLog | None = None, frame: pd.DataFrame | None = None) -> PairData:
    """Pairs of a CSV (or of `frame`, read from `path` already): both sides' columns and
    the numeric `label`. Every distinct cell of a side goes through that side's parser
    (molecules: RDKit-valid, canonical); a bad cell raises naming its line and column,
    or with `on_error="skip"` drops its rows into `skipped`. Rows without a label or an
    input are left out and counted in `notes`."""
    from biofm.data.labeled import csv_lines, read_csv

    frame = read_csv(path) if frame is None else frame
    # the line of each row by position (blank lines are not rows); a frame built from
    # several files (a packaged task's splits) is numbered as one table
    line_of = csv_lines(path, len(frame)) if path.is_file() else np.arange(len(frame)) + 2
    frame = frame.reset_index(drop=True)
    needed = [label, *(s.column for s in sides), *(s.id_column for s in sides if s.id_column)]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise BiofmError(f"column {missing[0]!r} is missing", path=path,
                         fix=f"name the pair columns with --column (twice) and the label with "
                             f"--label; available: {', '.join(map(str, frame.columns))}")
    notes = _dropped(frame, [s.column for s in sides], label)
    frame = frame.dropna(subset=[label, *(s.column for s in sides)])
    values = pd.to_numeric(frame[label], errors="coerce")
    if values.isna().any():
        line = int(line_of[values.index[values.isna()][0]])
        raise BiofmError(f"label {frame[label][values.isna()].iloc[0]!r} in column {label!r} is "
                         "not a number", path=path, record=line,
                         fix="pair tasks are regressions: fix the value or drop the row")
    lines = line_of[frame.index.to_numpy()]
    keep = np.ones(len(frame), dtype=bool)
    items, ids, index = [], [], np.zeros((len(frame), 2), dtype=np.int64)
    for s, (side, parse) in enumerate(zip(sides, parsers)):
        cells = frame[side.column].astype(str).str.strip().to_numpy()
        names = frame[side.id_column].astype(str).to_numpy() if side.id_column else cells
        side_items, side_ids, where = _distinct(cells, names, lines, keep, side, parse, path,
                                                on_error, skipped)
        items.append(side_items)
        ids.append(side_ids)
        index[:, s] = where
    if not keep.any():
        raise BiofmError("no usable pairs", path=path,
                         fix="check the columns hold the right inputs, or use --on-error skip "
                             "only for a few bad rows")
    if skipped is not None and (~keep).sum():
        notes += (f"left out {(~keep).sum():,} pair(s) with an invalid input",)
    return PairData(tuple(sides), (items[0], items[1]), (ids[0], ids[1]),  # type: ignore[arg-type]
                    index[keep], values.to_numpy(dtype=np.float32)[keep], lines[keep], notes)


def _distinct(cells: np.ndarray, names: np.ndarray, lines: np.ndarray, keep: np.ndarray,
              side: Side, parse: Parser, path: Path, on_error: OnError,
              skipped: SkipLog | None) -> tuple[list, list[str], np.ndarray]:
    """Parse each distinct cell once; rows whose cell is bad get keep False."""
    items: list = []
    ids: list[str] = []
    slot: dict[str, int] = {}
    where = np.full(len(cells), -1, dtype=np.int64)
    bad: set[str] = set()
    for row, (cell, name) in enumerate(zip(cells, names)):
        key = f"{name}\x00{cell}"
        if key in bad:
            keep[row] = False
            _note_bad(skipped, path, lines[row], side, cell)
            continue
        if key not in slot:
            try:
                parsed = parse(cell, path, int(lines[row]), side.column)
            except BiofmError as error:
                handle_bad_record(error, on_error, skipped, str(path), int(lines[row]))
                bad.add(key)
                keep[row] = False
                continue
            slot[key] = len(items)
            items.append(parsed)
            ids.append(str(name))
        where[row] = slot[key]
    return items, ids, where


def _note_bad(skipped: SkipLog | None, path: Path, line: int, side: Side, cell: str) -> None:
    """A later row repeating a cell that was already reported bad."""
    if skipped is not None:
        skipped.add(BiofmError(f"same invalid {side.column!r} value as an earlier row "
                               f"({cell[:40]!r})", path=path, record=int(line)),
                    str(path), int(line))


def _dropped(frame: pd.DataFrame, columns: list[str], label: str) -> tuple[str, ...]:
    no_label = int(frame[label].isna().sum())
    no_input = int((frame[columns].isna().any(axis=1) & frame[label].notna()).sum())
    parts = [f"{n:,} row(s) without {what}" for n, what in
             ((no_label, f"a label ({label!r})"), (no_input, "one of the inputs")) if n]
    return (f"left out {' and '.join(parts)}",) if parts else ()


__all__ = ["PAIR_TASKS", "PairData", "PairSplits", "PairTask", "Parser", "Side", "read_pairs"]
