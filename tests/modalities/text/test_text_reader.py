"""The text reader: CSV / TSV with a text column, .txt (one document per line), a
directory of .txt files (one per file), gzip, and an error naming file, line,
column and row for each kind of bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from biofm.data.records import SkipLog
from biofm.errors import BiofmError
from biofm.modalities.text import TEXT, read_text


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_text_column_ids_and_multiline_notes(tmp_path):
    path = write(tmp_path / "notes.csv",
                 'id,text,age\nn1,"Heart size normal.",40\n\n'
                 'n2,"Line one.\nLine two, with a comma.",51\n,"  No id here.  ",60\n')
    records = list(read_text(path))
    assert [r.id for r in records] == ["n1", "n2", "notes.csv:6"]
    assert records[1].data == "Line one.\nLine two, with a comma."
    assert records[2].data == "No id here."  # surrounding whitespace only
    assert [r.line for r in records] == [2, 4, 6]  # the line each row starts on


def test_csv_other_column_tsv_gzip_and_bom(tmp_path):
    tsv = tmp_path / "notes.tsv.gz"
    with gzip.open(tsv, "wt", encoding="utf-8") as fh:
        fh.write("\ufeffnote\tlabel\nCafé naïve\t1\n")
    assert [r.data for r in read_text(tsv, column="note")] == ["Café naïve"]


@pytest.mark.parametrize("cell", ['""', '"   "', ""])
def test_an_empty_note_names_file_line_column_and_row(tmp_path, cell):
    path = write(tmp_path / "notes.csv", f'id,text\na,"fine"\nb,{cell}\nc,"also fine"\n')
    with pytest.raises(BiofmError) as info:
        list(read_text(path))
    message = str(info.value)
    assert "notes.csv (line 3): empty note in column 'text' (row 2)" in message
    assert "--on-error skip" in message
    skipped = SkipLog()
    kept = list(read_text(path, on_error="skip", skipped=skipped))
    assert [r.id for r in kept] == ["a", "c"] and len(skipped) == 1
    assert "skipped 1 bad record" in skipped.summary()


def test_csv_column_errors(tmp_path):
    path = write(tmp_path / "notes.csv", "id,note\na,text\n")
    with pytest.raises(BiofmError, match="no text column 'text'; available columns: 'id', "
                                         "'note'.*--column NAME"):
        read_text(path)
    with pytest.raises(BiofmError, match="no text column 'body'"):
        read_text(path, column="body")
    with pytest.raises(BiofmError, match="empty .no header row"):
        read_text(write(tmp_path / "blank.csv", ""))


def test_txt_is_one_document_per_line(tmp_path):
    path = write(tmp_path / "corpus.txt", "First report.\n\n  \nSecond report.  \n")
    records = list(read_text(path))
    assert [(r.id, r.data) for r in records] == [("corpus.txt:1", "First report."),
                                                 ("corpus.txt:4", "Second report.")]
    with pytest.raises(BiofmError, match="--column names a CSV column, but this is a .txt"):
        read_text(path, column="text")


def test_a_directory_is_one_document_per_file(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    write(notes / "b.txt", "Findings:\nclear lungs.\n")
    with gzip.open(notes / "a.txt.gz", "wt") as fh:
        fh.write("Impression: normal.")
    write(notes / "ignored.md", "# not a note")
    records = list(read_text(notes))
    assert [(r.id, r.data) for r in records] == [("a", "Impression: normal."),
                                                 ("b", "Findings:\nclear lungs.")]
    write(notes / "c.txt", "  \n")
    with pytest.raises(BiofmError, match=r"c.txt: empty document"):
        list(read_text(notes))
    skipped = SkipLog()
    assert len(list(read_text(notes, on_error="skip", skipped=skipped))) == 2
    assert len(skipped) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BiofmError, match="no .txt files in this directory"):
        read_text(empty)


def test_bad_encoding_and_missing_path(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(BiofmError, match=r"latin1.txt \(near line \d\): not UTF-8 text.*UTF-8"):
        list(read_text(path))
    with pytest.raises(BiofmError, match="does not exist"):
        read_text(tmp_path / "nope.csv")


@pytest.mark.parametrize("name", ["notes.csv.gz", "notes.txt.gz", "docs/one.txt.gz"])
def test_truncated_gzip_names_the_file_and_the_fix(tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    data = gzip.compress(("id,text\n" + "".join(f"n{i},note {i}\n" for i in range(3000))).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError) as info:
        list(read_text(path.parent if name.startswith("docs/") else path))
    assert str(path) in str(info.value) and "gzip stream is truncated" in str(info.value)
    assert "gzip -t" in str(info.value)
    cut = tmp_path / "header.csv.gz"  # the break comes before the header ends
    cut.write_bytes(data[:15])
    with pytest.raises(BiofmError, match=r"header\.csv\.gz \(near line 1\): the gzip stream"):
        read_text(cut)


def test_the_modality_reads_through_its_options(tmp_path):
    path = write(tmp_path / "notes.csv", "id,body\na,Lungs clear.\n")
    assert all(TEXT.matches(tmp_path / name) for name in ("x.csv", "x.txt", "x.tsv.gz"))
    assert [r.data for r in TEXT.load(path, "raise", None, column="body")] == ["Lungs clear."]
    with pytest.raises(BiofmError, match="--window does not apply to text data|data.window "
                                         "does not apply to text data"):
        TEXT.read_options({"window": 10})


def test_labeled_cells_parse_to_stripped_text_and_refuse_blank_ones(tmp_path):
    assert TEXT.parse_input("  Normal chest.\n", tmp_path / "l.csv", 3, "text") == "Normal chest."
    with pytest.raises(BiofmError, match=r"l.csv \(line 4\): empty note in column 'note'"):
        TEXT.parse_input(" \t", tmp_path / "l.csv", 4, "note")
