"""Loaders: ACIC 2016 and NHEFS from causallib's files, a user's CSV and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biofm.causal import load_acic2016, load_nhefs, read_effect_csv
from biofm.causal.data import parse_simulations
from biofm.errors import BiofmError


def test_acic2016_shapes_columns_and_truth():
    data = load_acic2016(1)
    assert len(data) == 4802 and data.covariates.shape == (4802, 58)
    categorical = [c for c in data.covariates if isinstance(data.covariates[c].dtype,
                                                             pd.CategoricalDtype)]
    assert categorical == ["x_2", "x_21", "x_24"]
    assert [len(data.covariates[c].cat.categories) for c in categorical] == [6, 16, 5]
    # one-hot with the first level dropped: 55 numeric + 5 + 15 + 4
    assert data.design().shape == (4802, 79)
    assert set(np.unique(data.treatment)) == {0, 1} and data.treatment.dtype == np.int64
    assert data.mu0.shape == data.mu1.shape == (4802,)
    sim = pd.read_csv(data.source)
    assert np.allclose(data.outcome, np.where(sim["z"] == 1, sim["y1"], sim["y0"]))
    assert data.true_cate.mean() == pytest.approx(2.13, abs=0.01)


def test_a_subset_keeps_the_design_columns():
    data = load_acic2016(2)
    part = data.subset(np.arange(10))
    assert part.design().shape == (10, 79)
    assert np.array_equal(part.mu1, data.mu1[:10])


def test_nhefs_is_the_books_cohort():
    data = load_nhefs()
    assert len(data) == 1566  # 1,629 less the 63 without a 1982 weight
    assert list(data.covariates.columns) == [
        "sex", "race", "age", "education", "smokeintensity", "smokeyrs", "exercise", "active",
        "wt71", "age^2", "smokeintensity^2", "smokeyrs^2", "wt71^2"]
    assert data.design().shape == (1566, 18)  # education 5 levels, exercise 3, active 3
    assert data.treatment.sum() == 403 and data.mu0 is None
    assert np.isfinite(data.outcome).all()


def test_simulations_parse_and_unknown_ones_are_refused():
    assert parse_simulations("1-3") == [1, 2, 3]
    assert parse_simulations("1,4,7") == [1, 4, 7]
    assert parse_simulations("1-2,8") == [1, 2, 8]
    for bad in ("0", "9-11", "x", ""):
        with pytest.raises(BiofmError, match="1-10"):
            parse_simulations(bad)
    with pytest.raises(BiofmError, match="1-10"):
        load_acic2016(11)


def _csv(tmp_path, **columns) -> str:
    path = tmp_path / "study.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def test_a_user_csv_reads_text_as_categories(tmp_path):
    path = _csv(tmp_path, arm=["true", "false", "True", "FALSE"], y=[1.0, 2, 3, 4],
                age=[30, 40, 50, 60], site=["x", "y", "x", "z"], id=[1, 2, 3, 4])
    data = read_effect_csv(path, "arm", "y", covariates=["age", "site"])
    assert data.treatment.tolist() == [1, 0, 1, 0]
    assert list(data.covariates.columns) == ["age", "site"]
    assert list(data.covariates["site"].cat.categories) == ["x", "y", "z"]
    assert read_effect_csv(path, "arm", "y").covariates.shape[1] == 3  # every other column


def test_a_missing_treatment_column_is_named(tmp_path):
    path = _csv(tmp_path, t=[0, 1, 0, 1], y=[1.0, 2, 3, 4], age=[1, 2, 3, 4])
    with pytest.raises(BiofmError, match=r"study\.csv: no column 'arm'.*--treatment") as info:
        read_effect_csv(path, "arm", "y")
    assert "the columns are: t, y, age" in str(info.value)


def test_a_non_binary_treatment_is_refused(tmp_path):
    path = _csv(tmp_path, dose=[0, 1, 2, 1], y=[1.0, 2, 3, 4], age=[1, 2, 3, 4])
    with pytest.raises(BiofmError, match=r"study\.csv: treatment column 'dose' is not binary "
                                         r"\(values: '0', '1', '2'\).*0 \(control\) and 1"):
        read_effect_csv(path, "dose", "y")


def test_one_arm_only_empty_values_and_identifiers_are_refused(tmp_path):
    path = _csv(tmp_path, t=[1, 1, 1, 0], y=[1.0, 2, 3, 4], age=[1, 2, 3, 4])
    with pytest.raises(BiofmError, match="1 unit"):
        read_effect_csv(path, "t", "y")
    path = _csv(tmp_path, t=[0, 1, 0, 1], y=[1.0, None, 3, 4], age=[1, 2, 3, 4])
    with pytest.raises(BiofmError, match=r"study\.csv \(line 3\): outcome column 'y'"):
        read_effect_csv(path, "t", "y")
    path = _csv(tmp_path, t=[0, 1, 0, 1], y=[1.0, 2, 3, 4], age=[1, 2, None, 4])
    with pytest.raises(BiofmError, match=r"study\.csv \(line 4\): covariate 'age' is empty"):
        read_effect_csv(path, "t", "y")
    path = _csv(tmp_path, t=[0, 1] * 30, y=np.arange(60.0), name=[f"p{i}" for i in range(60)])
    with pytest.raises(BiofmError, match="identifier"):
        read_effect_csv(path, "t", "y")
