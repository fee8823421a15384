"""FASTA reader: good files, every error path (with file and line), skip mode, writer."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from biofm.data.records import Record, SkipLog
from biofm.errors import BiofmError
from biofm.modalities.proteins.fasta import read_fasta, write_fasta

GOOD = """\
# comment block, as in Pfam exports
>sp|P69905|HBA_HUMAN Hemoglobin subunit alpha
MVLSPADKTNVKAAWGKVGA
HAGEYGAEALERMFLSFPTT

>seq2
mkt-ay.IAK*
"""


def write(tmp_path: Path, text: str, name: str = "x.fasta") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_multiline_records_with_ids_and_header_lines(tmp_path):
    path = write(tmp_path, GOOD)
    records = list(read_fasta(path))
    assert [r.id for r in records] == ["sp|P69905|HBA_HUMAN", "seq2"]
    assert records[0].data == "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTT"
    assert records[1].data == "mkt-ay.IAK*"  # case, gaps and the final stop are kept
    assert [r.line for r in records] == [2, 6]
    assert records[0].source == str(path)


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path):
    path = tmp_path / "no_gz_suffix.fa"
    path.write_bytes(gzip.compress(GOOD.encode()))
    assert [r.id for r in read_fasta(path)] == ["sp|P69905|HBA_HUMAN", "seq2"]


def test_streams_lazily(tmp_path):
    # the second record is bad, yet the first is yielded before reading reaches it
    path = write(tmp_path, ">a\nMK\n>b\nM1K\n")
    stream = read_fasta(path)
    assert next(stream).id == "a"
    with pytest.raises(BiofmError):
        next(stream)


def test_crlf_and_inner_whitespace(tmp_path):
    path = tmp_path / "win.fa"
    path.write_bytes(b">a desc\r\nMK TA\r\nYI\r\n")
    assert list(read_fasta(path)) == [Record("a", "MKTAYI", str(path), 1)]


@pytest.mark.parametrize("text, line, words", [
    ("MKT\n>a\nMK\n", 1, ["before the first '>' header", "'>id"]),
    (">a\nMK\n>   \nMK\n", 3, ["header has no id", "put the id"]),
    (">\nMK\n", 1, ["header has no id"]),
    (">a\n>b\nMK\n", 1, ["record 'a'", "no sequence", "add the sequence"]),
    (">a\nMK\n>b\n", 3, ["record 'b'", "no sequence"]),
    (">a\nMK\nMJ1K\n", 3, ["record 'a'", "'1'", "residue 3", "--on-error skip"]),
    (">a\nMK*TA\n", 2, ["'*'", "residue 3"]),
    (">a\nMK*\nTA\n", 2, ["'*' stop inside the sequence", "record 'a'"]),
    (">a\nM\xe9K\n", 2, ["'é'"]),
])
def test_errors_name_file_line_record_and_fix(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(BiofmError) as info:
        list(read_fasta(path))
    message = str(info.value).lower()
    assert str(path).lower() in message and f"line {line}" in message
    assert "--on-error skip" in message and "on_error=" not in message
    for word in words:
        assert word.lower() in message


def test_undecodable_bytes_are_reported_with_their_line(tmp_path):
    path = tmp_path / "latin1.fa"
    path.write_bytes(b">a\nMK\n>b\nM\xffK\n")
    with pytest.raises(BiofmError, match="line 4, record 'b'") as info:
        list(read_fasta(path))
    assert "\ufffd" in str(info.value)  # the replacement character stands for the bad byte


def test_custom_alphabet(tmp_path):
    path = write(tmp_path, ">dna\nACGTN\nacgt\n")
    with pytest.raises(BiofmError, match="'a' at residue 1"):
        list(read_fasta(path, alphabet="ACGTN"))
    assert [r.data for r in read_fasta(path, alphabet="ACGTNacgtn")] == ["ACGTNacgt"]


def test_skip_mode_drops_each_bad_record_and_keeps_the_rest(tmp_path):
    path = write(tmp_path, "ORPHAN\nLINES\n>ok1\nMK\n>\nMK\n>empty\n>bad\nMK\nM9\nKK\n"
                           ">ok2\nMKT\n>star\nM*\nK\n>ok3\nA\n")
    log = SkipLog()
    records = list(read_fasta(path, on_error="skip", skipped=log))
    assert [r.id for r in records] == ["ok1", "ok2", "ok3"]
    assert [line for _, line, _ in log.entries] == [1, 5, 7, 10, 15]
    assert all(src == str(path) for src, _, _ in log.entries)
    assert "skipped 5 bad record(s)" in log.summary()


def test_truncated_gzip_raises_or_ends_the_stream(tmp_path):
    body = "".join(f">p{i}\n{'MKTAYIAKQR' * 30}\n" for i in range(300)).encode()
    data = gzip.compress(body)
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError) as info:
        list(read_fasta(path))
    assert "truncated or corrupt" in str(info.value) and str(path) in str(info.value)
    assert "gzip -t" in str(info.value)
    log = SkipLog()
    records = list(read_fasta(path, on_error="skip", skipped=log))
    assert 0 < len(records) < 300 and len(log) == 1
    assert all(len(r.data) == 300 for r in records)  # no half-read record


@pytest.mark.parametrize("make, what", [
    (lambda p: p / "missing.fa", "does not exist"),
    (lambda p: p, "is a directory"),
    (lambda p: write(p, "", "empty.fa"), "is empty"),
    (lambda p: write(p, "# only a comment\n\n", "c.fa"), "no FASTA records"),
])
def test_file_level_errors(tmp_path, make, what):
    with pytest.raises(BiofmError, match=what):
        list(read_fasta(make(tmp_path)))


def test_bad_path_fails_at_call_time_not_first_iteration(tmp_path):
    with pytest.raises(BiofmError, match="does not exist"):
        read_fasta(tmp_path / "missing.fa")
    with pytest.raises(BiofmError, match="on_error"):
        read_fasta(write(tmp_path, GOOD), on_error="ignore")


@pytest.mark.parametrize("name", ["out.fasta", "out.fa.gz"])
def test_write_then_read_round_trip(tmp_path, name):
    records = [Record("a", "MKTAYIAK" * 20), Record("b", "M")]
    path = tmp_path / "sub" / name
    assert write_fasta(iter(records), path, width=60) == 2
    back = list(read_fasta(path))
    assert [(r.id, r.data) for r in back] == [(r.id, r.data) for r in records]
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    if not name.endswith(".gz"):
        assert max(len(line) for line in path.read_text().splitlines()) == 60


def test_write_rejects_bad_id_and_leaves_no_file(tmp_path):
    path = tmp_path / "out.fa"
    with pytest.raises(BiofmError, match="record 2"):
        write_fasta([Record("a", "MK"), Record("two words", "MK")], path)
    assert list(tmp_path.iterdir()) == []
