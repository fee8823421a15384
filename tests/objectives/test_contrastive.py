"""Symmetric InfoNCE on inputs whose loss is worked out by hand."""

import math

import pytest
import torch

from biofm.errors import BiofmError
from biofm.objectives.contrastive import SymmetricInfoNCE, recall_at_k

# a_0 = e1, a_1 = e2; b_0 = e1, b_1 = (e1 + e2) / sqrt 2: cosines [[1, r], [0, r]], r = 1/sqrt 2
A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
B = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # lengths do not matter: cosines
R = 1 / math.sqrt(2)


def _by_hand(scale: float, margin: float = 0.0) -> float:
    l00, l01, l10, l11 = scale * (1 - margin), scale * R, 0.0, scale * (R - margin)
    rows = (-math.log(math.exp(l00) / (math.exp(l00) + math.exp(l01)))
            - math.log(math.exp(l11) / (math.exp(l10) + math.exp(l11)))) / 2
    cols = (-math.log(math.exp(l00) / (math.exp(l00) + math.exp(l10)))
            - math.log(math.exp(l11) / (math.exp(l01) + math.exp(l11)))) / 2
    return (rows + cols) / 2


def test_two_by_two_loss_by_hand():
    out = SymmetricInfoNCE(temperature=1.0)(A, B)
    assert out.loss.item() == pytest.approx(_by_hand(1.0), rel=1e-6)
    assert out.temperature.item() == pytest.approx(1.0)
    out = SymmetricInfoNCE(temperature=0.5)(A, B)
    assert out.loss.item() == pytest.approx(_by_hand(2.0), rel=1e-6)
    torch.testing.assert_close(out.logits, 2.0 * torch.tensor([[1.0, R], [0.0, R]]))


def test_margin_is_taken_off_the_positives():
    out = SymmetricInfoNCE(temperature=1.0, margin=0.2)(A, B)
    assert out.loss.item() == pytest.approx(_by_hand(1.0, 0.2), rel=1e-6)
    assert out.loss.item() > SymmetricInfoNCE(temperature=1.0)(A, B).loss.item()


def test_temperature_is_learnable_and_can_be_fixed():
    loss_fn = SymmetricInfoNCE(temperature=0.5)
    loss_fn(A, B).loss.backward()
    grad = loss_fn.log_scale.grad
    assert grad is not None and grad.item() != 0.0
    # d loss / d log_scale = scale * d loss / d scale, checked by finite differences
    eps = 1e-4
    numeric = (_by_hand(2.0 * math.exp(eps)) - _by_hand(2.0 * math.exp(-eps))) / (2 * eps)
    assert grad.item() == pytest.approx(numeric, rel=1e-3)
    fixed = SymmetricInfoNCE(temperature=0.5, learn_temperature=False)
    assert not any(True for _ in fixed.parameters())
    assert fixed(A, B).loss.item() == pytest.approx(_by_hand(2.0), rel=1e-6)


def test_temperature_is_capped():
    loss_fn = SymmetricInfoNCE(temperature=0.5, max_scale=4.0)
    with torch.no_grad():
        loss_fn.log_scale.fill_(10.0)
    assert loss_fn(A, B).temperature.item() == pytest.approx(0.25)


def test_multi_positive_rows():
    # b_1 is also a positive of a_0: row 0's loss is -log of the mass on both columns
    positives = torch.tensor([[True, True], [False, True]])
    out = SymmetricInfoNCE(temperature=1.0)(A, B, positives)
    rows = (0.0 - math.log(math.exp(R) / (1 + math.exp(R)))) / 2
    cols = (-math.log(math.e / (math.e + 1)) - math.log(1.0)) / 2
    assert out.loss.item() == pytest.approx((rows + cols) / 2, rel=1e-6)


def test_bad_inputs_are_explained():
    with pytest.raises(BiofmError, match="same shape"):
        SymmetricInfoNCE()(A, torch.zeros(2, 3))
    with pytest.raises(BiofmError, match="positive in every row"):
        SymmetricInfoNCE()(A, B, torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(BiofmError, match="out of range"):
        SymmetricInfoNCE(temperature=0.001)


def test_training_pulls_pairs_together():
    torch.manual_seed(0)
    a, b = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    loss_fn = SymmetricInfoNCE(temperature=0.2)
    opt = torch.optim.SGD([a, b, *loss_fn.parameters()], lr=0.5)
    first = loss_fn(a, b).loss.item()
    for _ in range(50):
        opt.zero_grad()
        loss_fn(a, b).loss.backward()
        opt.step()
    assert loss_fn(a, b).loss.item() < first / 4
    assert recall_at_k(a.detach(), b.detach(), torch.eye(8, dtype=torch.bool), (1,)) == \
        {"recall@1": 1.0}
