"""ESM-2 in Hugging Face layout ⇄ biofm: pure state-dict converters and directory I/O.

biofm's encoder mirrors ESM-2 module for module (pre-norm blocks, rotary
positions, a final LayerNorm, token dropout, the tied LM head), so conversion
is a plain name map with no tensor arithmetic:

    esm.embeddings.word_embeddings          backbone.embed_tokens
    esm.encoder.layer.{i}.attention.LayerNorm        backbone.layers.{i}.attn_norm
    esm.encoder.layer.{i}.attention.self.query/key/value   ….attn.q_proj/k_proj/v_proj
    esm.encoder.layer.{i}.attention.output.dense     ….attn.out_proj
    esm.encoder.layer.{i}.LayerNorm                  ….mlp_norm
    esm.encoder.layer.{i}.intermediate.dense / output.dense   ….mlp.fc1 / fc2
    esm.encoder.emb_layer_norm_after        backbone.final_norm
    lm_head.dense / layer_norm / decoder / bias      objective.head.dense / norm / decoder / bias

The same layout serves the Nucleotide Transformer (NT): its vocab.txt holds
6-mers and single bases, so the directory loads with biofm's `dna-nt6`
tokenizer (ids in the file's order). NT v1 uses learned absolute positions,
which HF ESM numbers from `pad_token_id + 1`; the converter drops the unused
leading rows so that biofm's learned positions start at 0. ESM-1b style
embedding LayerNorms (`emb_layer_norm_before`) are not supported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from biofm.config import DataConfig, ObjectiveConfig, PretrainConfig
from biofm.errors import BiofmError
from biofm.interop.hf import (Tensors, check_supported, compile_rules,
                              fit_tied_head, has_model_type, map_keys, normalise_key, read_config,
                              read_hf_weights, read_json, read_vocab, require_fields, to_hf_names)
from biofm.io import atomic_path, atomic_write_text
from biofm.modalities.proteins.tokenizer import ESM2_VOCAB, HF_VOCAB_FILE, EsmTokenizer
from biofm.model import FoundationModel, load_weights
from biofm.tokenizer import Tokenizer

# (biofm prefix, HF prefix); "{i}" is a layer index. Each prefix is followed by
# "weight"/"bias" (modules) or nothing (the LM head's bare bias parameter).
NAME_MAP: tuple[tuple[str, str], ...] = (
    ("backbone.embed_tokens.", "esm.embeddings.word_embeddings."),
    ("backbone.layers.{i}.attn_norm.", "esm.encoder.layer.{i}.attention.LayerNorm."),
    ("backbone.layers.{i}.attn.q_proj.", "esm.encoder.layer.{i}.attention.self.query."),
    ("backbone.layers.{i}.attn.k_proj.", "esm.encoder.layer.{i}.attention.self.key."),
    ("backbone.layers.{i}.attn.v_proj.", "esm.encoder.layer.{i}.attention.self.value."),
    ("backbone.layers.{i}.attn.out_proj.", "esm.encoder.layer.{i}.attention.output.dense."),
    ("backbone.layers.{i}.mlp_norm.", "esm.encoder.layer.{i}.LayerNorm."),
    ("backbone.layers.{i}.mlp.fc1.", "esm.encoder.layer.{i}.intermediate.dense."),
    ("backbone.layers.{i}.mlp.fc2.", "esm.encoder.layer.{i}.output.dense."),
    ("backbone.final_norm.", "esm.encoder.emb_layer_norm_after."),
    ("objective.head.dense.", "lm_head.dense."),
    ("objective.head.norm.", "lm_head.layer_norm."),
    ("objective.head.decoder.", "lm_head.decoder."),
    ("objective.head.bias", "lm_head.bias"),
)
# HF keys with no biofm counterpart: rotary frequencies are recomputed, the
# position-id buffer is implicit, the contact head and pooler are not part of MLM.
_DROPPED = re.compile(r"(inv_freq|position_ids)$|^esm\.(contact_head|pooler)\.")
HF_POSITIONS = "esm.embeddings.position_embeddings.weight"
BIOFM_POSITIONS = "backbone.embed_positions.weight"
_TO_HF = compile_rules(NAME_MAP, to_hf=True)
_FROM_HF = compile_rules(NAME_MAP, to_hf=False)
_UNMAPPABLE_FIX = ("only ESM-2 style models (rotary or absolute positions, no embedding "
                   "LayerNorm) can be converted")


def esm_to_biofm(state: Tensors, *, source: Path | None = None,
                 pad_id: int | None = None) -> Tensors:
    """HF ESM state dict (EsmForMaskedLM or EsmModel) → FoundationModel state dict.

    Rotary `inv_freq`, `position_ids`, the contact head and the pooler are
    dropped; any other unknown key is an error (it means an architecture
    feature biofm lacks, e.g. an embedding LayerNorm). Learned absolute
    positions (NT v1) need `pad_id`: HF ESM numbers them from pad_id + 1.
    """
    state = {normalise_key(k, "esm.", ("lm_head.",)): v for k, v in state.items()}
    positions = None
    if pad_id is not None and HF_POSITIONS in state:
        positions = state.pop(HF_POSITIONS)[pad_id + 1:]
    out = map_keys(state, _FROM_HF, _DROPPED, family="ESM", source=source, fix=_UNMAPPABLE_FIX)
    return out if positions is None else {**out, BIOFM_POSITIONS: positions}


def biofm_to_esm(state: Tensors, pad_id: int | None = None) -> Tensors:
    """FoundationModel state dict → HF EsmForMaskedLM names (tensors shared, not copied).

    Learned positions (with `pad_id`) get pad_id + 1 leading rows, as HF ESM expects."""
    positions = state.get(BIOFM_POSITIONS) if pad_id is not None else None
    state = {k: v for k, v in state.items() if positions is None or k != BIOFM_POSITIONS}
    out = to_hf_names(state, _TO_HF, family="ESM",
                      fix="only encoders with rotary positions and an MLM head can be exported "
                          "to ESM layout")
    if positions is not None:
        out[HF_POSITIONS] = torch.cat([positions.new_zeros(pad_id + 1, positions.shape[1]),
                                       positions])
    return out


# -- configs -------------------------------------------------------------------

def esm_config_to_backbone(hf_config: dict[str, Any], *,
                           source: Path | None = None) -> dict[str, Any]:
    """An HF `EsmConfig` dict → BackboneConfig fields (defaults as in `EsmConfig`).

    `source` only names the file in error messages.
    """
    reasons = [
        (hf_config.get("model_type", "esm") != "esm",
         f"model_type is {hf_config.get('model_type')!r}, not 'esm'"),
        (bool(hf_config.get("is_folding_model")), "it is an ESMFold model"),
        (bool(hf_config.get("is_decoder")) or bool(hf_config.get("add_cross_attention")),
         "it is configured as a decoder"),
        (bool(hf_config.get("emb_layer_norm_before")),
         "it has an embedding LayerNorm (emb_layer_norm_before, ESM-1b/1v)"),
        (hf_config.get("position_embedding_type", "absolute") not in ("rotary", "absolute"),
         f"position_embedding_type is {hf_config.get('position_embedding_type')!r}; "
         "rotary (ESM-2, NT v2) or absolute (NT v1) is required"),
    ]
    check_supported(reasons, family="ESM", source=source,
                    fix="use an ESM-2 or Nucleotide Transformer checkpoint "
                        "(e.g. facebook/esm2_t6_8M_UR50D)")
    require_fields(hf_config, ("vocab_size", "hidden_size", "num_hidden_layers",
                               "num_attention_heads", "intermediate_size", "pad_token_id",
                               "mask_token_id"), family="ESM", source=source)
    theta = hf_config.get("rope_theta") or (hf_config.get("rope_parameters") or {}).get(
        "rope_theta", 10000.0)
    absolute = hf_config.get("position_embedding_type", "absolute") == "absolute"
    max_positions = hf_config.get("max_position_embeddings", 1026)
    if absolute:  # HF ESM's learned positions start at pad_token_id + 1
        max_positions -= hf_config["pad_token_id"] + 1
    return {
        "kind": "encoder", "size": None,
        "vocab_size": hf_config["vocab_size"],
        "d_model": hf_config["hidden_size"],
        "n_layers": hf_config["num_hidden_layers"],
        "n_heads": hf_config["num_attention_heads"],
        "d_ff": hf_config["intermediate_size"],
        "max_len": max_positions,
        "position": "learned" if absolute else "rope",
        "dropout": hf_config.get("hidden_dropout_prob") or 0.0,
        "norm_eps": hf_config.get("layer_norm_eps") or 1e-12,
        "rope_theta": float(theta),
        "token_dropout": bool(hf_config.get("token_dropout", False)),
        "pad_id": hf_config["pad_token_id"],
        "mask_id": hf_config["mask_token_id"],
    }


def backbone_to_esm_config(model: FoundationModel) -> dict[str, Any]:
    """The config.json that `transformers.EsmForMaskedLM` needs for this model."""
    b = model.config.backbone
    tok = model.tokenizer
    return {
        "architectures": ["EsmForMaskedLM"], "model_type": "esm",
        "vocab_size": b.vocab_size, "hidden_size": b.d_model,
        "num_hidden_layers": b.n_layers, "num_attention_heads": b.n_heads,
        "intermediate_size": b.d_ff, "max_position_embeddings": b.max_len,
        "hidden_dropout_prob": b.dropout, "attention_probs_dropout_prob": b.dropout,
        "layer_norm_eps": b.norm_eps, "rope_theta": b.rope_theta,
        "position_embedding_type": "rotary", "emb_layer_norm_before": False,
        "token_dropout": b.token_dropout, "is_decoder": False, "is_folding_model": False,
        "pad_token_id": tok.pad_id, "mask_token_id": tok.mask_id,
        "eos_token_id": tok.eos_id, "bos_token_id": None,
        "tie_word_embeddings": True, "initializer_range": 0.02, "dtype": "float32",
    }


# -- directories -----------------------------------------------------------------

def is_hf_esm_dir(path: str | Path) -> bool:
    """A directory with a config.json whose model_type is "esm"."""
    return has_model_type(path, "esm")


def load_hf_esm(path: str | Path) -> FoundationModel:
    """A FoundationModel (encoder + MLM, `esm2` tokenizer) from an HF ESM-2 directory."""
    directory = Path(path)
    hf_config, _ = read_config(directory, "ESM", "config.json, model.safetensors and vocab.txt")
    fields = esm_config_to_backbone(hf_config, source=directory / "config.json")
    tokenizer, modality = _hf_esm_tokenizer(directory)
    for field, ours in (("vocab_size", tokenizer.vocab_size), ("pad_id", tokenizer.pad_id),
                        ("mask_id", tokenizer.mask_id)):
        if fields[field] != ours:
            raise BiofmError(f"config.json has {field}={fields[field]}, "
                             f"but vocab.txt gives {ours}",
                             path=directory / "config.json",
                             fix="config.json and vocab.txt must come from the same checkpoint")
    data = DataConfig(modality=modality, tokenizer=tokenizer.name)
    config = PretrainConfig.from_dict(
        {"data": data.model_dump(mode="json"), "backbone": fields,
         "objective": ObjectiveConfig(name="mlm").model_dump(mode="json")},
        source=directory / "config.json")
    model = FoundationModel(config, tokenizer)
    raw, source = read_hf_weights(directory)
    absolute = fields["position"] == "learned"
    state = esm_to_biofm(raw, source=source, pad_id=fields["pad_id"] if absolute else None)
    fit_tied_head(model, state, source, decoder_name="lm_head.decoder.weight",
                  head_names="lm_head")
    load_weights(model, state, source)
    return model


NT_SPECIALS = {"pad": "<pad>", "unk": "<unk>", "bos": "<cls>", "eos": "<eos>", "mask": "<mask>"}


def _hf_esm_tokenizer(directory: Path) -> tuple[Tokenizer, str]:
    """ESM-2's protein tokenizer, or for a vocab.txt of 6-mers (the Nucleotide
    Transformer) biofm's `dna-nt6` with the file's ids; and the modality."""
    path = directory / HF_VOCAB_FILE
    vocab = read_vocab(directory)
    kmers = [t for t in vocab if len(t) == 6 and set(t) <= set("ACGT")]
    if len(kmers) < 4096:
        return EsmTokenizer.from_hf_dir(directory), "protein"
    from biofm.modalities.dna.tokenizers import NucleotideTransformerTokenizer
    missing = [t for t in (*NT_SPECIALS.values(), "A", "C", "G", "T", "N") if t not in vocab]
    if missing:
        raise BiofmError(f"vocab.txt holds 6-mers but lacks {', '.join(missing)}", path=path,
                         fix="a Nucleotide Transformer vocabulary has <pad> <unk> <cls> <eos> "
                             "<mask>, the 4,096 6-mers and A C G T N")
    # NT's tokenizer prepends <cls> and appends nothing unless an eos token is declared
    return NucleotideTransformerTokenizer(vocab=vocab, specials=dict(NT_SPECIALS),
                                          add_eos=_declares_eos(directory)), "dna"


def _declares_eos(directory: Path) -> bool:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if (directory / name).is_file() and read_json(directory / name).get("eos_token"):
            return True
    return False


def save_hf_esm(model: FoundationModel, path: str | Path) -> Path:
    """Write `model` as an HF ESM-2 directory that `transformers.EsmForMaskedLM` loads.

    Files: config.json, model.safetensors (HF names; the decoder is tied to the
    word embeddings, so it is stored once, as transformers itself does; the
    rotary inv_freq buffer is written so the load report is clean),
    vocab.txt, tokenizer_config.json, special_tokens_map.json. The contact head
    is not written: biofm never trains it, and transformers reports it as newly
    initialised.
    """
    b = model.config.backbone
    problems = [(b.kind != "encoder", f"the backbone is a {b.kind!r}, not an encoder"),
                (model.config.objective.name != "mlm",
                 f"the objective is {model.config.objective.name!r}, not 'mlm'"),
                (b.position != "rope", "positions are learned, ESM-2 uses rotary"),
                (tuple(model.tokenizer.vocab) != ESM2_VOCAB,
                 f"the tokenizer is {model.tokenizer.name!r}, not ESM-2's 'esm2'")]
    for bad, why in problems:
        if bad:
            raise BiofmError(f"cannot export to ESM layout: {why}",
                             fix="only encoder + mlm models with rotary positions and the "
                                 "esm2 tokenizer have an HF ESM-2 twin")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = biofm_to_esm(model.state_dict())
    state.pop("lm_head.decoder.weight", None)  # tied to esm.embeddings.word_embeddings
    assert model.backbone.rotary is not None  # checked above: position == "rope"
    state["esm.rotary_embeddings.inv_freq"] = model.backbone.rotary.inv_freq  # same formula as HF
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    config = json.dumps(backbone_to_esm_config(model), indent=2)
    atomic_write_text(directory / "config.json", config)
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    _write_hf_tokenizer(model.tokenizer, directory, b.max_len)
    return directory


def _write_hf_tokenizer(tokenizer: Tokenizer, directory: Path, max_len: int) -> None:
    specials = {"cls_token": "<cls>", "eos_token": "<eos>", "pad_token": "<pad>",
                "unk_token": "<unk>", "mask_token": "<mask>"}
    atomic_write_text(directory / HF_VOCAB_FILE, "\n".join(tokenizer.vocab) + "\n")
    atomic_write_text(directory / "special_tokens_map.json", json.dumps(specials, indent=2))
    atomic_write_text(directory / "tokenizer_config.json", json.dumps(
        {"tokenizer_class": "EsmTokenizer", "model_max_length": max_len, **specials}, indent=2))
