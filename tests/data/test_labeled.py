"""Labeled and unlabeled CSVs: read by pandas, with each row's line as the file counts
them (blank lines, notes spanning lines), ids as written, and a broken gzip, a bad
separator or an empty file as a BiofmError."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from biofm.data.labeled import csv_lines, csv_task, read_csv
from biofm.errors import BiofmError
from biofm.modalities.base import Modality


@dataclass(frozen=True)
class Where(Modality):
    """A throw-away modality whose inputs say which line they were read from."""

    def parse_input(self, value: str, path: Path, line: int, column: str) -> str:
        return f"{value}@{line}"


WHERE = Where(name="where", read=None, build_tokenizer=None,  # type: ignore[arg-type]
              suffixes=(".where",))
# line 1 header; 3 and 6 blank (6: spaces); the quoted note spans lines 4-5
UNLABELED = 'id,sequence\n001,MKT\n\n002,"GG\nG"\n   \n,AAA\n'


def test_rows_carry_the_line_they_start_on(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text(UNLABELED)
    assert csv_lines(path, len(read_csv(path))).tolist() == [2, 4, 7]
    assert csv_lines(path, 5).tolist() == [2, 3, 4, 5, 6]  # not pandas' rows: i + 2


def test_unlabeled_ids_are_kept_as_written_and_inputs_name_their_line(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text(UNLABELED)
    ids, inputs = WHERE.unlabeled(path)
    assert ids == ["001", "002", "new.csv:7"]  # not '1.0', '2.0', 'nan'
    assert inputs == ["MKT@2", "GG\nG@4", "AAA@7"]


def test_a_labeled_task_names_rows_by_their_line(tmp_path):
    rows = [f"s{i},{'AC' * (i + 1)},{i % 2}" for i in range(30)]
    path = tmp_path / "task.csv"
    path.write_text("id,sequence,label\n\n" + "\n\n".join(rows) + "\n")  # a blank line each
    task = csv_task(WHERE, path, label="label", kind=None, split="random", seed=0,
                    column="sequence")
    splits = task.load(0)
    by_id = {i: x for part in (splits.train, splits.valid, splits.test)
             for i, x in zip(part.ids, part.inputs)}
    assert set(by_id) == {f"task.csv:{3 + 2 * i}" for i in range(30)}
    assert by_id["task.csv:5"] == "ACAC@5" and by_id["task.csv:61"] == "AC" * 30 + "@61"
    assert np.sort(np.concatenate([splits.train.labels, splits.valid.labels,
                                   splits.test.labels])).tolist() == [0] * 15 + [1] * 15


def test_unreadable_files_are_user_errors(tmp_path):
    data = gzip.compress(("id,sequence\n" + "".join(f"s{i},MKT\n" for i in range(3000))).encode())
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError, match=r"cut\.csv\.gz: the gzip stream is truncated.*gzip -t"):
        read_csv(cut)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(BiofmError, match=r"empty\.tsv: not a readable CSV.*tab-separated"):
        read_csv(empty, sep="\t")
    header = tmp_path / "header.csv"
    header.write_text("id,sequence\n")
    with pytest.raises(BiofmError, match="a header but no rows"):
        read_csv(header)
    assert read_csv(header, empty_ok=True).columns.tolist() == ["id", "sequence"]
