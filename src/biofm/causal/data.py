"""Treatment-effect data: covariates, a binary treatment, an outcome, and, for
simulations, the true expected potential outcomes.

    data = load_acic2016(simulation=1)   # 4,802 units, 58 covariates, mu0 / mu1 known
    data = load_nhefs()                  # 1,566 smokers, qsmk → wt82_71, no ground truth
    data = read_effect_csv("trial.csv", treatment="arm", outcome="y")

Covariates stay a DataFrame of float64 columns and pandas categorical columns
(text columns, and the coded categories of NHEFS). Categories are fixed when
the data is loaded, so every subset one-hot encodes to the same columns
(`design`) and the transformer gives each level the same token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from biofm.data.packaged import package_file
from biofm.errors import BiofmError, require_file

__all__ = [
    "ACIC_SIMULATIONS",
    "NHEFS_CONFOUNDERS",
    "EffectData",
    "load_acic2016",
    "load_nhefs",
    "parse_simulations",
    "read_effect_csv",
]

ACIC_DIR = "datasets/data/acic_challenge_2016"
ACIC_SIMULATIONS = range(1, 11)  # causallib ships one instance of 10 of the 77 settings
NHEFS_FILE = "datasets/data/nhefs/NHEFS.csv"
# Hernán & Robins, "Causal Inference: What If", ch. 12-13 (programs 12.2, 13.2):
# education, exercise and active enter as categories; age, smokeintensity,
# smokeyrs and wt71 also as squares.
NHEFS_CONFOUNDERS = ("sex", "race", "age", "education", "smokeintensity", "smokeyrs",
                     "exercise", "active", "wt71")
NHEFS_CATEGORICAL = ("education", "exercise", "active")
NHEFS_SQUARED = ("age", "smokeintensity", "smokeyrs", "wt71")
MAX_LEVELS = 50  # a text column with more distinct values is an identifier, not a covariate


@dataclass(frozen=True)
class EffectData:
    """N units of an observational (or simulated) study.

    covariates: (N, K) float64 and categorical columns
    treatment:  (N,) int64, 0 = control, 1 = treated
    outcome:    (N,) float64, the observed (factual) outcome
    mu0, mu1:   (N,) true expected outcomes under control / treatment (simulations only)
    """

    name: str
    covariates: pd.DataFrame
    treatment: np.ndarray
    outcome: np.ndarray
    mu0: np.ndarray | None = None
    mu1: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.treatment)

    @property
    def true_cate(self) -> np.ndarray | None:
        """(N,) mu1 - mu0, when the data was simulated."""
        return None if self.mu0 is None or self.mu1 is None else self.mu1 - self.mu0

    def subset(self, index: np.ndarray) -> EffectData:
        """The units at `index` (row positions), in that order."""
        return replace(self, covariates=self.covariates.iloc[index].reset_index(drop=True),
                       treatment=self.treatment[index], outcome=self.outcome[index],
                       mu0=None if self.mu0 is None else self.mu0[index],
                       mu1=None if self.mu1 is None else self.mu1[index])

    def design(self) -> np.ndarray:
        """(N, D) float64 matrix for the classical estimators: numeric columns as they
        are, each categorical column one-hot with its first level dropped (the
        same columns for every subset)."""
        return pd.get_dummies(self.covariates, drop_first=True, dtype=float).to_numpy()


def load_acic2016(simulation: int = 1) -> EffectData:
    """ACIC 2016 (Dorie et al. 2019) as shipped by causallib: x.csv holds the 58
    real covariates (x_2, x_21, x_24 are text categories), zymu_<k>.csv the
    simulated treatment z, noisy potential outcomes y0 / y1 and their means
    mu0 / mu1. The observed outcome is y1 where z = 1, else y0."""
    if simulation not in ACIC_SIMULATIONS:
        raise BiofmError(f"ACIC 2016 simulation {simulation} is not shipped",
                         fix=f"choose simulations {ACIC_SIMULATIONS.start}-"
                             f"{ACIC_SIMULATIONS.stop - 1}")
    x = pd.read_csv(package_file("causallib", f"{ACIC_DIR}/x.csv"))
    sim_path = package_file("causallib", f"{ACIC_DIR}/zymu_{simulation}.csv")
    sim = pd.read_csv(sim_path)
    z = sim["z"].to_numpy().astype(np.int64)
    y = np.where(z == 1, sim["y1"], sim["y0"]).astype(float)
    return EffectData(f"acic2016-{simulation}", _typed_covariates(x), z, y,
                      mu0=sim["mu0"].to_numpy(float), mu1=sim["mu1"].to_numpy(float),
                      source=str(sim_path))


def load_nhefs() -> EffectData:
    """NHEFS (Hernán & Robins): the effect of quitting smoking (qsmk, 1971-82) on
    weight gain (wt82_71, kg). As in the book, the 63 smokers whose 1982 weight is
    missing are left out (1,566 of 1,629 remain), and the covariates are the nine
    confounders with education, exercise and active as categories and age,
    smokeintensity, smokeyrs and wt71 also squared ("age^2", ...)."""
    path = package_file("causallib", NHEFS_FILE)
    raw = pd.read_csv(path)
    raw = raw[raw["wt82_71"].notna()].reset_index(drop=True)
    x = raw[list(NHEFS_CONFOUNDERS)].astype(float)
    for column in NHEFS_CATEGORICAL:
        x[column] = pd.Categorical(raw[column].astype(int))
    for column in NHEFS_SQUARED:
        x[f"{column}^2"] = x[column] ** 2
    return EffectData("nhefs", x, raw["qsmk"].to_numpy().astype(np.int64),
                      raw["wt82_71"].to_numpy(float), source=str(path))


def read_effect_csv(path: str | Path, treatment: str, outcome: str,
                    covariates: Sequence[str] | None = None) -> EffectData:
    """A user's CSV: one row per unit, `treatment` coded 0 / 1 (or true / false),
    a numeric `outcome`, and covariates (default: every other column). Text
    columns become categories; missing values are refused (impute or drop first)."""
    path = require_file(path, "CSV file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise BiofmError(f"cannot read the file as CSV ({exc})", path=path,
                         fix="pass a comma-separated file with a header row") from None
    columns = list(frame.columns)
    for flag, name in (("--treatment", treatment), ("--outcome", outcome)):
        _require_column(frame, name, path, flag)
    if covariates:
        for name in covariates:
            _require_column(frame, name, path, "--covariates")
        names = list(dict.fromkeys(covariates))
    else:
        names = [c for c in columns if c not in (treatment, outcome)]
    if not names:
        raise BiofmError("the file has no covariate columns besides the treatment and outcome",
                         path=path, fix="add the confounders as columns")
    for name in (treatment, outcome):
        if name in names:
            raise BiofmError(f"column {name!r} is both a covariate and the treatment or outcome",
                             path=path, fix="leave it out of --covariates")
    t = _binary_treatment(frame[treatment], path)
    y = _numeric_outcome(frame[outcome], path)
    x = frame[names]
    _no_missing(x, path)
    return EffectData(path.stem, _typed_covariates(x, path), t, y, source=str(path))


def parse_simulations(text: str) -> list[int]:
    """"1-3" → [1, 2, 3]; "1,4,7" → [1, 4, 7]; ranges and lists mix ("1-3,8")."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise BiofmError(f"cannot read simulations {text!r}",
                             fix="write a range or a list within 1-10, e.g. 1-3 or 1,4,7")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        out += range(low, high + 1)
    bad = [s for s in out if s not in ACIC_SIMULATIONS]
    if bad or not out:
        raise BiofmError(f"simulations {text!r}: causallib ships ACIC 2016 simulations 1-10",
                         fix="choose simulations within 1-10, e.g. --simulations 1-3")
    return list(dict.fromkeys(out))


def _typed_covariates(x: pd.DataFrame, path: Path | None = None) -> pd.DataFrame:
    """Numbers and booleans as float64; text as categories (levels sorted)."""
    out = {}
    for name in x.columns:
        column = x[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype(float)
            continue
        levels = sorted(column.astype(str).unique())
        if len(levels) > MAX_LEVELS:
            raise BiofmError(f"text column {name!r} has {len(levels)} distinct values, too many "
                             "for a category (an identifier?)", path=path,
                             fix="leave it out with --covariates, or code it as numbers")
        out[name] = pd.Categorical(column.astype(str), categories=levels)
    return pd.DataFrame(out)


def _require_column(frame: pd.DataFrame, name: str, path: Path, flag: str) -> None:
    if name not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:20])) + (" ..." if frame.shape[1] > 20 else "")
        raise BiofmError(f"no column {name!r} (the columns are: {shown})", path=path,
                         fix=f"pass an existing column to {flag}")


def _binary_treatment(column: pd.Series, path: Path) -> np.ndarray:
    """0 / 1 (numbers, booleans or the words true / false) → int64; anything else raises."""
    if column.isna().any():
        line = int(np.flatnonzero(column.isna().to_numpy())[0]) + 2
        raise BiofmError(f"treatment column {column.name!r} is empty on {int(column.isna().sum())}"
                         " row(s)", path=path, record=line,
                         fix="drop the rows without a treatment")
    text = column.astype(str).str.strip().str.lower()
    words = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
    if not text.isin(list(words)).all():
        found = ", ".join(map(repr, sorted(column.astype(str).unique())[:8]))
        raise BiofmError(f"treatment column {column.name!r} is not binary (values: {found})",
                         path=path, fix="code the treatment as 0 (control) and 1 (treated); "
                                        "compare two arms at a time")
    t = text.map(words).to_numpy().astype(np.int64)
    for arm in (0, 1):
        if (t == arm).sum() < 2:
            raise BiofmError(f"treatment column {column.name!r} has {(t == arm).sum()} unit(s) "
                             f"with treatment {arm}", path=path,
                             fix="an effect needs treated and control units (at least 2 each)")
    return t


def _numeric_outcome(column: pd.Series, path: Path) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2
        raise BiofmError(f"outcome column {column.name!r} is empty or not a number on "
                         f"{int(bad.sum())} row(s) (first: {column.iloc[line - 2]!r})",
                         path=path, record=line,
                         fix="drop those rows (a censored outcome cannot be used here)")
    return values.to_numpy(float)


def _no_missing(x: pd.DataFrame, path: Path) -> None:
    missing = x.isna()
    if missing.to_numpy().any():
        name = missing.any().idxmax()
        line = int(np.flatnonzero(missing[name].to_numpy())[0]) + 2
        raise BiofmError(f"covariate {name!r} is empty on {int(missing[name].sum())} row(s)",
                         path=path, record=line,
                         fix="impute or drop those rows, or leave the column out with "
                             "--covariates")
