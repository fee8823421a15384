"""Time to event: the discrete-time hazard likelihood on a hand-computed example, what
censoring may and may not change, Harrell's C against lifelines, the hazard probe and
the Cox baseline on data whose risk is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lifelines.utils import concordance_index as lifelines_ci

from biofm.adapt.probe import LinearProbe
from biofm.adapt.survival import (baseline_logits, bin_targets, hazard_nll, person_period,
                                  survival_bins, survival_curve)
from biofm.bench.baselines import Baseline, per_input
from biofm.bench.metrics import concordance_index, survival_metrics
from biofm.data.tasks import Split, Splits
from biofm.errors import BiofmError

EDGES = np.array([0.0, 10.0, 20.0, 30.0])
# hazards 0.5, 0.25, 0.75 in the three bins
LOGITS = torch.tensor([[0.0, math.log(1 / 3), math.log(3)]])


def _nll(labels, logits=LOGITS) -> torch.Tensor:
    bins, events = bin_targets(np.asarray(labels, dtype=float), EDGES)
    return hazard_nll(logits.expand(len(bins), -1), torch.as_tensor(bins),
                      torch.as_tensor(events))


def test_bins_are_right_closed_and_beyond_the_last_edge_is_censored():
    labels = np.array([[0, 1], [10, 1], [10.5, 0], [30, 1], [31, 1]], dtype=float)
    bins, events = bin_targets(labels, EDGES)
    assert bins.tolist() == [0, 0, 1, 2, 3] and events.tolist() == [1, 1, 0, 1, 0]
    edges = survival_bins(np.array([[t, 1.0] for t in (5, 10, 15, 20)] + [[99, 0]]), n_bins=2)
    assert edges.tolist() == [0.0, 12.5, 20.0]  # quantiles of the event times only


def test_hazard_likelihood_of_a_hand_computed_example():
    # event at day 15 (bin 1): survive bin 0, die in bin 1 -> 0.5 * 0.25
    assert _nll([[15, 1]]).item() == pytest.approx(-math.log(0.5 * 0.25))
    # censored at day 25 (bin 2): survival through bins 0 and 1 only -> 0.5 * 0.75
    assert _nll([[25, 0]]).item() == pytest.approx(-math.log(0.5 * 0.75))
    # an event after the last edge: survived all three bins -> 0.5 * 0.75 * 0.25
    assert _nll([[40, 1]]).item() == pytest.approx(-math.log(0.5 * 0.75 * 0.25))
    both = _nll([[15, 1], [25, 0], [40, 1]]).item()  # the mean over subjects
    assert both == pytest.approx(-(math.log(0.125) + math.log(0.375) + math.log(0.09375)) / 3)
    assert survival_curve(LOGITS)[0].tolist() == pytest.approx([0.5, 0.375, 0.09375])


def test_censoring_changes_the_loss_as_it_should():
    # censored in the event's bin: the bin's own term (-log h = -log 0.25) goes, nothing else
    assert (_nll([[15, 1]]) - _nll([[15, 0]])).item() == pytest.approx(-math.log(0.25))
    # censored later: more bins survived, more loss (each survival term is < 1)
    assert _nll([[25, 0]]).item() > _nll([[15, 0]]).item() > _nll([[5, 0]]).item() == 0.0
    # nothing from the censoring bin on reaches a censored subject's gradient ...
    logits = LOGITS.clone().requires_grad_(True)
    _nll([[15, 0]], logits).backward()
    assert logits.grad[0, 0] != 0 and logits.grad[0, 1:].abs().sum() == 0
    # ... while an event in that bin pushes its hazard up and the earlier ones down
    logits.grad = None
    _nll([[15, 1]], logits).backward()
    assert logits.grad[0, 0] > 0 > logits.grad[0, 1] and logits.grad[0, 2] == 0


def test_baseline_hazards_count_events_over_subjects_at_risk():
    # at risk per bin: 4, 2, 1 (censored at 15 leaves after bin 0); events: 1, 1, 0
    labels = np.array([[5, 1], [15, 0], [18, 1], [40, 0]], dtype=float)
    hazard = 1 / (1 + np.exp(-baseline_logits(labels, EDGES)))
    np.testing.assert_allclose(hazard, [1.5 / 5, 1.5 / 3, 0.5 / 2])  # (events + ½) / (n + 1)


def test_person_period_rows_are_the_same_likelihood():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    labels = np.c_[rng.uniform(0, 35, 40), rng.integers(0, 2, 40)]
    w, b = rng.normal(size=3), rng.normal(size=3)
    rows, target = person_period(x, labels, EDGES)
    z = rows[:, :3] @ w + rows[:, 3:] @ b
    rows_nll = np.sum(np.logaddexp(0, z) - target * z) / len(x)
    logits = torch.as_tensor((x @ w)[:, None] + b[None], dtype=torch.float64)  # (N, K)
    bins, events = bin_targets(labels, EDGES)
    assert hazard_nll(logits, torch.as_tensor(bins), torch.as_tensor(events)).item() == \
        pytest.approx(rows_nll)


def test_concordance_with_censoring_by_hand_and_as_lifelines():
    # times 1 (event), 2 (censored), 3 (event), 4 (censored); predicted survival times:
    # comparable pairs: (1,2), (1,3), (1,4), (3,4) — 3 in order, (1,3) reversed
    times, events, predicted = [1, 2, 3, 4], [1, 0, 1, 0], [1, 5, 0.5, 9]
    assert concordance_index(times, predicted, events) == pytest.approx(3 / 4)
    assert np.isnan(concordance_index([1, 2], [1, 2], [0, 0]))  # nothing comparable
    for seed in range(6):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 300))
        t = rng.integers(0, 30, n).astype(float)  # many tied times, events and censorings
        e = rng.random(n) < 0.4
        e[0] = True
        p = np.round(-t + rng.normal(0, 8, n), int(rng.integers(0, 2)))  # tied predictions
        assert concordance_index(t, p, e) == pytest.approx(lifelines_ci(t, p, e), abs=1e-12)
    with pytest.raises(BiofmError, match="event flags"):
        concordance_index([1, 2], [1, 2], [1])


def test_survival_metrics_read_risks_and_survival_curves():
    y = np.array([[1, 1], [2, 0], [3, 1], [4, 0]], dtype=float)
    risk = np.array([4.0, 3.0, 2.0, 1.0])  # earliest event, highest risk: all in order
    assert survival_metrics(y, risk) == {"c_index": 1.0}
    curves = np.stack([np.linspace(1, s, 3) for s in (0.1, 0.2, 0.3, 0.4)])  # (N, K)
    assert survival_metrics(y, curves) == {"c_index": 1.0}
    assert survival_metrics(y, -risk)["c_index"] == 0.0
    with pytest.raises(BiofmError, match="survival labels"):
        survival_metrics(y[:, 0], risk)


def _exponential(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, 3); hazard exp(1.5 x0): times exponential, censored uniformly (~30%)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    t = rng.exponential(100 / np.exp(1.5 * x[:, 0]))
    c = rng.uniform(0, 300, n)
    return x, np.c_[np.minimum(t, c), (t <= c).astype(float)]


def _splits() -> Splits:
    x, y = _exponential(600, 0)
    part = lambda a, b: Split([str(i) for i in range(a, b)], list(x[a:b]), y[a:b])  # noqa: E731
    return Splits(part(0, 400), part(400, 500), part(500, 600))


def test_hazard_probe_and_cox_baseline_find_the_known_risk():
    splits = _splits()
    x = {k: np.stack(getattr(splits, k).inputs) for k in ("train", "valid", "test")}
    probe = LinearProbe.fit("survival", x["train"], splits.train.labels, x["valid"],
                            splits.valid.labels)
    curves = probe.predict(x["test"])
    assert curves.shape == (100, len(probe.edges) - 1)
    assert (np.diff(curves, axis=1) <= 0).all() and ((curves > 0) & (curves < 1)).all()
    assert survival_metrics(splits.test.labels, curves)["c_index"] > 0.75
    assert probe.coef[0, 0] > 5 * abs(probe.coef[0, 1:]).max()  # x0 carries the hazard
    again = LinearProbe("survival", **{k: v for k, v in probe.arrays().items()})
    np.testing.assert_allclose(again.predict(x["test"]), curves)

    cox = Baseline("Cox", per_input(np.stack), "cox", kinds=("survival",))
    risk = cox.predict("survival", splits, seed=0)
    c = survival_metrics(splits.test.labels, risk)["c_index"]
    y = splits.test.labels
    assert c > 0.75 and c == pytest.approx(lifelines_ci(y[:, 0], -risk, y[:, 1]))


def test_bad_survival_labels():
    with pytest.raises(BiofmError, match="no event in the training split"):
        survival_bins(np.array([[3.0, 0.0], [5.0, 0.0]]))
    with pytest.raises(BiofmError, match="example 1 has time -2"):
        survival_bins(np.array([[3.0, 1.0], [-2.0, 0.0]]))
