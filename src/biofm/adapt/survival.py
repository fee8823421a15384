"""Time to event with a discrete-time hazard over follow-up bins (Tutz & Schmid; the
logistic hazard of Kvamme & Borgan, Gensheimer & Narasimhan's nnet-survival).

Labels of a "survival" task are (N, 2) floats: the time from the prediction time to
the event or to the end of follow-up (censoring), and whether the event was seen
(1) or the subject was censored (0).

Follow-up is cut at edges 0 = e_0 < e_1 < ... < e_K, the quantiles of the training
split's event times (`survival_bins`); bin k holds the times in (e_k, e_{k+1}] (a time
of 0 falls in bin 0). A head gives one logit per bin, the hazard h_k = sigmoid(logit_k)
being the probability of the event in bin k given survival to its start. A subject
whose time falls in bin k contributes

    event seen:  prod_{i<k} (1 - h_i) * h_k
    censored:    prod_{i<k} (1 - h_i)        survival up to the censoring bin only

so nothing is assumed about a censored subject from its censoring bin on (no event
label after censoring). A time beyond e_K counts as censored at e_K. The predicted
survival at the end of bin k is S_k = prod_{i<=k} (1 - h_i); the risk that ranks
subjects (concordance index) is 1 - S_{K-1}, the probability of the event by e_K.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from biofm.errors import BiofmError

N_BINS = 10  # follow-up bins at most (fewer when event times repeat)


def check_labels(labels: np.ndarray, where: str = "survival labels") -> np.ndarray:
    """(N, 2) float64 (time >= 0, event 0 | 1), or a clear error."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != 2:
        raise BiofmError(f"{where}: survival labels are (time, event) pairs, got shape "
                         f"{y.shape}", fix="give each example a time and an event flag")
    bad = ~np.isfinite(y).all(1) | (y[:, 0] < 0) | ~np.isin(y[:, 1], (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BiofmError(f"{where}: example {row} has time {y[row, 0]} and event {y[row, 1]}",
                         fix="times are >= 0 (days from the prediction time); events 1 (seen) "
                             "or 0 (censored)")
    return y


def survival_bins(labels: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """(K + 1,) edges from 0 to the largest training event time, at the quantiles of the
    training event times (pycox's "quantiles" scheme): each bin holds about as many events."""
    y = check_labels(labels, "training labels")
    events = y[y[:, 1] > 0, 0]
    if not len(events):
        raise BiofmError("no event in the training split: a hazard cannot be learned",
                         fix="use a larger training split, or a task with events")
    edges = np.unique(np.quantile(events, np.linspace(0.0, 1.0, n_bins + 1)[1:]))
    edges = edges[edges > 0]
    return np.r_[0.0, edges] if len(edges) else np.array([0.0, float(events.max()) or 1.0])


def bin_targets(labels: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin (N,) int64 in 0..K, event (N,) float) of each label; bin K (past the last
    edge) is always censored: the subject survived every bin."""
    y = check_labels(labels)
    k = len(edges) - 1
    bins = np.searchsorted(np.asarray(edges)[1:], y[:, 0], side="left")  # (e_b, e_b+1] → b
    event = (y[:, 1] > 0) & (bins < k)
    return bins.astype(np.int64), event.astype(np.float64)


def hazard_nll(logits: torch.Tensor, bins: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of (B, K) hazard logits: each subject's bins before its
    own count as survived (target 0); its own bin counts only when the event was seen
    (target 1); later bins, and a censored subject's own bin, do not count."""
    steps = torch.arange(logits.shape[1], device=logits.device)[None]  # (1, K)
    survived = steps < bins[:, None]  # (B, K)
    died = (steps == bins[:, None]) & (events[:, None] > 0)
    bce = F.binary_cross_entropy_with_logits(logits, died.to(logits.dtype), reduction="none")
    return (bce * (survived | died).to(logits.dtype)).sum(1).mean()


def survival_curve(logits: torch.Tensor) -> torch.Tensor:
    """(B, K) survival at the end of each bin: S_k = prod_{i<=k} (1 - sigmoid(logit_i))."""
    return torch.exp(torch.cumsum(F.logsigmoid(-logits), dim=1))


def baseline_logits(labels: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(K,) log-odds of each bin's empirical hazard (events in the bin / subjects at risk
    in it) over `labels`: where a hazard head's bias starts, so that training begins at
    the population's hazard instead of 0.5 per bin (whose large early loss would push
    the pretrained features around before the head has learned anything)."""
    rows, target = person_period(np.zeros((len(labels), 0)), labels, edges)
    at_risk, events = rows.sum(0), rows[target == 1].sum(0)
    hazard = np.clip((events + 0.5) / (at_risk + 1.0), 1e-4, 1 - 1e-4)  # (K,), smoothed
    return np.log(hazard / (1 - hazard))


def person_period(x: np.ndarray, labels: np.ndarray, edges: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The hazard likelihood as a logistic regression: one row per subject and bin it
    counts in (features, then a one-hot of the bin), target 1 in the bin of a seen event.
    (rows (M, d + K), targets (M,))."""
    bins, events = bin_targets(labels, edges)
    k = len(edges) - 1
    counted = np.minimum(bins + (events > 0), k)  # bins before its own, + its own if an event
    subject = np.repeat(np.arange(len(x)), counted)
    step = np.arange(counted.sum()) - np.repeat(np.cumsum(counted) - counted, counted)
    rows = np.concatenate([x[subject], np.eye(k)[step]], axis=1)
    return rows, ((step == bins[subject]) & (events[subject] > 0)).astype(np.int64)


__all__ = ["N_BINS", "baseline_logits", "bin_targets", "check_labels", "hazard_nll",
           "person_period",
           "survival_bins", "survival_curve"]
