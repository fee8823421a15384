"""Long and wide CSV readers: layouts, frequencies, gaps, repairs and clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.timeseries.readers import (RepairLog, check_length, mmwr_week_start,
                                                 read_series)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


LONG = """series_id,date,value,temp,note
a,2020-01-05,1,10,x
a,2020-01-12,2,11,y
b,2020-01-05,5,20,z
a,2020-01-26,4,13,w
b,2020-01-12,,21,v
"""


def test_long_layout_with_gap_blank_and_covariates(tmp_path):
    repairs = RepairLog()
    a, b = read_series(write(tmp_path, LONG), repairs=repairs)
    assert (a.id, b.id, a.freq) == ("a", "b", "W")
    assert a.dates.astype(str).tolist() == ["2020-01-05", "2020-01-12", "2020-01-19", "2020-01-26"]
    np.testing.assert_array_equal(a.values, [1, 2, np.nan, 4])
    np.testing.assert_array_equal(a.covariates["temp"], [10, 11, np.nan, 13])
    assert "note" not in a.covariates
    assert np.isnan(b.values[1]) and a.source.endswith("data.csv")
    notes = repairs.notes
    assert any("1 missing week(s) inserted" in m and "2020-01-19" in m for m in notes["a"])
    assert any("'note' is not numeric" in m for m in notes["a"])
    assert any("1 blank/NA" in m for m in notes["b"])


def test_wide_layout_daily_and_configurable_names(tmp_path):
    text = "day,north,south\n2020-03-01,1,2\n2020-03-02,3,NA\n2020-03-03,5,6\n"
    north, south = read_series(write(tmp_path, text))
    assert north.freq == "D" and north.values.tolist() == [1, 3, 5]
    assert south.n_observed == 2
    text = "region,when,cases\nx,2020-03-01,1\nx,2020-03-02,2\n"
    (x,) = read_series(write(tmp_path, text, "named.csv"), id_column="region", date_column="when",
                       value_column="cases")
    assert x.values.tolist() == [1, 2] and x.freq == "D"


def test_epiweeks_are_dated_by_the_sunday_that_starts_them(tmp_path):
    assert str(mmwr_week_start(2020, 1)) == "2019-12-29"   # MMWR 2020 week 1
    assert str(mmwr_week_start(2021, 1)) == "2021-01-03"
    assert str(mmwr_week_start(2020, 53)) == "2020-12-27"  # 2020 had 53 epi-weeks
    with pytest.raises(ValueError):
        mmwr_week_start(2021, 53)
    (s,) = read_series(write(tmp_path, "epiweek,ili\n202052,1\n202053,2\n202101,3\n"))
    assert s.dates.astype(str).tolist() == ["2020-12-20", "2020-12-27", "2021-01-03"]


def test_unsorted_rows_are_sorted_and_reported_or_refused(tmp_path):
    path = write(tmp_path, "date,x\n2020-01-12,2\n2020-01-05,1\n2020-01-19,3\n")
    repairs = RepairLog()
    (s,) = read_series(path, repairs=repairs)
    assert s.values.tolist() == [1, 2, 3] and "sorted" in repairs.notes["x"][0]
    with pytest.raises(BiofmError, match=r"line 3.*not in increasing order"):
        read_series(path, sort=False)


def test_duplicate_dates_name_both_lines(tmp_path):
    path = write(tmp_path, "series_id,date,value\na,2020-01-05,1\na,2020-01-12,2\na,2020-01-05,3\n")
    with pytest.raises(BiofmError) as err:
        read_series(path)
    message = str(err.value)
    assert str(path) in message and "'a'" in message and "appears twice" in message
    assert "lines 2 and 4" in message and "one row per series and date" in message


def test_negative_values_error_or_become_missing(tmp_path):
    path = write(tmp_path, "date,x,y\n2020-01-05,1,1\n2020-01-12,-3,1\n2020-01-19,2,1\n")
    with pytest.raises(BiofmError, match=r"line 3.*series 'x': negative value -3.*--negative nan"):
        read_series(path)
    repairs = RepairLog()
    x, y = read_series(path, negative="nan", repairs=repairs)
    assert np.isnan(x.values[1]) and "1 negative value(s) set to missing (lines 3)" in \
        repairs.notes["x"][0]
    assert "y" not in repairs.notes


@pytest.mark.parametrize("text,phrases", [
    ("series_id,when,value\na,2020-01-05,1\n", ["needs column(s) ['date']", "line 1",
                                                  "--date-column"]),
    ("foo,bar\n1,2\n", ["cannot tell the layout", "series_id,date,value"]),
    ("date,x\n2020-01-05,1\nsoon,2\n", ["line 3", "'soon'", "not a date"]),
    ("epiweek,x\n202152,1\n202153,2\n", ["line 3", "2021 has no epi-week 53"]),
    ("date,x\n2020-01-05,1\n2020-01-12,many\n", ["line 3", "'many'", "not a number"]),
    ("date,x\n2020-01-05,1\n2020-01-13,2\n",
     ["line 3", "8 days apart at the closest (2020-01-05 on line 2, 2020-01-13 on line 3)",
      "--freq D, W or M"]),
    ("date,x\n2020-01-05,1\n2020-01-12,2\n2020-01-20,3\n",
     ["line 4", "2020-01-20 (a Monday) is not a whole number of weeks after 2020-01-05 "
                "(a Sunday)"]),
    # one mistyped date in a weekly series: still weekly, and that date's line is named
    ("date,x\n2020-01-05,1\n2020-01-12,2\n2020-01-13,3\n2020-01-19,4\n2020-01-26,5\n",
     ["line 4", "2020-01-13 (a Monday) is not a whole number of weeks"]),
    ("date,x\n2020-01-15,1\n2020-02-15,2\n", ["31 days apart", "must be daily, weekly or monthly",
                                               "first day (YYYY-MM-01)"]),
    ("date,x\n2020-01-01,1\n2020-02-01,2\n2020-03-31,3\n",
     ["line 4", "monthly date 2020-03-31 is not the first day of its month, as 2020-01-01 is"]),
    ("date,x\n2020-01-05,1\n", ["line 2", "one date", "--freq D, W or M"]),
    ("series_id,date,value\n", ["line 2", "header (series_id, date, value) but no data rows"]),
    ("date\n2020-01-05\n2020-01-12\n", ["line 1", "only its date column 'date': no series"]),
    # an id column means long: a misnamed value column is named, not read as a wide series
    ("series_id,date,cases\na,2020-01-05,1\n", ["needs column(s) ['value']", "--value-column"]),
])
def test_bad_files_raise_errors_naming_file_row_and_fix(tmp_path, text, phrases):
    path = write(tmp_path, text)
    with pytest.raises(BiofmError) as err:
        read_series(path)
    assert str(path) in str(err.value)
    for phrase in phrases:
        assert phrase in str(err.value)


def test_long_files_find_an_epiweek_date_column(tmp_path):
    """...and take one frequency per file: `b` (one row) and `c` (two weeks apart) are weekly."""
    path = write(tmp_path, "series_id,epiweek,value\na,202201,3\na,202202,4\na,202204,5\n"
                           "b,202202,1\nc,202201,2\nc,202203,6\n")
    a, b, c = read_series(path)
    assert a.dates.astype(str).tolist() == ["2022-01-02", "2022-01-09", "2022-01-16",
                                            "2022-01-23"]
    np.testing.assert_array_equal(a.values, [3, 4, np.nan, 5])
    assert (a.freq, b.freq, c.freq) == ("W", "W", "W")
    assert b.dates.astype(str).tolist() == ["2022-01-09"] and b.values.tolist() == [1.0]
    np.testing.assert_array_equal(c.values, [2, np.nan, 6])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BiofmError, match="does not exist"):
        read_series(tmp_path / "nope.csv")
    with pytest.raises(BiofmError, match="is empty"):
        read_series(write(tmp_path, ""))


@pytest.mark.parametrize("layout, text", [
    ("long", "series_id,date,value\n\na,2020-01-05,1\n\n\na,2020-01-12,many\n"),
    ("wide", "date,x\n2020-01-05,1\n   \n\n\n2020-01-12,many\n"),
])
def test_errors_name_the_line_as_the_file_counts_blank_lines(tmp_path, layout, text):
    with pytest.raises(BiofmError, match=r"line 6\b.*'many'.*not a number"):
        read_series(write(tmp_path, text), layout=layout)


def test_a_truncated_gzip_is_a_user_error(tmp_path):
    body = "".join(f"a,2020-01-{1 + i % 28:02d},{i}\n" for i in range(3000))
    data = gzip.compress(("series_id,date,value\n" + body).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BiofmError, match=r"cut\.csv\.gz: the gzip stream is truncated.*gzip -t"):
        read_series(path)


def test_short_series_are_named_by_check_length(tmp_path):
    rows = "\n".join(f"2020-01-{d:02d},1,{1 if d == 10 else ''}" for d in range(1, 11))
    series = read_series(write(tmp_path, "date,ok,short\n" + rows + "\n"))
    assert [s.n_observed for s in series] == [10, 1]
    check_length(series[:1], 10)
    with pytest.raises(BiofmError, match=r"1 series have fewer.*'short' \(1\).*lower the context"):
        check_length(series, 10)


def test_the_packaged_boston_file_reads_as_14_weekly_series():
    from biofm.data.packaged import package_file

    repairs = RepairLog()
    series = read_series(package_file("areafluforecast", "sample_data/boston/rates.csv"),
                         repairs=repairs)
    assert len(series) == 14 and {s.freq for s in series} == {"W"}
    assert {len(s) for s in series} == {436} and str(series[0].dates[0]) == "2017-12-31"
    assert "Charlestown" in repairs.notes  # suppressed weeks are reported, not dropped


def test_daily_and_weekly_series_of_one_long_file_keep_their_own_frequency(tmp_path):
    path = write(tmp_path, "series_id,date,value\nd,2020-01-01,1\nd,2020-01-02,2\n"
                           "w,2020-01-05,3\nw,2020-01-12,4\n")
    d, w = read_series(path)
    assert (d.freq, w.freq, len(w)) == ("D", "W", 2)


def test_the_modality_reader_yields_each_series_as_a_typed_record(tmp_path):
    from biofm.modalities.timeseries.series import Series
    from biofm.registry import MODALITIES

    path = write(tmp_path, LONG)
    a, b = MODALITIES.get("timeseries").read(path)
    assert (a.id, b.id) == ("a", "b") and a.source == str(path)
    assert isinstance(a.data, Series) and a.data.values.dtype == np.float64
    np.testing.assert_array_equal(a.data.values, [1, 2, np.nan, 4])  # no text round trip
    assert str(a.data.dates[0]) == "2020-01-05" and a.data.covariates["temp"][0] == 10


def test_monthly_long_files_take_the_file_frequency_for_a_one_row_series(tmp_path):
    path = write(tmp_path, "series_id,month,value\na,2020-01,1\na,2020-02,2\na,2020-04,4\n"
                           "b,2020-03,7\nc,2019-11,1\nc,2020-01,3\n")
    repairs = RepairLog()
    a, b, c = read_series(path, repairs=repairs)
    assert (a.freq, b.freq, c.freq) == ("M", "M", "M") and a.season == 12
    assert a.dates.astype(str).tolist() == ["2020-01-01", "2020-02-01", "2020-03-01",
                                            "2020-04-01"]
    np.testing.assert_array_equal(c.values, [1, np.nan, 3])
    assert "1 missing month(s) inserted as NaN (first 2020-03-01)" in repairs.notes["a"][0]


def test_day_first_dates_of_a_long_file_are_read_day_first_across_its_series(tmp_path):
    """Only series b shows the order (13 > 12): a's ambiguous dates follow it."""
    path = write(tmp_path, "series_id,date,value\na,06/01/1849,1\na,07/01/1849,2\n"
                           "b,12/01/1849,3\nb,13/01/1849,4\n")
    repairs = RepairLog()
    a, b = read_series(path, repairs=repairs)
    assert a.dates.astype(str).tolist() == ["1849-01-06", "1849-01-07"] and a.freq == "D"
    assert b.dates.astype(str).tolist() == ["1849-01-12", "1849-01-13"] and not repairs.notes
    with pytest.raises(BiofmError, match=r"line 5.*'13/01/1849', which is not a date in the "
                                         r"format %m/%d/%Y"):
        read_series(path, date_format="%m/%d/%Y")  # a format given is a format obeyed
