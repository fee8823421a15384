"""The shared FASTA / FASTQ reader: formats and compression told by content, pieces and
their end markers, every structural error (file, line, record, fix) and skip mode."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from biofm.data.fastx import FastxReader, Piece, read_fastx, sniff, whole_records
from biofm.data.records import Record, SkipLog
from biofm.errors import BiofmError
from tests.helpers import write_file

FASTA = """\
; an NBRF-style comment
# and a Pfam-style one
>s1 first record
ACGT
ac gt

>s2
MKTAYI
"""
FASTQ = """\
@r1 lane 1
ACGTN
+
II#II

@r2
acgt
+r2
!!II
"""


def write(tmp_path: Path, text: str, name: str = "x.txt", gz: bool = False) -> Path:
    return write_file(tmp_path, text, name, gz)


# -- good input ------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_fasta_records_are_joined_lines_with_header_line_numbers(tmp_path, gz):
    path = write(tmp_path, FASTA, gz=gz)
    assert list(read_fastx(path)) == [Record("s1", "ACGTacgt", str(path), 3),
                                      Record("s2", "MKTAYI", str(path), 7)]


@pytest.mark.parametrize("name, gz", [("plain.fa.gz", False), ("packed.fa", True)])
def test_gzip_is_told_by_magic_bytes_not_the_name(tmp_path, name, gz):
    path = write(tmp_path, FASTA, name, gz)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    assert [r.id for r in read_fastx(path)] == ["s1", "s2"]


@pytest.mark.parametrize("gz", [False, True])
def test_fastq_pieces_carry_sequence_and_quality(tmp_path, gz):
    path = write(tmp_path, FASTQ, "reads.fa", gz)  # the name says FASTA; the content wins
    reader = FastxReader(path)
    assert reader.format == "fastq"
    assert list(reader.pieces()) == [
        Piece("r1", 1, 2, "ACGTN", "II#II"), Piece("r1", 1, 1, None),
        Piece("r2", 6, 7, "acgt", "!!II"), Piece("r2", 6, 6, None)]
    assert [(r.id, r.data, r.line) for r in read_fastx(path)] == [("r1", "ACGTN", 1),
                                                                  ("r2", "acgt", 6)]


def test_fasta_pieces_are_lines_and_every_record_ends(tmp_path):
    pieces = list(FastxReader(write(tmp_path, FASTA)).pieces())
    assert [(p.id, p.line, p.text, p.ok) for p in pieces] == [
        ("s1", 4, "ACGT", True), ("s1", 5, "acgt", True), ("s1", 3, None, True),
        ("s2", 8, "MKTAYI", True), ("s2", 7, None, True)]


def test_fastq_comment_lines_above_the_first_read_are_ignored(tmp_path):
    path = write(tmp_path, "# made by a sequencer\n; and an old comment\n\n" + FASTQ)
    assert [(r.id, r.data, r.line) for r in read_fastx(path)] == [("r1", "ACGTN", 4),
                                                                  ("r2", "acgt", 9)]


def test_crlf_line_ends(tmp_path):
    fasta = write(tmp_path, ">a x\r\nAC GT\r\nTT\r\n", "a.fa")
    fastq = write(tmp_path, "@r\r\nACGT\r\n+\r\nIIII\r\n", "a.fq")
    assert [(r.id, r.data) for r in read_fastx(fasta)] == [("a", "ACGTTT")]
    read = next(FastxReader(fastq).pieces())
    assert (read.text, read.quality) == ("ACGT", "IIII")


def test_streams_lazily(tmp_path):
    path = write(tmp_path, ">a\nMK\n>b\n>c\nMK\n")  # 'b' has no sequence
    stream = read_fastx(path)
    assert next(stream).id == "a"
    with pytest.raises(BiofmError, match="record 'b'"):
        next(stream)


@pytest.mark.parametrize("text, expected", [(FASTA, "fasta"), (FASTQ, "fastq"),
                                            ("\n\n# note\n>a\nAC\n", "fasta")])
def test_sniff_reads_the_first_record_line(tmp_path, text, expected):
    assert sniff(write(tmp_path, text)) == expected
    assert sniff(write(tmp_path, text, gz=True)) == expected


# -- file-level errors: at call time -------------------------------------------------------
@pytest.mark.parametrize("text, kwargs, message", [
    ("hello\n", {}, "neither FASTA nor FASTQ: the first record line starts with 'h'"),
    ("# only a comment\n\n", {}, "no FASTA or FASTQ records (only blank or comment lines)"),
    ("; only a comment\n", {"format": "fasta"}, "no FASTA records"),
    ("", {}, "FASTA or FASTQ file is empty"),
    (FASTA, {"format": "genbank"}, "unknown format 'genbank'"),
    (FASTA, {"on_error": "ignore"}, "unknown on_error policy 'ignore'"),
])
def test_file_and_option_errors_are_raised_on_creation(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(BiofmError, match=re.escape(message)) as err:
        read_fastx(path, **kwargs)
    assert str(path) in str(err.value) or "unknown" in message


def test_neither_format_names_file_and_line(tmp_path):
    path = write(tmp_path, "\n# header comment\nACGT\n")
    with pytest.raises(BiofmError) as err:
        FastxReader(path)
    assert f"{path} (line 3): neither FASTA nor FASTQ" in str(err.value)


# -- record errors: file, line, record and fix ----------------------------------------------
@pytest.mark.parametrize("text, fmt, message, where", [
    ("ACGT\n>a\nAC\n", "fasta", "sequence line before the first '>' header", "line 1"),
    ("@r1\nACGT\n+\nIIII\n", "fasta", "sequence line before the first '>' header", "line 1"),
    (">a\nAC\n>   \nAC\n", None, "header has no id", "line 3"),
    (">a\n>b\nAC\n", None, "record has no sequence", "line 1, record 'a'"),
    (">a\nAC\n\n>b\n\n", None, "record has no sequence", "line 4, record 'b'"),
    ("@r1\nACGT\n+\nIII\n", None, "quality line has 3 characters but the sequence has 4",
     "line 4, record 'r1'"),
    ("@r1\nACGT\n+\nII I\n", None, "quality character ' ' at position 3 is not Phred+33",
     "line 4, record 'r1'"),
    ("@r1\nACGT\nIIII\n@r2\n", None, "expected the '+' separator", "line 3, record 'r1'"),
    ("@r1\nACGT\n+\nIIII\n@r2\nACGT\n", None, "the file ends inside this read",
     "line 5, record 'r2'"),
    ("@r1\n\n+\n\n", None, "read has no sequence", "line 2, record 'r1'"),
    ("@r1\nACGT\n+r9\nIIII\n", None, "the '+' line names 'r9'", "line 3, record 'r1'"),
    ("@ \nACGT\n+\nIIII\n", None, "read header has no id", "line 1"),
    ("@r1\nAC\n+\nII\nAC\n", None, "expected a FASTQ header line starting with '@'", "line 5"),
])
def test_errors_name_file_line_record_and_fix(tmp_path, text, fmt, message, where):
    path = write(tmp_path, text)
    with pytest.raises(BiofmError) as err:
        list(read_fastx(path, format=fmt))
    assert message in str(err.value)
    assert f"{path} ({where}): " in str(err.value)
    assert err.value.fix  # every record error says what to do


# -- skip mode -------------------------------------------------------------------------
def test_skip_mode_drops_bad_fasta_records_and_counts_them(tmp_path):
    path = write(tmp_path, "ORPHAN\nLINES\n>ok1\nAC\n>\nAC\n>empty\n>ok2\nGG\n>last\n")
    log = SkipLog()
    reader = FastxReader(path, format="fasta", on_error="skip", skipped=log)
    assert [(r.id, r.data) for r in whole_records(reader.pieces(), reader.source)] == [
        ("ok1", "AC"), ("ok2", "GG")]
    assert [line for _, line, _ in log.entries] == [1, 5, 7, 10]
    assert reader.bad_records == len(log) == 4
    assert "skipped 4 bad record(s)" in log.summary()


def test_skip_mode_resynchronises_fastq_on_the_next_header(tmp_path):
    path = write(tmp_path, "@r1\nACGT\n+\nIII\n@r2\nACGT\nIIII\n@r3\nAC\n+\nII\n"
                           "junk\nmore junk\n@r4\nG\n+\nI\n")
    log = SkipLog()
    assert [r.id for r in read_fastx(path, on_error="skip", skipped=log)] == ["r3", "r4"]
    # r1: quality length; r2: no '+' line; the junk is reported once
    assert [line for _, line, _ in log.entries] == [4, 7, 12]


def test_clean_checks_and_normalises_each_line_before_its_piece(tmp_path):
    path = write(tmp_path, ">a\nac\nA1\nGG\n>b\ntt\n")
    log = SkipLog()
    reader = FastxReader(path, on_error="skip", skipped=log)
    seen = []

    def clean(text: str, quality: str, line: int, header: int) -> str | None:
        seen.append((text, quality, line, header))
        if "1" in text:
            reader.reject("a digit", "remove it", line)
            return None
        return text.upper()

    assert [(r.id, r.data) for r in whole_records(reader.pieces(clean), reader.source)] == [
        ("b", "TT")]
    assert seen == [("ac", "", 2, 1), ("A1", "", 3, 1), ("tt", "", 6, 5)]  # 'GG' is dropped
    assert [line for _, line, _ in log.entries] == [3]
    # FASTQ: a read at a time, with its quality, after the structural checks
    reads = FastxReader(write(tmp_path, FASTQ, "r.fq"))
    seen.clear()
    assert [p.text for p in reads.pieces(clean) if p.text] == ["ACGTN", "ACGT"]
    assert seen == [("ACGTN", "II#II", 2, 1), ("acgt", "!!II", 7, 6)]


def test_reject_drops_the_rest_of_the_record(tmp_path):
    path = write(tmp_path, ">a\nAC\nA1\nGG\n>b\nTT\n")
    log = SkipLog()
    reader = FastxReader(path, on_error="skip", skipped=log)
    seen = []
    for piece in reader.pieces():
        seen.append((piece.id, piece.text, piece.ok))
        if piece.text is not None and "1" in piece.text:
            reader.reject("a digit", "remove it", piece.line)
    assert seen == [("a", "AC", True), ("a", "A1", True), ("a", None, False),
                    ("b", "TT", True), ("b", None, True)]
    assert log.entries[0][1] == 3 and f"{path} (line 3, record 'a'): a digit" in log.summary()
    with pytest.raises(BiofmError, match="line 3, record 'a'"):
        raising = FastxReader(path)
        for piece in raising.pieces():
            if piece.text == "A1":
                raising.reject("a digit", "remove it", piece.line)


def test_truncated_gzip_raises_or_ends_the_stream(tmp_path):
    body = "".join(f">s{i}\n{'ACGTACGTAC' * 30}\n" for i in range(300)).encode()
    data = gzip.compress(body)
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError, match="truncated or corrupt") as err:
        list(read_fastx(path))
    assert str(path) in str(err.value) and "gzip -t" in str(err.value)
    log = SkipLog()
    records = list(read_fastx(path, on_error="skip", skipped=log))
    assert 0 < len(records) < 300 and len(log) == 1
    assert all(len(r.data) == 300 for r in records)  # the record the break cut is dropped
