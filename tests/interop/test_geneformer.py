"""A Geneformer-style directory (tiny BertForMaskedLM written with transformers + its
gene token dictionary and gene medians) loads with its ids and medians, and gives
the reference model's hidden states on rank-value encoded cells."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from biofm.errors import BiofmError
from biofm.interop.geneformer import (GENE_MEDIANS, TOKEN_DICTIONARY, geneformer_tokenizer,
                                      is_geneformer_dir, load_geneformer)
from biofm.modalities.singlecell import cells_of_matrix, gene_array

GENES = [f"ENSG{i:011d}" for i in range(1, 21)]
CELLS = cells_of_matrix(np.array([[5, 0, 3, 1, 9, 0, 2, 2, 0, 4, 1, 0, 0, 7, 1, 1, 0, 3, 2, 1],
                                  [0, 2, 0, 8, 1, 1, 0, 0, 6, 0, 0, 3, 2, 0, 0, 1, 5, 0, 0, 2]]),
                        gene_array(f"{g}|SYM{i}" for i, g in enumerate(GENES)))  # Ensembl|symbol


def write_geneformer_dir(path: Path, *, v2: bool = True) -> tuple[Path, dict, dict]:
    from transformers import BertConfig, BertForMaskedLM

    specials = ["<pad>", "<mask>", "<cls>", "<eos>"] if v2 else ["<pad>", "<mask>"]
    tokens = {t: i for i, t in enumerate([*specials, *GENES])}
    medians = {g: float(m) for g, m in zip(GENES, np.linspace(0.5, 3.0, len(GENES)))}
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, hidden_act="relu",
                        max_position_embeddings=64, pad_token_id=0, layer_norm_eps=1e-12)
    BertForMaskedLM(config).eval().save_pretrained(path)
    (path / TOKEN_DICTIONARY).write_bytes(pickle.dumps(tokens))
    (path / GENE_MEDIANS).write_bytes(pickle.dumps({**medians, "ENSG99999999999": 1.0}))
    return path, tokens, medians


def test_tokenizer_keeps_the_checkpoint_ids_and_medians(tmp_path):
    path, tokens, medians = write_geneformer_dir(tmp_path / "gf")
    assert is_geneformer_dir(path)
    tok = geneformer_tokenizer(path)
    assert all(tok.token_to_id[t] == i for t, i in tokens.items())
    assert tok.medians[tokens[GENES[3]]] == pytest.approx(medians[GENES[3]])
    assert tok.pad_id == 0 and tok.mask_id == 1 and tok.bos_id == 2


@pytest.mark.parametrize("v2", [True, False])
def test_hidden_states_match_transformers(tmp_path, v2):
    from transformers import BertModel

    path, tokens, _ = write_geneformer_dir(tmp_path / "gf", v2=v2)
    model = load_geneformer(path).eval()  # BERT's dropout (0.1) is off for the comparison
    assert model.config.data.modality == "singlecell"
    reference = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    for cell in CELLS:
        ids = model.tokenizer.encode(cell, max_length=model.config.backbone.max_len)
        assert (ids[0] == tokens.get("<cls>")) == v2  # V1 inputs are the ranked genes alone
        ours = model.hidden_states([cell]).last_hidden_state
        with torch.no_grad():
            theirs = reference(torch.tensor([ids])).last_hidden_state
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert model.embed(CELLS).shape == (2, 32)


def test_unsafe_or_incomplete_tables_are_refused(tmp_path):
    path, tokens, medians = write_geneformer_dir(tmp_path / "gf")
    (path / GENE_MEDIANS).write_bytes(pickle.dumps({GENES[0]: 1.0}))
    with pytest.raises(BiofmError, match="19 genes of the token dictionary have no median"):
        geneformer_tokenizer(path)

    (path / GENE_MEDIANS).write_bytes(pickle.dumps({**medians, GENES[2]: "high"}))
    with pytest.raises(BiofmError, match="maps to 'high', not a number"):
        geneformer_tokenizer(path)
    (path / TOKEN_DICTIONARY).write_bytes(pickle.dumps({**tokens, "<mask>": None}))
    with pytest.raises(BiofmError, match="'<mask>' maps to None, not a number"):
        geneformer_tokenizer(path)

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo unsafe",))

    (path / TOKEN_DICTIONARY).write_bytes(pickle.dumps(Payload()))
    with pytest.raises(BiofmError, match="not a readable gene table.*not allowed"):
        geneformer_tokenizer(path)
    (path / TOKEN_DICTIONARY).unlink()
    with pytest.raises(BiofmError, match="token_dictionary.pkl is missing"):
        geneformer_tokenizer(path)


def test_load_pretrained_recognises_a_geneformer_directory(tmp_path):
    from biofm.interop import load_pretrained

    path, tokens, _ = write_geneformer_dir(tmp_path / "gf")
    model = load_pretrained(path)
    assert model.tokenizer.name == "geneformer" and model.config.data.modality == "singlecell"
    assert model.tokenizer.token_to_id[GENES[0]] == tokens[GENES[0]]
