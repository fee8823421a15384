"""The generic `Modality` hooks: unlabeled inputs from a CSV obey `on_error` (a bad cell
is raised, or skipped and logged), as a modality's own reader does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from biofm.data.records import SkipLog
from biofm.errors import BiofmError
from biofm.modalities.base import Modality


@dataclass(frozen=True)
class LettersOnly(Modality):
    """A throw-away modality whose CSV cells must be letters (as images must exist)."""

    def parse_input(self, value: str, path: Path, line: int, column: str) -> str:
        if not value.isalpha():
            raise BiofmError(f"{value!r} in column {column!r} is not letters", path=path,
                             record=line, fix="use letters only")
        return value


LETTERS = LettersOnly(name="letters", read=None, build_tokenizer=None,  # type: ignore[arg-type]
                      suffixes=(".letters",))


@pytest.fixture
def csv(tmp_path) -> Path:
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": ["first", "broken", "last"],
                  "sequence": ["MKT", "MK1T", "GGG"]}).to_csv(path, index=False)
    return path


def test_a_bad_csv_cell_is_skipped_and_logged_with_on_error_skip(csv):
    skipped = SkipLog()
    ids, inputs = LETTERS.unlabeled(csv, on_error="skip", skipped=skipped)
    assert ids == ["first", "last"] and inputs == ["MKT", "GGG"]
    assert len(skipped) == 1 and skipped.entries[0][:2] == (str(csv), 3)  # the second row
    assert "'MK1T' in column 'sequence' is not letters" in skipped.summary()


def test_a_bad_csv_cell_stops_the_read_by_default(csv):
    with pytest.raises(BiofmError, match="'MK1T' in column 'sequence' is not letters") as caught:
        LETTERS.unlabeled(csv)
    assert str(csv) in str(caught.value) and "line 3" in str(caught.value)


def test_a_csv_without_one_usable_cell_is_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"sequence": ["MK1T", "2"]}).to_csv(path, index=False)
    with pytest.raises(BiofmError, match="no usable 'sequence' values"):
        LETTERS.unlabeled(path, on_error="skip", skipped=SkipLog())
