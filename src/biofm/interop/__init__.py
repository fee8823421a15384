"""Interop with Hugging Face layouts, and `load_pretrained` for either kind of directory."""

from __future__ import annotations

import json
from pathlib import Path

from biofm.errors import BiofmError
from biofm.interop.esm import (biofm_to_esm, esm_config_to_backbone, esm_to_biofm, is_hf_esm_dir,
                               load_hf_esm, save_hf_esm)
from biofm.model import FoundationModel

__all__ = ["biofm_to_esm", "esm_config_to_backbone", "esm_to_biofm", "is_hf_esm_dir",
           "load_hf_esm", "load_pretrained", "save_hf_esm"]


def load_pretrained(path: str | Path) -> FoundationModel:
    """A biofm checkpoint directory (biofm.json) or an HF ESM-2 directory → FoundationModel."""
    directory = Path(path)
    if not directory.exists():
        raise BiofmError("model directory does not exist", path=directory,
                         fix="pass a biofm checkpoint directory or a local HF ESM-2 directory")
    if not directory.is_dir():
        raise BiofmError("expected a model directory, got a file", path=directory,
                         fix="pass the directory that holds the weights")
    if (directory / "biofm.json").is_file():
        return FoundationModel.load(directory)
    if is_hf_esm_dir(directory):
        return load_hf_esm(directory)
    raise BiofmError(f"not a model directory biofm can read ({_describe(directory)})",
                     path=directory,
                     fix="expected a biofm checkpoint (biofm.json, config.yaml, model.safetensors, "
                         "tokenizer.json) or an HF ESM-2 directory (config.json with model_type "
                         "'esm', model.safetensors, vocab.txt)")


def _describe(directory: Path) -> str:
    config = directory / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, json.JSONDecodeError, AttributeError):
            return "config.json is unreadable"
        return f"config.json has model_type {model_type!r}; only 'esm' is supported"
    names = sorted(p.name for p in directory.iterdir())[:6]
    return f"found {', '.join(names)}" if names else "the directory is empty"
