"""open_clip directories → biofm `ClipModel` (image ViT + text transformer).

An open_clip directory (the layout of hub models such as BiomedCLIP and the
LAION CLIPs):

    open_clip_config.json        {"model_cfg": {"embed_dim", "vision_cfg", "text_cfg", …},
                                  "preprocess_cfg": {"mean", "std", …}}
    open_clip_model.safetensors  (or open_clip_pytorch_model.bin)

Supported: open_clip's built-in towers (`open_clip.CLIP`) and a timm ViT image
tower (`vision_cfg.timm_model_name`, BiomedCLIP's layout: `visual.trunk.*` in timm's
ViT names, converted by `biofm.interop.timm_vit`, pooled by its class token, and
`visual.head.proj`, a linear map without bias). The built-in vision
transformer (conv patch embedding without bias, class embedding, positions,
ln_pre, pre-norm blocks, ln_post on the tokens, [CLS] pooled, `proj`) and the
causal text transformer (token + position embeddings, pre-norm blocks under a
causal mask, ln_final, pooled at the end-of-text token = the largest id,
`text_projection`); GELU or QuickGELU; LayerScale (folded into the projections
before it). Names, per block (`transformer.resblocks.{i}`):

    ln_1 / ln_2                     attn_norm / mlp_norm
    attn.in_proj_weight / _bias     attn.q_proj / k_proj / v_proj (split)
    attn.out_proj                   attn.out_proj
    mlp.c_fc / mlp.c_proj           mlp.fc1 / mlp.fc2

and visual.conv1 → image.backbone.embed_values (flattened, zero bias),
visual.class_embedding → embed_tokens[<bos>], visual.ln_pre → embed_norm,
visual.ln_post → final_norm, visual.proj → image_proj (transposed),
text_projection → text_proj (transposed), logit_scale → contrastive.log_scale.

Not supported (a clear error names the setting): a Hugging Face text tower
(`text_cfg.hf_model_name`: BiomedCLIP's PubMedBERT, whose config is not in the
directory; the image tower of such a directory still loads, with
`load_open_clip_image_tower` and `biofm embed`), timm towers pooled otherwise than
by the class token or with an MLP projection, attentional pooling, ln_post after
pooling, CoCa / SigLIP variants.

The text tower's tokenizer is CLIP's BPE (`biofm.interop.clip_bpe`), read from
the directory's vocab.json + merges.txt when they are there (hub directories
usually carry them), so `ClipModel.encode_texts` and zero-shot prompts work;
without them `ClipModel.encode_text_ids` takes ids from open_clip's tokenizer;
`biofm embed` on the directory embeds images with the image tower
(pooled [CLS] before the projection).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from biofm.backbones import build_backbone
from biofm.backbones.vision import ImagePatchTokenizer
from biofm.config import BackboneConfig, PretrainConfig
from biofm.errors import BiofmError
from biofm.interop.clip_bpe import ClipBpeTokenizer, is_clip_bpe_dir, read_clip_bpe
from biofm.interop.hf import (
    Tensors,
    _read_torch_bin,  # noqa: PLC2701  (the shared .bin reader)
    check_supported,
    read_json,
)
from biofm.interop.timm_vit import (
    timm_architecture,
    timm_config_to_pretrain,
    timm_to_biofm,
)
from biofm.model import FoundationModel, load_weights, read_safetensors
from biofm.objectives.clip import ClipModel

FAMILY = "open_clip"
CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_BLOCK = re.compile(r"^transformer\.resblocks\.(?P<i>\d+)\.(?P<name>.+)$")
_NAMES = {"ln_1": "attn_norm", "ln_2": "mlp_norm", "attn.out_proj": "attn.out_proj",
          "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_QKV = ("q_proj", "k_proj", "v_proj")


def is_open_clip_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


FIX = ("biofm loads open_clip's built-in ViT or a timm ViT image tower and the built-in "
       "causal text transformer (open_clip.CLIP); see biofm.interop.open_clip for the rest")


def _vision_settings(model_cfg: dict[str, Any], source: Path) -> tuple[dict, str]:
    vision = dict(model_cfg.get("vision_cfg") or {})
    timm = bool(vision.get("timm_model_name"))
    check_supported([
        (timm and vision.get("timm_pool", "avg") not in ("", "token"),
         f"a timm image tower pooled by {vision.get('timm_pool', 'avg')!r} (biofm: its class "
         "token, timm_pool '' or 'token')"),
        (timm and vision.get("timm_proj", "linear") != "linear",
         f"a timm image tower with timm_proj={vision.get('timm_proj')!r}"),
        (timm and bool(vision.get("timm_proj_bias")), "a timm image projection with a bias"),
        (bool(vision.get("attentional_pool")), "attentional pooling (vision_cfg)"),
        (bool(vision.get("final_ln_after_pool")), "final_ln_after_pool (vision_cfg)"),
        (vision.get("pool_type", "tok") != "tok", f"vision pool_type {vision.get('pool_type')!r}"),
        (isinstance(vision.get("image_size"), (list, tuple))
         and len(set(vision["image_size"])) > 1, "a non-square image size"),
    ], family=FAMILY, source=source, fix=FIX)
    return vision, "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"


def _text_settings(model_cfg: dict[str, Any], source: Path) -> dict:
    text = dict(model_cfg.get("text_cfg") or {})
    check_supported([
        (bool(text.get("hf_model_name")),
         f"a Hugging Face text tower (text_cfg.hf_model_name={text.get('hf_model_name')!r}, "
         "as in BiomedCLIP; its config is not in the directory); its image tower loads with "
         "load_open_clip_image_tower (and `biofm embed`)"),
        (bool(text.get("final_ln_after_pool")), "final_ln_after_pool (text_cfg)"),
        (text.get("pool_type", "argmax") != "argmax", f"text pool_type {text.get('pool_type')!r}"),
        (bool(text.get("embed_cls")), "text embed_cls (CoCa)"),
        (bool(text.get("no_causal_mask")), "a text tower without a causal mask"),
        (bool(text.get("proj_bias")) or text.get("proj_type", "linear") != "linear",
         "a text projection other than one linear map without bias"),
        (bool(model_cfg.get("init_logit_bias")), "a logit bias (SigLIP)"),
    ], family=FAMILY, source=source, fix=FIX)
    return text


def _size(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def open_clip_image_config(vision: dict[str, Any], activation: str,
                           source: Path | None = None) -> PretrainConfig:
    """The biofm config of the image tower (built-in ViT, or timm's named ViT)."""
    if vision.get("timm_model_name"):  # open_clip builds timm's model at its own defaults
        settings = timm_architecture({"architecture": vision["timm_model_name"]}, source)
        return timm_config_to_pretrain(settings, int(settings["embed_dim"]
                                                     * settings["mlp_ratio"]))
    width = int(vision.get("width", 768))
    image, patch = _size(vision.get("image_size", 224)), _size(vision.get("patch_size", 16))
    return PretrainConfig.from_dict({
        "data": {"modality": "imaging"},
        "backbone": {"kind": "encoder", "size": None, "d_model": width,
                     "n_layers": int(vision.get("layers", 12)),
                     "n_heads": width // int(vision.get("head_width", 64)),
                     "d_ff": int(width * float(vision.get("mlp_ratio", 4.0))),
                     "position": "learned", "norm_eps": 1e-5, "activation": activation,
                     "embed_norm": not vision.get("no_ln_pre", False),
                     "image_size": [image, image], "patch_size": [patch, patch], "channels": 3},
        "objective": {"name": "mae", "mask_rate": 0.75}})


def open_clip_text_backbone(text: dict[str, Any], activation: str) -> BackboneConfig:
    width = int(text.get("width", 512))
    return BackboneConfig(kind="decoder", size=None, d_model=width,
                          n_layers=int(text.get("layers", 12)), n_heads=int(text.get("heads", 8)),
                          d_ff=int(width * float(text.get("mlp_ratio", 4.0))),
                          vocab_size=int(text.get("vocab_size", 49408)),
                          max_len=int(text.get("context_length", 77)), position="learned",
                          norm_eps=1e-5, activation=activation, pad_id=int(text.get("pad_id", 0)))


def _blocks(state: Tensors, prefix: str, out_prefix: str) -> Tensors:
    """open_clip resblocks under `prefix` → biofm `Block`s under `out_prefix` (LayerScale
    gammas folded into out_proj / fc2); the keys used are removed from `state`."""
    out: Tensors = {}
    for key in [k for k in state if k.startswith(prefix + "transformer.resblocks.")]:
        m = _BLOCK.match(key[len(prefix):])
        if m is None or key not in state:
            continue
        i, name = m["i"], m["name"]
        if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
            rest = "weight" if name.endswith("weight") else "bias"
            for part, q in zip(state.pop(key).chunk(3, dim=0), _QKV):
                out[f"{out_prefix}layers.{i}.attn.{q}.{rest}"] = part
            continue
        base, _, rest = name.rpartition(".")
        if base not in _NAMES:
            continue  # reported by the caller
        tensor = state.pop(key)
        scale = {"attn.out_proj": "ls_1", "mlp.c_proj": "ls_2"}.get(base)
        gamma = state.get(f"{prefix}transformer.resblocks.{i}.{scale}.gamma") if scale else None
        if gamma is not None:  # x + γ ⊙ (W h + b) = x + (γW) h + γb
            tensor = tensor * (gamma[:, None] if rest == "weight" else gamma)
        out[f"{out_prefix}layers.{i}.{_NAMES[base]}.{rest}"] = tensor
    for key in [k for k in state if k.startswith(prefix) and re.search(r"\.ls_[12]\.gamma$", k)]:
        state.pop(key)
    return out


def image_tower_to_biofm(state: Tensors, vision: dict[str, Any],
                         tokenizer: ImagePatchTokenizer, *,
                         source: Path | None = None) -> tuple[Tensors, torch.Tensor]:
    """The `visual.*` weights (removed from `state`) → (image FoundationModel weights,
    image_proj.weight (embed_dim, d)). A timm tower's `visual.trunk.*` are timm's ViT
    layout (`biofm.interop.timm_vit`), its `visual.head.proj` the projection."""
    take = lambda key: _take(state, key, source)  # noqa: E731
    if vision.get("timm_model_name"):
        trunk = {k[len("visual.trunk."):]: state.pop(k)
                 for k in [k for k in state if k.startswith("visual.trunk.")]}
        image, _ = timm_to_biofm(trunk, tokenizer, source=source)
        return image, take("visual.head.proj.weight")
    image: Tensors = {}
    conv = take("visual.conv1.weight")  # (d, 3, p, p), no bias
    d = conv.shape[0]
    image["backbone.embed_values.weight"] = conv.reshape(d, -1)
    image["backbone.embed_values.bias"] = torch.zeros(d, dtype=conv.dtype)
    embed = torch.zeros(tokenizer.vocab_size, d, dtype=conv.dtype)
    embed[tokenizer.bos_id] = take("visual.class_embedding")
    image["backbone.embed_tokens.weight"] = embed
    image["backbone.embed_positions.weight"] = take("visual.positional_embedding")
    for ours, theirs in (("embed_norm", "ln_pre"), ("final_norm", "ln_post")):
        for rest in ("weight", "bias"):
            if f"visual.{theirs}.{rest}" in state:
                image[f"backbone.{ours}.{rest}"] = take(f"visual.{theirs}.{rest}")
    image.update(_blocks(state, "visual.", "backbone."))
    return image, take("visual.proj").T.contiguous()


def open_clip_to_biofm(state: Tensors, tokenizer: ImagePatchTokenizer, *,
                       vision: dict[str, Any] | None = None,
                       source: Path | None = None) -> tuple[Tensors, Tensors, Tensors]:
    """open_clip CLIP state dict → (image FoundationModel backbone weights, text backbone
    weights, ClipModel head weights: projections and log_scale)."""
    state = dict(state)
    take = lambda key: _take(state, key, source)  # noqa: E731
    image, image_proj = image_tower_to_biofm(state, vision or {}, tokenizer, source=source)
    text: Tensors = {"embed_tokens.weight": take("token_embedding.weight"),
                     "embed_positions.weight": take("positional_embedding"),
                     "final_norm.weight": take("ln_final.weight"),
                     "final_norm.bias": take("ln_final.bias")}
    text.update(_blocks(state, "", ""))
    head = {"image_proj.weight": image_proj,
            "text_proj.weight": take("text_projection").T.contiguous(),
            "contrastive.log_scale": take("logit_scale").reshape(())}
    state.pop("attn_mask", None)
    if state:
        raise BiofmError(f"{FAMILY} weights have keys biofm cannot map: "
                         f"{', '.join(sorted(state)[:5])}", path=source,
                         fix="only open_clip's built-in text transformer and a built-in or "
                             "timm ViT image tower convert")
    return image, text, head


def _read_model_cfg(directory: Path) -> tuple[dict[str, Any], Path]:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise BiofmError(f"{CONFIG_FILE} is missing", path=directory,
                         fix=f"an open_clip directory holds {CONFIG_FILE} and one of "
                             f"{', '.join(WEIGHT_FILES)}")
    model_cfg = read_json(config_path).get("model_cfg")
    if not isinstance(model_cfg, dict):
        raise BiofmError("no model_cfg in the config", path=config_path,
                         fix="use the open_clip_config.json saved with the weights")
    return model_cfg, config_path


def _image_tower(model_cfg: dict[str, Any], config_path: Path
                 ) -> tuple[FoundationModel, dict[str, Any], str]:
    vision, activation = _vision_settings(model_cfg, config_path)
    config = open_clip_image_config(vision, activation, config_path)
    return FoundationModel(config, ImagePatchTokenizer.for_backbone(config.backbone)), vision, \
        activation


def _fresh_decoder(image: FoundationModel) -> Tensors:
    """The image tower's mae decoder stays freshly initialised (for further pretraining)."""
    return {k: v for k, v in image.state_dict().items() if k.startswith("objective.")}


def load_open_clip(directory: str | Path) -> ClipModel:
    """An open_clip directory → ClipModel (eval mode); see the module docstring."""
    directory = Path(directory)
    model_cfg, config_path = _read_model_cfg(directory)
    image, vision, activation = _image_tower(model_cfg, config_path)
    text_cfg = _text_settings(model_cfg, config_path)
    text = build_backbone(open_clip_text_backbone(text_cfg, activation))
    clip = ClipModel(image, text, _text_tokenizer(directory, text.config.vocab_size),
                     embed_dim=int(model_cfg.get("embed_dim", 512)), text_pooling="eot")
    state, source = _read_weights(directory)
    image_state, text_state, head = open_clip_to_biofm(
        state, image.tokenizer, vision=vision, source=source)  # type: ignore[arg-type]
    image_state.update(_fresh_decoder(image))
    load_weights(clip, {**{f"image.{k}": v for k, v in image_state.items()},
                        **{f"text.{k}": v for k, v in text_state.items()}, **head}, source)
    return clip.eval()


def _text_tokenizer(directory: Path, vocab_size: int) -> ClipBpeTokenizer | None:
    """CLIP's BPE from the directory's vocab.json + merges.txt, when it has them."""
    if not is_clip_bpe_dir(directory):
        return None
    tokenizer = read_clip_bpe(directory)
    if tokenizer.vocab_size != vocab_size:
        raise BiofmError(f"vocab.json holds {tokenizer.vocab_size} tokens, the text tower "
                         f"{vocab_size}", path=directory / "vocab.json",
                         fix="use the tokenizer files saved with these weights")
    return tokenizer


def load_open_clip_image_tower(directory: str | Path) -> FoundationModel:
    """The image tower of an open_clip directory (whatever its text tower, e.g.
    BiomedCLIP's PubMedBERT), as the FoundationModel `biofm embed` uses: pooled [CLS]
    before the projection."""
    directory = Path(directory)
    model_cfg, config_path = _read_model_cfg(directory)
    image, vision, _ = _image_tower(model_cfg, config_path)
    state, source = _read_weights(directory)
    image_state, _ = image_tower_to_biofm(dict(state), vision, image.tokenizer,  # type: ignore
                                          source=source)
    image_state.update(_fresh_decoder(image))
    load_weights(image, image_state, source)
    return image.eval()


def _read_weights(directory: Path) -> tuple[Tensors, Path]:
    safetensors, legacy = (directory / name for name in WEIGHT_FILES)
    if safetensors.is_file():
        return read_safetensors(safetensors), safetensors
    if legacy.is_file():
        state = _read_torch_bin(legacy)
        return state.get("state_dict", state), legacy
    raise BiofmError("no open_clip weights file in this directory", path=directory,
                     fix=f"copy {' or '.join(WEIGHT_FILES)} beside {CONFIG_FILE}")


def _take(state: Tensors, key: str, source: Path | None) -> torch.Tensor:
    if key not in state:
        raise BiofmError(f"{FAMILY} weights lack {key!r}", path=source,
                         fix=f"the weights do not belong to this {CONFIG_FILE}; re-copy "
                             "the directory")
    return state.pop(key)


__all__ = ["image_tower_to_biofm", "is_open_clip_dir", "load_open_clip",
           "load_open_clip_image_tower", "open_clip_image_config", "open_clip_text_backbone",
           "open_clip_to_biofm"]
