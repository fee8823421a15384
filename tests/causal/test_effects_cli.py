"""`biofm effects` end to end on tiny slices: ACIC, NHEFS, a user's CSV, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from biofm.causal import METHODS, run_effects
from biofm.errors import BiofmError
from tests.causal.helpers import constant_effect_data
from tests.helpers import squeeze

FAST = ("--units", "200", "--steps", "20", "--seeds", "2")


def user_error(run, *phrases: str) -> str:
    """Exit 2 and one paragraph naming each phrase, no traceback."""
    assert run.code == 2, f"exit {run.code}\n{run.out}\n{run.err}"
    assert "Traceback" not in run.err
    message = run.err[run.err.index("error:"):]
    for phrase in phrases:
        assert squeeze(phrase) in squeeze(message), f"{phrase!r} not in {message}"
    return message


def test_acic_comparison_prints_and_writes_its_table(cli, tmp_path):
    run = cli("effects", "--data", "acic2016", "--simulations", "1-2", *FAST,
              "--output", tmp_path / "acic")
    assert run.code == 0, run.err
    for text in ("treatment effects: acic2016", "pehe_out", "cover_in", *METHODS,
                 "the 20% held out", "results.md"):
        assert text in run.out  # a pipe gets the whole table, not 80 columns
    assert "acic2016 simulation 2 (200 units), transtee" in run.err  # progress lines
    summary = pd.read_csv(tmp_path / "acic" / "results.csv")
    assert summary["method"].tolist() == list(METHODS)
    assert (summary["seeds"] == 2).all()  # two simulations
    ipw = summary.set_index("method").loc["ipw-logistic"]
    assert pd.isna(ipw["pehe_in"]) and pd.isna(ipw["ate_err_out"]) and ipw["ate_err_in"] >= 0
    assert summary.set_index("method").loc["transtee", "pehe_out"] > 0
    per_seed = pd.read_csv(tmp_path / "acic" / "results_per_seed.csv")
    assert sorted(per_seed["seed"].unique()) == [1, 2]
    assert (tmp_path / "acic" / "results.md").read_text().startswith("| task | method |")
    # the output is not replaced without --overwrite
    again = cli("effects", "--simulations", "1", *FAST, "--method", "ipw-logistic",
                "--output", tmp_path / "acic")
    user_error(again, "results.md", "--overwrite")


def test_nhefs_reports_the_ate_with_intervals(cli, tmp_path):
    run = cli("effects", "--data", "nhefs", *FAST, "--bootstrap", "5", "--method", "transtee",
              "--method", "ipw-logistic", "--method", "standardisation-ols",
              "--output", tmp_path)
    assert run.code == 0, run.err
    summary = pd.read_csv(tmp_path / "results.csv").set_index("method")
    assert list(summary.index) == ["transtee", "ipw-logistic", "standardisation-ols"]
    assert (summary["ate_lo"] <= summary["ate"]).all()
    assert (summary["ate"] <= summary["ate_hi"]).all()
    cate = pd.read_csv(tmp_path / "cate.csv")
    assert len(cate) == 200
    assert {"transtee_y0", "transtee_y1", "transtee_cate", "transtee_cate_lo",
            "standardisation-ols_cate"} <= set(cate.columns)


def write_study(path: Path, n: int = 120) -> Path:
    data = constant_effect_data(n=n)
    frame = data.covariates.assign(arm=data.treatment, weight_gain=data.outcome)
    frame.to_csv(path, index=False)
    return path


def test_a_user_csv(cli, tmp_path):
    study = write_study(tmp_path / "study.csv")
    run = cli("effects", "--data", study, "--treatment", "arm", "--outcome", "weight_gain",
              "--covariates", "x0,x1", "--covariates", "group", "--steps", "20", "--seeds", "2",
              "--method", "transtee", "--method", "t-learner-gbm", "--bootstrap", "3",
              "--output", tmp_path / "out")
    assert run.code == 0, run.err
    summary = pd.read_csv(tmp_path / "out" / "results.csv")
    assert summary["task"].unique().tolist() == ["study"]
    assert len(pd.read_csv(tmp_path / "out" / "cate.csv")) == 120


def test_bad_csvs_are_one_paragraph_errors(cli, tmp_path):
    study = write_study(tmp_path / "study.csv")
    run = cli("effects", "--data", study, "--treatment", "treated", "--outcome", "weight_gain",
              "--output", tmp_path / "out")
    user_error(run, str(study), "no column 'treated'", "--treatment")
    frame = pd.read_csv(study)
    frame.loc[3, "arm"] = 2
    frame.to_csv(study, index=False)
    run = cli("effects", "--data", study, "--treatment", "arm", "--outcome", "weight_gain",
              "--output", tmp_path / "out")
    user_error(run, str(study), "'arm' is not binary", "0 (control) and 1 (treated)")
    run = cli("effects", "--data", study, "--output", tmp_path / "out")
    user_error(run, "--treatment COL --outcome COL")
    run = cli("effects", "--data", "acic2016", "--simulations", "12", "--output", tmp_path / "o")
    user_error(run, "1-10")
    run = cli("effects", "--method", "causal-forest", "--output", tmp_path / "o")
    user_error(run, "'causal-forest'", "transtee")


def test_run_effects_returns_the_table_without_writing():
    table = run_effects("acic2016", simulations=[3], units=100, seeds=1, steps=5,
                        methods=["transtee", "s-learner-gbm"])
    frame = table.frame()
    assert frame["method"].tolist() == ["transtee", "s-learner-gbm"]
    assert frame["seed"].tolist() == [3, 3]
    with pytest.raises(BiofmError, match="--seeds must be at least 1"):
        run_effects("acic2016", seeds=0)
    with pytest.raises(BiofmError, match="--bootstrap must be at least 0"):
        run_effects("nhefs", bootstrap=-1)
