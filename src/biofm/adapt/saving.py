"""Save and load adapted models as a self-describing directory:

    finetune.json       mode, task kind, head shape, target scaling, follow-up bins, metrics
    base/               the backbone as a biofm checkpoint (LoRA merged in)
    head.safetensors    head weights, or the probe's arrays
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from biofm.adapt.finetune import FinetuneConfig, FinetuneResult, TaskModel
from biofm.adapt.probe import LinearProbe
from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text, make_dirs
from biofm.model import FoundationModel, read_safetensors

INFO_FILE = "finetune.json"


@dataclass
class AdaptedModel:
    """A loaded fine-tuned model: `predict(texts)` gives probabilities or values."""

    base: FoundationModel
    predictor: TaskModel | LinearProbe
    info: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.info["kind"]

    def predict(self, texts: list[str]) -> np.ndarray:
        if isinstance(self.predictor, LinearProbe):
            return self.predictor.predict(self.base.embed(texts, pooling=self.info["pooling"]))
        return self.predictor.predict(texts)


def merged_base(model: FoundationModel) -> FoundationModel:
    """A plain copy of `model` with any LoRA deltas folded into the weights."""
    from peft.tuners.lora import LoraLayer

    base = copy.deepcopy(model).cpu()
    lora_layers = [(n, m) for n, m in base.backbone.named_modules() if isinstance(m, LoraLayer)]
    if not lora_layers:
        return base
    clean = FoundationModel(base.config, base.tokenizer)
    # peft keeps the wrapped linear as `<name>.base_layer`; its adapters are `lora_*`
    state = {name.replace(".base_layer.", "."): tensor
             for name, tensor in base.state_dict().items() if "lora_" not in name}
    _check_same_keys(state, clean.state_dict())
    for name, module in lora_layers:
        key = f"backbone.{name}.weight"
        state[key] = state[key] + module.get_delta_weight("default").cpu()
    clean.load_state_dict(state, strict=True)
    return clean


def _check_same_keys(merged: dict[str, torch.Tensor], plain: dict[str, torch.Tensor]) -> None:
    """The renamed peft state dict must name exactly the plain model's weights: a key
    left over or missing means a weight would be silently dropped or left random."""
    missing, unexpected = sorted(set(plain) - set(merged)), sorted(set(merged) - set(plain))
    if missing or unexpected:
        raise RuntimeError(f"internal error merging LoRA into the base model: weights missing "
                           f"after renaming peft's keys {missing}, unexpected {unexpected} "
                           f"(a peft version with another key layout?)")


# what a fine-tuned model directory holds (metrics.json and labels.json: `biofm finetune`)
MODEL_FILES = (INFO_FILE, "head.safetensors", "base", "metrics.json", "labels.json")


def holds_finetuned(directory: Path) -> bool:
    return directory.is_dir() and any((directory / name).exists() for name in MODEL_FILES)


def check_finetune_output(directory: str | Path, overwrite: bool) -> Path:
    """Before any work: refuse a file at `directory`, or a fine-tuned model already
    in it unless `overwrite`."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BiofmError("the output directory is a file", path=directory,
                         fix="choose another --output")
    if holds_finetuned(directory) and not overwrite:
        raise BiofmError("this directory already holds a fine-tuned model", path=directory,
                         fix="choose another --output, or pass --overwrite to replace it")
    return directory


def save_finetuned(result: FinetuneResult, base: FoundationModel, directory: str | Path,
                   config: FinetuneConfig, kind: str, task: str | None = None,
                   split: str | None = None, *, overwrite: bool = False) -> Path:
    """Write the model directory (module docstring); a model already there is
    refused, or with `overwrite` removed first (no file of it is left behind)."""
    directory = check_finetune_output(directory, overwrite)
    for name in MODEL_FILES if overwrite else ():
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    make_dirs(directory)
    info: dict[str, Any] = {"format": "biofm-finetuned", "version": 1, "mode": result.mode,
                            "kind": kind, "task": task, "split": split, "pooling": config.pooling,
                            "config": config.model_dump(mode="json"),
                            "valid_metrics": result.valid_metrics,
                            "test_metrics": result.test_metrics}
    if isinstance(result.model, LinearProbe):
        base.save(directory / "base")
        # C order: a multiclass sklearn coef_ can be Fortran-ordered, which safetensors refuses
        tensors = {k: torch.as_tensor(np.ascontiguousarray(v, dtype=np.float64))
                   for k, v in result.model.arrays().items()}
    else:
        merged_base(result.model.base).save(directory / "base")
        tensors = {k: v.detach().cpu().contiguous() for k, v in result.model.head.state_dict().items()}
        info.update(n_outputs=int(result.model.head.state_dict()[_last_weight(result.model)].shape[0]),
                    target_mean=result.model.target_mean, target_std=result.model.target_std)
    if getattr(result.model, "edges", None) is not None:  # survival: days of the bin edges
        info["bin_edges"] = [float(e) for e in result.model.edges]
    with atomic_path(directory / "head.safetensors") as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(directory / INFO_FILE, json.dumps(info, indent=1))
    return directory


def _last_weight(model: TaskModel) -> str:
    return [k for k in model.head.state_dict() if k.endswith("weight")][-1]


def load_finetuned(directory: str | Path, device: str | torch.device = "cpu") -> AdaptedModel:
    """A `biofm finetune` output directory, on `device` ("auto": CUDA when there is one)."""
    from biofm.device import resolve_device

    adapted = _load_finetuned(Path(directory))
    device = resolve_device(device)
    adapted.base.to(device)
    if not isinstance(adapted.predictor, LinearProbe):
        adapted.predictor.to(device)
    return adapted


def _load_finetuned(directory: Path) -> AdaptedModel:
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        raise BiofmError("not a fine-tuned model directory (no finetune.json)", path=directory,
                         fix="pass the --output directory of `biofm finetune`")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BiofmError(f"{INFO_FILE} is unreadable ({exc})", path=info_path,
                         fix="re-run `biofm finetune`, or re-copy the directory") from None
    base = FoundationModel.load(directory / "base")
    head = read_safetensors(directory / "head.safetensors")
    if info["mode"] == "probe":
        arrays = {k: v.numpy() for k, v in head.items()}
        return AdaptedModel(base, LinearProbe(info["kind"], **arrays), info)
    config = FinetuneConfig.from_dict(info["config"])
    model = TaskModel(base, info["kind"], info["n_outputs"], config,
                      (info["target_mean"], info["target_std"]), info.get("bin_edges"))
    model.head.load_state_dict(head)
    return AdaptedModel(base, model, info)


__all__ = ["AdaptedModel", "check_finetune_output", "load_finetuned", "save_finetuned"]
