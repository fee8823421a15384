"""A trained pair model as a self-describing directory:

    pair.json           format, the two sides (role, column, modality), PairConfig,
                        target scaling, task, split and metrics
    tower_a/, tower_b/  each tower as a biofm checkpoint (LoRA merged in), loadable
                        alone by `biofm embed` or `load_pretrained`
    head.safetensors    the interaction head's weights
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from biofm.adapt.saving import merged_base
from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text
from biofm.model import FoundationModel, read_safetensors
from biofm.pairs.data import Side
from biofm.pairs.model import PairConfig, PairModel
from biofm.pairs.towers import Tower

INFO_FILE = "pair.json"
TOWER_DIRS = ("tower_a", "tower_b")


def save_pair_model(model: PairModel, sides: tuple[Side, Side], directory: str | Path,
                    **info: Any) -> Path:
    """Write `model` to `directory`; `info` (task, split, metrics) goes into pair.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, tower in zip(TOWER_DIRS, model.towers):
        merged_base(tower.base).save(directory / name)
    with atomic_path(directory / "head.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
                  str(tmp))
    record = {"format": "biofm-pair-model", "version": 1,
              "sides": [asdict(s) for s in sides],
              "config": model.config.model_dump(mode="json"),
              "target_mean": model.target_mean, "target_std": model.target_std, **info}
    atomic_write_text(directory / INFO_FILE, json.dumps(record, indent=1))
    return directory


def load_pair_model(directory: str | Path,
                    device: str = "cpu") -> tuple[PairModel, tuple[Side, Side], dict[str, Any]]:
    """(model in eval mode, its sides, the pair.json record) of a saved pair model."""
    from biofm.device import resolve_device

    directory = Path(directory)
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        raise BiofmError("not a pair model directory (no pair.json)", path=directory,
                         fix="pass the --output directory of `biofm pair-finetune`")
    try:
        info = json.loads(info_path.read_text())
        sides = tuple(Side(**s) for s in info["sides"])
        config = PairConfig.from_dict(info["config"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BiofmError(f"{INFO_FILE} is unreadable ({exc})", path=info_path,
                         fix="re-run `biofm pair-finetune`, or re-copy the directory") from None
    towers = tuple(Tower(FoundationModel.load(directory / name), max_tokens=config.max_tokens,
                         long_inputs=config.long_inputs) for name in TOWER_DIRS)
    model = PairModel(towers, config, (info["target_mean"], info["target_std"]))  # type: ignore[arg-type]
    model.head.load_state_dict(read_safetensors(directory / "head.safetensors"))
    return model.to(resolve_device(device)).eval(), sides, info  # type: ignore[return-value]


__all__ = ["INFO_FILE", "load_pair_model", "save_pair_model"]
