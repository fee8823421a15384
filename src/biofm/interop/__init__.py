"""Interop with Hugging Face layouts (ESM, BERT, GPT-2), and `load_pretrained` for any model
directory."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from biofm.errors import BiofmError
from biofm.interop.bert import (bert_config_to_backbone, bert_to_biofm, bert_tokenizer,
                                biofm_to_bert, is_hf_bert_dir, load_bert_model, save_hf_bert)
from biofm.interop.esm import (biofm_to_esm, esm_config_to_backbone, esm_to_biofm, is_hf_esm_dir,
                               load_hf_esm, save_hf_esm)
from biofm.interop.gpt2 import (biofm_to_gpt2, gpt2_config_to_backbone, gpt2_to_biofm,
                                is_hf_gpt2_dir, load_hf_gpt2, save_hf_gpt2)
from biofm.model import FoundationModel

__all__ = ["bert_config_to_backbone", "bert_to_biofm", "bert_tokenizer", "biofm_to_bert",
           "biofm_to_esm", "biofm_to_gpt2", "esm_config_to_backbone", "esm_to_biofm",
           "gpt2_config_to_backbone", "gpt2_to_biofm", "is_hf_bert_dir", "is_hf_esm_dir",
           "is_hf_gpt2_dir", "load_bert_model", "load_hf_esm", "load_hf_gpt2", "load_pretrained",
           "save_hf_bert", "save_hf_esm", "save_hf_gpt2"]


def load_pretrained(path: str | Path, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> FoundationModel:
    """A biofm checkpoint directory (biofm.json), an HF ESM directory (ESM-2, Nucleotide
    Transformer), an HF BERT directory (BERT, MiniLM, DNABERT, Geneformer), an HF
    GPT-2 directory (ProtGPT2, GPT-2 SMILES models; modality from the vocabulary), a
    timm ViT directory (RETFound-style) or an open_clip directory (its image tower) →
    FoundationModel, in eval mode (no dropout; training code calls `.train()`), on
    `device` ("auto": CUDA when there is a GPU) in `dtype` (default: as saved)."""
    from biofm.device import resolve_device

    model = _load_any(Path(path)).eval()
    return model.to(device=resolve_device(device), dtype=dtype)


def _load_any(directory: Path) -> FoundationModel:
    if not directory.exists():
        raise BiofmError("model directory does not exist", path=directory,
                         fix="pass a biofm checkpoint directory or a local HF ESM / BERT / "
                             "GPT-2 directory")
    if not directory.is_dir():
        raise BiofmError("expected a model directory, got a file", path=directory,
                         fix="pass the directory that holds the weights")
    if (directory / "biofm.json").is_file():
        return FoundationModel.load(directory)
    if is_hf_esm_dir(directory):
        return load_hf_esm(directory)
    if is_hf_bert_dir(directory):
        from biofm.interop.geneformer import is_geneformer_dir, load_geneformer

        # a Geneformer directory is BERT layout plus its gene dictionaries
        return load_geneformer(directory) if is_geneformer_dir(directory) \
            else load_bert_model(directory)
    if is_hf_gpt2_dir(directory):
        return load_hf_gpt2(directory)
    from biofm.interop.open_clip import is_open_clip_dir, load_open_clip_image_tower
    from biofm.interop.timm_vit import is_timm_dir, load_timm_vit

    if is_timm_dir(directory):
        return load_timm_vit(directory)
    if is_open_clip_dir(directory):  # its image tower (the CLIP model: load_open_clip)
        return load_open_clip_image_tower(directory)
    raise BiofmError(f"not a model directory biofm can read ({_describe(directory)})",
                     path=directory,
                     fix="expected a biofm checkpoint (biofm.json, config.yaml, model.safetensors, "
                         "tokenizer.json), an HF ESM, BERT or GPT-2 directory (config.json "
                         "with model_type 'esm', 'bert' or 'gpt2', model.safetensors, and "
                         "vocab.txt or GPT-2's vocab.json + merges.txt), a timm ViT directory "
                         "(config.json with 'architecture', model.safetensors) or an open_clip "
                         "directory (open_clip_config.json + weights)")


def _describe(directory: Path) -> str:
    config = directory / "config.json"
    if config.is_file():
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (OSError, json.JSONDecodeError, AttributeError):
            return "config.json is unreadable"
        return (f"config.json has model_type {model_type!r}; only 'esm', 'bert' and 'gpt2' "
                "are supported")
    names = sorted(p.name for p in directory.iterdir())[:6]
    return f"found {', '.join(names)}" if names else "the directory is empty"
