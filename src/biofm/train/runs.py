"""Run directories: what a pretraining run leaves, and the rules that keep it.

    check_run_dir(out, config, resume=False, overwrite=False)   # refuses to destroy a run
    run_config(out)                                              # the config to resume with
    plot_run_loss(history, out / "loss.png", "protein")

A directory holds a run when it has checkpoints, `final/`, `metrics.jsonl` …; it is
continued (`--resume`, with the run's own settings: a change that would alter its
numbers is refused), replaced (`--overwrite`), or refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.train.checkpoint import latest_checkpoint
from biofm.train.distributed import is_main

RUN_FILES = ("latest", "final", "best", "metrics.jsonl", "loss.png", "tensorboard")
# settings that may change when a run is resumed: they do not change its numbers (the
# strategy and compilation change them by float rounding only; checkpoints are the same
# under every strategy)
RESUME_FREE = {"train.progress", "train.log_every", "train.tensorboard", "train.device",
               "train.num_workers", "train.save_every", "train.strategy", "train.compile"}
# these change what comes next (the schedule, when to stop), not what was done: said
RESUME_WARN = {"train.max_steps", "train.patience", "train.eval_every"}


def holds_run(directory: Path) -> bool:
    return directory.is_dir() and (any((directory / name).exists() for name in RUN_FILES)
                                   or any(directory.glob("step-*")))


def run_config(directory: str | Path) -> Path:
    """config.yaml of the run in `directory` (its last checkpoint, else final/)."""
    directory = Path(directory)
    checkpoint = latest_checkpoint(directory) if directory.is_dir() else None
    for candidate in (checkpoint, directory / "final"):
        if candidate is not None and (candidate / "config.yaml").is_file():
            return candidate / "config.yaml"
    raise BiofmError("no run to resume here (no checkpoint with a config.yaml)", path=directory,
                     fix="pass the --output directory of an earlier `biofm pretrain`, or start "
                         "a new run with --config / --modality")


def check_run_dir(output: Path, config: PretrainConfig, *, resume: bool, overwrite: bool,
                  log: Callable[[str], None] = print) -> None:
    """Refuse to destroy a run; refuse a resume whose settings would change its numbers."""
    if output.exists() and not output.is_dir():
        raise BiofmError("the run directory is a file", path=output,
                         fix="choose another --output")
    if not holds_run(output):
        return
    if not resume and not overwrite:
        raise BiofmError("this directory already holds a pretraining run", path=output,
                         fix="continue it with --resume, choose another --output, or pass "
                             "--overwrite to replace it")
    if overwrite and not resume:
        if is_main():
            for name in [*RUN_FILES, *(p.name for p in output.glob("step-*"))]:
                target = output / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
        return
    checkpoint = latest_checkpoint(output)
    if checkpoint is not None:
        _check_resume(PretrainConfig.load(checkpoint / "config.yaml"), config, checkpoint, log)


def _check_resume(saved: PretrainConfig, new: PretrainConfig, where: Path,
                  log: Callable[[str], None]) -> None:
    filled = {"backbone.vocab_size", "backbone.pad_id", "backbone.mask_id", "backbone.values",
              "backbone.value_size"}  # set from the tokenizer when the model was built
    changed = {key: (a, b) for key, (a, b) in _diff(saved.model_dump(mode="json"),
                                                     new.model_dump(mode="json")).items()
               if key not in filled | RESUME_FREE}
    refused = {k: v for k, v in changed.items() if k not in RESUME_WARN}
    if refused:
        listed = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in refused.items())
        raise BiofmError(f"resuming with other settings than the run's would not continue it "
                         f"exactly ({listed})", path=where,
                         fix="resume with --resume --output RUN alone (the run's settings are "
                             "read from its checkpoint), or start a new run in another "
                             "directory")
    for key, (a, b) in changed.items():
        log(f"resuming with {key} = {b!r} (the run had {a!r})")


def _diff(a: dict, b: dict, prefix: str = "") -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.update(_diff(x, y, f"{prefix}{key}."))
        elif x != y:
            out[f"{prefix}{key}"] = (x, y)
    return out


def plot_run_loss(history: list[dict], path: Path, title: str) -> None:
    """loss.png: training (and validation) loss over steps."""
    from biofm.bench.report import plot_loss_curves

    curves = {"train": [(h["step"], h["loss"]) for h in history if "loss" in h],
              "valid": [(h["step"], h["valid_loss"]) for h in history if "valid_loss" in h]}
    curves = {k: v for k, v in curves.items() if v}
    if curves:
        plot_loss_curves(curves, path, title=f"pretraining loss ({title})")


__all__ = ["check_run_dir", "holds_run", "plot_run_loss", "run_config"]
