"""BERT in Hugging Face layout ⇄ biofm: pure state-dict converters and directory I/O.

One loader serves every BERT-layout checkpoint: a generic BERT or sentence
encoder (MiniLM; WordPiece vocab.txt), DNABERT (overlapping k-mers in
vocab.txt → biofm's `dna-kmer{k}` tokenizer with the file's ids) and
Geneformer-style models (the caller passes its own tokenizer). biofm's one
transformer takes BERT's layout through config switches (`norm="post"`,
`embed_norm`, `type_vocab_size`, learned positions, `activation`), so
conversion is a plain name map with no tensor arithmetic:

    bert.embeddings.word_embeddings / position_embeddings / token_type_embeddings
                                     backbone.embed_tokens / embed_positions / embed_token_types
    bert.embeddings.LayerNorm        backbone.embed_norm
    bert.encoder.layer.{i}.attention.self.query/key/value   backbone.layers.{i}.attn.q/k/v_proj
    bert.encoder.layer.{i}.attention.output.dense           ….attn.out_proj
    bert.encoder.layer.{i}.attention.output.LayerNorm       ….attn_norm   (post-norm)
    bert.encoder.layer.{i}.intermediate.dense / output.dense   ….mlp.fc1 / fc2
    bert.encoder.layer.{i}.output.LayerNorm                 ….mlp_norm    (post-norm)
    cls.predictions.transform.dense / LayerNorm / decoder / bias
                                     objective.head.dense / norm / decoder / bias

The pooler, the next-sentence head and the position-id buffer are dropped.
Token-type ids are always 0 (one segment per input). Only absolute position
embeddings are supported (not relative_key variants).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from biofm.config import DataConfig, ObjectiveConfig, PretrainConfig
from biofm.errors import BiofmError
from biofm.interop.hf import (VOCAB_FILE, Tensors, check_supported, compile_rules, fit_tied_head,
                              has_model_type, map_keys, normalise_key, read_config,
                              read_hf_weights, read_json, require_fields, to_hf_names)
from biofm.interop.hf import read_vocab as _read_vocab_lines
from biofm.interop.wordpiece import BERT_SPECIALS, WordPieceTokenizer
from biofm.io import atomic_path, atomic_write_text
from biofm.model import FoundationModel, load_weights
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

# (biofm prefix, HF prefix); "{i}" is a layer index, as in `biofm.interop.esm`
NAME_MAP: tuple[tuple[str, str], ...] = (
    ("backbone.embed_tokens.", "bert.embeddings.word_embeddings."),
    ("backbone.embed_positions.", "bert.embeddings.position_embeddings."),
    ("backbone.embed_token_types.", "bert.embeddings.token_type_embeddings."),
    ("backbone.embed_norm.", "bert.embeddings.LayerNorm."),
    ("backbone.layers.{i}.attn.q_proj.", "bert.encoder.layer.{i}.attention.self.query."),
    ("backbone.layers.{i}.attn.k_proj.", "bert.encoder.layer.{i}.attention.self.key."),
    ("backbone.layers.{i}.attn.v_proj.", "bert.encoder.layer.{i}.attention.self.value."),
    ("backbone.layers.{i}.attn.out_proj.", "bert.encoder.layer.{i}.attention.output.dense."),
    ("backbone.layers.{i}.attn_norm.", "bert.encoder.layer.{i}.attention.output.LayerNorm."),
    ("backbone.layers.{i}.mlp.fc1.", "bert.encoder.layer.{i}.intermediate.dense."),
    ("backbone.layers.{i}.mlp.fc2.", "bert.encoder.layer.{i}.output.dense."),
    ("backbone.layers.{i}.mlp_norm.", "bert.encoder.layer.{i}.output.LayerNorm."),
    ("objective.head.dense.", "cls.predictions.transform.dense."),
    ("objective.head.norm.", "cls.predictions.transform.LayerNorm."),
    ("objective.head.decoder.", "cls.predictions.decoder."),
    ("objective.head.bias", "cls.predictions.bias"),
)
# HF keys with no biofm counterpart: the position-id buffers, the pooler (not part
# of MLM), the next-sentence head of BertForPreTraining
_DROPPED = re.compile(r"(position_ids|token_type_ids)$|^bert\.pooler\.|^cls\.seq_relationship\.")
# transformers ties the decoder's bias to cls.predictions.bias; checkpoints hold either or both
_DECODER_BIAS = "cls.predictions.decoder.bias"
_TO_HF = compile_rules(NAME_MAP, to_hf=True)
_FROM_HF = compile_rules(NAME_MAP, to_hf=False)
KMER_SIZES = (3, 4, 5, 6)  # DNABERT's published k


def bert_to_biofm(state: Tensors, *, source: Path | None = None) -> Tensors:
    """HF BERT state dict (BertForMaskedLM, BertForPreTraining or BertModel) →
    FoundationModel state dict. Unknown keys are an error naming them."""
    state = {normalise_key(k, "bert.", ("cls.",)): v for k, v in state.items()}
    decoder_bias = state.pop(_DECODER_BIAS, None)
    if decoder_bias is not None:
        bias = state.setdefault("cls.predictions.bias", decoder_bias)
        if not torch.equal(bias, decoder_bias):
            raise BiofmError("cls.predictions.decoder.bias differs from cls.predictions.bias",
                             path=source, fix="re-save the checkpoint with transformers (it "
                                              "ties the two)")
    return map_keys(state, _FROM_HF, _DROPPED, family="BERT", source=source,
                    fix="only BERT encoders with absolute positions (BertModel, "
                        "BertForMaskedLM, BertForPreTraining) can be converted")


def biofm_to_bert(state: Tensors) -> Tensors:
    """FoundationModel state dict → HF BertForMaskedLM names (tensors shared, not copied)."""
    return to_hf_names(state, _TO_HF, family="BERT",
                       fix="only post-norm encoders with learned positions, an embedding "
                           "LayerNorm and an MLM head can be exported to BERT layout")


# -- configs -------------------------------------------------------------------

def bert_config_to_backbone(hf_config: dict[str, Any], *,
                            source: Path | None = None) -> dict[str, Any]:
    """An HF `BertConfig` dict → BackboneConfig fields (defaults as in `BertConfig`).

    `source` only names the file in error messages.
    """
    position = hf_config.get("position_embedding_type", "absolute")
    act = hf_config.get("hidden_act", "gelu")
    reasons = [
        (hf_config.get("model_type", "bert") != "bert",  # absent: a legacy BERT config
         f"model_type is {hf_config.get('model_type')!r}, not 'bert'"),
        (bool(hf_config.get("is_decoder")) or bool(hf_config.get("add_cross_attention")),
         "it is configured as a decoder"),
        (position != "absolute",
         f"position_embedding_type is {position!r}; only 'absolute' is supported"),
        (act not in ("gelu", "relu"),
         f"hidden_act is {act!r}; only 'gelu' (exact) and 'relu' are supported"),
    ]
    check_supported(reasons, family="BERT", source=source,
                    fix="use a BERT encoder checkpoint with absolute positions "
                        "(BERT, MiniLM, DNABERT, Geneformer)")
    require_fields(hf_config, ("vocab_size", "hidden_size", "num_hidden_layers",
                               "num_attention_heads", "intermediate_size"),
                   family="BERT", source=source)
    return {
        "kind": "encoder", "size": None,
        "vocab_size": hf_config["vocab_size"],
        "d_model": hf_config["hidden_size"],
        "n_layers": hf_config["num_hidden_layers"],
        "n_heads": hf_config["num_attention_heads"],
        "d_ff": hf_config["intermediate_size"],
        "max_len": hf_config.get("max_position_embeddings", 512),
        "position": "learned", "norm": "post", "embed_norm": True,
        "type_vocab_size": hf_config.get("type_vocab_size", 2),
        "activation": act,
        "dropout": hf_config.get("hidden_dropout_prob", 0.1) or 0.0,
        "norm_eps": hf_config.get("layer_norm_eps") or 1e-12,
        "pad_id": hf_config.get("pad_token_id") or 0,
    }


def backbone_to_bert_config(model: FoundationModel) -> dict[str, Any]:
    """The config.json that `transformers.BertForMaskedLM` needs for this model."""
    b = model.config.backbone
    return {
        "architectures": ["BertForMaskedLM"], "model_type": "bert",
        "vocab_size": b.vocab_size, "hidden_size": b.d_model,
        "num_hidden_layers": b.n_layers, "num_attention_heads": b.n_heads,
        "intermediate_size": b.d_ff, "max_position_embeddings": b.max_len,
        "type_vocab_size": b.type_vocab_size, "hidden_act": b.activation,
        "hidden_dropout_prob": b.dropout, "attention_probs_dropout_prob": b.dropout,
        "layer_norm_eps": b.norm_eps, "position_embedding_type": "absolute",
        "pad_token_id": model.tokenizer.pad_id, "is_decoder": False,
        "tie_word_embeddings": True, "initializer_range": 0.02, "dtype": "float32",
    }


# -- tokenizers ------------------------------------------------------------------

def read_vocab(directory: Path) -> list[str]:
    """vocab.txt → tokens in id order (one per line; trailing blank lines ignored)."""
    if not (directory / VOCAB_FILE).is_file():
        raise BiofmError("vocab.txt is missing", path=directory,
                         fix="copy the checkpoint's vocab.txt, or pass a tokenizer")
    return _read_vocab_lines(directory)


def dnabert_k(vocab: list[str]) -> int | None:
    """k when `vocab` is DNABERT's: BERT's specials and all 4^k k-mers of ACGT."""
    body = [t for t in vocab if t not in BERT_SPECIALS.values()]
    lengths = {len(t) for t in body}
    if len(lengths) != 1 or any(t.strip("ACGT") for t in body):
        return None
    k = lengths.pop()
    if k not in KMER_SIZES or len(body) != 4 ** k:
        return None
    expected = {"".join(p) for p in itertools.product("ACGT", repeat=k)}
    return k if set(body) == expected and set(BERT_SPECIALS.values()) <= set(vocab) else None


def bert_tokenizer(directory: str | Path) -> Tokenizer:
    """The tokenizer of an HF BERT directory: DNABERT k-mers ([CLS] k-mers [SEP],
    ids in vocab.txt's order) or WordPiece (case per tokenizer_config.json)."""
    directory = Path(directory)
    vocab = read_vocab(directory)
    missing = [t for t in BERT_SPECIALS.values() if t not in vocab]
    if missing:
        raise BiofmError(f"vocab.txt lacks BERT's special tokens {', '.join(missing)}",
                         path=directory / VOCAB_FILE,
                         fix="use the vocab.txt saved with the checkpoint, or pass a tokenizer")
    k = dnabert_k(vocab)
    if k is not None:
        return TOKENIZERS.get(f"dna-kmer{k}")(vocab=vocab, specials=dict(BERT_SPECIALS))
    options = _tokenizer_options(directory)
    return WordPieceTokenizer(
        vocab, lowercase=bool(options.get("do_lower_case", True)),
        strip_accents=options.get("strip_accents"),
        chinese_chars=bool(options.get("tokenize_chinese_chars", True)))


def _tokenizer_options(directory: Path) -> dict[str, Any]:
    path = directory / "tokenizer_config.json"
    return read_json(path) if path.is_file() else {}


# -- directories -----------------------------------------------------------------

# what a config.json without model_type needs to be read as BERT's
_LEGACY_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "type_vocab_size")


def is_hf_bert_dir(path: str | Path) -> bool:
    """A directory with a config.json whose model_type is "bert", or a legacy BERT
    directory: a config.json written before transformers recorded model_type (BERT's
    fields, no model_type, as some early biomedical and clinical BERTs converted from
    TensorFlow ship) beside a vocab.txt."""
    if has_model_type(path, "bert"):
        return True
    config, vocab = Path(path) / "config.json", Path(path) / VOCAB_FILE
    try:
        fields = json.loads(config.read_text()) if config.is_file() and vocab.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(fields, dict) and "model_type" not in fields \
        and all(k in fields for k in _LEGACY_FIELDS)


def load_bert_model(directory: str | Path, tokenizer: Tokenizer | None = None, *,
                    modality: str | None = None) -> FoundationModel:
    """A FoundationModel (post-norm encoder + MLM) from an HF BERT directory.

    tokenizer: None reads vocab.txt (DNABERT k-mers → modality "dna", any
    other vocabulary → WordPiece, modality "text"); a given tokenizer (e.g. a
    Geneformer gene-rank tokenizer) must have the config's vocab_size.
    modality: saved in the model's config (default as above).
    The MLM head is loaded when the weights hold `cls.predictions.*`; otherwise
    (BertModel, sentence encoders) it stays randomly initialised, with a warning.
    """
    directory = Path(directory)
    hf_config, config_path = read_config(
        directory, "BERT", "config.json, model.safetensors (or pytorch_model.bin) and vocab.txt")
    fields = bert_config_to_backbone(hf_config, source=config_path)
    if tokenizer is None:
        tokenizer = bert_tokenizer(directory)
    _check_vocab(fields, tokenizer, config_path)
    if modality is None:
        modality = "dna" if tokenizer.name.startswith("dna-") else "text"
    data = DataConfig(modality=modality, tokenizer=tokenizer.name)
    config = PretrainConfig.from_dict(
        {"data": data.model_dump(mode="json"), "backbone": fields,
         "objective": ObjectiveConfig(name="mlm").model_dump(mode="json")}, source=config_path)
    model = FoundationModel(config, tokenizer)
    raw, source = read_hf_weights(directory)
    state = bert_to_biofm(raw, source=source)
    # the MLM head uses the backbone's activation (hidden_act), as BERT's does
    fit_tied_head(model, state, source, decoder_name="cls.predictions.decoder.weight",
                  head_names="cls.predictions")
    load_weights(model, state, source)
    return model


def _check_vocab(fields: dict[str, Any], tokenizer: Tokenizer, config_path: Path) -> None:
    for field, ours in (("vocab_size", tokenizer.vocab_size), ("pad_id", tokenizer.pad_id)):
        if fields[field] != ours:
            name = "vocab_size" if field == "vocab_size" else "pad_token_id"
            raise BiofmError(f"{name} is {fields[field]}, but the tokenizer "
                             f"({tokenizer.name}) gives {ours}", path=config_path,
                             fix="config.json and vocab.txt (or the tokenizer passed) must "
                                 "come from the same checkpoint")


def save_hf_bert(model: FoundationModel, path: str | Path) -> Path:
    """Write `model` as an HF BERT directory that `transformers.BertForMaskedLM` loads.

    Files: config.json, model.safetensors (HF names; the decoder is tied to the
    word embeddings and stored once), vocab.txt (the tokenizer's ids),
    tokenizer_config.json, special_tokens_map.json. A k-mer tokenizer's
    vocab.txt is DNABERT's: transformers' BertTokenizer then expects the
    sequence written as space-separated k-mers, as DNABERT does.
    """
    b = model.config.backbone
    problems = [(b.kind != "encoder", f"the backbone is a {b.kind!r}, not an encoder"),
                (model.config.objective.name != "mlm",
                 f"the objective is {model.config.objective.name!r}, not 'mlm'"),
                (b.norm != "post" or not b.embed_norm or b.position != "learned"
                 or b.type_vocab_size < 1 or b.token_dropout or b.values != "none",
                 "the backbone is not BERT-shaped (BERT needs norm=post, embed_norm, learned "
                 "positions, type_vocab_size >= 1, no token dropout, no values)")]
    for bad, why in problems:
        if bad:
            raise BiofmError(f"cannot export to BERT layout: {why}",
                             fix="only encoder + mlm models with BERT's layout (e.g. loaded from "
                                 "a BERT directory) have an HF BERT twin")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = biofm_to_bert(model.state_dict())
    state.pop("cls.predictions.decoder.weight", None)  # tied to the word embeddings
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write_text(directory / "config.json", json.dumps(backbone_to_bert_config(model),
                                                           indent=2))
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    _write_hf_tokenizer(model.tokenizer, directory, b.max_len)
    return directory


def _write_hf_tokenizer(tokenizer: Tokenizer, directory: Path, max_len: int) -> None:
    roles = {"cls_token": "bos", "sep_token": "eos", "pad_token": "pad", "unk_token": "unk",
             "mask_token": "mask"}
    specials = {name: tokenizer.specials[role] for name, role in roles.items()}
    lowercase = bool(tokenizer.config.get("lowercase", False))
    atomic_write_text(directory / VOCAB_FILE, "\n".join(tokenizer.vocab) + "\n")
    atomic_write_text(directory / "special_tokens_map.json", json.dumps(specials, indent=2))
    atomic_write_text(directory / "tokenizer_config.json", json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase,
         "model_max_length": max_len, **specials}, indent=2))
