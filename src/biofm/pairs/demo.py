"""The drug–target row of `biofm demo`: KIBA cold-target at a size that fits the demo.

    table = kiba_demo(protein_model, molecule_model)     # the demo's tiny towers
    table = kiba_demo()                                  # pretrains them first

Towers: the demo's own `protein-mlm-tiny` and `molecule-mlm-tiny` models when given,
else those presets pretrained here (about a minute each on 2 CPU cores). The
comparison (`pair_compare`: GBT on ECFP + composition, training means, scratch
towers, pretrained towers frozen / LoRA / fine-tuned) runs on KIBA's cold-target
split (test kinases and their near-identical relatives never seen in training) at
the demo size: 800 training pairs, 6 epochs, 256 tokens per target, one seed.
One seed of 800 pairs is a smoke test of the pipeline, not a ranking of methods
(docs/pairs.md has the 3-seed measurement). On a CPU it runs on one intra-op thread
or all, whichever a short probe finds faster at the start (`small_model_threads`):
34 s with two threads on a quiet 2-core machine (54 s with one), where two threads
spin-waiting on a shared machine took over 30 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from biofm.bench.report import ResultTable
from biofm.model import FoundationModel

Say = Callable[[str], None]


@dataclass(frozen=True)
class KibaDemo:
    split: str = "cold-target"
    max_train: int = 800
    epochs: int = 6
    max_tokens: int = 256
    protein_preset: str = "protein-mlm-tiny"
    molecule_preset: str = "molecule-mlm-tiny"


KIBA_DEMO = KibaDemo()
QUICK = KibaDemo(max_train=60, epochs=2, max_tokens=64)  # seconds: for tests


def kiba_demo(protein: FoundationModel | None = None, molecule: FoundationModel | None = None,
              *, seeds: int = 1, quick: bool = False, output: str | Path = "demo_out",
              say: Say | None = None, device: str = "auto") -> ResultTable:
    """KIBA cold-target comparison table at the demo size (see the module docstring);
    towers not given are pretrained from their presets under `output`/pretrain/."""
    from biofm.pairs.compare import pair_compare
    from biofm.pairs.data import PAIR_TASKS

    plan = QUICK if quick else KIBA_DEMO
    if protein is None:
        protein = _pretrained(plan.protein_preset, Path(output), quick)
    if molecule is None:
        molecule = _pretrained(plan.molecule_preset, Path(output), quick)
    from biofm.device import small_model_threads

    with small_model_threads():  # tiny towers: one thread where two would spin-wait
        return pair_compare((protein, molecule), PAIR_TASKS.get("kiba")(), split=plan.split,
                            seeds=seeds, max_train=plan.max_train, epochs=plan.epochs,
                            max_tokens=plan.max_tokens, quick=quick, device=device, say=say)


def _pretrained(preset: str, output: Path, quick: bool) -> FoundationModel:
    from biofm.commands import pretrain
    from biofm.config import PretrainConfig, preset_path

    config = PretrainConfig.load(preset_path("pretrain", preset))
    if quick:
        config = config.replace(data={"max_records": 200},
                                train={"max_steps": 5, "eval_every": 5, "save_every": 5,
                                       "warmup_steps": 1, "progress": False})
    result = pretrain(config, output / "pretrain" / preset, overwrite=True)
    return FoundationModel.load(result.model_dir)


__all__ = ["KIBA_DEMO", "KibaDemo", "kiba_demo"]
