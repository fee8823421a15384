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


def _events_csv(path):
    pd.DataFrame({"subject_id": [1, 2], "time": ["2001-01-01", "2002-03-04"],
                  "code": ["ICD10CM/I10", "ICD10CM/E11"]}).to_csv(path, index=False)
    return path


def test_overwrite_replaces_the_output_with_the_umask_permissions(cli, tmp_path):
    import os
    import stat

    events = _events_csv(tmp_path / "events.csv")
    meds = tmp_path / "meds"
    (meds / "old").mkdir(parents=True)
    (meds / "old" / "stale.txt").write_text("from an earlier conversion")
    old = os.umask(0o027)  # mkdtemp's staging directory alone would give 0700
    try:
        run = cli("convert", "--input", events, "--output", meds, "--overwrite")
    finally:
        os.umask(old)
    assert run.code == 0, run.err
    assert not (meds / "old").exists() and (meds / "metadata" / "dataset.json").is_file()
    assert stat.S_IMODE(meds.stat().st_mode) == 0o750
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_output_that_is_holds_or_sits_in_the_input_is_refused(cli, tmp_path):
    meds = tmp_path / "meds"
    assert cli("convert", "--input", _events_csv(tmp_path / "events.csv"), "--output",
               meds).code == 0
    shard = next((meds / "data").rglob("*.parquet"))
    before = shard.read_bytes()
    (tmp_path / "out").mkdir()
    inside = _events_csv(tmp_path / "out" / "events.csv")
    for input, output, phrase in ((meds, meds, "is the input"),
                                  (meds, meds / "again", "is inside the input"),
                                  (inside, tmp_path / "out", "holds the input")):
        run = cli("convert", "--input", input, "--output", output, "--overwrite")
        assert run.code == 2 and "Traceback" not in run.err
        assert squeeze(phrase) in squeeze(run.err), run.err
    assert shard.read_bytes() == before and inside.is_file()
