"""Packaged real surveillance corpora: sizes, frequencies and provenance as documented;
registered as Records (like the CSV reader's), loaded as Series for forecasting."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.config import DataConfig
from biofm.data.records import Record
from biofm.errors import BiofmError
from biofm.modalities.timeseries.corpora import TIMESERIES_CORPORA, load_corpus, read_ts_file
from biofm.modalities.timeseries.series import Series
from biofm.registry import CORPORA, MODALITIES


def test_flu_corpora_are_the_weekly_boston_and_chicago_files():
    boston, chicago = load_corpus("flu-boston"), load_corpus("flu-chicago")
    assert len(boston) == 14 and len(chicago) == 58
    assert {s.freq for s in boston + chicago} == {"W"}
    assert {len(s) for s in boston} == {436} and {len(s) for s in chicago} == {365}
    assert boston[0].source.endswith("boston/rates.csv")
    assert any(s.id == "Dorchester" for s in boston) and chicago[0].id == "60601"
    levels = np.concatenate([s.values for s in chicago])
    assert np.nanmin(levels) >= 1 and np.nanmax(levels) <= 10  # activity levels 1-10


def test_us_contagious_is_yearly_rates_per_disease_and_state():
    series = load_corpus("us-contagious")
    assert len(series) == 7 * 51 and {s.freq for s in series} == {"Y"}
    measles = next(s for s in series if s.id == "Measles/California")
    assert str(measles.dates[0]) == "1928-01-01" and str(measles.dates[-1]) == "2002-01-01"
    assert np.nanmax(measles.values) > 100  # pre-vaccine epidemics, per 100,000 per year
    assert "us_contagious_diseases" in measles.source


def test_covid_daily_is_201_series_of_84_days_with_nominal_dates():
    series = load_corpus("covid-daily")
    assert len(series) == 201 and {len(s) for s in series} == {84}
    assert {str(s.dates[-1]) for s in series} == {"2020-03-31"} and series[0].freq == "D"
    assert series[0].id == "covid3month-train-001" and series[-1].id == "covid3month-test-061"
    assert min(np.nanmin(s.values) for s in series) >= 0


def test_ts_reader_rejects_damaged_files(tmp_path):
    bad = tmp_path / "bad.ts"
    bad.write_text("@problemname x\n@timestamps false\n@data\n1.0,2.0,oops:0\n")
    with pytest.raises(BiofmError, match=r"line 4.*not a number"):
        read_ts_file(bad, "bad")


def test_unknown_corpus_lists_the_time_series_corpora():
    with pytest.raises(BiofmError, match="flu-boston, flu-chicago"):
        load_corpus("flu-paris")


@pytest.mark.parametrize("name", TIMESERIES_CORPORA)
def test_registered_corpora_give_records_of_series_like_the_csv_reader(name):
    records = CORPORA.get(name)()
    series = load_corpus(name)
    assert all(type(r) is Record and isinstance(r.data, Series) for r in records)
    assert [r.id for r in records] == [s.id for s in series]
    assert records[0].data is series[0] and records[0].source == series[0].source


def test_the_generic_record_path_gives_records_for_a_corpus_and_for_a_csv(tmp_path):
    modality = MODALITIES.get("timeseries")
    from_corpus = list(modality.records(DataConfig(modality="timeseries", input="flu-boston")))
    fenway = next(r.data for r in from_corpus if r.id == "Fenway")
    csv = tmp_path / "fenway.csv"
    csv.write_text("week,Fenway\n" + "".join(
        f"{d},{'' if np.isnan(v) else v}\n" for d, v in zip(fenway.dates, fenway.values)))
    (from_file,) = modality.records(DataConfig(modality="timeseries", input=str(csv)))
    assert type(from_corpus[0]) is type(from_file) is Record and len(from_corpus) == 14
    assert from_file.id == "Fenway" and isinstance(from_file.data, Series)
    np.testing.assert_array_equal(from_file.data.values, fenway.values)
    np.testing.assert_array_equal(from_file.data.dates, fenway.dates)
