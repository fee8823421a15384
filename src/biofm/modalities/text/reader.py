"""Read documents (clinical notes, reports) from CSV / TSV, .txt files or a directory.

Layouts, all UTF-8 (a BOM is ignored), `.gz` read transparently:

- `.csv` / `.tsv`: a header row, one document per row in `column` (default
  "text"); ids from an "id" column when there is one, else "<file>:<line>".
  Quoted cells may span lines (a note with paragraphs); `Record.line` is the
  line the row starts on.
- `.txt`: one document per line (the layout of most text corpora, e.g. the
  `datasets` "text" loader); blank lines separate nothing and are not records.
  Ids are "<file>:<line>".
- a directory: every `*.txt` / `*.txt.gz` file directly inside it is one document
  (its whole content, newlines kept), in sorted order; ids are the file names
  without suffix.

Text is kept as written except for surrounding whitespace. An empty document
(an empty or whitespace-only CSV cell, an empty file in a directory) is a bad
record: a `BiofmError` naming the file, line, column and row, or, with
`on_error="skip"`, skipped and counted in the `SkipLog` the CLI prints.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from pathlib import Path
from typing import IO, Iterator

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError
from biofm.io import GZIP_ERRORS, gzip_error

TEXT_COLUMN = "text"
ID_COLUMN = "id"
SKIP_FIX = "fill or remove it, or pass --on-error skip to leave such records out (they are counted)"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long notes: csv's default is 128 KiB


def read_text(path: str | Path, *, column: str | None = None, on_error: OnError = "raise",
              skipped: SkipLog | None = None) -> Iterator[Record]:
    """Stream the documents of a CSV / TSV, a .txt file or a directory of .txt files
    (see the module docstring). The path and `column` are checked at call time."""
    path = Path(path)
    if not path.exists():
        raise BiofmError("text input does not exist", path=path,
                         fix="check the path and the current directory")
    name = path.name.lower().removesuffix(".gz")
    if path.is_dir():
        _no_column(path, column, "a directory of .txt files")
        return _directory(path, on_error, skipped)
    if name.endswith((".csv", ".tsv")):
        fh = _open(path)
        try:
            rows = csv.reader(fh, delimiter="\t" if name.endswith(".tsv") else ",")
            try:
                header = next(rows, None)
            except (UnicodeDecodeError, csv.Error, *GZIP_ERRORS) as exc:
                raise _unreadable(path, 1, exc) from None
            if header is None:
                raise BiofmError("the file is empty (no header row)", path=path,
                                 fix="write a header row naming the text column, e.g. 'id,text'")
            text_at = _column_index(path, header, column or TEXT_COLUMN)
        except BaseException:
            fh.close()
            raise
        id_at = header.index(ID_COLUMN) if ID_COLUMN in header else None
        return _table(path, fh, rows, header[text_at], text_at, id_at, on_error, skipped)
    _no_column(path, column, "a .txt file (one document per line)")
    return _lines(path)


def _no_column(path: Path, column: str | None, what: str) -> None:
    if column is not None:
        raise BiofmError(f"--column names a CSV column, but this is {what}", path=path,
                         fix="drop --column, or pass a CSV / TSV file")


def _open(path: Path) -> IO[str]:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _column_index(path: Path, header: list[str], column: str) -> int:
    if column not in header:
        available = ", ".join(repr(c) for c in header) or "none"
        raise BiofmError(f"no text column {column!r}; available columns: {available}",
                         path=path, fix="name the column of the documents with --column NAME")
    return header.index(column)


def _table(path: Path, fh: IO[str], rows, column: str, text_at: int, id_at: int | None,
           on_error: OnError, skipped: SkipLog | None) -> Iterator[Record]:
    """Rows of an open CSV whose header has been read."""
    with fh:
        start, row_no = rows.line_num + 1, 0
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except (UnicodeDecodeError, csv.Error, *GZIP_ERRORS) as exc:
                raise _unreadable(path, start, exc) from None
            row_no += 1
            line, start = start, rows.line_num + 1
            if not any(cell.strip() for cell in row):
                continue  # a blank line between rows, not a record
            text = row[text_at].strip() if text_at < len(row) else ""
            if not text:
                handle_bad_record(BiofmError(
                    f"empty note in column {column!r} (row {row_no})", path=path, record=line,
                    fix=SKIP_FIX), on_error, skipped, str(path), line)
                continue
            record_id = row[id_at].strip() if id_at is not None and id_at < len(row) else ""
            yield Record(record_id or f"{path.name}:{line}", text, str(path), line)


def _lines(path: Path) -> Iterator[Record]:
    with _open(path) as fh:
        line = 0
        try:
            for line, text in enumerate(fh, start=1):
                if text.strip():
                    yield Record(f"{path.name}:{line}", text.strip(), str(path), line)
        except (UnicodeDecodeError, *GZIP_ERRORS) as exc:
            raise _unreadable(path, line + 1, exc) from None


def _directory(path: Path, on_error: OnError, skipped: SkipLog | None) -> Iterator[Record]:
    files = sorted(p for p in path.iterdir()
                   if p.is_file() and p.name.lower().endswith((".txt", ".txt.gz")))
    if not files:
        raise BiofmError("no .txt files in this directory", path=path,
                         fix="put one document per .txt file in it, or pass a CSV / .txt file")
    return _files(files, on_error, skipped)


def _files(files: list[Path], on_error: OnError, skipped: SkipLog | None) -> Iterator[Record]:
    for file in files:
        with _open(file) as fh:
            try:
                text = fh.read().strip()
            except (UnicodeDecodeError, *GZIP_ERRORS) as exc:
                raise _unreadable(file, None, exc) from None
        if not text:
            handle_bad_record(BiofmError("empty document (the file holds no text)", path=file,
                                         fix=SKIP_FIX), on_error, skipped, str(file), 0)
            continue
        name = file.name
        yield Record(name[: name.lower().rfind(".txt")], text, str(file), 1)


def _unreadable(path: Path, line: int | None, exc: Exception) -> BiofmError:
    if isinstance(exc, GZIP_ERRORS):
        return gzip_error(path, exc, None if line is None else f"near line {line}")
    what = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "not a readable CSV"
    # the decoder reads ahead in blocks: the line is where reading stopped, not exact
    return BiofmError(f"{what} ({exc})", path=path,
                      record=None if line is None else f"near line {line}",
                      fix="save the file as UTF-8 (CSV: with a header row and quoted cells)")


__all__ = ["ID_COLUMN", "TEXT_COLUMN", "read_text"]
