"""read_smiles: formats, canonicalisation, and every user-error path."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from biofm.data.records import SkipLog
from biofm.errors import BiofmError
from biofm.modalities.molecules import MOLECULE, read_smiles
from biofm.registry import MODALITIES


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_smi_file_with_header_blank_lines_and_ids(tmp_path):
    path = write(tmp_path / "mols.smi", "smiles id\nOCC ethanol\n\nc1ccccc1\n")
    records = list(read_smiles(path))
    assert [r.data for r in records] == ["CCO", "c1ccccc1"]
    assert [r.id for r in records] == ["ethanol", "mols.smi:4"]
    assert [r.line for r in records] == [2, 4]
    assert records[0].source == str(path)


def test_canonical_false_keeps_text_as_written(tmp_path):
    path = write(tmp_path / "mols.smiles", "OCC\n")
    assert next(read_smiles(path, canonical=False)).data == "OCC"


def test_csv_default_column_names_and_id_column(tmp_path):
    path = write(tmp_path / "mols.csv", "name,SMILES,y\nethanol,OCC,1.0\nacid,CC(=O)O,2\n")
    records = list(read_smiles(path, id_column="name"))
    assert [(r.id, r.data, r.line) for r in records] == [("ethanol", "CCO", 2),
                                                         ("acid", "CC(=O)O", 3)]


def test_csv_named_column_and_gzip(tmp_path):
    path = tmp_path / "mols.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("mol,other\nOCC,x\n")
    records = list(read_smiles(path, column="mol"))
    assert [(r.id, r.data) for r in records] == [("mols.csv.gz:2", "CCO")]


def test_invalid_smiles_names_file_line_smiles_and_fix(tmp_path):
    path = write(tmp_path / "bad.smi", "CCO\nC1CC\n")
    with pytest.raises(BiofmError) as info:
        list(read_smiles(path))
    message = str(info.value)
    assert "bad.smi" in message and "(line 2)" in message and "'C1CC'" in message
    assert "--on-error skip" in message and "remove" in message
    assert info.value.record == 2


def test_empty_csv_cell_is_a_bad_record(tmp_path):
    path = write(tmp_path / "gap.csv", "smiles,y\nCCO,1\n,2\n")
    with pytest.raises(BiofmError, match=r"line 3\): empty SMILES"):
        list(read_smiles(path))


def test_on_error_skip_collects_in_skiplog(tmp_path):
    path = write(tmp_path / "mixed.csv", "smiles\nCCO\nnot_a_smiles\nc1ccccc1\nC(C\n")
    skipped = SkipLog()
    records = list(read_smiles(path, on_error="skip", skipped=skipped))
    assert [r.data for r in records] == ["CCO", "c1ccccc1"]
    assert [(Path(src).name, line) for src, line, _ in skipped.entries] == [("mixed.csv", 3),
                                                                           ("mixed.csv", 5)]
    assert "not_a_smiles" in skipped.entries[0][2]


def test_unknown_on_error_policy(tmp_path):
    path = write(tmp_path / "bad.smi", "C1CC\n")
    with pytest.raises(BiofmError, match="unknown on_error"):
        list(read_smiles(path, on_error="ignore"))  # type: ignore[arg-type]


def test_missing_named_column_lists_available(tmp_path):
    path = write(tmp_path / "mols.csv", "name,structure\nethanol,CCO\n")
    with pytest.raises(BiofmError) as info:
        list(read_smiles(path, column="smi"))
    message = str(info.value)
    assert "mols.csv" in message and "'smi'" in message
    assert "'name', 'structure'" in message and "--column" in message


def test_no_known_smiles_column_lists_available(tmp_path):
    path = write(tmp_path / "mols.csv", "name,structure\nethanol,CCO\n")
    with pytest.raises(BiofmError, match=r"no SMILES column found.*'name', 'structure'"):
        list(read_smiles(path))


def test_missing_id_column(tmp_path):
    path = write(tmp_path / "mols.csv", "smiles\nCCO\n")
    with pytest.raises(BiofmError, match=r"no id column 'name'.*--id-column"):
        list(read_smiles(path, id_column="name"))


def test_missing_empty_and_header_only_files(tmp_path):
    with pytest.raises(BiofmError, match="does not exist"):
        list(read_smiles(tmp_path / "absent.smi"))
    with pytest.raises(BiofmError, match="is empty"):
        list(read_smiles(write(tmp_path / "empty.smi", "")))
    with pytest.raises(BiofmError, match="no SMILES records"):
        list(read_smiles(write(tmp_path / "header.csv", "smiles\n\n")))


def truncated_gzip(path: Path, text: str) -> Path:
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("name", ["mols.csv.gz", "mols.smi.gz"])
def test_truncated_gzip_names_the_file_and_the_fix(tmp_path, name):
    sep = "," if ".csv" in name else " "
    body = "".join(f"{'C' * (1 + i % 20)}{sep}{i}\n" for i in range(3000))
    path = truncated_gzip(tmp_path / name, f"smiles{sep}id\n" + body)
    with pytest.raises(BiofmError, match=r"mols\.\w+\.gz \(after line \d+\): the gzip stream is "
                                         r"truncated or corrupt.*gzip -t"):
        list(read_smiles(path))


def test_csv_is_utf8_with_or_without_a_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffsmiles,name\nOCC,éthanol\n".encode())
    assert [(r.id, r.data) for r in read_smiles(path, id_column="name")] == [("éthanol", "CCO")]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("smiles,name\nOCC,éthanol\n".encode("latin-1"))
    with pytest.raises(BiofmError, match=r"latin\.csv \(near line 1\): not UTF-8 text.*Save the "
                                         "file as UTF-8"):
        list(read_smiles(latin, id_column="name"))


def test_modality_is_registered():
    modality = MODALITIES.get("molecule")
    assert modality is MOLECULE and modality.read is read_smiles
    assert modality.matches("x.smi") and modality.matches("x.csv.gz")
    tokenizer = modality.build_tokenizer(["CCO", "c1ccccc1Br"])
    assert tokenizer.decode(tokenizer.encode("c1ccccc1Br")) == "c1ccccc1Br"
