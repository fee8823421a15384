"""Streaming DNA readers: FASTA and FASTQ (plain or gzip), as whole records or as windows.

`read_dna` yields one `Record` per sequence; `read_windows` cuts every record
into windows of `length` bases every `stride` bases while reading line by line,
so a whole genome never sits in memory (at most one window plus one line).
The format is told by the first character of the file ('>' FASTA, '@' FASTQ),
compression by the gzip magic bytes, never by the file name.

DNA text policy (the README states it in one paragraph):

- allowed: A, C, G, T, U (read as T), N, and the IUPAC ambiguity codes
  R Y S W K M B D H V (read as N), in either case; whitespace inside a line is
  dropped. Anything else (digits, '-', '.', '*', 'X', ...) is an error naming
  file, line and record: gapped alignments must be unaligned first.
- soft-masked (lowercase) bases, which genome assemblies use for repeats: by
  default they are uppercased, so the repeat sequence is kept as the
  Nucleotide Transformer and DNABERT-2 do (`softmask="upper"`);
  `softmask="mask"` hard-masks them to N instead.
- N is kept and has its own token. Windows with more than `max_n_fraction` N
  (default 0.1) are skipped and counted in `WindowStats.skipped_n`: in
  assemblies these are the gaps between contigs, which carry no sequence.
- FASTQ: four lines per read (`@id`, sequence, `+[id]`, quality; multi-line
  FASTQ is not supported), Phred+33 qualities; the quality line must be as long
  as the sequence. With `min_quality=q`, bases called with quality < q become N.
- FASTA: blank lines and whole-line comments starting with '#' or ';' are
  ignored; the id is the header's first word and `Record.line` its line number.

Bad input (a character outside the alphabet, a header without id, a record
without sequence, a quality / sequence length mismatch, a truncated gzip or
FASTQ record) raises a `BiofmError` naming file, line and record. With
`on_error="skip"` the bad record is dropped and noted in `skipped`; when reading
windows, the windows of a bad record that were already yielded stay (the reader
never goes back) and the rest of the record is dropped.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Literal, NamedTuple

import numpy as np

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file

SoftMask = Literal["upper", "mask"]
Tail = Literal["drop", "end"]

GZIP_MAGIC = b"\x1f\x8b"
FASTA_COMMENTS = ("#", ";")
IUPAC_AMBIGUOUS = "RYSWKMBDHV"
_ALLOWED = "ACGTUN" + IUPAC_AMBIGUOUS
_DISALLOWED = re.compile(f"[^{_ALLOWED}{_ALLOWED.lower()}]")
_ALPHABET_TEXT = ("A, C, G, T/U, N and the IUPAC codes R Y S W K M B D H V, either case")
_SKIP_FIX = "or pass on_error='skip' to drop such records"


def _translation(softmask: SoftMask) -> dict[int, str]:
    """Allowed character → normalised base (ACGTN)."""
    upper = {c: c for c in "ACGTN"} | {"U": "T"} | {c: "N" for c in IUPAC_AMBIGUOUS}
    table = {}
    for char, base in upper.items():
        table[ord(char)] = base
        table[ord(char.lower())] = base if softmask == "upper" else "N"
    return table


_TABLES = {mode: str.maketrans(_translation(mode)) for mode in ("upper", "mask")}


def normalize_dna(text: str) -> str:
    """Whitespace dropped, uppercased, U → T, IUPAC ambiguity codes → N.

    Other characters are left as they are (tokenizers map them to `<unk>`;
    readers reject them before this point).
    """
    return "".join(text.split()).translate(_TABLES["upper"])


@dataclass
class WindowStats:
    """What `read_windows` did: windows yielded and windows skipped for N."""

    records: int = 0
    windows: int = 0
    skipped_n: int = 0
    longest_record: int = 0


class _Piece(NamedTuple):
    """A normalised sequence chunk of record `id`, or (text None) the record's end."""

    id: str
    line: int           # the record's header line
    text: str | None
    ok: bool = True     # at the end: False if the record turned out bad


class _Source:
    """One file being read: its options and how it reports bad records."""

    def __init__(self, path: Path, on_error: OnError, skipped: SkipLog | None,
                 softmask: SoftMask, min_quality: int) -> None:
        self.path, self.name = path, str(path)
        self.on_error, self.skipped = on_error, skipped
        self.table = _TABLES[softmask]
        self.min_quality = min_quality
        self.truncated = False
        self.bad_records = 0

    def fail(self, message: str, line: int, record: str | None, fix: str) -> None:
        where = f"line {line}" if record is None else f"line {line}, record {record!r}"
        self.bad_records += 1
        handle_bad_record(BiofmError(message, path=self.name, record=where, fix=fix),
                          self.on_error, self.skipped, self.name, line)

    def check_bases(self, seq: str, line: int, record: str) -> bool:
        """True if `seq` holds only allowed characters; else report the first bad one."""
        match = _DISALLOWED.search(seq)
        if match is None:
            return True
        self.fail(f"character {match.group()!r} at base {match.start() + 1} of this line is "
                  f"not a nucleotide (allowed: {_ALPHABET_TEXT})", line, record,
                  f"fix or remove the character (unalign gapped alignments first), {_SKIP_FIX}")
        return False

    def lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line without newline); a truncated gzip ends the stream."""
        lineno = 0
        with _open_text(self.path) as fh:
            try:
                for lineno, line in enumerate(fh, start=1):
                    yield lineno, line.rstrip("\r\n")
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                self.truncated = True
                self.fail(f"the gzip stream is truncated or corrupt after line {lineno} ({exc})",
                          lineno + 1, None, "re-download or re-compress the file (check it "
                          "with `gzip -t`); records before the break were read")


def _open_text(path: Path) -> IO[str]:
    """Plain or gzip text; undecodable bytes become U+FFFD and then fail the alphabet check."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _sniff(path: Path) -> Literal["fasta", "fastq"]:
    """'>' → FASTA, '@' → FASTQ, from the first line that is not blank or a comment."""
    with _open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                text = line.strip()
                if not text or text.startswith(FASTA_COMMENTS):
                    continue
                if text[0] in ">@":
                    return "fasta" if text[0] == ">" else "fastq"
                raise BiofmError("neither FASTA nor FASTQ: the first record line starts with "
                                 f"{text[0]!r}", path=path, record=lineno,
                                 fix="pass a FASTA file ('>id' then sequence lines) or a "
                                     "FASTQ file ('@id', sequence, '+', quality)")
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise BiofmError(f"the gzip stream is unreadable ({exc})", path=path,
                             fix="re-download or re-compress the file (check it with `gzip -t`)"
                             ) from None
    raise BiofmError("no FASTA or FASTQ records (only blank or comment lines)", path=path,
                     fix="pass a file with at least one '>id' or '@id' record")


def looks_like_dna(path: str | Path, sample: int = 2000) -> bool:
    """Whether the first sequence letters of a FASTA / FASTQ file are nucleotides.

    At least 90% of the first `sample` letters must be A, C, G, T, U or N (either
    case); a protein sequence almost never is. False for unreadable files.
    """
    letters = nucleotides = 0
    pos = None  # FASTQ: line of the current read (0 header, 1 sequence, 2 '+', 3 quality)
    try:
        with _open_text(Path(path)) as fh:
            for line in fh:
                text = line.strip()
                if pos is None and text.startswith("@"):
                    pos = -1
                if pos is not None:
                    if not text and pos in (-1, 3):  # blank lines between reads
                        continue
                    pos = (pos + 1) % 4
                    if pos != 1:
                        continue
                elif not text or text.startswith((">", *FASTA_COMMENTS)):
                    continue
                alpha = [c for c in text if c.isalpha()]
                letters += len(alpha)
                nucleotides += sum(c in "ACGTUNacgtun" for c in alpha)
                if letters >= sample:
                    break
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error):
        return False
    return letters > 0 and nucleotides >= 0.9 * letters


# -- FASTA ---------------------------------------------------------------------------
def _fasta_pieces(src: _Source) -> Iterator[_Piece]:
    rid: str | None = None      # record being read
    header, has_seq, bad = 0, False, False
    for lineno, line in src.lines():
        if line.startswith(">"):
            if rid is not None:
                yield _close(src, rid, header, has_seq, bad)
            words = line[1:].split()
            rid = words[0] if words else f"line {lineno}"
            header, has_seq, bad = lineno, False, False
            if not words:
                bad = True
                src.fail("header has no id", lineno, None,
                         f"put the id right after '>' (e.g. '>chr1 E. coli'), {_SKIP_FIX}")
            continue
        if line.startswith(FASTA_COMMENTS):
            continue
        seq = "".join(line.split())
        if not seq or bad or rid is None:  # `_sniff` saw a '>' before any sequence line
            continue
        if not src.check_bases(seq, lineno, rid):
            bad = True
            yield _Piece(rid, header, None, ok=False)
            continue
        has_seq = True
        yield _Piece(rid, header, seq.translate(src.table))
    if rid is not None:
        yield _close(src, rid, header, has_seq, bad or src.truncated)


def _close(src: _Source, rid: str, header: int, has_seq: bool, bad: bool) -> _Piece:
    if not bad and not has_seq:
        src.fail("record has no sequence", header, rid,
                 f"add the sequence lines under the header or delete the header, {_SKIP_FIX}")
        bad = True
    return _Piece(rid, header, None, ok=not bad)


# -- FASTQ ---------------------------------------------------------------------------
def _fastq_pieces(src: _Source) -> Iterator[_Piece]:
    lines = _Pushback(src.lines())
    lost = False  # after a structural error: skip to the next '@' line, reporting once
    for lineno, head in lines:
        if not head.strip():
            continue
        if not head.startswith("@"):
            if not lost:
                src.fail("expected a FASTQ header line starting with '@'", lineno, None,
                         "each read is four lines: '@id', sequence, '+', quality (multi-line "
                         f"FASTQ is not supported), {_SKIP_FIX}")
            lost = True
            continue
        words = head[1:].split()
        rid = words[0] if words else f"line {lineno}"
        body = [lines.next_or_none() for _ in range(3)]
        if any(b is None for b in body):
            if not src.truncated:
                src.fail("the file ends inside this read (fewer than four lines)", lineno, rid,
                         "the file looks truncated: re-copy it, or delete the partial read")
            return
        (_, seq), (plus_line, plus), (qual_line, qual) = body  # type: ignore[misc]
        if not plus.startswith("+"):
            src.fail("expected the '+' separator as the third line of the read", plus_line, rid,
                     "each read is four lines: '@id', sequence, '+', quality (multi-line "
                     f"FASTQ is not supported), {_SKIP_FIX}")
            lines.push(body[1], body[2])  # either may be the next read's header
            lost = True
            continue
        lost = False
        text = _fastq_read(src, rid, lineno, words, seq, plus, qual, qual_line)
        if text is not None:
            yield _Piece(rid, lineno, text)
            yield _Piece(rid, lineno, None)


def _fastq_read(src: _Source, rid: str, lineno: int, words: list[str], seq: str, plus: str,
                qual: str, qual_line: int) -> str | None:
    """Check one read; its normalised sequence (low-quality bases as N), or None if bad."""
    if not words:
        src.fail("read header has no id", lineno, None, f"put the id right after '@', {_SKIP_FIX}")
        return None
    if plus[1:].strip() and plus[1:].split()[0] != rid:
        src.fail(f"the '+' line names {plus[1:].split()[0]!r}, not the read's id", lineno + 2,
                 rid, f"leave the '+' line bare or repeat the id, {_SKIP_FIX}")
        return None
    if not seq:
        src.fail("read has no sequence", lineno + 1, rid, f"drop empty reads, {_SKIP_FIX}")
        return None
    if not src.check_bases(seq, lineno + 1, rid):
        return None
    if len(qual) != len(seq):
        src.fail(f"quality line has {len(qual)} characters but the sequence has {len(seq)} "
                 "bases", qual_line, rid,
                 f"the read is truncated or its lines are out of order; fix it, {_SKIP_FIX}")
        return None
    phred = np.frombuffer(qual.encode("utf-8", "replace"), dtype=np.uint8).astype(np.int16) - 33
    if phred.min() < 0 or phred.max() > 93 or len(phred) != len(qual):
        bad = next(i for i, c in enumerate(qual) if not "!" <= c <= "~")
        src.fail(f"quality character {qual[bad]!r} at position {bad + 1} is not Phred+33 "
                 "('!' to '~')", qual_line, rid, f"convert old Phred+64 files first, {_SKIP_FIX}")
        return None
    text = seq.translate(src.table)
    if src.min_quality > 0 and (phred < src.min_quality).any():
        bases = np.frombuffer(text.encode(), dtype=np.uint8).copy()
        bases[phred < src.min_quality] = ord("N")
        text = bases.tobytes().decode()
    return text


class _Pushback:
    """An iterator of (line number, line) that takes lines back."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines, self._back = lines, []  # type: ignore[var-annotated]

    def __iter__(self) -> "_Pushback":
        return self

    def __next__(self) -> tuple[int, str]:
        return self._back.pop() if self._back else next(self._lines)

    def next_or_none(self) -> tuple[int, str] | None:
        return next(self, None)

    def push(self, *items: tuple[int, str] | None) -> None:
        self._back.extend(reversed([i for i in items if i is not None]))


# -- public readers ----------------------------------------------------------------------
def _open_source(path: str | Path, on_error: OnError, skipped: SkipLog | None,
                 softmask: SoftMask, min_quality: int) -> tuple[_Source, Iterator[_Piece]]:
    """Check the options and the file now (not lazily); return the piece stream."""
    if on_error not in ("raise", "skip"):
        raise BiofmError(f"unknown on_error policy {on_error!r}", fix="use 'raise' or 'skip'")
    if softmask not in _TABLES:
        raise BiofmError(f"unknown softmask policy {softmask!r}",
                         fix="use 'upper' (keep soft-masked bases) or 'mask' (turn them into N)")
    if not 0 <= min_quality <= 93:
        raise BiofmError(f"min_quality must be a Phred score in 0..93, got {min_quality}",
                         fix="e.g. min_quality=20, or 0 to keep every base")
    file = require_file(path, "DNA file")
    src = _Source(file, on_error, skipped, softmask, min_quality)
    pieces = _fasta_pieces(src) if _sniff(file) == "fasta" else _fastq_pieces(src)
    return src, pieces


def read_dna(path: str | Path, *, on_error: OnError = "raise", skipped: SkipLog | None = None,
             softmask: SoftMask = "upper", min_quality: int = 0,
             window: int | None = None, stride: int | None = None,
             **window_options) -> Iterator[Record]:
    """Stream the sequences of a FASTA or FASTQ file (plain or gzip); see the module docstring.

    With `window` set, records are cut into windows as by `read_windows`.
    """
    if window is not None:
        return read_windows(path, window, stride, on_error=on_error, skipped=skipped,
                            softmask=softmask, min_quality=min_quality, **window_options)
    src, pieces = _open_source(path, on_error, skipped, softmask, min_quality)
    return _whole_records(pieces, src.name)


def _whole_records(pieces: Iterable[_Piece], source: str) -> Iterator[Record]:
    chunks: list[str] = []
    for piece in pieces:
        if piece.text is not None:
            chunks.append(piece.text)
            continue
        if piece.ok:
            yield Record(piece.id, "".join(chunks), source, piece.line)
        chunks = []


def read_windows(path: str | Path, length: int, stride: int | None = None, *,
                 tail: Tail = "drop", max_n_fraction: float = 0.1,
                 on_error: OnError = "raise", skipped: SkipLog | None = None,
                 softmask: SoftMask = "upper", min_quality: int = 0,
                 stats: WindowStats | None = None) -> Iterator[Record]:
    """Stream windows of `length` bases starting every `stride` bases (default: `length`).

    Window ids are `record:start-end` (1-based, inclusive, as in samtools regions);
    `Record.line` is the record's header line. `tail="drop"` yields full windows
    only; `tail="end"` adds one window ending at the record's last base when the
    full windows missed some, and gives a record shorter than `length` one
    window of its own. Windows with more than `max_n_fraction` N are skipped.
    A file that yields no window at all is an error (too short, or all N).
    """
    stride = length if stride is None else stride
    for name, value in (("window length", length), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BiofmError(f"{name} must be a positive number of bases, got {value!r}",
                             fix="e.g. length=512, stride=512 (no overlap) or 256 (half overlap)")
    if tail not in ("drop", "end"):
        raise BiofmError(f"unknown tail policy {tail!r}",
                         fix="use 'drop' (full windows only) or 'end' (cover the record's end)")
    if not 0.0 <= max_n_fraction <= 1.0:
        raise BiofmError(f"max_n_fraction must be in [0, 1], got {max_n_fraction}",
                         fix="e.g. 0.1 to skip windows that are more than 10% N")
    src, pieces = _open_source(path, on_error, skipped, softmask, min_quality)
    cutter = _Windower(int(length), int(stride), tail, max_n_fraction,
                       stats if stats is not None else WindowStats())
    return cutter.run(pieces, src)


class _Windower:
    """Cuts a stream of pieces into windows keeping at most ~`length` bases + one line."""

    def __init__(self, length: int, stride: int, tail: Tail, max_n: float,
                 stats: WindowStats) -> None:
        self.length, self.stride, self.tail, self.max_n = length, stride, tail, max_n
        self.stats = stats

    def run(self, pieces: Iterable[_Piece], src: _Source) -> Iterator[Record]:
        self.source = src.name
        self.reset()
        for piece in pieces:
            if piece.text is not None:
                yield from self.feed(piece)
                continue
            if piece.ok:
                self.stats.records += 1
                self.stats.longest_record = max(self.stats.longest_record, self.total)
                yield from self.finish(piece)
            self.reset()
        if self.stats.windows == 0 and src.bad_records == 0:
            raise BiofmError(self._why_empty(), path=src.name,
                             fix="use a shorter window, tail='end', or a higher max_n_fraction")

    def reset(self) -> None:
        self.buf, self.buf_start = "", 0   # buf holds bases [buf_start, total)
        self.total = 0                     # bases of the record seen so far
        self.next = 0                      # start of the next full window
        self.covered = 0                   # end of the last window cut

    def feed(self, piece: _Piece) -> Iterator[Record]:
        self.buf += piece.text  # type: ignore[operator]
        self.total += len(piece.text)  # type: ignore[arg-type]
        while self.next + self.length <= self.total:
            offset = self.next - self.buf_start
            yield from self.emit(piece, self.next, self.buf[offset: offset + self.length])
            self.next += self.stride
        # keep what later windows need: from the next start (and, for tail="end",
        # the record's last `length` bases), never past the bases seen
        keep = self.next if self.tail == "drop" else min(self.next, self.total - self.length)
        keep = min(max(keep, self.buf_start), self.total)
        self.buf, self.buf_start = self.buf[keep - self.buf_start:], keep

    def finish(self, piece: _Piece) -> Iterator[Record]:
        if self.tail == "end" and self.covered < self.total:
            start = max(self.total - self.length, 0)
            yield from self.emit(piece, start, self.buf[start - self.buf_start:])

    def emit(self, piece: _Piece, start: int, text: str) -> Iterator[Record]:
        self.covered = start + len(text)
        if text.count("N") > self.max_n * len(text):
            self.stats.skipped_n += 1
            return
        self.stats.windows += 1
        yield Record(f"{piece.id}:{start + 1}-{start + len(text)}", text, self.source, piece.line)

    def _why_empty(self) -> str:
        if self.stats.records == 0:
            return "no records"
        if self.stats.skipped_n:
            return (f"no window kept: all {self.stats.skipped_n} windows are more than "
                    f"{self.max_n:.0%} N")
        return (f"no window of {self.length} bases: the longest record has "
                f"{self.stats.longest_record} bases")
