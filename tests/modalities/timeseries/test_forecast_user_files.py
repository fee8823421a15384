"""`biofm forecast` on a user's own CSVs (issue #12): day-first dates, monthly series,
long files without --id-column, off-grid dates, and an output directory that already
holds a forecast, each through the real CLI on a small generated (not real) file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biofm.modalities.timeseries.report import FLUSIGHT_COLUMNS
from biofm.modalities.timeseries.series import date_range
from tests.helpers import Run, squeeze


def assert_user_error(run: Run, *phrases: str) -> None:
    assert run.code == 2, f"exit {run.code}\n{run.out}\n{run.err}"
    assert "Traceback" not in run.err and "error:" in run.err
    for phrase in phrases:
        assert squeeze(phrase) in squeeze(run.err), f"{phrase!r} not in {run.err}"


def weekly_counts(n: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(40 + 10 * np.sin(np.arange(n) / 4) + rng.normal(0, 2, n), 1)


def write_wide(path: Path, dates: np.ndarray, date_format: str | None = None,
               **columns: np.ndarray) -> Path:
    texts = [pd.Timestamp(d).strftime(date_format) if date_format else str(d) for d in dates]
    pd.DataFrame({"date": texts, **columns}).to_csv(path, index=False)
    return path


# -- 1. day-first and month-first dates ------------------------------------------------------
@pytest.mark.parametrize("date_format", ["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y"])
def test_day_first_and_month_first_dates_are_read_in_the_order_the_data_show(cli, tmp_path,
                                                                             date_format):
    weeks = date_range(np.datetime64("1849-01-06"), 30, "W")  # 06/01/1849, 13/01/1849, ...
    csv = write_wide(tmp_path / "cholera.csv", weeks, date_format, london=weekly_counts())
    out = tmp_path / "out"
    run = cli("forecast", "last-value", csv, "--output", out, "--no-plots", "--horizon", "2")
    assert run.code == 0, run.err
    forecasts = pd.read_csv(out / "forecasts.csv")
    assert set(forecasts["reference_date"]) == {str(weeks[-1])}  # 30 weeks, nothing inserted
    assert forecasts["target_end_date"].unique().tolist() == \
        date_range(weeks[-1], 3, "W")[1:].astype(str).tolist()
    assert set(forecasts["target"]) == {"wk inc ili"} and not (out / "repairs.txt").exists()


def test_dates_that_read_both_ways_are_refused_unless_date_format_names_the_order(cli,
                                                                                 tmp_path):
    days = date_range(np.datetime64("2020-02-01"), 12, "D")  # 01/02/2020 .. 12/02/2020
    csv = write_wide(tmp_path / "daily.csv", days, "%d/%m/%Y", x=np.arange(12.0))
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 2): column 'date' holds dates like '01/02/2020' that read "
                      "both day/month and month/day", "--date-format %d/%m/%Y (day first)",
                      "--date-format %m/%d/%Y (month first)")
    assert not (tmp_path / "o").exists()
    run = cli("forecast", "last-value", csv, "--output", tmp_path / "ok", "--no-plots",
              "--date-format", "%d/%m/%Y")
    assert run.code == 0, run.err
    forecasts = pd.read_csv(tmp_path / "ok" / "forecasts.csv")
    assert set(forecasts["reference_date"]) == {"2020-02-12"}
    assert set(forecasts["target"]) == {"day inc"}


def test_a_date_that_does_not_fit_the_format_or_the_order_names_its_line(cli, tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("date,x\n13/01/2020,1\n20/01/2020,2\n31/02/2020,3\n")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 4): column 'date' holds '31/02/2020', which is not a date "
                      "in the format %d/%m/%Y")
    csv.write_text("date,x\n13/01/2020,1\n01/20/2020,2\n")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 3)", "mixes day-first and month-first dates",
                      "'13/01/2020' (line 2) is day/month")


# -- 2. several modes: see test_forecast_cli (they need a checkpoint) ------------------------

# -- 3. errors that name the file, the line and the fix ----------------------------------------
def test_a_long_file_without_id_column_is_named_long_with_the_option_to_pass(cli, tmp_path):
    weeks = date_range(np.datetime64("2020-01-05"), 12, "W").astype(str)
    rows = [(disease, week, count) for disease in ("Cholera", "Typhus")
            for week, count in zip(weeks, weekly_counts(12))]
    csv = tmp_path / "long.csv"
    pd.DataFrame(rows, columns=["disease", "date", "cases"]).to_csv(csv, index=False)
    run = cli("forecast", "last-value", csv, "--output", tmp_path / "o")
    assert_user_error(run, f"{csv} (line 2): the file looks long (one row per series and date)",
                      "column 'disease' holds text such as 'Cholera' (line 2)",
                      "date '2020-01-05' repeats (lines 2 and 14)",
                      "--id-column disease --value-column cases")
    assert "is not a number" not in run.err
    run = cli("forecast", "last-value", csv, "--output", tmp_path / "ok", "--no-plots",
              "--id-column", "disease", "--value-column", "cases")
    assert run.code == 0, run.err
    assert set(pd.read_csv(tmp_path / "ok" / "forecasts.csv")["location"]) == {"Cholera",
                                                                             "Typhus"}
    one = tmp_path / "one.csv"  # one disease: no repeated date, still named
    pd.DataFrame(rows[:12], columns=["disease", "date", "cases"]).to_csv(one, index=False)
    assert_user_error(cli("forecast", "last-value", one, "--output", tmp_path / "o"),
                      f"{one} (line 2): column 'disease' holds text such as 'Cholera' (line 2), "
                      "not numbers", "--id-column disease --value-column cases")


def test_an_off_grid_date_names_its_line(cli, tmp_path):
    csv = tmp_path / "typo.csv"  # weekly (Sundays), one date typed a day late
    csv.write_text("date,x\n2020-01-05,1\n2020-01-12,2\n2020-01-20,3\n2020-01-26,4\n"
                   "2020-02-02,5\n")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 4): series 'x': date 2020-01-20 (a Monday) is not a whole "
                      "number of weeks after 2020-01-05 (a Sunday)", "same weekday")
    csv.write_text("date,x\n2020-01-05,1\n2020-01-15,2\n2020-01-26,4\n")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 3): series 'x': dates are 10 days apart at the closest "
                      "(2020-01-05 on line 2, 2020-01-15 on line 3)", "--freq D, W or M")


@pytest.mark.parametrize("text", ["date,x\n", "date,x\n\n\n", "series_id,date,value\n"])
def test_a_header_only_file_is_named_with_the_fix(cli, tmp_path, text):
    csv = tmp_path / "header.csv"
    csv.write_text(text)
    assert_user_error(cli("forecast", "seasonal-naive", csv, "--output", tmp_path / "o",
                          "--evaluate"),
                      f"{csv} (line 2): the CSV has a header", "but no data rows",
                      "Add one row per date")


def test_unknown_frequency_and_negative_options_name_the_flags(cli, tmp_path):
    csv = write_wide(tmp_path / "x.csv", date_range(np.datetime64("2020-01-05"), 5, "W"),
                     x=np.arange(5.0))
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o",
                          "--freq", "Q"), "unknown frequency 'Q'", "--freq D (daily), W (weekly) "
                                                                   "or M (monthly)")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o",
                          "--negative", "zero"), "unknown --negative 'zero'",
                      "--negative error", "--negative nan")


# -- 4. monthly series ---------------------------------------------------------------------
def monthly_values(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(100 + 40 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(0, 3, n), 1)


@pytest.mark.parametrize("start,written,evaluate", [("2018-01-01", "%Y-%m-%d", True),
                                                    ("2018-01-31", "%Y-%m-%d", False),
                                                    ("2018-01-01", "%Y-%m", False)])
def test_monthly_series_are_detected_and_forecast_a_season_back(cli, tmp_path, start, written,
                                                                evaluate):
    months = date_range(np.datetime64(start), 60, "M")
    values = monthly_values(60)
    csv = write_wide(tmp_path / "monthly.csv", months, written, cases=values)
    out = tmp_path / "out"
    run = cli("forecast", "seasonal-naive", csv, "--output", out, "--horizon", "3", "--no-plots",
              *(("--evaluate", "--origins", "2", "--context", "36") if evaluate else ()))
    assert run.code == 0, run.err
    forecasts = pd.read_csv(out / "forecasts.csv")
    assert tuple(forecasts.columns) == FLUSIGHT_COLUMNS
    assert set(forecasts["reference_date"]) == {str(months[-1])}
    assert forecasts["target_end_date"].unique().tolist() == \
        date_range(months[-1], 4, "M")[1:].astype(str).tolist()  # calendar months, same anchor
    assert set(forecasts["target"]) == {"mo inc"} and not (out / "repairs.txt").exists()
    median = forecasts[forecasts["output_type_id"] == 0.5].sort_values("horizon")["value"]
    np.testing.assert_allclose(median, values[60 - 12: 60 - 12 + 3])  # 12 months back
    if not evaluate:
        return
    rows = pd.read_csv(out / "evaluation" / "rows.csv")
    last = rows[(rows["origin"] == 59 - 3) & (rows["forecaster"] == "arima")]
    assert last["target_date"].tolist() == months[57:60].astype(str).tolist()
    summary = pd.read_csv(out / "evaluation" / "summary.csv").set_index("forecaster")
    assert summary.loc["seasonal-naive", "rel_WIS"] == 1.0
    assert summary.loc["ets", "WIS"] < summary.loc["last-value", "WIS"]  # seasonal ETS


def test_monthly_gaps_are_inserted_and_freq_m_refuses_mid_month_dates(cli, tmp_path):
    csv = tmp_path / "gap.csv"
    csv.write_text("month,x\n2020-01-01,1\n2020-02-01,2\n2020-04-01,4\n2020-05-01,5\n")
    out = tmp_path / "out"
    run = cli("forecast", "last-value", csv, "--output", out, "--no-plots", "--freq", "M")
    assert run.code == 0, run.err
    assert "1 missing month(s) inserted as NaN (first 2020-03-01)" in \
        (out / "repairs.txt").read_text()
    csv.write_text("date,x\n2020-01-15,1\n2020-02-15,2\n2020-03-15,3\n")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o"),
                      f"{csv} (line 4)", "29 days apart",
                      "every month by its first day (YYYY-MM-01)")
    assert_user_error(cli("forecast", "last-value", csv, "--output", tmp_path / "o",
                          "--freq", "M"), f"{csv} (line 2)", "monthly date 2020-01-15 is neither "
                                                             "the first nor the last day")


# -- 5. an existing forecast is not overwritten silently ------------------------------------
def test_an_earlier_forecast_is_refused_before_any_work_unless_overwrite(cli, tmp_path):
    weeks = date_range(np.datetime64("2022-01-02"), 20, "W")
    csv = write_wide(tmp_path / "ili.csv", weeks, north=weekly_counts(20),
                     south=weekly_counts(20, seed=1))
    out = tmp_path / "out"
    assert cli("forecast", "last-value", csv, "--output", out).code == 0
    before = (out / "forecasts.csv").read_bytes()
    # refused before the input is even read: a missing input is not what is reported
    run = cli("forecast", "last-value", tmp_path / "missing.csv", "--output", out)
    assert_user_error(run, f"{out}: the output directory already holds a forecast "
                           "(forecasts.csv, plots/north.png, plots/south.png)",
                      "--overwrite")
    assert (out / "forecasts.csv").read_bytes() == before
    run = cli("forecast", "seasonal-naive", csv, "--output", out, "--overwrite",
              "--series", "north")
    assert run.code == 0, run.err
    assert set(pd.read_csv(out / "forecasts.csv")["location"]) == {"north"}
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["north.png"]  # no stale plot
    assert_user_error(cli("forecast", "last-value", out / "forecasts.csv", "--output", out,
                          "--overwrite"), "the input is a file of an earlier forecast")
