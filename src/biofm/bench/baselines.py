"""Classical baselines: a featurizer and a classical model, declared per modality.

    Baseline("RF on Morgan fingerprints", per_input(morgan_fingerprints), "random-forest")

A modality lists its baselines in `Modality.baselines`; `biofm compare` runs
each on the same split as the transfer methods. Featurizers see the whole
`Splits`, so one that fits something (PCA) fits it on the training split only.
Models: "linear" (logistic / ridge regression on standardised features, strength
chosen on the validation split), "linear-raw" (the same on the features as given,
which may be scipy sparse: TF-IDF, already scaled per document) and
"random-forest" (200 trees, seeded); "gradient-boosting" (histogram
gradient-boosted trees, seeded; what MEDS-Tab-style EHR baselines use); "cox"
(time to event: a penalised Cox proportional-hazards model, lifelines' CoxPHFitter,
on standardised features, the penalizer chosen on the validation concordance).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

from biofm.data.tasks import Splits
from biofm.errors import BiofmError

Features = tuple[np.ndarray, np.ndarray, np.ndarray]  # train, valid, test: (N, F) each
Featurizer = Callable[[Splits, int], Features]
Model = Literal["linear", "linear-raw", "random-forest", "gradient-boosting", "cox"]
COX_PENALIZERS = (0.01, 0.1, 1.0)  # lifelines' penalizer (elastic net, l1_ratio 0: ridge)
RAW_STRENGTHS = (0.01, 0.1, 1.0, 10.0)  # "linear-raw": 1/C of the logistic, alpha of the ridge


@dataclass(frozen=True)
class Baseline:
    """`label` (as in result tables), `featurize(splits, seed)`, `model`, and the task
    kinds it applies to."""

    label: str
    featurize: Featurizer
    model: Model
    kinds: tuple[str, ...] = ("classification", "regression")

    def predict(self, kind: str, splits: Splits, seed: int) -> np.ndarray:
        """Test-split predictions: probabilities (binary (N,), multiclass (N, C)), values,
        or (survival) risk scores (N,)."""
        x_train, x_valid, x_test = self.featurize(splits, seed)
        if self.model == "cox":
            return _cox(x_train, splits.train.labels, x_valid, splits.valid.labels, x_test)
        if self.model == "linear":
            from biofm.adapt.probe import LinearProbe

            probe = LinearProbe.fit(kind, x_train, splits.train.labels, x_valid,
                                    splits.valid.labels)
            return probe.predict(x_test)
        if self.model == "linear-raw":
            return _raw_linear(kind, x_train, splits.train.labels, x_valid, splits.valid.labels,
                               x_test)
        if self.model == "gradient-boosting":
            return _boosted(kind, x_train, splits.train.labels, x_test, seed)
        return _forest(kind, x_train, splits.train.labels, x_test, seed)


def per_input(featurize: Callable[[Sequence], np.ndarray]) -> Featurizer:
    """A featurizer of one input list → (N, F), applied to each split alone."""
    def apply(splits: Splits, seed: int) -> Features:
        return (featurize(splits.train.inputs), featurize(splits.valid.inputs),
                featurize(splits.test.inputs))
    apply.__name__ = getattr(featurize, "__name__", "per_input")
    return apply


def _raw_linear(kind: str, x_train, y_train: np.ndarray, x_valid, y_valid: np.ndarray,
                x_test) -> np.ndarray:
    """Logistic / ridge regression (multilabel: one logistic regression per label) on
    unscaled (possibly sparse) features, the strength with the best validation primary
    metric."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from biofm.bench.metrics import (classification_metrics, multilabel_metrics, primary_metric,
                                     regression_metrics)

    metric, higher = primary_metric(kind)
    best = None
    for strength in RAW_STRENGTHS:
        if kind == "regression":
            model = Ridge(alpha=strength).fit(x_train, y_train)
            valid = model.predict(x_valid)
            score = regression_metrics(y_valid, valid)[metric]
        elif kind == "multilabel":  # one logistic regression per label column
            from sklearn.multiclass import OneVsRestClassifier

            model = OneVsRestClassifier(LogisticRegression(C=1.0 / strength, max_iter=2000))
            with warnings.catch_warnings():  # a label never positive in training: constant
                warnings.filterwarnings("ignore", "Label not .* present in all training")
                model.fit(x_train, y_train)
            score = multilabel_metrics(y_valid, model.predict_proba(x_valid))[metric]
        else:
            model = LogisticRegression(C=1.0 / strength, max_iter=2000).fit(x_train, y_train)
            valid = model.predict_proba(x_valid)
            score = classification_metrics(y_valid, valid)[metric]
        if best is None or np.isnan(best[0]) or (score > best[0] if higher else score < best[0]):
            best = (score, model)
    model = best[1]
    if kind == "regression":
        return model.predict(x_test)
    proba = model.predict_proba(x_test)
    return proba[:, 1] if proba.shape[1] == 2 and kind != "multilabel" else proba


def _cox(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
         x_test: np.ndarray) -> np.ndarray:
    """Risk scores (partial hazards) of the test rows from a ridge-penalised Cox model on the
    training features standardised (constant columns dropped), the penalizer with the best
    validation concordance (a fit that converged only loosely is scored like the others:
    the validation concordance decides)."""
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    from biofm.bench.metrics import survival_metrics

    x_train = np.asarray(x_train, dtype=np.float64)
    keep = np.flatnonzero(x_train.std(0) > 0)
    mean, scale = x_train[:, keep].mean(0), x_train[:, keep].std(0)

    def frame(x: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame((np.asarray(x, dtype=np.float64)[:, keep] - mean) / scale,
                            columns=[f"x{j}" for j in keep])

    train = frame(x_train).assign(_time=y_train[:, 0], _event=y_train[:, 1])
    best = None
    for penalizer in COX_PENALIZERS:
        try:
            with warnings.catch_warnings():  # a loosely converged fit still gets scored
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = CoxPHFitter(penalizer=penalizer).fit(train, "_time", "_event")
        except ConvergenceError:  # too weak a penalty for these features: try the next
            continue
        score = survival_metrics(y_valid, model.predict_partial_hazard(frame(x_valid)).to_numpy()
                                 )["c_index"]
        if best is None or score > best[0] or np.isnan(best[0]):
            best = (score, model)
    if best is None:
        raise BiofmError("the Cox model did not converge at any penalizer "
                         f"{COX_PENALIZERS}", fix="check the features and the survival labels")
    return best[1].predict_partial_hazard(frame(x_test)).to_numpy()


def _forest(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
            seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if kind == "regression":
        model = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=-1)
        return model.fit(x_train, y_train).predict(x_test)
    forest = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=-1)
    proba = forest.fit(x_train, y_train).predict_proba(x_test)
    return proba[:, 1] if proba.shape[1] == 2 else proba


def _boosted(kind: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
             seed: int) -> np.ndarray:
    """Histogram gradient-boosted trees (scikit-learn defaults: 100 iterations, early
    stopping on a seeded 10% of the training rows when there are more than 10,000)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if kind == "regression":
        return HistGradientBoostingRegressor(random_state=seed).fit(x_train, y_train).predict(
            x_test)
    boosted = HistGradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
    proba = boosted.predict_proba(x_test)
    return proba[:, 1] if proba.shape[1] == 2 else proba


__all__ = ["Baseline", "Features", "Featurizer", "per_input"]
