"""Write MEDS: `convert_to_meds` (behind `biofm convert --to meds`) and `write_meds`.

    convert_to_meds("cdm.duckdb", "out/")           # OMOP CDM (DuckDB or CSV / parquet dir)
    convert_to_meds("events.csv", "out/")           # a plain events CSV
    convert_to_meds("nafld", "out/")                # a packaged cohort: nafld, pbcseq, eunomia

Layout written (MEDS 0.3):

    out/data/<split>/0.parquet       subject_id int64, time timestamp[us], code string,
                                     numeric_value float32 (sorted by subject, time;
                                     data/0.parquet when there is no split)
    out/metadata/dataset.json        dataset_name, etl_name / etl_version, meds_version
    out/metadata/codes.parquet       code, description (codes the source describes)
    out/metadata/subject_splits.parquet   subject_id, split (train / tuning / held_out)

Input goes through the same readers and rules as training (sorted times, events
after death dropped, unknown vocabularies counted): the returned summary lists
what the rules did. MEDS subject ids are integers: other ids are an error.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from biofm.errors import BiofmError
from biofm.io import make_dirs, swap_in_directory
from biofm.modalities.ehr.readers import FORMATS, described_codes, read_timelines, source_format
from biofm.modalities.ehr.timeline import ReadReport, Timeline

MEDS_VERSION = "0.3.3"
SOURCE_FORMATS = ("auto", *FORMATS)
COHORTS = ("nafld", "pbcseq", "eunomia")


def convert_to_meds(input: str | Path, output: str | Path, source_format: str = "auto", *,
                    overwrite: bool = False) -> dict:
    """Convert an OMOP CDM, an events CSV (or a MEDS dataset, re-checked) or a packaged
    cohort (`COHORTS`) into a MEDS directory at `output`; returns a summary
    {"output", "subjects", "events", "codes", "notes"}."""
    output = Path(output)
    _check_output(output, overwrite, input)
    if str(input) in COHORTS and not Path(input).exists():
        timelines, codes, splits, report, name = _cohort(str(input))
    else:
        timelines, codes, splits, report, name = _source(Path(input), source_format)
    summary = write_meds(timelines, output, dataset_name=name, codes=codes, splits=splits,
                         overwrite=overwrite, source=str(input))
    return {**summary, "notes": report.lines()}


def _cohort(name: str):
    from biofm.modalities.ehr import cohorts, datasets

    if name == "eunomia":
        from biofm.data.packaged import package_file

        return _source(package_file(*datasets.EUNOMIA), "omop")[:4] + ("eunomia (synthetic)",)
    events, codes = cohorts.nafld_events() if name == "nafld" else cohorts.pbcseq_events()
    timelines = list(datasets.nafld_timelines()) if name == "nafld" else \
        [r.data for r in datasets.pbcseq_meds()]
    splits = datasets.nafld_splits() if name == "nafld" else None
    return timelines, codes, splits, ReadReport(), name


def _source(path: Path, fmt: str):
    if fmt not in SOURCE_FORMATS:
        raise BiofmError(f"unknown source format {fmt!r}",
                         fix=f"use one of: {', '.join(SOURCE_FORMATS)}")
    found = source_format(path)
    if fmt != "auto" and fmt != found:
        raise BiofmError(f"this input looks like {found}, not {fmt}", path=path,
                         fix=f"pass --from {found} (or auto)")
    report = ReadReport()
    timelines = list(read_timelines(path, report=report))
    if not timelines:
        raise BiofmError("no subjects with events", path=path, fix="check the input")
    codes = {c: "" for c in described_codes(path)} if found == "meds" else {}
    return timelines, codes, None, report, path.stem


def _check_output(output: Path, overwrite: bool, input: str | Path = "") -> None:
    """Before any work: refuse a file, a non-empty directory (unless `overwrite`), and
    an output that is, holds or sits inside the input (replacing it would delete it)."""
    if output.exists() and not output.is_dir():
        raise BiofmError("the output is a file, expected a directory", path=output,
                         fix="choose a new directory for the MEDS dataset")
    source = Path(input) if input else None
    if source is not None and source.exists():
        source, target = source.resolve(), output.resolve()
        if target == source or target in source.parents or source in target.parents:
            where = ("is the input" if target == source else
                     "holds the input" if target in source.parents else "is inside the input")
            raise BiofmError(f"the output {where} ({source})", path=output,
                             fix="write the MEDS dataset to a new directory outside the input")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise BiofmError("the output directory is not empty", path=output,
                         fix="choose a new directory, or pass --overwrite to replace it")


def events_frame(timelines: Iterable[Timeline], source: str = "") -> pd.DataFrame:
    """The MEDS columns of timelines (subject ids must be integers)."""
    timelines = list(timelines)
    subject = np.concatenate([np.full(len(t), _integer_id(t.subject_id, source), np.int64)
                              for t in timelines])
    return pd.DataFrame({
        "subject_id": subject,
        "time": np.concatenate([t.times for t in timelines]).astype("datetime64[us]"),
        "code": np.concatenate([t.codes for t in timelines]).astype(object),
        "numeric_value": np.concatenate([t.values for t in timelines]).astype(np.float32)})


def _integer_id(subject: str, source: str) -> int:
    try:
        return int(subject)
    except ValueError:
        raise BiofmError(f"column 'subject_id', subject {subject!r}: MEDS subject ids are "
                         "integers", path=source or None,
                         fix="map the subject ids to integers before converting") from None


def write_meds(timelines: Iterable[Timeline], output: str | Path, *, dataset_name: str,
               codes: Mapping[str, str] | None = None, splits: Mapping[str, str] | None = None,
               overwrite: bool = False, source: str = "") -> dict:
    """Write the MEDS layout (module docstring) atomically: a temporary sibling
    directory replaces `output` once complete (an old one, with `overwrite`, is
    deleted only then)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import biofm

    output = Path(output)
    _check_output(output, overwrite, source)
    frame = events_frame(timelines, source)
    schema = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")),
                        ("code", pa.string()), ("numeric_value", pa.float32())])
    make_dirs(output.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        groups = {"": frame} if splits is None else dict(list(frame.groupby(
            frame["subject_id"].astype(str).map(splits).fillna("train"), sort=False)))
        for name, part in groups.items():
            shard = tmp / "data" / name / "0.parquet" if name else tmp / "data" / "0.parquet"
            make_dirs(shard.parent)
            pq.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False), shard)
        make_dirs(tmp / "metadata")
        (tmp / "metadata" / "dataset.json").write_text(json.dumps({
            "dataset_name": dataset_name, "dataset_version": "", "etl_name": "biofm",
            "etl_version": getattr(biofm, "__version__", ""), "meds_version": MEDS_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat()}, indent=1))
        described = pd.DataFrame({"code": list((codes or {}).keys()),
                                  "description": list((codes or {}).values())})
        described.to_parquet(tmp / "metadata" / "codes.parquet", index=False)
        if splits is not None:
            subjects = np.unique(frame["subject_id"])
            pd.DataFrame({"subject_id": subjects,
                          "split": [splits.get(str(s), "train") for s in subjects]}).to_parquet(
                tmp / "metadata" / "subject_splits.parquet", index=False)
        swap_in_directory(tmp, output)  # an old output (empty, or `overwrite`) goes after
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"output": str(output), "subjects": int(frame["subject_id"].nunique()),
            "events": len(frame), "codes": int(frame["code"].nunique())}


__all__ = ["COHORTS", "MEDS_VERSION", "SOURCE_FORMATS", "convert_to_meds", "events_frame",
           "write_meds"]
