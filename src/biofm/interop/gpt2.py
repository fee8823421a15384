"""GPT-2 in Hugging Face layout ⇄ biofm: pure state-dict converters and directory I/O.

Serves GPT-2-layout causal LMs such as ProtGPT2 (proteins) and the GPT-2 SMILES
models. biofm's decoder takes GPT-2's layout through config switches (pre-norm
blocks, learned absolute positions, `activation="gelu_tanh"`, a final
LayerNorm, the output projection tied to the token embedding). GPT-2's linear
layers are `Conv1D` modules, whose weights are stored (in, out): the converter
transposes them, and splits the fused query/key/value projection:

    transformer.wte / wpe                 backbone.embed_tokens / embed_positions
    transformer.h.{i}.ln_1                backbone.layers.{i}.attn_norm
    transformer.h.{i}.attn.c_attn         ….attn.q_proj / k_proj / v_proj (split, transposed)
    transformer.h.{i}.attn.c_proj         ….attn.out_proj   (transposed)
    transformer.h.{i}.ln_2                ….mlp_norm
    transformer.h.{i}.mlp.c_fc / c_proj   ….mlp.fc1 / fc2   (transposed)
    transformer.ln_f                      backbone.final_norm
    lm_head                               objective.decoder (tied to wte)

The old causal-mask buffers (`attn.bias`, `attn.masked_bias`) are dropped. Not
supported: cross-attention, unscaled attention, attention scaled by the inverse
layer index, an lm_head that differs from the token embedding.

The model's modality comes from its vocabulary (`vocabulary_modality`), or from
the caller (`load_hf_gpt2(directory, modality=...)`).
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
from biofm.interop.bpe import BPE_FILES, ByteBpeTokenizer, read_bpe_files, write_bpe_files
from biofm.interop.hf import (Tensors, check_supported, compile_rules, has_model_type, map_keys,
                              normalise_key, read_config, read_hf_weights, to_hf_names)
from biofm.io import atomic_path, atomic_write_text
from biofm.model import FoundationModel, load_weights

# (biofm prefix, HF prefix); "{i}" is a layer index, as in `biofm.interop.esm`.
# The fused c_attn is split / joined outside the map.
NAME_MAP: tuple[tuple[str, str], ...] = (
    ("backbone.embed_tokens.", "transformer.wte."),
    ("backbone.embed_positions.", "transformer.wpe."),
    ("backbone.layers.{i}.attn_norm.", "transformer.h.{i}.ln_1."),
    ("backbone.layers.{i}.attn.out_proj.", "transformer.h.{i}.attn.c_proj."),
    ("backbone.layers.{i}.mlp_norm.", "transformer.h.{i}.ln_2."),
    ("backbone.layers.{i}.mlp.fc1.", "transformer.h.{i}.mlp.c_fc."),
    ("backbone.layers.{i}.mlp.fc2.", "transformer.h.{i}.mlp.c_proj."),
    ("backbone.final_norm.", "transformer.ln_f."),
    ("objective.decoder.", "lm_head."),
)
# old transformers saved the causal mask as buffers; biofm builds it on the fly
_DROPPED = re.compile(r"\.attn\.(bias|masked_bias)$")
_CONV1D = re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$")  # stored (in, out)
_C_ATTN = re.compile(r"^transformer\.h\.(?P<i>\d+)\.attn\.c_attn\.(?P<rest>weight|bias)$")
_QKV = ("q_proj", "k_proj", "v_proj")
_TO_HF = compile_rules(NAME_MAP, to_hf=True)
_FROM_HF = compile_rules(NAME_MAP, to_hf=False)
DECODER = "objective.decoder.weight"
EMBEDDING = "backbone.embed_tokens.weight"
# HF activation_function → BackboneConfig.activation
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
               "gelu": "gelu", "relu": "relu"}
GPT2_FILES = f"config.json, model.safetensors (or pytorch_model.bin) and {BPE_FILES}"


def gpt2_to_biofm(state: Tensors, *, source: Path | None = None) -> Tensors:
    """HF GPT-2 state dict (GPT2LMHeadModel or GPT2Model) → FoundationModel state dict.

    Conv1D weights are transposed (views, not copies) and c_attn is split into
    q / k / v. The lm_head, when present, must equal the token embedding (biofm
    ties them) and is left out. Unknown keys are an error naming them.
    """
    state = {normalise_key(k, "transformer.", ("lm_head.",)): v for k, v in state.items()}
    out: Tensors = {}
    for key in [k for k in state if _C_ATTN.match(k)]:
        m = _C_ATTN.match(key)
        fused = state.pop(key)  # weight (d, 3d) or bias (3d,)
        parts = fused.chunk(3, dim=-1)
        for name, part in zip(_QKV, parts):
            out[f"backbone.layers.{m['i']}.attn.{name}.{m['rest']}"] = (
                part.t() if m["rest"] == "weight" else part)
    state = {k: v.t() if _CONV1D.search(k) else v for k, v in state.items()}
    out.update(map_keys(state, _FROM_HF, _DROPPED, family="GPT-2", source=source,
                        fix="only GPT-2 causal LMs (GPT2LMHeadModel, GPT2Model) can be converted"))
    decoder = out.pop(DECODER, None)
    if decoder is not None and EMBEDDING in out and not torch.equal(decoder, out[EMBEDDING]):
        raise BiofmError("lm_head.weight differs from the token embedding (transformer.wte)",
                         path=source, fix="biofm ties the output projection to the embeddings; "
                                          "untied heads are not supported")
    return out


def biofm_to_gpt2(state: Tensors) -> Tensors:
    """FoundationModel state dict → HF GPT2LMHeadModel names; q / k / v are fused into
    c_attn and linear weights transposed to Conv1D's (in, out). The tied lm_head is
    left out, as transformers saves it."""
    state = dict(state)
    state.pop(DECODER, None)
    out: Tensors = {}
    layers = sorted({int(m[1]) for k in state if (m := re.match(r"backbone\.layers\.(\d+)\.", k))})
    for i in layers:
        for rest in ("weight", "bias"):
            parts = [state.pop(f"backbone.layers.{i}.attn.{name}.{rest}", None) for name in _QKV]
            if any(p is None for p in parts):
                raise BiofmError(f"layer {i} lacks the attention {rest} GPT-2 needs",
                                 fix="only biofm decoders with GPT-2's layout can be exported")
            fused = torch.cat(parts, dim=0)  # (3d, d) or (3d,)
            out[f"transformer.h.{i}.attn.c_attn.{rest}"] = fused.t() if rest == "weight" else fused
    renamed = to_hf_names(state, _TO_HF, family="GPT-2",
                          fix="only pre-norm decoders with learned positions and a causal-LM "
                              "head can be exported to GPT-2 layout")
    out.update({k: v.t() if _CONV1D.search(k) else v for k, v in renamed.items()})
    return out


# -- configs -------------------------------------------------------------------

def gpt2_config_to_backbone(hf_config: dict[str, Any], *,
                            source: Path | None = None) -> dict[str, Any]:
    """An HF `GPT2Config` dict → BackboneConfig fields (defaults as in `GPT2Config`).

    `source` only names the file in error messages.
    """
    act = hf_config.get("activation_function", "gelu_new")
    reasons = [
        (hf_config.get("model_type") != "gpt2",
         f"model_type is {hf_config.get('model_type')!r}, not 'gpt2'"),
        (bool(hf_config.get("add_cross_attention")), "it has cross-attention"),
        (act not in ACTIVATIONS,
         f"activation_function is {act!r}; supported: {', '.join(ACTIVATIONS)}"),
        (not hf_config.get("scale_attn_weights", True),
         "attention is not scaled (scale_attn_weights is false)"),
        (bool(hf_config.get("scale_attn_by_inverse_layer_idx")),
         "attention is scaled by the inverse layer index"),
    ]
    check_supported(reasons, family="GPT-2", source=source,
                    fix="use a GPT-2 causal LM checkpoint (e.g. ProtGPT2)")
    d_model = hf_config.get("n_embd", 768)
    return {
        "kind": "decoder", "size": None,
        "vocab_size": hf_config.get("vocab_size", 50257),
        "d_model": d_model,
        "n_layers": hf_config.get("n_layer", 12),
        "n_heads": hf_config.get("n_head", 12),
        "d_ff": hf_config.get("n_inner") or 4 * d_model,
        "max_len": hf_config.get("n_positions", 1024),
        "position": "learned", "norm": "pre", "activation": ACTIVATIONS[act],
        "dropout": hf_config.get("resid_pdrop", 0.1) or 0.0,
        "norm_eps": hf_config.get("layer_norm_epsilon") or 1e-5,
    }


_HF_ACTIVATION = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def backbone_to_gpt2_config(model: FoundationModel) -> dict[str, Any]:
    """The config.json that `transformers.GPT2LMHeadModel` needs for this model."""
    b = model.config.backbone
    tok = model.tokenizer
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": b.vocab_size, "n_positions": b.max_len, "n_embd": b.d_model,
        "n_layer": b.n_layers, "n_head": b.n_heads, "n_inner": b.d_ff,
        "activation_function": _HF_ACTIVATION[b.activation],
        "resid_pdrop": b.dropout, "embd_pdrop": b.dropout, "attn_pdrop": b.dropout,
        "layer_norm_epsilon": b.norm_eps, "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id if tok.pad_id != tok.eos_id else None,
        "tie_word_embeddings": True, "initializer_range": 0.02, "dtype": "float32",
    }


# -- modality ------------------------------------------------------------------------

# (modality, the characters of its records); the first whose alphabet covers the
# vocabulary wins, so DNA (ACGT) is tried before proteins (whose letters include ACGT)
ALPHABETS: tuple[tuple[str, frozenset[str]], ...] = (
    ("dna", frozenset("ACGTN")),
    ("protein", frozenset("ACDEFGHIKLMNPQRSTVWYX")),
    ("molecule", frozenset("BCNOPSFIHcnopsbrl[]()=#+-@/\\%.:*0123456789")),
)
COVERAGE = 0.9  # the share of the vocabulary's tokens an alphabet must cover
# what `decode` does with whitespace, per modality (default "strip": the ends):
# ProtGPT2 writes its sequences as FASTA-style lines of 60 residues
_DECODE_WHITESPACE = {"protein": "remove", "dna": "remove"}


def vocabulary_modality(texts: list[str]) -> str | None:
    """The modality whose record alphabet covers at least 90% of the vocabulary's tokens
    (whitespace ignored), or None. Only tokens of two or more characters are counted
    when there are any: a byte-level vocabulary holds all 256 byte symbols whatever it
    was trained on, while its merged tokens show the training text."""
    tokens = [t for t in ("".join(text.split()) for text in texts) if t]
    merged = [t for t in tokens if len(t) > 1]
    tokens = merged or tokens
    for modality, alphabet in ALPHABETS:
        if tokens and sum(set(t) <= alphabet for t in tokens) >= COVERAGE * len(tokens):
            return modality
    return None


# -- directories -----------------------------------------------------------------

def is_hf_gpt2_dir(path: str | Path) -> bool:
    """A directory with a config.json whose model_type is "gpt2"."""
    return has_model_type(path, "gpt2")


def gpt2_tokenizer(directory: str | Path, *, vocab_size: int | None = None,
                   whitespace: str = "keep") -> ByteBpeTokenizer:
    """The byte-level BPE tokenizer of an HF GPT-2 directory. `vocab_size` (the
    config's) may exceed the files' vocabulary (embedding rows padded to a round
    number): the extra ids become placeholder tokens `<|unused_k|>` that `encode`
    never yields and sampling never emits."""
    files = read_bpe_files(directory)
    vocab = files.vocab
    if vocab_size is not None and vocab_size < len(vocab):
        raise BiofmError(f"config.json has vocab_size={vocab_size}, but the tokenizer files "
                         f"hold {len(vocab)} tokens", path=Path(directory) / "config.json",
                         fix="config.json and the tokenizer files must come from the same "
                             "checkpoint")
    if vocab_size is not None:
        vocab = vocab + [f"<|unused_{k}|>" for k in range(vocab_size - len(vocab))]
    return ByteBpeTokenizer(vocab, files.specials, merges=files.merges, whitespace=whitespace,
                            **files.options)


def load_hf_gpt2(path: str | Path, *, modality: str | None = None) -> FoundationModel:
    """A FoundationModel (decoder + clm, `byte-bpe` tokenizer) from an HF GPT-2 directory.

    modality: saved in the model's config; None decides it from the vocabulary
    (`vocabulary_modality`), and a vocabulary that fits none is an error.
    """
    directory = Path(path)
    hf_config, config_path = read_config(directory, "GPT-2", GPT2_FILES)
    fields = gpt2_config_to_backbone(hf_config, source=config_path)
    tokenizer = gpt2_tokenizer(directory, vocab_size=fields["vocab_size"])
    if modality is None:
        modality = vocabulary_modality(tokenizer.texts())
    if modality is None:
        raise BiofmError("cannot tell the modality from the vocabulary (neither amino-acid "
                         "letters, DNA bases nor SMILES characters)", path=directory,
                         fix="load it with biofm.interop.load_hf_gpt2(DIR, modality=...) and "
                             "save it as a biofm checkpoint (model.save(OUT))")
    tokenizer = tokenizer.with_options(whitespace=_DECODE_WHITESPACE.get(modality, "strip"))
    data = DataConfig(modality=modality, tokenizer=tokenizer.name, input=_default_input(modality))
    config = PretrainConfig.from_dict(
        {"data": data.model_dump(mode="json"), "backbone": fields,
         "objective": ObjectiveConfig(name="clm").model_dump(mode="json")}, source=config_path)
    model = FoundationModel(config, tokenizer)
    raw, source = read_hf_weights(directory)
    load_weights(model, gpt2_to_biofm(raw, source=source), source)
    return model


def _default_input(modality: str) -> str:
    """The corpus of the modality's causal-LM preset: what reports that need a
    reference (molecule novelty) read when the user names none."""
    from biofm.config import preset_path
    from biofm.registry import MODALITIES

    preset = MODALITIES.get(modality).preset_for("clm")
    if preset is None:
        return DataConfig().input
    return PretrainConfig.load(preset_path("pretrain", preset)).data.input


def save_hf_gpt2(model: FoundationModel, path: str | Path) -> Path:
    """Write `model` as an HF GPT-2 directory that `transformers.GPT2LMHeadModel` loads.

    Files: config.json, model.safetensors (HF names, Conv1D layout; the lm_head is
    tied to transformer.wte and not stored, as transformers does), vocab.json,
    merges.txt, tokenizer_config.json, special_tokens_map.json.
    """
    b = model.config.backbone
    problems = [(b.kind != "decoder", f"the backbone is a {b.kind!r}, not a decoder"),
                (model.config.objective.name != "clm",
                 f"the objective is {model.config.objective.name!r}, not 'clm'"),
                (b.norm != "pre" or b.embed_norm or b.position != "learned"
                 or b.type_vocab_size or b.token_dropout or b.values != "none",
                 ("the backbone is not GPT-2-shaped (GPT-2 needs norm=pre, learned positions, "
                  "no embedding LayerNorm, token types, token dropout or values)")),
                (not isinstance(model.tokenizer, ByteBpeTokenizer)
                 or not model.tokenizer.config["use_regex"],
                 f"the tokenizer is {model.tokenizer.name!r}, not GPT-2's byte-level BPE")]
    for bad, why in problems:
        if bad:
            raise BiofmError(f"cannot export to GPT-2 layout: {why}",
                             fix="only decoder + clm models with GPT-2's layout (e.g. loaded "
                                 "from a GPT-2 directory) have an HF GPT-2 twin")
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in biofm_to_gpt2(model.state_dict()).items()}
    atomic_write_text(directory / "config.json", json.dumps(backbone_to_gpt2_config(model),
                                                           indent=2))
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    assert isinstance(model.tokenizer, ByteBpeTokenizer)  # checked above
    write_bpe_files(model.tokenizer, directory, b.max_len)
    return directory


__all__ = ["backbone_to_gpt2_config", "biofm_to_gpt2", "gpt2_config_to_backbone",
           "gpt2_to_biofm", "gpt2_tokenizer", "is_hf_gpt2_dir", "load_hf_gpt2", "save_hf_gpt2",
           "vocabulary_modality"]
