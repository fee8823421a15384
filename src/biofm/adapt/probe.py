"""Linear probe on frozen embeddings: logistic or ridge regression with the
regularisation strength chosen on the validation split; for time to event, a
discrete-time hazard (`adapt.survival`) fitted as a logistic regression over
(subject, follow-up bin) rows: one weight vector, one intercept per bin. Stored as
plain arrays (no pickles) so a probe saves to safetensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from biofm.adapt.survival import person_period, survival_bins
from biofm.bench.metrics import kind_metrics, primary_metric

STRENGTHS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass
class LinearProbe:
    kind: str
    mean: np.ndarray  # (d,) feature standardisation
    scale: np.ndarray  # (d,)
    coef: np.ndarray  # (C, d) or (1, d)
    intercept: np.ndarray  # (C,) or (1,); survival: (K,) one per follow-up bin
    edges: np.ndarray | None = None  # survival: (K + 1,) follow-up bin edges

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray, y_train: np.ndarray,
            x_valid: np.ndarray, y_valid: np.ndarray) -> "LinearProbe":
        scaler = StandardScaler().fit(x_train)
        xt = scaler.transform(x_train)
        metric, higher = primary_metric(kind)
        best = None
        edges = survival_bins(y_train) if kind == "survival" else None
        for strength in STRENGTHS:
            if kind == "survival":
                probe = cls._hazard(xt, y_train, edges, strength, scaler)
                score = probe._score(x_valid, y_valid, metric)
                if best is None or score > best[0]:
                    best = (score, probe)
                continue
            if kind == "regression":
                est = Ridge(alpha=strength * len(xt) / 10).fit(xt, y_train)
            elif kind == "multilabel":
                est = _PerLabel(xt, y_train, strength)
            else:
                est = LogisticRegression(C=1.0 / strength, max_iter=2000).fit(xt, y_train)
            probe = cls(kind, scaler.mean_, scaler.scale_, np.atleast_2d(est.coef_),
                        np.atleast_1d(est.intercept_))
            score = probe._score(x_valid, y_valid, metric)
            if best is None or (score > best[0] if higher else score < best[0]):
                best = (score, probe)
        return best[1]

    @classmethod
    def _hazard(cls, xt: np.ndarray, y_train: np.ndarray, edges: np.ndarray, strength: float,
                scaler: StandardScaler) -> "LinearProbe":
        """Discrete-time hazard: logit h_k(x) = w . x + b_k, fitted on person-period rows."""
        rows, target = person_period(xt, y_train, edges)
        est = LogisticRegression(C=1.0 / strength, max_iter=2000).fit(rows, target)
        d = xt.shape[1]
        return cls("survival", scaler.mean_, scaler.scale_, est.coef_[:, :d],
                   est.intercept_ + est.coef_[0, d:], np.asarray(edges, dtype=np.float64))

    def _score(self, x: np.ndarray, y: np.ndarray, metric: str) -> float:
        return kind_metrics(self.kind, y, self.predict(x))[metric]

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept  # (N, C)
        if self.kind == "survival":  # (N, K) survival at each bin end: prod (1 - sigmoid)
            return np.exp(-np.cumsum(np.logaddexp(0.0, z), axis=1))
        if self.kind == "regression":
            return z[:, 0]
        if self.kind == "multilabel":
            return 1.0 / (1.0 + np.exp(-z))  # (N, L): one probability per label
        if z.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-z[:, 0]))
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef,
                  "intercept": self.intercept}
        return arrays if self.edges is None else {**arrays, "edges": self.edges}


class _PerLabel:
    """One logistic regression per column of (N, L) 0/1 labels, as `coef_` (L, d) and
    `intercept_` (L,), each fitted on the rows where its label is measured (not NaN);
    a column with one class in training gets its constant log-odds."""

    def __init__(self, x: np.ndarray, y: np.ndarray, strength: float) -> None:
        self.coef_ = np.zeros((y.shape[1], x.shape[1]))
        self.intercept_ = np.zeros(y.shape[1])
        for j, full in enumerate(np.asarray(y, dtype=float).T):
            seen = ~np.isnan(full)
            column = full[seen]
            if 0 < column.sum() < len(column):
                est = LogisticRegression(C=1.0 / strength, max_iter=2000).fit(x[seen], column)
                self.coef_[j], self.intercept_[j] = est.coef_[0], est.intercept_[0]
            else:
                rate = np.clip(column.mean() if len(column) else 0.5, 1e-3, 1 - 1e-3)
                self.intercept_[j] = np.log(rate / (1 - rate))
