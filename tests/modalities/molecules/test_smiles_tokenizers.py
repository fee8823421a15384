"""SMILES regex and SELFIES tokenizers: lossless split, fitted vocab, round trips."""

from __future__ import annotations

import pytest

from biofm.errors import BiofmError
from biofm.modalities.molecules import SelfiesTokenizer, SmilesTokenizer, canonical_smiles
from biofm.registry import TOKENIZERS
from biofm.tokenizer import load_tokenizer

DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",                      # aspirin
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",               # caffeine
    "C[C@H](N)C(=O)O",                            # L-alanine: chirality in brackets
    "[Na+].[Cl-]",                                # salt: dot and charges
    "Clc1ccc(Br)cc1",                             # two-letter halogens
    "c1cc[nH]c1",                                 # aromatic bracket atom
    r"F/C=C/F",                                   # stereo bonds
    "C%10CCCCC%10",                               # two-digit ring closure
    "C#N",
]


@pytest.mark.parametrize("smiles", DRUGS)
def test_split_is_lossless(smiles):
    assert "".join(SmilesTokenizer.fit([smiles]).split(smiles)) == smiles


def test_split_tokens():
    tok = SmilesTokenizer.fit(["C"])
    assert tok.split("C[C@H](Cl)c1ccccc1Br") == [
        "C", "[C@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"]
    assert tok.split("C%12CC%(123)") == ["C", "%12", "C", "C", "%(123)"]


@pytest.mark.parametrize("bad,char", [("CC O", "' '"), ("C[Si]CSiC", "'i'"), ("CCL", "'L'")])
def test_split_rejects_uncovered_characters(bad, char):
    tok = SmilesTokenizer.fit(["C"])
    with pytest.raises(BiofmError, match=f"cannot split: {char}"):
        tok.split(bad)


def test_fit_specials_first_then_frequency_then_alphabetical():
    tok = SmilesTokenizer.fit(["CCO", "OCN", "CC"])
    assert tok.vocab == ["<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "C", "O", "N"]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab == SmilesTokenizer.fit(["CC", "OCN", "CCO"]).vocab  # order-independent


def test_min_frequency_and_unknown_tokens():
    tok = SmilesTokenizer.fit(["CCO", "CCN"], min_frequency=2)
    assert tok.vocab[5:] == ["C"]
    assert tok.encode("CCS") == [tok.bos_id, 5, 5, tok.unk_id, tok.eos_id]
    with pytest.raises(BiofmError, match="min_frequency"):
        SmilesTokenizer.fit(["C"], min_frequency=0)
    with pytest.raises(BiofmError, match="empty corpus"):
        SmilesTokenizer.fit([])


def test_encode_decode_round_trip_and_save_load(tmp_path):
    tok = SmilesTokenizer.fit(DRUGS)
    for smiles in DRUGS:
        assert tok.decode(tok.encode(smiles)) == smiles
    tok.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is SmilesTokenizer and loaded.vocab == tok.vocab
    assert TOKENIZERS.get("smiles-regex") is SmilesTokenizer


def test_selfies_round_trip_is_canonical_equal(tmp_path):
    tok = SelfiesTokenizer.fit(DRUGS)
    assert tok.split("C=O") == ["[C]", "[=O]"]
    for smiles in DRUGS:
        assert canonical_smiles(tok.decode(tok.encode(smiles))) == canonical_smiles(smiles)
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).vocab == tok.vocab
    assert TOKENIZERS.get("selfies") is SelfiesTokenizer


def test_selfies_errors_and_undecodable_symbols():
    tok = SelfiesTokenizer.fit(["CC"])
    with pytest.raises(BiofmError, match="cannot be encoded as SELFIES"):
        tok.split("C(C)(C)(C)(C)C")  # pentavalent carbon breaks SELFIES constraints
    assert tok.join(["[NotASymbol]"]) == ""
    assert tok.join([]) == ""
