"""timm Vision Transformers (hub layout) ⇄ biofm ViTs: pure state-dict converters and
directory loading.

RETFound and most published medical ViTs are timm `VisionTransformer`s, shared as
a directory in the layout timm's `push_to_hub` / `save_for_hf` writes:

    config.json          {"architecture": "vit_base_patch16_224", "num_classes": …,
                          "global_pool": "token", "model_args": {…}, "pretrained_cfg": {…}}
    model.safetensors    (or pytorch_model.bin)

biofm's ViT (`biofm.backbones.vision`) is the shared encoder with timm's layout
through config switches: pre-norm blocks, LayerNorm eps 1e-6, exact GELU, a
learned position table over [CLS] + patches, a final LayerNorm. Names:

    cls_token + pos_embed                 backbone.embed_tokens[<bos>] / embed_positions
    patch_embed.proj (Conv, stride p)     backbone.embed_values (the kernel flattened)
    blocks.{i}.norm1 / norm2              backbone.layers.{i}.attn_norm / mlp_norm
    blocks.{i}.attn.qkv                   ….attn.q_proj / k_proj / v_proj (split)
    blocks.{i}.attn.proj                  ….attn.out_proj
    blocks.{i}.mlp.fc1 / fc2              ….mlp.fc1 / fc2
    blocks.{i}.ls1 / ls2 (LayerScale)     folded into out_proj / fc2 (exactly)
    norm                                  backbone.final_norm

The patch projection's bias is added to every token, [CLS] included, so [CLS]'s
embedding is stored as cls_token − bias. The classifier head (`head`,
num_classes) is not loaded: biofm fine-tunes its own heads (it is reported).
Pooling: global_pool "token" is `--pooling cls`, "avg" is `--pooling mean`. Refused with a clear error: other architectures (DeiT
distillation tokens, BEiT, EVA, Swin…), register tokens, no class token,
pre-norm (CLIP-style; see `biofm.interop.open_clip`), q/k norms, attention
pooling, dynamic image sizes. global_pool "avg" with fc_norm (timm's default for
it, RETFound's fine-tuned models) maps fc_norm to the final norm applied after
pooling (`backbone.final_norm: pooled`): the patch states are then timm's
un-normalised forward_features.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from biofm.backbones.vision import ImagePatchTokenizer
from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.interop.hf import Tensors, check_supported, read_hf_weights, read_json
from biofm.model import FoundationModel, load_weights

FAMILY = "timm ViT"
TIMM_FILES = "config.json (with 'architecture') and model.safetensors or pytorch_model.bin"
# timm's named ViT widths: embed_dim, depth, num_heads
_SIZES = {"tiny": (192, 12, 3), "small": (384, 12, 6), "medium": (512, 12, 8),
          "base": (768, 12, 12), "large": (1024, 24, 16), "huge": (1280, 32, 16)}
_ARCH = re.compile(r"^vit_(?P<size>tiny|small|medium|base|large|huge)_patch(?P<patch>\d+)_"
                   r"(?P<img>\d+)(?:\.[\w.]+)?$")
# model_args whose value biofm reproduces (or that only matter for training)
_HARMLESS = {"img_size", "patch_size", "in_chans", "num_classes", "global_pool", "embed_dim",
             "depth", "num_heads", "mlp_ratio", "qkv_bias", "init_values", "drop_rate",
             "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
             "drop_path_rate", "weight_init", "class_token", "no_embed_class", "reg_tokens",
             "pre_norm", "fc_norm", "final_norm", "dynamic_img_size", "qk_norm",
             "pos_embed", "dynamic_img_pad"}
_DEFAULTS = {"class_token": True, "no_embed_class": False, "reg_tokens": 0, "pre_norm": False,
             "fc_norm": None, "final_norm": True, "dynamic_img_size": False, "qk_norm": False,
             "pos_embed": "learn", "dynamic_img_pad": False}
_BLOCK = re.compile(r"^blocks\.(?P<i>\d+)\.(?P<name>.+)\.(?P<rest>weight|bias|gamma)$")
_BLOCK_NAMES = {"norm1": "attn_norm", "norm2": "mlp_norm", "attn.proj": "attn.out_proj",
                "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_QKV = ("q_proj", "k_proj", "v_proj")


def is_timm_dir(path: str | Path) -> bool:
    """A directory whose config.json names a timm architecture (timm's hub layout)."""
    config = Path(path) / "config.json"
    try:
        data = json.loads(config.read_text()) if config.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "architecture" in data and "model_type" not in data


def timm_architecture(config: dict[str, Any], source: Path | None = None) -> dict[str, Any]:
    """config.json → the ViT's settings (timm's defaults for the named architecture,
    then `model_args`), with a clear error for what biofm cannot reproduce."""
    arch = str(config.get("architecture", ""))
    m = _ARCH.match(arch)
    if m is None:
        raise BiofmError(f"unknown timm architecture {arch!r}", path=source,
                         fix="biofm loads timm's plain ViTs (vit_{tiny,small,medium,base,large,"
                             "huge}_patch{P}_{IMG}, e.g. vit_base_patch16_224, RETFound's "
                             "vit_large_patch16_224); convert other families with timm itself")
    width, depth, heads = _SIZES[m["size"]]
    settings: dict[str, Any] = {"embed_dim": width, "depth": depth, "num_heads": heads,
                                "patch_size": int(m["patch"]), "img_size": int(m["img"]),
                                "in_chans": 3, "mlp_ratio": 4.0, "qkv_bias": True,
                                "global_pool": config.get("global_pool", "token"), **_DEFAULTS}
    pretrained = config.get("pretrained_cfg") or {}
    if isinstance(pretrained.get("input_size"), list) and len(pretrained["input_size"]) == 3:
        settings["in_chans"] = int(pretrained["input_size"][0])
        settings["img_size"] = [int(s) for s in pretrained["input_size"][1:]]
    args = dict(config.get("model_args") or {})
    unknown = sorted(set(args) - _HARMLESS)
    if unknown:
        raise BiofmError(f"timm model_args {', '.join(unknown)} are not supported", path=source,
                         fix="load plain ViTs (patch embedding, blocks, final norm, class token)")
    settings.update(args)
    pool = settings["global_pool"] or "token"
    fc_norm = settings["fc_norm"] if settings["fc_norm"] is not None else pool == "avg"
    check_supported([
        (not settings["class_token"], "no class token (class_token=False)"),
        (bool(settings["no_embed_class"]), "no_embed_class=True (positions skip [CLS])"),
        (int(settings["reg_tokens"]) > 0, f"{settings['reg_tokens']} register tokens"),
        (bool(settings["pre_norm"]), "pre_norm=True (a LayerNorm before the blocks)"),
        (bool(settings["qk_norm"]), "qk_norm=True"),
        (not settings["final_norm"], "final_norm=False (no final LayerNorm at all)"),
        (pool not in ("token", "avg"), f"global_pool={pool!r}"),
        (settings["pos_embed"] != "learn", f"pos_embed={settings['pos_embed']!r}"),
        (bool(settings["dynamic_img_size"] or settings["dynamic_img_pad"]),
         "dynamic image sizes"),
    ], family=FAMILY, source=source,
        fix="biofm loads plain ViTs: a class token, learned positions, pre-norm blocks and "
            "a final LayerNorm, pooled by the class token or the mean of the patches")
    settings["global_pool"], settings["fc_norm"] = pool, bool(fc_norm)
    return settings


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else tuple(map(int, value))


def timm_config_to_pretrain(settings: dict[str, Any], d_ff: int) -> PretrainConfig:
    """The biofm config of a timm ViT (encoder, mae objective for further pretraining)."""
    width, heads = int(settings["embed_dim"]), int(settings["num_heads"])
    return PretrainConfig.from_dict({
        "data": {"modality": "imaging"},
        "backbone": {"kind": "encoder", "size": None, "d_model": width,
                     "n_layers": int(settings["depth"]), "n_heads": heads, "d_ff": d_ff,
                     "position": "learned", "norm_eps": 1e-6, "activation": "gelu",
                     "image_size": list(_pair(settings["img_size"])),
                     "patch_size": list(_pair(settings["patch_size"])),
                     "channels": int(settings["in_chans"]),
                     "final_norm": "pooled" if settings.get("fc_norm") else "tokens"},
        "objective": {"name": "mae", "mask_rate": 0.75}})


def timm_to_biofm(state: Tensors, tokenizer: ImagePatchTokenizer, *,
                  source: Path | None = None) -> tuple[Tensors, list[str]]:
    """timm ViT state dict → biofm backbone weights (`backbone.*`), and the keys left out
    (the classifier head). LayerScale gammas are folded into the projections before them."""
    state = dict(state)
    dropped = sorted(k for k in state if k.startswith(("head.", "head_drop.")))
    for key in dropped:
        state.pop(key)
    out: Tensors = {}
    proj = _pop(state, "patch_embed.proj.weight", source)  # (d, C, *p)
    bias = state.pop("patch_embed.proj.bias", None)
    bias = torch.zeros(proj.shape[0], dtype=proj.dtype) if bias is None else bias
    out["backbone.embed_values.weight"] = proj.reshape(proj.shape[0], -1)
    out["backbone.embed_values.bias"] = bias
    cls = _pop(state, "cls_token", source).reshape(-1)  # (d,)
    embed = torch.zeros(tokenizer.vocab_size, proj.shape[0], dtype=proj.dtype)
    embed[tokenizer.bos_id] = cls - bias  # the projection's bias reaches [CLS] too
    out["backbone.embed_tokens.weight"] = embed
    out["backbone.embed_positions.weight"] = _pop(state, "pos_embed", source)[0]  # (1 + N, d)
    norm = "fc_norm" if "fc_norm.weight" in state else "norm"  # fc_norm: after pooling
    for name in ("weight", "bias"):
        out[f"backbone.final_norm.{name}"] = _pop(state, f"{norm}.{name}", source)
    gammas = {k: state.pop(k) for k in [k for k in state if k.endswith(".gamma")]}
    for key in list(state):
        m = _BLOCK.match(key)
        if m is None or (m["name"] != "attn.qkv" and m["name"] not in _BLOCK_NAMES):
            continue  # reported below
        tensor, i, name, rest = state.pop(key), m["i"], m["name"], m["rest"]
        if name == "attn.qkv":
            for part, q in zip(tensor.chunk(3, dim=0), _QKV):
                out[f"backbone.layers.{i}.attn.{q}.{rest}"] = part
            continue
        scale = {"attn.proj": "ls1", "mlp.fc2": "ls2"}.get(name)
        gamma = gammas.get(f"blocks.{i}.{scale}.gamma") if scale else None
        if gamma is not None:  # x + γ ⊙ (W h + b) = x + (γW) h + γb
            tensor = tensor * (gamma[:, None] if rest == "weight" else gamma)
        out[f"backbone.layers.{i}.{_BLOCK_NAMES[name]}.{rest}"] = tensor
    for key in [k for k in gammas if _BLOCK.match(k)]:
        gammas.pop(key)
    for key in [k for k in out if k.endswith("_proj.weight") and ".attn." in k]:
        bias = key[: -len("weight")] + "bias"  # qkv_bias=False: zero q / k / v biases
        out.setdefault(bias, torch.zeros(out[key].shape[0], dtype=out[key].dtype))
    leftover = sorted(set(state) | set(gammas))
    if leftover:
        raise BiofmError(f"{FAMILY} weights have keys biofm cannot map: "
                         f"{', '.join(leftover[:5])}", path=source,
                         fix="only plain timm VisionTransformers can be converted")
    return out, dropped


def biofm_to_timm(state: Tensors, tokenizer: ImagePatchTokenizer) -> Tensors:
    """biofm ViT backbone weights → timm VisionTransformer names (no head; no LayerScale:
    folded gammas stay folded). The inverse of `timm_to_biofm` up to where the patch
    bias sits (timm's conv bias = biofm's projection bias + the <patch> embedding)."""
    state = {k: v for k, v in state.items() if k.startswith("backbone.")}
    out: Tensors = {}
    weight = state.pop("backbone.embed_values.weight")
    bias = state.pop("backbone.embed_values.bias")
    out["patch_embed.proj.weight"] = weight.reshape(weight.shape[0], tokenizer.channels,
                                                    *tokenizer.patch_size)
    embed = state.pop("backbone.embed_tokens.weight")
    # the <patch> embedding is a bias on patches only: timm's conv bias
    out["patch_embed.proj.bias"] = bias + embed[tokenizer.patch_id]
    out["cls_token"] = (embed[tokenizer.bos_id] + bias)[None, None]
    out["pos_embed"] = state.pop("backbone.embed_positions.weight")[None]
    for name in ("weight", "bias"):
        out[f"norm.{name}"] = state.pop(f"backbone.final_norm.{name}")
    inverse = {v: k for k, v in _BLOCK_NAMES.items()}
    layers = sorted({int(m[1]) for k in state if (m := re.match(r"backbone\.layers\.(\d+)\.", k))})
    for i in layers:
        for rest in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{rest}"] = torch.cat(
                [state.pop(f"backbone.layers.{i}.attn.{q}.{rest}") for q in _QKV])
            for ours, theirs in inverse.items():
                out[f"blocks.{i}.{theirs}.{rest}"] = state.pop(f"backbone.layers.{i}.{ours}.{rest}")
    if state:
        raise BiofmError(f"weights {', '.join(sorted(state)[:4])} have no timm counterpart",
                         fix="only ViTs with learned positions can be exported to timm")
    return out


def load_timm_vit(directory: str | Path) -> FoundationModel:
    """A timm ViT directory → FoundationModel (modality imaging; its mae decoder is
    freshly initialised, for further pretraining), in eval mode."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise BiofmError("config.json is missing", path=directory,
                         fix=f"a timm ViT directory holds {TIMM_FILES}")
    config_path = directory / "config.json"
    settings = timm_architecture(read_json(config_path), config_path)
    state, source = read_hf_weights(directory)
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    d_ff = int(fc1.shape[0]) if fc1 is not None else \
        int(settings["embed_dim"] * settings["mlp_ratio"])
    config = timm_config_to_pretrain(settings, d_ff)
    tokenizer = ImagePatchTokenizer.for_backbone(config.backbone)
    model = FoundationModel(config, tokenizer)
    converted, _ = timm_to_biofm(state, tokenizer, source=source)
    if not any(k.startswith("objective.") for k in converted):
        converted.update({k: v for k, v in model.state_dict().items()
                          if k.startswith("objective.")})
    load_weights(model, converted, source)
    return model.eval()


def _pop(state: Tensors, key: str, source: Path | None) -> torch.Tensor:
    if key not in state:
        raise BiofmError(f"{FAMILY} weights lack {key!r}", path=source,
                         fix="the weights file does not belong to this config.json; re-copy "
                             "the directory")
    return state.pop(key)


__all__ = ["biofm_to_timm", "is_timm_dir", "load_timm_vit", "timm_architecture",
           "timm_config_to_pretrain", "timm_to_biofm"]
