"""A cell-annotation task from a user's .h5ad: labels from an obs column, and clear
errors for a missing, empty or single-class label column."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.singlecell.tasks import task_from_h5ad
from tests.modalities.singlecell.cells import write_h5ad

GENES = ["CD3E", "MS4A1", "LYZ", "NKG7"]


@pytest.fixture
def labelled(tmp_path):
    counts = np.random.default_rng(0).poisson(3.0, size=(40, 4)) + 1
    kinds = ["T", "B"] * 20
    return write_h5ad(tmp_path / "cells.h5ad", counts, GENES,
                      obs={"kind": kinds, "empty": [np.nan] * 40, "one": ["T"] * 40,
                           "size": counts.sum(1).astype(float)})


def test_labels_become_sorted_class_ids_and_splits_cover_every_cell(labelled):
    task = task_from_h5ad(labelled, "kind")
    splits = task.load(0)
    assert task.modality == "singlecell" and task.kind == "classification"
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 40
    assert set(splits.train.labels) == {0, 1}  # "B" → 0, "T" → 1
    assert splits.train.inputs[0].expressed.tolist() == GENES  # every gene counted (Poisson + 1)


def test_regression_on_a_numeric_column(labelled):
    splits = task_from_h5ad(labelled, "size", kind="regression").load(0)
    assert splits.train.labels.dtype == np.float32


@pytest.mark.parametrize("column, message", [
    ("cell_type", "obs has no column 'cell_type'"),
    ("empty", "obs\\['empty'\\] has no values"),
    ("one", "obs\\['one'\\] holds one class only"),
])
def test_unusable_label_columns_name_the_file_and_the_fix(labelled, column, message):
    with pytest.raises(BiofmError, match=message) as caught:
        task_from_h5ad(labelled, column)
    assert "cells.h5ad" in str(caught.value) and caught.value.fix


def test_class_names_are_kept_and_saved_classes_fix_the_ids(labelled, tmp_path):
    from biofm.registry import MODALITIES

    assert task_from_h5ad(labelled, "kind").classes == ("B", "T")
    counts = np.random.default_rng(1).poisson(3.0, size=(30, 4)) + 1
    other = write_h5ad(tmp_path / "other.h5ad", counts, GENES,
                       obs={"kind": ["T", "NK"] * 15})  # no B cells
    task = MODALITIES.get("singlecell").task_from_file(
        other, label="kind", kind=None, split="random", seed=0, classes=("B", "NK", "T"))
    splits = task.load(0)
    assert task.classes == ("B", "NK", "T")
    labels = np.concatenate([splits.train.labels, splits.valid.labels, splits.test.labels])
    assert set(labels) == {1, 2}  # NK → 1, T → 2, as the model was trained; not 0 and 1


def test_a_cell_type_the_model_does_not_know_is_an_error(labelled):
    with pytest.raises(BiofmError, match="labels the model does not know \\(T\\)") as caught:
        task_from_h5ad(labelled, "kind", classes=("B", "NK"))
    assert "cells.h5ad" in str(caught.value) and "B, NK" in caught.value.fix


def test_repeated_obs_names_are_refused(tmp_path):
    counts = np.random.default_rng(0).poisson(3.0, size=(20, 4)) + 1
    path = write_h5ad(tmp_path / "dup.h5ad", counts, GENES,
                      cells=[f"cell{i % 10}" for i in range(20)], obs={"kind": ["T", "B"] * 10})
    with pytest.raises(BiofmError, match="obs names are not unique") as caught:
        task_from_h5ad(path, "kind")
    assert "dup.h5ad" in str(caught.value) and "obs_names_make_unique()" in caught.value.fix
