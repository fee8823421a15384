"""Small EHR files written by the tests themselves: MEDS, events CSV, OMOP CSV tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

T0 = np.datetime64("2020-01-01", "us")
CODES = ("ICD10CM/E11.9", "ICD10CM/I10", "LOINC/2085-9", "SNOMED/44054006", "RxNorm/860975")


def day(n: int) -> np.datetime64:
    return T0 + np.timedelta64(n, "D")


def meds_frame(rows: list[tuple]) -> pd.DataFrame:
    """(subject_id, time or None, code, value or None) rows → a MEDS table."""
    return pd.DataFrame({
        "subject_id": np.array([r[0] for r in rows], dtype=np.int64),
        "time": pd.Series([r[1] for r in rows], dtype="datetime64[us]"),
        "code": [r[2] for r in rows],
        "numeric_value": pd.Series([r[3] for r in rows], dtype="float32")})


def write_meds_dir(root: Path, frame: pd.DataFrame) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "data" / "0.parquet", index=False)
    return root


def cohort(n: int, seed: int, planted_after: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` subjects with random events before day 0 and labels at day 0; label-1 subjects get
    the code ICD10CM/Z99.9 on day 10 (after the prediction time) when `planted_after`,
    else on day -10 (before it: a positive control that leaks)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for s in range(1, n + 1):
        rows.append((s, None, "Gender/F" if rng.random() < 0.5 else "Gender/M", None))
        rows.append((s, day(-int(rng.integers(20, 70)) * 365), "MEDS_BIRTH", None))
        for d in sorted(rng.integers(-900, -30, size=int(rng.integers(3, 12)))):
            code = CODES[int(rng.integers(len(CODES)))]
            value = float(rng.normal(50, 10)) if code.startswith("LOINC") else None
            rows.append((s, day(int(d)), code, value))
        y = int(rng.random() < 0.4)
        if y:
            rows.append((s, day(10 if planted_after else -10), "ICD10CM/Z99.9", None))
        if y and planted_after:  # and more of it later: a strong signal, if it leaked
            rows.append((s, day(40), "ICD10CM/Z99.9", None))
        labels.append((s, T0, bool(y)))
    frame = meds_frame(sorted(rows, key=lambda r: (r[0], r[1] is not None,
                                                    r[1] if r[1] is not None else T0)))
    label_frame = pd.DataFrame({"subject_id": [l[0] for l in labels],
                                "prediction_time": pd.Series([l[1] for l in labels],
                                                             dtype="datetime64[us]"),
                                "boolean_value": [l[2] for l in labels]})
    return frame, label_frame


@pytest.fixture
def small_meds(tmp_path: Path) -> Path:
    """Two subjects: 1 with a birth, labs and a diagnosis; 2 with a death and events after."""
    frame = meds_frame([
        (1, None, "Gender/F", None), (1, day(-365 * 40), "MEDS_BIRTH", None),
        (1, day(0), "LOINC/2085-9", 45.0), (1, day(0), "ICD10CM/E11.9", None),
        (1, day(30), "LOINC/2085-9", 60.0),
        (2, day(-365 * 70), "MEDS_BIRTH", None), (2, day(5), "ICD10CM/I10", None),
        (2, day(6), "MEDS_DEATH", None)])
    return write_meds_dir(tmp_path / "meds", frame)
