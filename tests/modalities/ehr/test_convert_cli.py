"""`biofm convert --to meds` through the CLI, and a MEDS directory as an `embed` input."""

from __future__ import annotations

import pandas as pd

from tests.helpers import squeeze


def test_convert_an_events_csv_to_meds_and_refuse_to_overwrite(cli, tmp_path):
    events = tmp_path / "events.csv"
    pd.DataFrame({"subject_id": [1, 1, 2, 2],
                  "time": ["2001-01-01", "2001-02-01", "2002-03-04", "2002-05-06"],
                  "code": ["ICD10CM/I10", "LOINC/2345-7", "ICD10CM/E11", "ICD10CM/I10"],
                  "numeric_value": [None, 5.4, None, None]}).to_csv(events, index=False)
    run = cli("convert", "--input", events, "--output", tmp_path / "meds")
    assert run.code == 0, run.err
    assert "of2subjects" in squeeze(run.out)
    data = pd.concat(pd.read_parquet(p) for p in (tmp_path / "meds" / "data").rglob("*.parquet"))
    assert set(data["code"]) >= {"ICD10CM/I10", "LOINC/2345-7", "ICD10CM/E11"}
    again = cli("convert", "--input", events, "--output", tmp_path / "meds")
    assert again.code == 2 and "Traceback" not in again.err
    run = cli("convert", "--input", events, "--output", tmp_path / "x", "--to", "omop")
    assert run.code == 2 and "--tomeds" in squeeze(run.err)
