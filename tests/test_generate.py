import pytest
import torch

from biofm.errors import BiofmError
from biofm.generate import filter_logits, sample
from tests.helpers import random_proteins, tiny_model


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


@pytest.mark.parametrize("position", ["rope", "learned"])
@pytest.mark.parametrize("settings", [dict(), dict(temperature=0.7, top_k=5),
                                      dict(temperature=1.3, top_p=0.8)])
def test_cached_sampling_draws_the_same_tokens_as_rerunning_the_prefix(position, settings):
    torch.manual_seed(0)
    model = tiny_model("decoder", "clm", position=position, token_dropout=True)
    with torch.no_grad():  # sharper logits than at init, so the draws depend on the model
        for p in model.parameters():
            p.mul_(8.0)
    cached = sample(model, 6, max_new_tokens=40, seed=5, batch_size=4, **settings)
    again = sample(model, 6, max_new_tokens=40, seed=5, batch_size=4, cache=False, **settings)
    assert cached == again
    assert len(set(cached)) > 1


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_decode_matches_the_full_forward(norm):
    model = tiny_model("decoder", "clm", norm=norm, token_dropout=True).eval()
    ids = torch.tensor(model.encode(random_proteins(3, seed=2, low=20, high=21)))  # (3, 22)
    with torch.no_grad():
        full = model.backbone(ids).last_hidden_state
        cache = model.backbone.new_cache(ids.shape[1])
        prefix = model.backbone.decode(ids[:, :7], cache)  # a prompt of 7, then one at a time
        steps = [model.backbone.decode(ids[:, t: t + 1], cache) for t in range(7, ids.shape[1])]
    torch.testing.assert_close(torch.cat([prefix, *steps], dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cache holds"):
        model.backbone.decode(ids[:, :1], cache)
    with pytest.raises(ValueError, match="decoder"):
        tiny_model().backbone.decode(ids[:, :1], cache)
