"""`biofm forecast`: FluSight CSV, plots, rolling-origin evaluation, checkpoints
(zero-shot and LoRA) and user errors, through the real CLI in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from biofm.modalities.timeseries.report import FLUSIGHT_COLUMNS
from biofm.modalities.timeseries.series import date_range
from tests.helpers import Run, squeeze
from tests.modalities.timeseries.forecaster_helpers import tiny_forecaster_model




def assert_user_error(run: Run, *phrases: str) -> None:
    assert run.code == 2, f"exit {run.code}\n{run.out}\n{run.err}"
    assert "Traceback" not in run.err and "error:" in run.err
    for phrase in phrases:
        assert squeeze(phrase) in squeeze(run.err), f"{phrase!r} not in {run.err}"


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    """Generated (not real) weekly counts for two regions, 70 weeks, one blank week."""
    rng = np.random.default_rng(0)
    weeks = date_range(np.datetime64("2022-01-02"), 70, "W")
    season = 20 + 15 * np.cos(2 * np.pi * np.arange(70) / 52)
    frame = pd.DataFrame({"week": weeks.astype(str),
                          "north": np.round(season + rng.normal(0, 2, 70), 1),
                          "south": np.round(season * 2 + rng.normal(0, 3, 70), 1)})
    frame.loc[10, "south"] = np.nan
    path = tmp_path / "ili.csv"
    frame.to_csv(path, index=False)
    return path


def test_baseline_forecasts_in_flusight_layout_with_plots_and_evaluation(cli, wide_csv, tmp_path):
    out = tmp_path / "out"
    run = cli("forecast", "last-value", wide_csv, "--output", out, "--horizon", "3",
              "--evaluate", "--origins", "1", "--context", "60")
    assert run.code == 0, run.err
    forecasts = pd.read_csv(out / "forecasts.csv")
    assert tuple(forecasts.columns) == FLUSIGHT_COLUMNS
    assert len(forecasts) == 2 * 3 * 23 and set(forecasts["location"]) == {"north", "south"}
    assert set(forecasts["reference_date"]) == {"2023-04-30"}  # the last week of the file
    first = forecasts[(forecasts.location == "north") & (forecasts.horizon == 1)]
    assert set(first["target_end_date"]) == {"2023-05-07"}
    assert set(first["output_type"]) == {"quantile"}
    assert first["output_type_id"].tolist()[:3] == [0.01, 0.025, 0.05]
    assert first["value"].is_monotonic_increasing
    for name in ("north", "south"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = pd.read_csv(out / "evaluation" / "summary.csv").set_index("forecaster")
    assert list(summary.index) == ["last-value", "seasonal-naive", "arima", "ets"]
    assert summary.loc["seasonal-naive", "rel_WIS"] == 1.0
    assert summary.loc["last-value", "n"] == 2 * 1 * 3  # series x origins x horizons
    assert "rel_WIS" in run.out and "1 blank/NA value(s)" in run.err  # repairs are reported
    assert "south" in (out / "repairs.txt").read_text()


def test_a_packaged_corpus_and_one_series(cli, tmp_path):
    run = cli("forecast", "seasonal-naive", "flu-boston", "--series", "Fenway",
              "--output", tmp_path, "--no-plots")
    assert run.code == 0, run.err
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert set(forecasts["location"]) == {"Fenway"} and len(forecasts) == 4 * 23
    assert not (tmp_path / "plots").exists()
    repairs = (tmp_path / "repairs.txt").read_text()  # the weeks BPHC suppressed
    assert "Fenway: 49 blank/NA value(s)" in repairs and "Charlestown" not in repairs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny masked-patch forecaster with random weights, saved as a checkpoint dir."""
    directory = tmp_path_factory.mktemp("ts-checkpoint")
    tiny_forecaster_model("masked-patch").save(directory)
    return directory


def test_a_checkpoint_zero_shot_full_and_lora_scored_against_the_baselines(cli, checkpoint,
                                                                           wide_csv, tmp_path):
    """Every mode writes its own forecasts and plots, labelled by its forecaster."""
    out = tmp_path / "out"
    run = cli("forecast", checkpoint, wide_csv, "--output", out, "--mode", "zero-shot",
              "--mode", "full", "--mode", "lora", "--steps", "2", "--evaluate", "--origins", "2",
              "--context", "60")
    assert run.code == 0, run.err
    names = ["biofm-masked-patch", "biofm-masked-patch-full", "biofm-masked-patch-lora"]
    summary = pd.read_csv(out / "evaluation" / "summary.csv")
    assert summary["forecaster"].tolist() == [*names, "seasonal-naive", "last-value", "arima",
                                              "ets"]
    assert np.isfinite(summary["rel_WIS"]).all() and set(summary["n"]) == {2 * 2 * 4}
    assert not (out / "forecasts.csv").exists()  # no unlabelled file that holds one mode only
    frames = {name: pd.read_csv(out / f"forecasts-{name}.csv") for name in names}
    for name, frame in frames.items():
        assert tuple(frame.columns) == FLUSIGHT_COLUMNS and len(frame) == 2 * 4 * 23
        assert sorted(p.name for p in (out / "plots" / name).iterdir()) == ["north.png",
                                                                            "south.png"]
        assert squeeze(f"{name}: forecasts of 2 series in {out / f'forecasts-{name}.csv'}, "
                       f"plots in {out / 'plots' / name}") in squeeze(run.out)
    zero_shot = frames["biofm-masked-patch"]["value"]
    for tuned in names[1:]:  # fine-tuning changed the model
        assert not np.array_equal(zero_shot, frames[tuned]["value"])


def test_bad_inputs_exit_2_naming_file_series_and_fix(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("region,when,cases\nx,2020-01-05,1\n")
    assert_user_error(cli("forecast", "arima", bad, "--output", tmp_path / "o", "--layout", "long"),
                      str(bad), "needs column(s) ['series_id', 'date', 'value']", "--id-column")
    neg = tmp_path / "neg.csv"
    neg.write_text("date,x\n2020-01-05,1\n2020-01-12,-2\n2020-01-19,3\n")
    run = cli("forecast", "arima", neg, "--output", tmp_path / "o")
    assert_user_error(run, str(neg), "line 3", "series 'x': negative value -2", "--negative nan")
    assert "negative=" not in run.err  # the flag, not the Python keyword
    run = cli("forecast", "last-value", neg, "--output", tmp_path / "ok", "--negative", "nan",
              "--no-plots")
    assert run.code == 0 and "set to missing" in (tmp_path / "ok" / "repairs.txt").read_text()
    assert_user_error(cli("forecast", "arima", neg, "--output", tmp_path / "o", "--evaluate",
                          "--negative", "nan"), str(neg), "series 'x' has 3 periods", "context 52")
    header_only = tmp_path / "header.csv"  # was an IndexError traceback in the baselines
    header_only.write_text("series_id,date,value\n")
    assert_user_error(cli("forecast", "arima", header_only, "--output", tmp_path / "o"),
                      str(header_only), "line 2", "but no data rows")
    assert_user_error(cli("forecast", "nowhere", "flu-boston", "--output", tmp_path / "o"),
                      "'nowhere' is not a checkpoint directory or a baseline")
    assert_user_error(cli("forecast", "arima", "flu-paris", "--output", tmp_path / "o"),
                      "neither a file nor a time-series corpus", "flu-boston")
    assert_user_error(cli("forecast", "arima", "flu-boston", "--output", tmp_path / "o",
                          "--mode", "lora"), "cannot be fine-tuned")
    assert_user_error(cli("forecast", "arima", "flu-boston", "--output", tmp_path / "o",
                          "--series", "Gotham"), "no series named ['Gotham']")


def test_fine_tuning_for_evaluation_never_sees_the_scored_future(checkpoint, tmp_path):
    """LoRA fine-tuning inside `--evaluate` trains only on values before the first origin:
    poisoning everything after it leaves the model's evaluated forecasts bitwise equal."""
    from biofm.modalities.timeseries.forecast import run_forecast

    rng = np.random.default_rng(1)
    weeks = date_range(np.datetime64("2022-01-02"), 64, "W").astype(str)
    values = np.round(30 + 10 * np.sin(np.arange(64) / 5) + rng.normal(0, 1, 64), 1)
    origin = 64 - 1 - 4  # --origins 1 with --horizon 4: the only origin
    poisoned = values.copy()
    poisoned[origin + 1:] = 1e6
    rows = []
    for name, column in (("clean", values), ("poisoned", poisoned)):
        path = tmp_path / f"{name}.csv"
        pd.DataFrame({"date": weeks, "x": column}).to_csv(path, index=False)
        result = run_forecast(str(checkpoint), str(path), tmp_path / name, mode="lora", steps=3,
                              evaluate=True, origins=1, context=40, plots=False)
        table = result.evaluation.rows
        rows.append(table[table.forecaster == "biofm-masked-patch-lora"])
    assert rows[0]["origin"].tolist() == [origin] * 4
    columns = ["median", "lower50", "upper50", "lower95", "upper95"]
    pd.testing.assert_frame_equal(rows[0][columns], rows[1][columns])


def test_forecast_runs_on_the_device_asked_for(cli, checkpoint, wide_csv, tmp_path):
    run = cli("forecast", checkpoint, wide_csv, "--output", tmp_path / "cpu", "--device", "cpu",
              "--no-plots")
    assert run.code == 0, run.err
    if not torch.cuda.is_available():
        run = cli("forecast", checkpoint, wide_csv, "--output", tmp_path / "gpu",
                  "--device", "cuda", "--no-plots")
        assert_user_error(run, "no CUDA GPU")
        assert not (tmp_path / "gpu" / "forecasts.csv").exists()
