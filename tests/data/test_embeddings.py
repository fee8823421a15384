"""Embedding files: an `.npy` output and its `.ids.txt` are both checked before writing."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.data.embeddings import check_new_embeddings, embedding_files, write_embeddings
from biofm.errors import BiofmError


def test_an_npy_output_is_two_files_and_each_is_refused_when_it_exists(tmp_path):
    output = tmp_path / "e.npy"
    assert embedding_files(output) == [output, tmp_path / "e.ids.txt"]
    assert embedding_files(tmp_path / "e.parquet") == [tmp_path / "e.parquet"]
    check_new_embeddings(output, overwrite=False)
    (tmp_path / "e.ids.txt").write_text("other\n")
    with pytest.raises(BiofmError, match="already exists") as caught:
        check_new_embeddings(output, overwrite=False)
    assert "e.ids.txt" in str(caught.value) and "--overwrite" in caught.value.fix
    check_new_embeddings(output, overwrite=True)
    write_embeddings(["a", "b"], np.eye(2, dtype=np.float32), output)
    assert (tmp_path / "e.ids.txt").read_text() == "a\nb\n"
