"""What the Hugging Face converters share: name maps, key renaming, config checks,
reading a checkpoint directory (config.json, weights, vocab.txt) and the tied
MLM head. `esm` and `bert` hold only what differs between the two layouts.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from biofm.errors import BiofmError
from biofm.model import FoundationModel, read_safetensors

Tensors = dict[str, torch.Tensor]
NameMap = tuple[tuple[str, str], ...]  # (biofm prefix, HF prefix); "{i}" is a layer index
Rules = list[tuple[re.Pattern, str]]
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
VOCAB_FILE = "vocab.txt"
_LEGACY_NORM_NAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))


def compile_rules(pairs: NameMap, to_hf: bool) -> Rules:
    """Regexes for a name map; each prefix is followed by weight / bias / nothing."""
    rules = []
    for ours, theirs in pairs:
        src, dst = (ours, theirs) if to_hf else (theirs, ours)
        pattern = re.escape(src).replace(re.escape("{i}"), r"(?P<i>\d+)")
        rules.append((re.compile(f"^{pattern}(?P<rest>weight|bias|)$"), dst))
    return rules


def rename(key: str, rules: Rules) -> str | None:
    for pattern, dst in rules:
        m = pattern.match(key)
        if m:
            return dst.replace("{i}", m.groupdict().get("i", "")) + m["rest"]
    return None


def normalise_key(key: str, prefix: str, heads: tuple[str, ...]) -> str:
    """Base-model keys lack the `prefix` (e.g. "esm."); old checkpoints (and
    transformers v5) name LayerNorm parameters gamma / beta."""
    if not key.startswith((prefix, *heads)):
        key = prefix + key
    for legacy, name in _LEGACY_NORM_NAMES:
        if key.endswith(legacy):
            return key[: -len(legacy)] + name
    return key


def map_keys(state: Tensors, rules: Rules, dropped: re.Pattern, *, family: str,
             source: Path | None, fix: str) -> Tensors:
    """Rename every key with `rules`, skipping `dropped`; unknown keys are an error."""
    out: Tensors = {}
    unknown = []
    for key, tensor in state.items():
        if dropped.search(key):
            continue
        name = rename(key, rules)
        if name is None:
            unknown.append(key)
        else:
            out[name] = tensor
    if unknown:
        names = ", ".join(sorted(unknown)[:5])
        raise BiofmError(f"{family} weights have keys biofm cannot map: {names}", path=source,
                         fix=fix)
    return out


def to_hf_names(state: Tensors, rules: Rules, *, family: str, fix: str) -> Tensors:
    """biofm names → HF names (tensors shared, not copied); a weight with no
    counterpart is an error."""
    out: Tensors = {}
    for key, tensor in state.items():
        name = rename(key, rules)
        if name is None:
            raise BiofmError(f"weight {key!r} has no {family} counterpart", fix=fix)
        out[name] = tensor
    return out


def check_supported(reasons: list[tuple[bool, str]], *, family: str, source: Path | None,
                    fix: str) -> None:
    for bad, why in reasons:
        if bad:
            raise BiofmError(f"unsupported {family} config: {why}", path=source, fix=fix)


def require_fields(config: dict[str, Any], names: tuple[str, ...], *, family: str,
                   source: Path | None) -> None:
    missing = [k for k in names if config.get(k) is None]
    if missing:
        raise BiofmError(f"{family} config lacks {', '.join(missing)}", path=source,
                         fix="use the config.json saved with the checkpoint")


# -- directories -----------------------------------------------------------------

def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BiofmError(f"cannot read JSON ({exc})", path=path,
                         fix="re-copy the checkpoint directory") from None
    if not isinstance(data, dict):
        raise BiofmError("expected a JSON object", path=path,
                         fix="re-copy the checkpoint directory")
    return data


def has_model_type(path: str | Path, model_type: str) -> bool:
    """A directory with a config.json whose model_type is `model_type`."""
    config = Path(path) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("model_type") == model_type
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def read_config(directory: Path, family: str, files: str) -> tuple[dict[str, Any], Path]:
    """config.json of an HF directory, with clear errors when the directory or file is absent."""
    if not directory.is_dir():
        raise BiofmError(f"HF {family} directory does not exist", path=directory,
                         fix=f"pass a local copy of a {family} checkpoint directory")
    path = directory / "config.json"
    if not path.is_file():
        raise BiofmError("config.json is missing", path=directory,
                         fix=f"an HF {family} directory holds {files}")
    return read_json(path), path


def _read_torch_bin(path: Path) -> Tensors:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe pickles
        raise BiofmError(f"weights file is unreadable or truncated ({exc})", path=path,
                         fix="re-copy the checkpoint, or convert it to model.safetensors") from None
    if not isinstance(state, dict):
        raise BiofmError("weights file does not hold a state dict", path=path,
                         fix="re-copy the checkpoint")
    return state


def read_hf_weights(directory: Path) -> tuple[Tensors, Path]:
    """Weights of an HF directory: model.safetensors, sharded safetensors, or pytorch_model.bin."""
    single, index, legacy = (directory / name for name in HF_WEIGHT_FILES)
    if single.is_file():
        return read_safetensors(single), single
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        state: Tensors = {}
        for shard in shards:
            if not (directory / shard).is_file():
                raise BiofmError(f"shard {shard} named in {index.name} is missing", path=directory,
                                 fix="copy every model-*.safetensors shard")
            state.update(read_safetensors(directory / shard))
        return state, index
    if legacy.is_file():
        return _read_torch_bin(legacy), legacy
    raise BiofmError("no weights file in this directory", path=directory,
                     fix=f"an HF checkpoint directory needs one of: {', '.join(HF_WEIGHT_FILES)}")


def read_vocab(directory: Path) -> list[str]:
    """vocab.txt → tokens in id order (one per line; trailing blank lines ignored);
    an empty list when there is no vocab.txt."""
    path = directory / VOCAB_FILE
    if not path.is_file():
        return []
    vocab = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").split("\n")]
    while vocab and not vocab[-1]:
        vocab.pop()
    return vocab


def fit_tied_head(model: FoundationModel, state: Tensors, source: Path, *,
                  decoder_name: str, head_names: str) -> bool:
    """Tie the MLM decoder to the word embeddings (both layouts do); when the weights
    hold no head (a base model or sentence encoder), keep the fresh one with a
    warning. Returns whether the checkpoint had a head."""
    decoder = state.pop("objective.head.decoder.weight", None)
    embedding = state.get("backbone.embed_tokens.weight")
    if decoder is not None and embedding is not None and not torch.equal(decoder, embedding):
        raise BiofmError(f"{decoder_name} differs from the word embeddings", path=source,
                         fix="biofm ties the output projection to the embeddings; untied "
                             "heads are not supported")
    if any(k.startswith("objective.") for k in state):
        return True
    warnings.warn(f"{source}: no {head_names} weights (a base-model or sentence-encoder "
                  "checkpoint); the MLM head is randomly initialised, so hidden states and "
                  "embeddings are the checkpoint's but MLM logits and zero-shot scores are "
                  "meaningless", stacklevel=3)
    for key, value in model.state_dict().items():
        if key.startswith("objective.") and key != "objective.head.decoder.weight":
            state[key] = value
    return False
