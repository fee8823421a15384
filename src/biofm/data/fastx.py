"""One streaming reader for FASTA and FASTQ (plain or gzip), shared by every sequence modality.

A file is read line by line into `Piece`s, so a genome never sits in memory:
FASTA gives one piece per sequence line, FASTQ one per read (with its quality
line), and every record ends with an end piece (`text` None). The modality on
top passes a `Clean` function that checks (and may normalise) each line before
its piece is made, calling `FastxReader.reject` on a bad one; the reader then
drops the rest of that record and ends it with `ok=False`. `whole_records` joins
pieces into `Record`s; `read_fastx` reads whole records with no alphabet check.

Conventions:

- compression is told by the gzip magic bytes and the format by the first
  record line ('>' FASTA, '@' FASTQ), never by the file name; undecodable bytes
  become U+FFFD, which then fails the modality's alphabet with a line number;
- blank lines, and whole-line comments starting with '#' or ';' (Pfam and old
  NBRF exports put a comment block above the first header), are ignored in
  FASTA and before the first FASTQ read;
- the id is the header's first word (`>sp|P69905|HBA_HUMAN Hemoglobin` →
  `sp|P69905|HBA_HUMAN`) and `Record.line` the header's line number (1-based);
- FASTA sequence lines are concatenated with all whitespace removed;
- FASTQ: four lines per read (`@id`, sequence, `+[id]`, quality; multi-line
  FASTQ is not supported), Phred+33 qualities as long as the sequence.

Bad input (sequence before the first header, a header without id, a record
without sequence, a FASTQ read out of shape, a truncated gzip) raises a
`BiofmError` naming file, line and record, and the fix; with `on_error="skip"`
the bad record is dropped, noted in `skipped`, and reading goes on. A truncated
gzip ends the stream (nothing after the break can be read) and drops the
record it cut.
"""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path
from typing import IO, Iterable, Iterator, Literal, NamedTuple, Protocol

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file
from biofm.io import GZIP_ERRORS, GZIP_FIX, gzip_error

Format = Literal["fasta", "fastq"]

GZIP_MAGIC = b"\x1f\x8b"
COMMENT_PREFIXES = ("#", ";")
_COMMENT_CHARS = "".join(COMMENT_PREFIXES)
SKIP_FIX = "or pass --on-error skip to drop such records"
_FASTQ_SHAPE = ("each read is four lines: '@id', sequence, '+', quality (multi-line FASTQ is "
                f"not supported), {SKIP_FIX}")
_NOT_PHRED33 = re.compile(r"[^!-~]")


class Piece(NamedTuple):
    """A sequence line of record `id` (FASTQ: a whole read and its quality line), or,
    with `text` None, the record's end, where `ok` is False if the record was bad."""

    id: str
    header: int         # the record's header line (`Record.line`)
    line: int           # the line `text` is on
    text: str | None
    quality: str = ""   # FASTQ only: Phred+33, as long as `text`
    ok: bool = True


class Clean(Protocol):
    """Checks one FASTA sequence line or FASTQ read of the record whose header is on
    line `header`: returns the text its piece carries (normalised as the modality
    wants), or None after calling `FastxReader.reject`. `quality` is '' in FASTA."""

    def __call__(self, text: str, quality: str, line: int, header: int, /) -> str | None: ...


def open_text(path: str | Path) -> IO[str]:
    """Plain or gzip text, told by the magic bytes; undecodable bytes become U+FFFD."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def sniff(path: str | Path, format: Format | None = None) -> Format:
    """'>' → FASTA, '@' → FASTQ, from the first line that is not blank or a comment.

    With `format` given the file is not sniffed, only checked to hold a record line
    (a FASTA file that starts with sequence lines is then the reader's to report).
    """
    kind = "FASTA or FASTQ" if format is None else format.upper()
    with open_text(path) as fh:
        try:
            first = next(((n, t) for n, line in enumerate(fh, start=1)
                          if (t := line.strip()) and not t.startswith(COMMENT_PREFIXES)), None)
        except GZIP_ERRORS as exc:
            raise gzip_error(path, exc) from None
    if first is None:
        raise BiofmError(f"no {kind} records (only blank or comment lines)", path=path,
                         fix=f"pass a {kind} file with at least one record")
    if format is not None:
        return format
    lineno, text = first
    if text[0] not in ">@":
        raise BiofmError(f"neither FASTA nor FASTQ: the first record line starts with "
                         f"{text[0]!r}", path=path, record=lineno,
                         fix="pass a FASTA file ('>id' then sequence lines) or a FASTQ file "
                             "('@id', sequence, '+', quality)")
    return "fasta" if text[0] == ">" else "fastq"


class FastxReader:
    """One FASTA or FASTQ file, read once through `pieces()`.

    The path, `on_error` and the format are checked on creation, the records as
    they are read. `reject` reports the record of the piece just yielded as bad.
    """

    def __init__(self, path: str | Path, *, format: Format | None = None,
                 on_error: OnError = "raise", skipped: SkipLog | None = None) -> None:
        if on_error not in ("raise", "skip"):
            raise BiofmError(f"unknown on_error policy {on_error!r}", fix="use 'raise' or 'skip'")
        if format not in (None, "fasta", "fastq"):
            raise BiofmError(f"unknown format {format!r}",
                             fix="use 'fasta', 'fastq' or None (told by the first record line)")
        what = "FASTA or FASTQ file" if format is None else f"{format.upper()} file"
        self.path = require_file(path, what)
        self.source = str(self.path)
        self.format: Format = sniff(self.path, format)
        self.on_error, self.skipped = on_error, skipped
        self.bad_records = 0         # reported so far, skipped or not
        self._truncated = False
        self._id: str | None = None  # record being read; None before the first header
        self._header = 0
        self._bad = False            # current record already reported: drop its lines
        self._has_seq = False

    def pieces(self, clean: Clean | None = None) -> Iterator[Piece]:
        """The file's pieces, each line passed through `clean` (call once); every
        record that was started ends with an end piece."""
        lines = self._lines()
        return self._fasta(lines, clean) if self.format == "fasta" else self._fastq(lines, clean)

    def reject(self, message: str, fix: str, line: int) -> None:
        """Report the record being read as bad, at `line` of the file; its remaining
        lines are dropped. Called from `clean`, or on the piece just yielded."""
        self._fail(message, line, fix)

    # -- shared state machine ------------------------------------------------------------
    def _fail(self, message: str, line: int, fix: str) -> None:
        where = f"line {line}" if not self._id else f"line {line}, record {self._id!r}"
        self.bad_records += 1
        self._bad = True
        handle_bad_record(BiofmError(message, path=self.source, record=where, fix=fix),
                          self.on_error, self.skipped, self.source, line)

    def _start(self, header: str, lineno: int) -> None:
        words = header[1:].split()
        self._id, self._header = (words[0] if words else ""), lineno
        self._bad = self._has_seq = False

    def _end(self) -> Piece:
        if not self._bad and not self._has_seq:
            self._fail("record has no sequence", self._header, "add the sequence lines under "
                       f"the header or delete the header, {SKIP_FIX}")
        return Piece(self._id or "", self._header, self._header, None, ok=not self._bad)

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line without its newline); a truncated gzip ends the stream."""
        lineno = 0
        with open_text(self.path) as fh:
            try:
                for lineno, line in enumerate(fh, start=1):
                    yield lineno, line.rstrip("\r\n")
            except GZIP_ERRORS as exc:
                self._truncated = True
                self._fail(f"the gzip stream is truncated or corrupt after line {lineno} ({exc})",
                           lineno + 1, f"{GZIP_FIX}; records before the break were read")

    # -- FASTA -------------------------------------------------------------------------
    def _fasta(self, lines: Iterable[tuple[int, str]], clean: Clean | None) -> Iterator[Piece]:
        orphans = False  # sequence lines before the first header (reported once)
        for lineno, line in lines:
            first = line[:1]
            if first == ">":
                if self._id is not None:
                    yield self._end()
                self._start(line, lineno)
                if not self._id:
                    self._fail("header has no id", lineno, "put the id right after '>' (e.g. "
                               f"'>P69905 hemoglobin alpha' or '>chr1 E. coli'), {SKIP_FIX}")
                continue
            if first in _COMMENT_CHARS:  # also the empty line
                continue
            seq = "".join(line.split())
            if not seq or self._bad:
                continue
            if self._id is None:
                if not orphans:
                    orphans = True
                    self._fail("sequence line before the first '>' header", lineno,
                               "start the file with a '>id description' header; check that it "
                               "is FASTA (not FASTQ, GenBank or a bare sequence list), "
                               f"{SKIP_FIX}")
                continue
            if clean is not None and (seq := clean(seq, "", lineno, self._header)) is None:
                continue  # rejected: the record is bad now
            self._has_seq = True
            yield Piece(self._id, self._header, lineno, seq)
        if self._id is not None:
            yield self._end()  # after a gzip break this record is already bad

    # -- FASTQ -------------------------------------------------------------------------
    def _fastq(self, lines: Iterator[tuple[int, str]], clean: Clean | None) -> Iterator[Piece]:
        stream = _Pushback(lines)
        lost = False  # after a structural error: skip to the next '@' line, reporting once
        started = False  # comment lines are ignored above the first read only
        for lineno, head in stream:
            if not head.strip() or (not started and head.startswith(COMMENT_PREFIXES)):
                continue
            started = True
            if not head.startswith("@"):
                if not lost:
                    self._fail("expected a FASTQ header line starting with '@'", lineno,
                               _FASTQ_SHAPE)
                lost = True
                continue
            self._start(head, lineno)
            body = [stream.next_or_none() for _ in range(3)]
            if any(b is None for b in body):
                if not self._truncated:
                    self._fail("the file ends inside this read (fewer than four lines)", lineno,
                               "the file looks truncated: re-copy it, or delete the partial read")
                yield self._end()  # already bad: reported here or at the gzip break
                return
            (seq_line, seq), (plus_line, plus), (qual_line, qual) = body  # type: ignore[misc]
            if not plus.startswith("+"):
                self._fail("expected the '+' separator as the third line of the read",
                           plus_line, _FASTQ_SHAPE)
                stream.push(body[1], body[2])  # either may be the next read's header
                lost = True
            else:
                lost = False
                self._check_read(seq, seq_line, plus, plus_line, qual, qual_line)
            if not self._bad and clean is not None:
                seq = clean(seq, qual, seq_line, lineno)  # type: ignore[assignment]
            if not self._bad:
                self._has_seq = True
                yield Piece(self._id or "", lineno, seq_line, seq, qual)
            yield self._end()
            self._id = None  # between reads: errors name no record

    def _check_read(self, seq: str, seq_line: int, plus: str, plus_line: int, qual: str,
                    qual_line: int) -> None:
        """Report the first problem of a four-line read, if any."""
        plus_id = plus[1:].split()[:1]
        if not self._id:
            self._fail("read header has no id", self._header,
                       f"put the id right after '@', {SKIP_FIX}")
        elif plus_id and plus_id[0] != self._id:
            self._fail(f"the '+' line names {plus_id[0]!r}, not the read's id", plus_line,
                       f"leave the '+' line bare or repeat the id, {SKIP_FIX}")
        elif not seq:
            self._fail("read has no sequence", seq_line, f"drop empty reads, {SKIP_FIX}")
        elif len(qual) != len(seq):
            self._fail(f"quality line has {len(qual)} characters but the sequence has "
                       f"{len(seq)} bases", qual_line, "the read is truncated or its lines are "
                       f"out of order; fix it, {SKIP_FIX}")
        elif (bad := _NOT_PHRED33.search(qual)) is not None:
            self._fail(f"quality character {bad.group()!r} at position {bad.start() + 1} is not "
                       "Phred+33 ('!' to '~')", qual_line,
                       f"convert old Phred+64 files first, {SKIP_FIX}")


class _Pushback:
    """An iterator of (line number, line) that takes lines back."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines, self._back = lines, []  # type: ignore[var-annotated]

    def __iter__(self) -> _Pushback:
        return self

    def __next__(self) -> tuple[int, str]:
        return self._back.pop() if self._back else next(self._lines)

    def next_or_none(self) -> tuple[int, str] | None:
        return next(self, None)

    def push(self, *items: tuple[int, str] | None) -> None:
        self._back.extend(reversed([i for i in items if i is not None]))


def whole_records(pieces: Iterable[Piece], source: str) -> Iterator[Record]:
    """Join each good record's pieces into one `Record` (data: the sequence)."""
    chunks: list[str] = []
    for piece in pieces:
        if piece.text is not None:
            chunks.append(piece.text)
            continue
        if piece.ok:
            yield Record(piece.id, "".join(chunks), source, piece.header)
        chunks = []


def read_fastx(path: str | Path, *, format: Format | None = None, on_error: OnError = "raise",
               skipped: SkipLog | None = None) -> Iterator[Record]:
    """Stream the records of a FASTA or FASTQ file as read, with no alphabet check.

    FASTQ qualities are checked, then dropped (`FastxReader.pieces` keeps them).
    The path, the options and the format are checked at call time.
    """
    reader = FastxReader(path, format=format, on_error=on_error, skipped=skipped)
    return whole_records(reader.pieces(), reader.source)
