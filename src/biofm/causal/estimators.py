"""Classical treatment-effect estimators, one small class each, and the bootstrap.

    est = TLearner(seed=0)
    est.fit(train)                 # EffectData with treatment and outcome
    effects = est.estimate(units)  # Effects: ATE, and CATE per unit where the method has one

Meta-learners (Künzel et al. 2019) on scikit-learn's histogram gradient
boosting: S (one model of y on [x, t]), T (one model per arm), X (T's models
impute each unit's effect, one model per arm regresses it, mixed by the
propensity). IPW: a logistic propensity, truncated to [0.01, 0.99], Hajek
(normalised) weights; it estimates the ATE of the units it is given (their
outcomes are needed), no CATE. Standardisation (the g-formula): least squares
of y on x, t and t·x, averaged over the units with t set to 1 and to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from biofm.causal.data import EffectData

__all__ = ["IPW", "Effects", "Estimator", "SLearner", "Standardisation", "TLearner", "XLearner",
           "bootstrap_intervals", "ipw_ate", "percentile_interval", "resample_units"]

PROPENSITY_CLIP = 0.01
LEVEL = 0.95


@dataclass
class Effects:
    """An estimator's answer for a set of units.

    ate: the average treatment effect over the units
    cate: (N,) per-unit conditional effects (None: the method gives only the ATE)
    ate_low / ate_high: the interval of the ATE (NaN: none computed)
    cate_low / cate_high: (N,) per-unit intervals
    y0 / y1: (N,) predicted potential outcomes, where the method predicts them
    """

    ate: float
    cate: np.ndarray | None = None
    ate_low: float = float("nan")
    ate_high: float = float("nan")
    cate_low: np.ndarray | None = None
    cate_high: np.ndarray | None = None
    y0: np.ndarray | None = None
    y1: np.ndarray | None = None


class Estimator(Protocol):
    name: str
    gives_cate: bool  # False: `estimate` needs the units' treatment and outcome (IPW)

    def fit(self, data: EffectData) -> Estimator: ...

    def estimate(self, data: EffectData) -> Effects: ...


def _gbm(seed: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(random_state=seed)


def _with_treatment(x: np.ndarray, t: np.ndarray | int) -> np.ndarray:
    return np.column_stack([x, np.broadcast_to(t, (len(x),)).astype(float)])


def _from_potential(y0: np.ndarray, y1: np.ndarray) -> Effects:
    cate = y1 - y0
    return Effects(float(cate.mean()), cate, y0=y0, y1=y1)


class SLearner:
    """One gradient-boosting model of y on [x, t]; CATE = f(x, 1) - f(x, 0)."""

    name, gives_cate = "s-learner-gbm", True

    def __init__(self, seed: int = 0) -> None:
        self.model = _gbm(seed)

    def fit(self, data: EffectData) -> SLearner:
        self.model.fit(_with_treatment(data.design(), data.treatment), data.outcome)
        return self

    def estimate(self, data: EffectData) -> Effects:
        x = data.design()
        return _from_potential(self.model.predict(_with_treatment(x, 0)),
                               self.model.predict(_with_treatment(x, 1)))


class TLearner:
    """One gradient-boosting model per arm; CATE = f1(x) - f0(x)."""

    name, gives_cate = "t-learner-gbm", True

    def __init__(self, seed: int = 0) -> None:
        self.models = [_gbm(seed), _gbm(seed)]

    def fit(self, data: EffectData) -> TLearner:
        x = data.design()
        for arm, model in enumerate(self.models):
            model.fit(x[data.treatment == arm], data.outcome[data.treatment == arm])
        return self

    def estimate(self, data: EffectData) -> Effects:
        x = data.design()
        return _from_potential(self.models[0].predict(x), self.models[1].predict(x))


class XLearner:
    """T-learner outcome models impute effects (treated: y - f0(x); controls:
    f1(x) - y); one model per arm regresses them (tau1, tau0); CATE = e(x) tau0(x)
    + (1 - e(x)) tau1(x) with e a gradient-boosting propensity."""

    name, gives_cate = "x-learner-gbm", True

    def __init__(self, seed: int = 0) -> None:
        self.outcome = TLearner(seed)
        self.effect = [_gbm(seed), _gbm(seed)]
        self.propensity = HistGradientBoostingClassifier(random_state=seed)

    def fit(self, data: EffectData) -> XLearner:
        x, t, y = data.design(), data.treatment, data.outcome
        self.outcome.fit(data)
        f0, f1 = self.outcome.models
        treated, control = t == 1, t == 0
        self.effect[1].fit(x[treated], y[treated] - f0.predict(x[treated]))
        self.effect[0].fit(x[control], f1.predict(x[control]) - y[control])
        self.propensity.fit(x, t)
        return self

    def estimate(self, data: EffectData) -> Effects:
        x = data.design()
        e = np.clip(self.propensity.predict_proba(x)[:, 1], PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)
        cate = e * self.effect[0].predict(x) + (1 - e) * self.effect[1].predict(x)
        return Effects(float(cate.mean()), cate)


def ipw_ate(treatment: np.ndarray, outcome: np.ndarray, propensity: np.ndarray,
            clip: float = PROPENSITY_CLIP) -> float:
    """Hajek IPW estimate of the ATE: the weighted mean outcome of the treated
    (weights 1 / e) minus that of the controls (weights 1 / (1 - e)), each
    normalised by its sum of weights, with e truncated to [clip, 1 - clip].
    Stabilised weights (P(T = t) / e) give the same number: the constant cancels."""
    t = np.asarray(treatment, dtype=float)
    y = np.asarray(outcome, dtype=float)
    e = np.clip(np.asarray(propensity, dtype=float), clip, 1 - clip)
    w1, w0 = t / e, (1 - t) / (1 - e)
    return float((w1 * y).sum() / w1.sum() - (w0 * y).sum() / w0.sum())


class IPW:
    """Inverse-propensity weighting with a logistic propensity on standardised
    covariates (scikit-learn's default L2 penalty, C = 1)."""

    name, gives_cate = "ipw-logistic", False

    def __init__(self, seed: int = 0, clip: float = PROPENSITY_CLIP) -> None:
        self.clip = clip
        self.propensity = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    def fit(self, data: EffectData) -> IPW:
        self.propensity.fit(data.design(), data.treatment)
        return self

    def estimate(self, data: EffectData) -> Effects:
        e = self.propensity.predict_proba(data.design())[:, 1]
        return Effects(ipw_ate(data.treatment, data.outcome, e, self.clip))


class Standardisation:
    """Outcome regression (parametric g-formula): least squares of y on x, t and
    every t·x interaction; y0 / y1 predicted with t set to 0 / 1 for each unit."""

    name, gives_cate = "standardisation-ols", True

    def __init__(self, seed: int = 0) -> None:
        self.model = LinearRegression()

    @staticmethod
    def _features(x: np.ndarray, t: np.ndarray | int) -> np.ndarray:
        t = np.broadcast_to(t, (len(x),)).astype(float)[:, None]
        return np.hstack([x, t, t * x])

    def fit(self, data: EffectData) -> Standardisation:
        self.model.fit(self._features(data.design(), data.treatment), data.outcome)
        return self

    def estimate(self, data: EffectData) -> Effects:
        x = data.design()
        return _from_potential(self.model.predict(self._features(x, 0)),
                               self.model.predict(self._features(x, 1)))


def percentile_interval(samples: np.ndarray, level: float = LEVEL,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of `samples` along `axis`."""
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return low, high


def bootstrap_intervals(make: Callable[[int], Estimator], fit_data: EffectData,
                        points: list[tuple[EffectData, Effects]], replicates: int,
                        seed: int = 0) -> None:
    """Percentile bootstrap over units: refit `make(seed)` on `replicates`
    resamples of `fit_data` and fill each (units, effects) pair's intervals in place.

    For a CATE method each replicate predicts the CATE of the given units (their
    ATE is its mean); IPW, which needs outcomes, estimates the ATE of the
    resample itself (the in-sample ATE; other unit sets get no interval).
    """
    rng = np.random.default_rng(seed)
    ates: list[list[float]] = [[] for _ in points]
    cates: list[list[np.ndarray]] = [[] for _ in points]
    for r in range(replicates):
        resample = fit_data.subset(resample_units(rng, fit_data.treatment))
        est = make(seed + 1 + r).fit(resample)
        for k, (units, _) in enumerate(points):
            if est.gives_cate:
                cate = est.estimate(units).cate
                cates[k].append(cate)
                ates[k].append(float(cate.mean()))
            elif units is fit_data:
                ates[k].append(est.estimate(resample).ate)
    for (_, effects), ate, cate in zip(points, ates, cates):
        if ate:
            effects.ate_low, effects.ate_high = map(float, percentile_interval(np.array(ate)))
        if cate:
            effects.cate_low, effects.cate_high = percentile_interval(np.stack(cate))


def resample_units(rng: np.random.Generator, treatment: np.ndarray) -> np.ndarray:
    """Row indices drawn with replacement within each arm (both arms keep their size)."""
    return np.concatenate([rng.choice(arm, size=len(arm), replace=True)
                           for arm in (np.flatnonzero(treatment == 0),
                                       np.flatnonzero(treatment == 1))])
