"""Streaming FASTA reader and atomic writer.

`read_fasta` yields one `Record` per sequence while reading line by line, so a
proteome of any size never sits in memory. Plain and gzip files are told apart
by their magic bytes, not their name. Conventions:

- the id is the first word of the header (`>sp|P69905|HBA_HUMAN Hemoglobin` →
  `sp|P69905|HBA_HUMAN`); `Record.line` is the header's line number (1-based);
- sequence lines are concatenated with all whitespace removed; case is kept
  (the tokenizer decides what case means);
- blank lines and whole-line comments starting with `#` or `;` are ignored
  (Pfam and old NBRF exports put a comment block above the first header);
- by default a sequence may hold letters, the gap symbols `-` and `.`, and one
  `*` stop at its very end; `alphabet="ACGTN"` allows exactly those characters.

Bad input (sequence before the first header, a header without id, a record
without sequence, a character outside the alphabet, a truncated gzip) raises a
`BiofmError` naming file, line and record; with `on_error="skip"` the whole bad
record is dropped, noted in `skipped`, and reading goes on (a truncated gzip
ends the stream: nothing after the break can be read).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file
from biofm.io import atomic_path

GZIP_MAGIC = b"\x1f\x8b"
COMMENT_PREFIXES = ("#", ";")
_DEFAULT_BAD = re.compile(r"[^A-Za-z.\-*]")
_SKIP_FIX = "or pass on_error='skip' to drop such records"


def _open_text(path: Path) -> IO[str]:
    """Open plain or gzip text; undecodable bytes become U+FFFD, which then
    fails the alphabet check with a line number instead of a UnicodeDecodeError."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


class _Parser:
    """Line-by-line state machine; `feed` and `finish` return a finished Record or None."""

    def __init__(self, source: str, alphabet: str | None, on_error: OnError,
                 skipped: SkipLog | None) -> None:
        self.source, self.alphabet = source, alphabet
        # matches a disallowed character; under the default alphabet '*' passes here and
        # `check` tests its position, since only the caller knows if more sequence follows
        self.disallowed = (_DEFAULT_BAD if alphabet is None
                           else re.compile(f"[^{re.escape(alphabet)}]"))
        self.on_error, self.skipped = on_error, skipped
        self.id: str | None = None      # record being read (None before the first header)
        self.header_line = 0
        self.chunks: list[str] = []
        self.bad = False                # current record already reported; drop its lines
        self.stop_line = 0              # line of a '*' that must be the last residue
        self.orphan_reported = False
        self.seen_header = False

    def fail(self, message: str, line: int, fix: str) -> None:
        record = f"line {line}" if self.id is None else f"line {line}, record {self.id!r}"
        error = BiofmError(message, path=self.source, record=record, fix=fix)
        handle_bad_record(error, self.on_error, self.skipped, self.source, line)
        self.bad = True

    def feed(self, line: str, lineno: int) -> Record | None:
        if line.startswith(">"):
            done = self.finish()
            self.start(line, lineno)
            return done
        if line.startswith(COMMENT_PREFIXES):
            return None
        seq = "".join(line.split())
        if not seq:
            return None
        if not self.seen_header:
            if not self.orphan_reported:
                self.orphan_reported = True
                self.fail("sequence line before the first '>' header", lineno,
                          "start the file with a '>id description' header; check that it "
                          f"is FASTA (not FASTQ, GenBank or a bare sequence list), {_SKIP_FIX}")
            return None
        if self.bad:
            return None
        self.check(seq, lineno)
        if not self.bad:
            self.chunks.append(seq)
        return None

    def start(self, line: str, lineno: int) -> None:
        words = line[1:].split()
        self.seen_header = True
        self.id, self.header_line, self.chunks = (words[0] if words else None), lineno, []
        self.bad, self.stop_line = False, 0
        if self.id is None:
            self.fail("header has no id", lineno,
                      f"put the id right after '>' (e.g. '>P69905 hemoglobin alpha'), {_SKIP_FIX}")

    def check(self, seq: str, lineno: int) -> None:
        if self.stop_line:
            self.fail("'*' stop inside the sequence (more residues follow it)", self.stop_line,
                      f"remove the '*' or split the record, {_SKIP_FIX}")
            return
        match = self.disallowed.search(seq)
        found = None if match is None else (match.start(), match.group())
        if self.alphabet is None and found is None and "*" in seq:
            col = seq.index("*")
            if col != len(seq) - 1:
                found = (col, "*")
            else:
                self.stop_line = lineno
        if found is not None:
            col, char = found
            allowed = ("letters, '-', '.' and a final '*'" if self.alphabet is None
                       else repr(self.alphabet))
            self.fail(f"character {char!r} at residue {col + 1} of this line is not allowed "
                      f"(allowed: {allowed})", lineno,
                      f"fix or remove the character, pass alphabet= to allow it, {_SKIP_FIX}")

    def finish(self) -> Record | None:
        """Close the current record: return it if it is complete and clean."""
        if self.id is None or self.bad:
            return None
        if not self.chunks:
            self.fail("record has no sequence", self.header_line,
                      f"add the sequence lines under the header or delete the header, {_SKIP_FIX}")
            return None
        return Record(self.id, "".join(self.chunks), self.source, self.header_line)


def read_fasta(path: str | Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
               alphabet: str | None = None) -> Iterator[Record]:
    """Stream the records of a FASTA file (plain or gzip); see the module docstring.

    The path and options are checked at call time, the records as they are read.
    """
    if on_error not in ("raise", "skip"):
        raise BiofmError(f"unknown on_error policy {on_error!r}", fix="use 'raise' or 'skip'")
    if alphabet is not None and not alphabet:
        raise BiofmError("alphabet is empty", fix="list the allowed characters, e.g. 'ACGTN'")
    path = require_file(path, "FASTA file")
    return _read(path, _Parser(str(path), alphabet, on_error, skipped))


def _read(path: Path, parser: _Parser) -> Iterator[Record]:
    lineno = 0
    with _open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                record = parser.feed(line.rstrip("\r\n"), lineno)
                if record is not None:
                    yield record
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            parser.fail(f"the gzip stream is truncated or corrupt after line {lineno} ({exc})",
                        lineno + 1, "re-download or re-compress the file (check it with "
                        "`gzip -t`); records before the break were read")
            return
    record = parser.finish()
    if record is not None:
        yield record
    if not parser.seen_header and not parser.orphan_reported:
        raise BiofmError("no FASTA records (no line starts with '>')", path=path,
                         fix="pass a FASTA file: each record is a '>id' line then sequence lines")


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
