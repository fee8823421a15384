"""Protein FASTA: a streaming reader with alphabet checks, and an atomic writer.

`read_fasta` is a thin layer over `biofm.data.fastx` (plain or gzip told by
magic bytes, the id is the header's first word, `Record.line` the header's
line number, blank and '#' / ';' comment lines ignored, sequence lines joined
with whitespace removed, line-numbered errors, `on_error="skip"`), reading the
file as FASTA whatever its first line (a FASTQ file is reported as sequence
before the first header). It adds the
protein alphabet: case is kept (the tokenizer decides what case means); by
default a sequence may hold letters, the gap symbols `-` and `.`, and one `*`
stop at its very end; `alphabet="ACGTN"` allows exactly those characters.

A character outside the alphabet raises a `BiofmError` naming file, line and
record; with `on_error="skip"` the whole record is dropped and noted in `skipped`.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import Iterable, Iterator

from biofm.data.fastx import SKIP_FIX, Clean, FastxReader, whole_records
from biofm.data.records import OnError, Record, SkipLog
from biofm.errors import BiofmError
from biofm.io import atomic_path

# a character outside letters, gaps and '*', or a '*' with more residues after it on its line
_DEFAULT_BAD = re.compile(r"[^A-Za-z.\-*]|\*(?=.)")


def read_fasta(path: str | Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
               alphabet: str | None = None) -> Iterator[Record]:
    """Stream the records of a FASTA file (plain or gzip); see the module docstring.

    The path and options are checked at call time, the records as they are read.
    """
    if alphabet is not None and not alphabet:
        raise BiofmError("alphabet is empty", fix="list the allowed characters, e.g. 'ACGTN'")
    reader = FastxReader(path, format="fasta", on_error=on_error, skipped=skipped)
    return whole_records(reader.pieces(_clean_residues(reader, alphabet)), reader.source)


def _clean_residues(reader: FastxReader, alphabet: str | None) -> Clean:
    """Check a line against the alphabet; under the default one, a '*' must be the
    record's last residue, which only the record's next line can tell."""
    disallowed = _DEFAULT_BAD if alphabet is None else re.compile(f"[^{re.escape(alphabet)}]")
    allowed = "letters, '-', '.' and a final '*'" if alphabet is None else repr(alphabet)
    stop_header = stop_line = 0  # the last line that ended in '*', and its record's header

    def clean(seq: str, quality: str, line: int, header: int) -> str | None:
        nonlocal stop_header, stop_line
        if header == stop_header:
            reader.reject("'*' stop inside the sequence (more residues follow it)",
                          f"remove the '*' or split the record, {SKIP_FIX}", stop_line)
            return None
        if (bad := disallowed.search(seq)) is not None:
            reader.reject(f"character {bad.group()!r} at residue {bad.start() + 1} of this line "
                          f"is not allowed (allowed: {allowed})", "fix or remove the character, "
                          f"{SKIP_FIX}", line)
            return None
        if alphabet is None and seq.endswith("*"):
            stop_header, stop_line = header, line
        return seq

    return clean


def write_fasta(records: Iterable[Record], path: str | Path, *, width: int = 60) -> int:
    """Write records atomically (gzip if `path` ends in .gz); return how many were written.

    Sequence lines wrap at `width` residues (0 = one line per sequence).
    """
    path = Path(path)
    count = 0
    with atomic_path(path) as tmp:
        raw = gzip.open(tmp, "wb") if path.suffix == ".gz" else open(tmp, "wb")
        with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as fh:
            for rec in records:
                if not rec.id or any(c.isspace() for c in rec.id):
                    raise BiofmError(f"record id {rec.id!r} is empty or contains whitespace",
                                     path=path, record=f"record {count + 1}",
                                     fix="give every record a one-word id")
                fh.write(f">{rec.id}\n")
                step = width if width > 0 else max(len(rec.data), 1)
                for start in range(0, len(rec.data), step):
                    fh.write(rec.data[start:start + step] + "\n")
                count += 1
    return count
