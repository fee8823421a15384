import pytest
import torch

from biofm.errors import BiofmError
from biofm.generate import filter_logits, sample
from tests.helpers import tiny_model


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    kept = filter_logits(logits, top_k=2)
    assert torch.isfinite(kept).tolist() == [[False, True, True, False]]


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = filter_logits(probs.log(), top_p=0.8)
    assert torch.isfinite(kept).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(probs.log(), top_p=0.1)).sum() == 1  # never empty


def test_sampling_is_seeded_and_stops_at_eos():
    model = tiny_model("decoder", "clm")
    a = sample(model, 5, max_new_tokens=20, seed=3)
    b = sample(model, 5, max_new_tokens=20, seed=3)
    c = sample(model, 5, max_new_tokens=20, seed=4)
    assert a == b and a != c
    assert all(len(model.tokenizer.encode(s, add_special_tokens=False)) <= 20 for s in a)
    assert not any("<" in s for s in a)  # no special tokens in the text


def test_sampling_runs_without_dropout_and_restores_the_mode():
    model = tiny_model("decoder", "clm", dropout=0.5).train()
    a = sample(model, 4, max_new_tokens=20, seed=3)
    assert model.training
    assert sample(model, 4, max_new_tokens=20, seed=3) == a  # dropout would change the draws
    assert sample(model.eval(), 4, max_new_tokens=20, seed=3) == a
    assert not model.training


def test_generation_needs_a_decoder():
    with pytest.raises(BiofmError, match="causal-LM"):
        sample(tiny_model(), 1)
