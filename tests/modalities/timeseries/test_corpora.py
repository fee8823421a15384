"""Packaged real surveillance corpora: sizes, frequencies and provenance as documented."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.timeseries.corpora import load_corpus, read_ts_file
from biofm.registry import CORPORA


def test_flu_corpora_are_the_weekly_boston_and_chicago_files():
    boston, chicago = CORPORA.get("flu-boston")(), CORPORA.get("flu-chicago")()
    assert len(boston) == 14 and len(chicago) == 58
    assert {s.freq for s in boston + chicago} == {"W"}
    assert {len(s) for s in boston} == {436} and {len(s) for s in chicago} == {365}
    assert boston[0].source.endswith("boston/rates.csv")
    assert any(s.id == "Dorchester" for s in boston) and chicago[0].id == "60601"
    levels = np.concatenate([s.values for s in chicago])
    assert np.nanmin(levels) >= 1 and np.nanmax(levels) <= 10  # activity levels 1-10


def test_us_contagious_is_yearly_rates_per_disease_and_state():
    series = CORPORA.get("us-contagious")()
    assert len(series) == 7 * 51 and {s.freq for s in series} == {"Y"}
    measles = next(s for s in series if s.id == "Measles/California")
    assert str(measles.dates[0]) == "1928-01-01" and str(measles.dates[-1]) == "2002-01-01"
    assert np.nanmax(measles.values) > 100  # pre-vaccine epidemics, per 100,000 per year
    assert "us_contagious_diseases" in measles.source


def test_covid_daily_is_201_series_of_84_days_with_nominal_dates():
    series = CORPORA.get("covid-daily")()
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
