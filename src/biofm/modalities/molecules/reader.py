"""Read molecules as SMILES from CSV or .smi files, validated and canonicalised.

Every SMILES is parsed with RDKit, so a bad record is reported where it is
(file, line, the SMILES) instead of surfacing later as an `<unk>`-riddled
training example. Canonical SMILES (`Chem.MolToSmiles`) are the default because
one molecule then has one text, which keeps vocabularies small and makes
novelty / deduplication checks exact.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Iterator

from rdkit import Chem, rdBase

from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError, require_file
from biofm.io import GZIP_ERRORS, gzip_error

SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles")
SKIP_FIX = "fix or remove it, or pass --on-error skip to skip bad records"


def parse_smiles(smiles: str) -> Chem.Mol | None:
    """RDKit molecule for `smiles`, or None if it is empty or does not parse.

    RDKit's own log lines are blocked (scoped, not a global switch): a corpus
    with a few bad rows would otherwise flood stderr, and we report bad rows
    ourselves with file and line.
    """
    if not smiles:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when `smiles` is not a valid molecule."""
    mol = parse_smiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def read_smiles(path: str | Path, *, column: str | None = None, id_column: str | None = None,
                on_error: OnError = "raise", skipped: SkipLog | None = None,
                canonical: bool = True) -> Iterator[Record]:
    """Stream molecules from a CSV/TSV (one column of SMILES) or a .smi file.

    Args:
        path: `.csv` / `.tsv` (header row required) or `.smi` / `.smiles` /
            `.txt` (SMILES first on each line, optional id second); UTF-8 (a BOM
            is ignored), `.gz` works.
        column: CSV column holding SMILES; None tries `SMILES_COLUMNS`.
        id_column: CSV column holding record ids; None gives "<file>:<line>".
        on_error: "raise" at the first invalid SMILES, or "skip" it.
        skipped: collects skipped records under on_error="skip".
        canonical: yield RDKit canonical SMILES instead of the text as written.
    """
    path = require_file(path, "SMILES file")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv")):
        rows = _csv_rows(path, column, id_column, delimiter="\t" if name.endswith(".tsv") else ",")
    else:
        rows = _smi_rows(path)
    n_rows = 0
    for line, smiles, record_id in rows:
        n_rows += 1
        mol = parse_smiles(smiles)
        if mol is None:
            what = (f"invalid SMILES {smiles!r} (RDKit cannot parse it)" if smiles
                    else "empty SMILES")
            error = BiofmError(what, path=path, record=line, fix=SKIP_FIX)
            handle_bad_record(error, on_error, skipped, str(path), line)
            continue
        text = Chem.MolToSmiles(mol) if canonical else smiles
        yield Record(id=record_id or f"{path.name}:{line}", data=text, source=str(path), line=line)
    if n_rows == 0:
        raise BiofmError("no SMILES records in this file (only a header or blank lines)", path=path,
                         fix="pass a file with one molecule per line or row")


def _lines(path: Path) -> Iterator[str]:
    """The lines of `path` (UTF-8, a BOM ignored; gzip if it ends in .gz), newlines kept
    for `csv`; bad bytes or a broken gzip stream are a BiofmError naming the line."""
    line = 0
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        try:
            for line, text in enumerate(fh, start=1):
                yield text
        except GZIP_ERRORS as exc:
            raise gzip_error(path, exc, f"after line {line}") from None
        except UnicodeDecodeError as exc:
            # the decoder reads ahead in blocks: the line is where reading stopped, not exact
            raise BiofmError(f"not UTF-8 text ({exc})", path=path, record=f"near line {line + 1}",
                             fix="save the file as UTF-8") from None


def _smi_rows(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, smiles, id) from a whitespace-separated SMILES file."""
    seen_data = False
    for line_no, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if not seen_data and fields[0].lower() == "smiles":  # header line
            seen_data = True
            continue
        seen_data = True
        yield line_no, fields[0], fields[1] if len(fields) > 1 else None


def _csv_rows(path: Path, column: str | None, id_column: str | None,
              delimiter: str) -> Iterator[tuple[int, str, str | None]]:
    """(line, smiles, id) from a CSV with a header row; checks the columns first."""
    reader = csv.reader(_lines(path), delimiter=delimiter)
    header = next(reader, [])
    smiles_at = _column_index(path, header, column)
    id_at = None if id_column is None else _column_index(path, header, id_column, "id")
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        smiles = row[smiles_at].strip() if smiles_at < len(row) else ""
        record_id = row[id_at].strip() if id_at is not None and id_at < len(row) else None
        yield reader.line_num, smiles, record_id


def _column_index(path: Path, header: list[str], column: str | None, role: str = "SMILES") -> int:
    """Index of `column` in `header` (or of the first known SMILES column name)."""
    available = ", ".join(repr(c) for c in header) or "none"
    if column is None:
        for candidate in SMILES_COLUMNS:
            if candidate in header:
                return header.index(candidate)
        looked = ", ".join(repr(c) for c in SMILES_COLUMNS)
        raise BiofmError(f"no SMILES column found (looked for {looked}); available columns: "
                         f"{available}", path=path,
                         fix="name the SMILES column with --column NAME")
    if column not in header:
        flag = "--column" if role == "SMILES" else "--id-column"
        raise BiofmError(f"no {role} column {column!r}; available columns: {available}", path=path,
                         fix=f"pass one of the available columns with {flag}")
    return header.index(column)

