"""generation_metrics on hand-computed inputs; Morgan fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.molecules import generation_metrics, morgan_fingerprints


def test_generation_metrics_known_values():
    samples = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "CCN", "not smiles"]
    # valid: CCO, OCC(=CCO), benzene, CCN -> 4/7; unique: CCO, benzene, CCN -> 3/4;
    # novel vs training {CCO}: benzene, CCN -> 2/3
    metrics = generation_metrics(samples, ["OCC", "C1CC"])
    assert metrics["validity"] == pytest.approx(4 / 7)
    assert metrics["uniqueness"] == pytest.approx(3 / 4)
    assert metrics["novelty"] == pytest.approx(2 / 3)
    assert (metrics["n_samples"], metrics["n_valid"], metrics["n_unique"], metrics["n_novel"]) \
        == (7, 4, 3, 2)


def test_generation_metrics_nothing_valid_or_nothing_sampled():
    for samples in (["", "C1CC", "xyz"], []):
        metrics = generation_metrics(samples, ["CCO"])
        assert (metrics["validity"], metrics["uniqueness"], metrics["novelty"]) == (0.0, 0.0, 0.0)


def test_generation_metrics_all_memorised():
    metrics = generation_metrics(["CCO", "CCO"], iter(["OCC"]))
    assert (metrics["validity"], metrics["uniqueness"], metrics["novelty"]) == (1.0, 0.5, 0.0)


def test_morgan_fingerprints_shape_dtype_and_similarity():
    fps = morgan_fingerprints(["CCO", "CCCO", "c1ccccc1"], radius=2, n_bits=1024)
    assert fps.shape == (3, 1024) and fps.dtype == np.uint8
    assert set(np.unique(fps)) <= {0, 1} and (fps.sum(axis=1) > 0).all()
    overlap = lambda a, b: (fps[a] & fps[b]).sum()  # noqa: E731
    assert overlap(0, 1) > overlap(0, 2)
    assert morgan_fingerprints([]).shape == (0, 2048)
    assert np.array_equal(morgan_fingerprints(["OCC"], n_bits=1024)[0], fps[0])


def test_morgan_fingerprints_errors():
    with pytest.raises(BiofmError, match="'C1CC' at index 1"):
        morgan_fingerprints(["CCO", "C1CC"])
    with pytest.raises(BiofmError, match="n_bits"):
        morgan_fingerprints(["CCO"], n_bits=0)
