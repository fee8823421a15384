"""`biofm effects`: TransTEE against classical estimators, as a ResultTable.

    table = run_effects("acic2016", "out/", simulations="1-3", seeds=3)  # default: "1"
    table = run_effects("nhefs", "out/")
    table = run_effects("trial.csv", "out/", treatment="arm", outcome="y")

ACIC 2016 (simulated outcomes, true effects known): per simulation the units
are split 80 / 20 within each arm; every method fits on the 80% and is scored
on them (in-sample: pehe_in, ate_err_in) and on the 20% it never saw
(out-of-sample: pehe_out, ate_err_out; IPW needs outcomes, so it has no
out-of-sample score). One row per (method, simulation): the summary's mean ± sd
is over simulations (the column ResultTable calls `seeds` counts them).
cover_in is 1 when the method's 95% ATE interval holds the in-sample ATE.

NHEFS or a user's CSV (no ground truth): every method fits on all units and
reports its ATE and 95% interval; per-unit CATE go to cate.csv.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from biofm.bench.report import ResultTable
from biofm.causal.data import (
    EffectData,
    load_acic2016,
    load_nhefs,
    parse_simulations,
    read_effect_csv,
)
from biofm.causal.estimators import (
    IPW,
    Effects,
    Estimator,
    SLearner,
    Standardisation,
    TLearner,
    XLearner,
    bootstrap_intervals,
)
from biofm.causal.metrics import ate_error, covers, pehe
from biofm.causal.transtee import TransTEEConfig, TransTEEEstimator
from biofm.data.splits import random_split
from biofm.errors import BiofmError
from biofm.io import atomic_write_text, check_new_output, make_dirs

__all__ = ["BASELINES", "METHODS", "effects_note", "run_effects"]

BASELINES: dict[str, Callable[[int], Estimator]] = {
    "s-learner-gbm": SLearner, "t-learner-gbm": TLearner, "x-learner-gbm": XLearner,
    "ipw-logistic": IPW, "standardisation-ols": Standardisation}
METHODS = ("transtee", *BASELINES)
BOOTSTRAP_DEFAULT = {"acic2016": 0, "table": 30}  # acic: the spread over simulations
ACIC_UNITS = 1000  # default subset of ACIC's 4,802 units per simulation (0: all)
TEST_FRACTION = 0.2

Log = Callable[[str], None]


def effects_note(data: str) -> str:
    """What the table's columns mean, for printing under it."""
    if data == "acic2016":
        return ("in: the 80% of units each method fit on; out: the 20% held out. "
                "pehe = sqrt(mean((cate_hat - (mu1 - mu0))^2)); ate_err = |ATE_hat - ATE|; "
                "cover_in: the 95% ATE interval holds the in-sample ATE. Mean ± sd over "
                "simulations (the 'seeds' column counts them).")
    return ("ATE with its 95% interval (transtee: over its bootstrap members; others: "
            "percentile bootstrap over units); no ground truth. Per-unit effects: cate.csv.")


def run_effects(data: str = "acic2016", output: str | Path | None = None, *,
                simulations: str | Sequence[int] = "1", seeds: int = 3,
                units: int | None = None, bootstrap: int | None = None,
                steps: int | None = None,
                methods: Sequence[str] | None = None, treatment: str | None = None,
                outcome: str | None = None, covariates: Sequence[str] | None = None,
                config: TransTEEConfig | None = None, seed: int = 0, device: str = "cpu",
                overwrite: bool = False, log: Log | None = None) -> ResultTable:
    """Estimate effects on `data` ("acic2016", "nhefs" or a CSV path) with TransTEE
    (`seeds` bootstrap members) and the baselines; write results.md / .csv (and
    cate.csv without ground truth) to `output` when given; return the table.

    units: a random subset of this many units, 0 all (default: 1,000 of ACIC's 4,802
        per simulation; all of any other data).
    bootstrap: replicates for the baselines' intervals (default 0 on ACIC, 30 otherwise).
    steps: TransTEE's optimizer steps per member at most (default: `config.max_steps`).
    """
    methods = _check_methods(methods)
    kind = "acic2016" if data == "acic2016" else "table"
    replicates = BOOTSTRAP_DEFAULT[kind] if bootstrap is None else bootstrap
    _check_counts(seeds=seeds, steps=steps, bootstrap=replicates)
    config = (config or TransTEEConfig()).replace(
        members=seeds, **({} if steps is None else {"max_steps": steps}))
    if output is not None:
        check_new_output(Path(output) / "results.md", overwrite, "results table")
    make = _factory(config, device)
    table, cate, sims = ResultTable(), None, None
    if kind == "acic2016":
        if treatment or outcome or covariates:
            raise BiofmError("--treatment, --outcome and --covariates are for a CSV; ACIC 2016 "
                             "names its own", fix="leave them out with --data acic2016")
        sims = parse_simulations(simulations) if isinstance(simulations, str) else list(simulations)
        units = ACIC_UNITS if units is None else units
    else:
        table_data = _subsample(_load_table(data, treatment, outcome, covariates), units, seed)
    # one OpenMP thread for gradient boosting: on a busy 2-core machine an X-learner
    # fit took 13-33 s with two threads and 1-2 s with one (the workers spin-wait)
    with threadpool_limits(1):
        for sim in sims or ():
            sim_data = _subsample(load_acic2016(sim), units, seed + sim)
            _score_simulation(table, sim_data, sim, methods, make, replicates, seed, log)
        if sims is None:
            cate = _estimate_table(table, table_data, methods, make, replicates, seed, log)
    if output is not None:
        settings = {"data": data, "simulations": sims, "units": units or "all",
                    "bootstrap": replicates, "methods": methods, "seed": seed,
                    "transtee": config.model_dump(mode="json"), "note": effects_note(data)}
        _write(Path(output), table, cate, settings)
    return table


def _check_counts(seeds: int, steps: int | None, bootstrap: int) -> None:
    for flag, value, least in (("--seeds", seeds, 1), ("--steps", steps, 1),
                               ("--bootstrap", bootstrap, 0)):
        if value is not None and value < least:
            raise BiofmError(f"{flag} must be at least {least}, got {value}",
                             fix=f"pass {flag} {least} or more")


def _check_methods(methods: Sequence[str] | None) -> list[str]:
    chosen = list(methods) if methods else list(METHODS)
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise BiofmError(f"unknown method(s) {', '.join(map(repr, unknown))}",
                         fix=f"choose from: {', '.join(METHODS)}")
    return list(dict.fromkeys(chosen))


def _factory(config: TransTEEConfig, device: str) -> Callable[[str, int], Estimator]:
    def make(method: str, seed: int) -> Estimator:
        if method == "transtee":
            return TransTEEEstimator(seed, config, device)
        return BASELINES[method](seed)
    return make


def _load_table(data: str, treatment: str | None, outcome: str | None,
                covariates: Sequence[str] | None) -> EffectData:
    if data == "nhefs":
        if treatment or outcome or covariates:
            raise BiofmError("--treatment, --outcome and --covariates are for a CSV; NHEFS uses "
                             "qsmk, wt82_71 and the book's confounders",
                             fix="leave them out with --data nhefs")
        return load_nhefs()
    if not data.lower().endswith(".csv") and not Path(data).is_file():
        raise BiofmError(f"unknown data {data!r}",
                         fix="use --data acic2016, --data nhefs, or a CSV file with "
                             "--treatment COL --outcome COL")
    if not treatment or not outcome:
        raise BiofmError("a CSV needs its treatment and outcome columns named", path=data,
                         fix="pass --treatment COL --outcome COL")
    return read_effect_csv(data, treatment, outcome, covariates)


def _subsample(data: EffectData, units: int | None, seed: int) -> EffectData:
    """`units` random units (in their original order), or all of them."""
    if not units or units >= len(data):
        return data
    if units < 20:
        raise BiofmError(f"--units {units} is too few to estimate an effect",
                         fix="pass --units 20 or more (0: all units)")
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(len(data), size=units, replace=False)))


def _score_simulation(table: ResultTable, data: EffectData, sim: int, methods: list[str],
                      make: Callable[[str, int], Estimator], replicates: int, seed: int,
                      log: Log | None) -> None:
    """Fit each method on 80% of the units and score it on both parts against mu1 - mu0."""
    split = random_split(len(data), (1 - TEST_FRACTION, 0.0, TEST_FRACTION), seed=seed + sim,
                         stratify=data.treatment)
    fit_units, test_units = data.subset(split.train), data.subset(split.test)
    truth_in, truth_out = fit_units.true_cate, test_units.true_cate
    for method in methods:
        start = time.perf_counter()
        est = make(method, seed).fit(fit_units)
        inside = est.estimate(fit_units)
        outside = est.estimate(test_units) if est.gives_cate else None
        seconds = time.perf_counter() - start
        if method != "transtee" and replicates:
            points = [(fit_units, inside)] + ([(test_units, outside)] if outside else [])
            bootstrap_intervals(lambda s, m=method: make(m, s), fit_units, points, replicates,
                                seed)
        nan = float("nan")
        metrics = {
            "pehe_in": pehe(inside.cate, truth_in) if inside.cate is not None else nan,
            "pehe_out": pehe(outside.cate, truth_out) if outside is not None else nan,
            "ate_err_in": ate_error(inside.ate, truth_in),
            "ate_err_out": ate_error(outside.ate, truth_out) if outside is not None else nan,
            "cover_in": covers(inside.ate_low, inside.ate_high, truth_in),
            "seconds": seconds}
        table.add("acic2016", method, sim, metrics)
        if log is not None:
            log(f"acic2016 simulation {sim} ({len(data)} units), {method}: "
                f"pehe_in {metrics['pehe_in']:.3f}, pehe_out {metrics['pehe_out']:.3f}, "
                f"ate_err_in {metrics['ate_err_in']:.3f} ({seconds:.1f} s)")


def _estimate_table(table: ResultTable, data: EffectData, methods: list[str],
                    make: Callable[[str, int], Estimator], replicates: int, seed: int,
                    log: Log | None) -> pd.DataFrame:
    """Every method on all units: ATE and interval rows; per-unit effects as a frame."""
    cate = pd.DataFrame({"row": np.arange(len(data)), "treatment": data.treatment,
                         "outcome": data.outcome})
    for method in methods:
        start = time.perf_counter()
        est = make(method, seed).fit(data)
        effects = est.estimate(data)
        seconds = time.perf_counter() - start
        if method != "transtee" and replicates:
            bootstrap_intervals(lambda s, m=method: make(m, s), data, [(data, effects)],
                                replicates, seed)
        table.add(data.name, method, seed, {"ate": effects.ate, "ate_lo": effects.ate_low,
                                            "ate_hi": effects.ate_high, "seconds": seconds})
        _add_unit_columns(cate, method, effects)
        if log is not None:
            log(f"{data.name} ({len(data)} units), {method}: ATE {effects.ate:.3f} "
                f"[{effects.ate_low:.3f}, {effects.ate_high:.3f}] ({seconds:.1f} s)")
    return cate


def _add_unit_columns(cate: pd.DataFrame, method: str, effects: Effects) -> None:
    for suffix, values in (("y0", effects.y0), ("y1", effects.y1), ("cate", effects.cate),
                           ("cate_lo", effects.cate_low), ("cate_hi", effects.cate_high)):
        if values is not None:
            cate[f"{method}_{suffix}"] = values


def _write(directory: Path, table: ResultTable, cate: pd.DataFrame | None,
           settings: dict) -> None:
    make_dirs(directory)
    table.save(directory)
    atomic_write_text(directory / "settings.json", json.dumps(settings, indent=2) + "\n")
    if cate is not None:
        atomic_write_text(directory / "cate.csv", cate.to_csv(index=False, float_format="%.6g"))
