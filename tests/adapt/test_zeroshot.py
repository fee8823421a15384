"""Masked-marginal zero-shot scoring: identities, additivity, windowing, and parity
with a brute-force computation on the `transformers` ESM twin."""

from __future__ import annotations

import pytest
import torch
import transformers

from biofm.adapt.zeroshot import (STANDARD_AMINO_ACIDS, Substitution, parse_variant,
                                  score_all_substitutions, score_variants)
from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.interop.esm import backbone_to_esm_config, biofm_to_esm
from biofm.modalities.proteins.tokenizer import EsmTokenizer
from biofm.model import FoundationModel

SEQ = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
VARIANTS = ["M1A", "K2R", "T3T", "A4G:Y5W", "Q33E", "K8P:R10D:S13C"]


def tiny_model(max_len: int = 64, seed: int = 0, dropout: float = 0.0) -> FoundationModel:
    config = PretrainConfig.from_dict({
        "backbone": {"size": None, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64,
                     "max_len": max_len, "token_dropout": True, "dropout": dropout},
        "objective": {"name": "mlm"}})
    torch.manual_seed(seed)
    model = FoundationModel(config, EsmTokenizer())
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # a random init gives near-uniform logits; spread them out
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def model() -> FoundationModel:
    return tiny_model()


def test_parse_variant():
    assert parse_variant("A23G") == [Substitution("A", 23, "G")]
    assert parse_variant("m1a:K2R", SEQ) == [Substitution("M", 1, "A"), Substitution("K", 2, "R")]
    assert str(parse_variant(" K2R ")[0]) == "K2R"


@pytest.mark.parametrize("variant, message", [
    ("", "empty variant"),
    ("A0G", "not a substitution"),
    ("23G", "not a substitution"),
    ("A23", "not a substitution"),
    ("A2*", "not a substitution"),
    ("A2G,K3R", "not a substitution"),
    ("K2R:K2A", "one position twice"),
    ("A2G", "'A2G': residue 2 of the sequence is K, not A"),
    ("Q34E", "beyond the sequence"),
])
def test_bad_variants(variant, message):
    with pytest.raises(BiofmError, match=message):
        parse_variant(variant, SEQ)


def test_identity_scores_zero_and_multi_mutants_add(model):
    scores = dict(zip(VARIANTS, score_variants(model, SEQ, VARIANTS, batch_size=4)))
    assert scores["T3T"] == 0.0
    singles = score_variants(model, SEQ, ["K8P", "R10D", "S13C", "A4G", "Y5W"])
    assert scores["K8P:R10D:S13C"] == pytest.approx(sum(singles[:3]), abs=1e-5)
    assert scores["A4G:Y5W"] == pytest.approx(sum(singles[3:]), abs=1e-5)
    assert len({round(s, 4) for s in singles}) == len(singles)  # the model is not trivial
    # batch size does not change the result
    assert score_variants(model, SEQ, VARIANTS, batch_size=1) == pytest.approx(
        list(scores.values()), abs=1e-5)


def test_mutant_outside_vocabulary(model):
    with pytest.raises(BiofmError, match="'M1J'.*not in the model's vocabulary"):
        score_variants(model, SEQ, ["M1J"])


def test_parity_with_hf_brute_force(model):
    hf = transformers.EsmForMaskedLM(transformers.EsmConfig(**backbone_to_esm_config(model)))
    missing, unexpected = hf.load_state_dict(biofm_to_esm(model.state_dict()), strict=False)
    assert not unexpected and all("contact_head" in k or "inv_freq" in k for k in missing)
    hf.eval()
    tok = model.tokenizer
    wt = torch.tensor(tok.encode(SEQ))

    def site(pos: int, wt_aa: str, mut_aa: str) -> float:
        ids = wt.clone()
        ids[pos] = tok.mask_id  # residue `pos` (1-based) is token `pos` after <cls>
        with torch.no_grad():
            logp = torch.log_softmax(hf(ids[None]).logits[0, pos].float(), dim=-1)
        return float(logp[tok.token_to_id[mut_aa]] - logp[tok.token_to_id[wt_aa]])

    expected = [sum(site(int(s[1:-1]), s[0], s[-1]) for s in v.split(":")) for v in VARIANTS]
    got = score_variants(model, SEQ, VARIANTS, batch_size=3)
    assert got == pytest.approx(expected, abs=1e-4)


def test_all_substitutions_table(model):
    table = score_all_substitutions(model, SEQ[:10], batch_size=4)
    assert list(table.columns) == ["variant", "position", "wt", "mut", "score"]
    assert len(table) == 10 * len(STANDARD_AMINO_ACIDS)
    assert (table.loc[table.wt == table.mut, "score"] == 0).all()
    some = table.sample(5, random_state=0)
    expected = score_variants(model, SEQ[:10], list(some.variant))
    assert list(some.score) == pytest.approx(expected, abs=1e-5)


def test_long_sequences_use_a_centred_window():
    model = tiny_model(max_len=16)  # 14 residues per window
    # position 3 of a 33-residue sequence: the window is clamped to residues 1..14
    assert score_variants(model, SEQ, ["T3A"]) == pytest.approx(
        score_variants(model, SEQ[:14], ["T3A"]), abs=1e-5)
    # position 33: clamped to the last 14 residues
    assert score_variants(model, SEQ, ["Q33E"]) == pytest.approx(
        score_variants(model, SEQ[-14:], ["Q14E"]), abs=1e-5)
    # position 16: centred, residues 9..22
    assert score_variants(model, SEQ, ["K16A"]) == pytest.approx(
        score_variants(model, SEQ[8:22], ["K8A"]), abs=1e-5)


def test_needs_an_mlm_model():
    config = PretrainConfig.from_dict({"backbone": {"kind": "decoder"},
                                       "objective": {"name": "clm"}})
    with pytest.raises(BiofmError, match="needs an MLM model"):
        score_variants(FoundationModel(config, EsmTokenizer()), SEQ, ["M1A"])


def test_scores_are_without_dropout_and_the_mode_is_restored():
    dropped = tiny_model(seed=3, dropout=0.5).train()  # the same weights as below, with dropout
    scores = score_variants(dropped, SEQ, VARIANTS)
    assert dropped.training
    assert score_variants(tiny_model(seed=3).eval(), SEQ, VARIANTS) == pytest.approx(scores,
                                                                                 abs=1e-6)
