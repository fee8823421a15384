"""DNA readers: FASTA / FASTQ (plain and gzip), the text policy, streaming windows,
and every error path naming file, line and record."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from biofm.data.records import Record, SkipLog
from biofm.errors import BiofmError
from biofm.modalities.dna import WindowStats, normalize_dna, read_dna, read_windows
from tests.helpers import write_file

FASTA = """\
# a comment block above the first header
>chr1 E. coli
ACGTacgtNN
RYacgu

>chr2
GGGG
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


def write(tmp_path: Path, text: str, name: str = "x.fna", gz: bool = False) -> Path:
    return write_file(tmp_path, text, name, gz)


def random_dna(n: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


# -- good input ------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_fasta_records_follow_the_text_policy(tmp_path, gz):
    path = write(tmp_path, FASTA, "genome.fasta", gz)
    records = list(read_dna(path))
    # lowercase (soft-masked) uppercased, U read as T, IUPAC codes read as N
    assert records == [Record("chr1", "ACGTACGTNNNNACGT", str(path), 2),
                       Record("chr2", "GGGG", str(path), 6)]


def test_softmask_policy_can_hard_mask(tmp_path):
    path = write(tmp_path, FASTA)
    assert next(read_dna(path, softmask="mask")).data == "ACGTNNNNNNNNNNNN"


@pytest.mark.parametrize("gz", [False, True])
def test_fastq_reads_and_quality_masking(tmp_path, gz):
    path = write(tmp_path, FASTQ, "reads.fq", gz)
    assert [(r.id, r.data, r.line) for r in read_dna(path)] == [("r1", "ACGTN", 1),
                                                                 ("r2", "ACGT", 5)]
    # '#' is Phred 2, '!' is 0, 'I' is 40: bases under 20 become N
    assert [r.data for r in read_dna(path, min_quality=20)] == ["ACNTN", "NNGT"]


def test_format_is_sniffed_from_content_not_name(tmp_path):
    path = write(tmp_path, FASTQ, "reads.fasta")
    assert [r.id for r in read_dna(path)] == ["r1", "r2"]


def test_normalize_dna():
    assert normalize_dna(" ac gu\nRyX ") == "ACGTNNX"


# -- windows -------------------------------------------------------------------------
@pytest.mark.parametrize("length, stride, width", [(10, 10, 7), (10, 3, 60), (8, 13, 5),
                                                   (1, 1, 4), (50, 25, 1)])
@pytest.mark.parametrize("tail", ["drop", "end"])
def test_windows_equal_slices_of_the_whole_sequence(tmp_path, length, stride, width, tail):
    seqs = {"a": random_dna(103, 1), "b": random_dna(9, 2), "c": random_dna(40, 3)}
    text = "".join(f">{k}\n" + "\n".join(s[i:i + width] for i in range(0, len(s), width)) + "\n"
                   for k, s in seqs.items())
    path = write(tmp_path, text)
    expected = []
    for name, seq in seqs.items():
        starts = list(range(0, len(seq) - length + 1, stride))
        if tail == "end" and (not starts or starts[-1] + length < len(seq)):
            starts.append(max(len(seq) - length, 0))
        for s in starts:
            window = seq[s:s + length]
            expected.append((f"{name}:{s + 1}-{s + len(window)}", window))
    got = [(r.id, r.data) for r in read_windows(path, length, stride, tail=tail)]
    assert got == expected


def test_windows_skip_n_runs_and_count_them(tmp_path):
    seq = "ACGT" * 5 + "N" * 20 + "ACGTNACGTA"  # window 3 is 10% N: kept at the default
    stats = WindowStats()
    records = list(read_windows(write(tmp_path, f">g\n{seq}\n"), 10, stats=stats))
    assert [r.id for r in records] == ["g:1-10", "g:11-20", "g:41-50"]
    assert (stats.windows, stats.skipped_n, stats.records, stats.longest_record) == (3, 2, 1, 50)
    assert len(list(read_windows(write(tmp_path, f">g\n{seq}\n"), 10, max_n_fraction=0))) == 2


def test_windows_stream_a_genome_in_bounded_memory(tmp_path):
    seq = random_dna(1_000_000)
    path = write(tmp_path, ">big\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_windows(path, 1000, 1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 1000
    assert peak < 300_000  # the sequence alone is 1 MB


def test_dna_modality_reads_windows_when_asked(tmp_path):
    from biofm.registry import MODALITIES

    path = write(tmp_path, ">g\n" + "A" * 25 + "\n")
    dna = MODALITIES.get("dna")
    assert [r.id for r in dna.read(path, window=10)] == ["g:1-10", "g:11-20"]
    assert [len(r.data) for r in dna.read(path)] == [25]
    assert dna.matches("genome.fna.gz") and dna.matches("reads.FQ") and dna.matches("x.fasta")


# -- bad input: each a BiofmError naming file, line and record ----------------------------
@pytest.mark.parametrize("text, name, message, where", [
    (">a\nACGT\n>b\nAC-GT\n", "x.fna", "character '-' at base 3", "line 4, record 'b'"),
    (">a\nACGT\nAXGT\n", "x.fna", "character 'X' at base 2", "line 3, record 'a'"),
    (">a\n>b\nACGT\n", "x.fna", "record has no sequence", "line 1, record 'a'"),
    (">\nACGT\n", "x.fna", "header has no id", "line 1"),
    ("@r1\nACGT\n+\nIII\n", "x.fq", "quality line has 3 characters but the sequence has 4",
     "line 4, record 'r1'"),
    ("@r1\nACGT\n+\nIIII\n@r2\nAC1T\n+\nIIII\n", "x.fq", "character '1' at base 3",
     "line 6, record 'r2'"),
    ("@r1\nACGT\nIIII\n@r2\n", "x.fq", "expected the '+' separator", "line 3, record 'r1'"),
    ("@r1\nACGT\n+\nII\u00e9I\n", "x.fq", "quality character", "line 4, record 'r1'"),
    ("@r1\nACGT\n+\nIIII\n@r2\nACGT\n", "x.fq", "the file ends inside this read",
     "line 5, record 'r2'"),
    ("@r1\n\n+\n\n", "x.fq", "read has no sequence", "line 2, record 'r1'"),
    ("@r1\nACGT\n+r9\nIIII\n", "x.fq", "the '+' line names 'r9'", "line 3, record 'r1'"),
])
def test_malformed_records_name_file_line_and_record(tmp_path, text, name, message, where):
    path = write(tmp_path, text, name)
    with pytest.raises(BiofmError) as err:
        list(read_dna(path))
    assert message in str(err.value)
    assert f"{path} ({where})" in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("hello\n", "neither FASTA nor FASTQ"),
    ("# only a comment\n\n", "no FASTA or FASTQ records"),
])
def test_not_dna_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(BiofmError, match=message) as err:
        list(read_dna(path))
    assert str(path) in str(err.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(BiofmError, match="is empty"):
        read_dna(write(tmp_path, ""))
    with pytest.raises(BiofmError, match="does not exist"):
        read_dna(tmp_path / "nope.fna")


def test_truncated_gzip(tmp_path):
    data = gzip.compress((">a\n" + random_dna(50_000) + "\n").encode())
    path = tmp_path / "cut.fna.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError, match="truncated or corrupt") as err:
        list(read_dna(path))
    assert str(path) in str(err.value)
    skipped = SkipLog()
    assert list(read_dna(path, on_error="skip", skipped=skipped)) == []  # the record is partial
    assert len(skipped) == 1


def test_empty_window_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path, ">a\nACGT\n>b\nACGTAC\n")
    with pytest.raises(BiofmError, match="no window of 10 bases: the longest record has 6") as err:
        list(read_windows(path, 10))
    assert str(path) in str(err.value)
    assert [r.data for r in read_windows(path, 10, tail="end")] == ["ACGT", "ACGTAC"]
    with pytest.raises(BiofmError, match="all 1 windows are more than 10% N"):
        list(read_windows(write(tmp_path, ">n\nNNNNNNNNNN\n", "n.fna"), 10))


@pytest.mark.parametrize("kwargs, message", [
    ({"length": 0}, "window length must be a positive"),
    ({"length": 10, "stride": -1}, "stride must be a positive"),
    ({"length": 10, "tail": "pad"}, "unknown tail policy"),
    ({"length": 10, "max_n_fraction": 2.0}, "max_n_fraction"),
    ({"length": 10, "softmask": "drop"}, "unknown softmask policy"),
    ({"length": 10, "min_quality": 100}, "min_quality"),
])
def test_bad_window_options(tmp_path, kwargs, message):
    with pytest.raises(BiofmError, match=message):
        read_windows(write(tmp_path, ">a\nACGT\n"), **kwargs)


def test_skip_mode_drops_bad_records_and_goes_on(tmp_path):
    fasta = write(tmp_path, ">a\nACGT\n>b\nAC*T\nACGT\n>c\nTTTT\n>d\n", "x.fna")
    skipped = SkipLog()
    assert [r.id for r in read_dna(fasta, on_error="skip", skipped=skipped)] == ["a", "c"]
    assert len(skipped) == 2 and "record 'b'" in skipped.summary()
    fastq = write(tmp_path, "@r1\nACGT\n+\nIII\n@r2\nACGT\nIIII\n@r3\nAC\n+\nII\n", "x.fq")
    skipped = SkipLog()
    assert [r.id for r in read_dna(fastq, on_error="skip", skipped=skipped)] == ["r3"]
    assert len(skipped) == 2


def test_windows_of_a_bad_record_before_the_break_are_kept_under_skip(tmp_path):
    path = write(tmp_path, ">a\nACGTACGT\nACGTACGT\nAC!T\n>b\nGGGGGGGG\n")
    skipped = SkipLog()
    ids = [r.id for r in read_windows(path, 8, on_error="skip", skipped=skipped)]
    assert ids == ["a:1-8", "a:9-16", "b:1-8"] and len(skipped) == 1


def test_crlf_line_ends(tmp_path):
    path = tmp_path / "win.fq"
    path.write_bytes(b"@r1\r\nACGT\r\n+\r\nIIII\r\n")
    assert [(r.id, r.data) for r in read_dna(path)] == [("r1", "ACGT")]


def test_looks_like_dna_reads_sequence_letters_only(tmp_path):
    from biofm.modalities.dna import looks_like_dna

    assert looks_like_dna(write(tmp_path, FASTQ, "reads.fasta"))  # quality lines are not read
    assert looks_like_dna(write(tmp_path, FASTA, "genome.fa", gz=True))
    assert not looks_like_dna(write(tmp_path, ">p\nMKTAYIAKQRQISFVK\n", "prot.fasta"))
    assert not looks_like_dna(tmp_path / "missing.fasta")
