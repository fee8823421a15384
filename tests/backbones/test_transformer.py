"""The shared suite every registered backbone × objective pair runs."""

import pytest
import torch

from biofm.backbones import count_parameters
from biofm.backbones.layers import build_attention_mask
from biofm.config import BackboneConfig
from biofm.data.collate import pad_collate
from biofm.model import FoundationModel
from biofm.registry import BACKBONES, OBJECTIVES
from tests.helpers import random_proteins, tiny_model

PAIRS = [(b, o) for b in BACKBONES.names() for o in OBJECTIVES.names()
         if OBJECTIVES.get(o).backbone_kind == b]


def test_every_backbone_has_an_objective():
    assert {b for b, _ in PAIRS} == set(BACKBONES.names())


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_shapes_backward_and_dtype(kind, objective):
    model = tiny_model(kind, objective)
    batch = pad_collate(model.encode(random_proteins(3)), model.tokenizer.pad_id)
    batch = model.objective.prepare(batch, torch.Generator().manual_seed(0))
    out = model(batch)
    B, T = batch.input_ids.shape
    assert out.logits.shape == (B, T, model.tokenizer.vocab_size)
    assert out.loss.dtype == torch.float32 and out.loss.ndim == 0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_save_load_round_trip(kind, objective, tmp_path):
    model = tiny_model(kind, objective).eval()
    model.save(tmp_path / "m")
    loaded = FoundationModel.load(tmp_path / "m").eval()
    seqs = random_proteins(2, seed=1)
    torch.testing.assert_close(loaded.hidden_states(seqs).last_hidden_state,
                               model.hidden_states(seqs).last_hidden_state)
    assert loaded.objective.logits(torch.ones(1, model.config.backbone.d_model)).shape[-1] == 33
    # the tied output projection is still tied after loading
    assert loaded.backbone.embed_tokens.weight.data_ptr() == \
        [p for n, p in loaded.objective.named_parameters() if n.endswith("decoder.weight")][0].data_ptr()


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_deterministic_given_seed(kind, objective):
    torch.manual_seed(0)
    a = tiny_model(kind, objective)
    torch.manual_seed(0)
    b = tiny_model(kind, objective)
    seqs = random_proteins(2)
    torch.testing.assert_close(a.embed(seqs), b.embed(seqs), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
@pytest.mark.parametrize("position", ["rope", "learned"])
def test_padding_does_not_change_outputs(kind, position):
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm", position=position).eval()
    seqs = random_proteins(3, seed=2)
    together = model.hidden_states(seqs).last_hidden_state
    for i, s in enumerate(seqs):
        alone = model.hidden_states([s]).last_hidden_state[0]
        torch.testing.assert_close(together[i, : alone.shape[0]], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_packed_documents_match_separate_runs(kind):
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm").eval()
    seqs = model.encode(random_proteins(3, seed=3))
    packed = torch.tensor([sum(seqs, [])])
    docs = torch.tensor([[i for i, s in enumerate(seqs) for _ in s]])
    with torch.no_grad():
        out = model.backbone(packed, torch.ones_like(packed, dtype=torch.bool), docs).last_hidden_state
        start = 0
        for s in seqs:
            alone = model.backbone(torch.tensor([s])).last_hidden_state[0]
            torch.testing.assert_close(out[0, start: start + len(s)], alone, atol=1e-5, rtol=1e-5)
            start += len(s)


def test_causal_decoder_does_not_see_the_future():
    model = tiny_model("decoder", "clm").eval()
    ids = torch.tensor([model.encode(["ACDEFGHIK"])[0]])
    with torch.no_grad():
        full = model.backbone(ids).last_hidden_state
        changed = ids.clone()
        changed[0, -2] = 5
        other = model.backbone(changed).last_hidden_state
    torch.testing.assert_close(full[0, :-2], other[0, :-2])
    assert not torch.allclose(full[0, -2], other[0, -2])


def test_mask_keeps_one_key_for_padding_queries():
    mask = build_attention_mask(torch.tensor([[True, True, False]]), None, causal=False)
    assert mask.shape == (1, 1, 3, 3)
    assert mask[0, 0].any(-1).all()
    assert not mask[0, 0, 0, 2]


def test_parameter_count_of_esm2_8m_shape():
    cfg = BackboneConfig(size="esm2-8m", vocab_size=33, max_len=1026)
    from biofm.backbones import build_backbone
    # ESM-2 8M has 7.5M parameters in its backbone (embeddings + 6 layers + final norm)
    assert 7.4e6 < count_parameters(build_backbone(cfg)) < 7.6e6


def test_too_long_input_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_len"):
        model.backbone(torch.zeros(1, 65, dtype=torch.long))
