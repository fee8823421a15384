"""The demo's imaging rows: MAE pretraining on real volumes, then region
classification and box-prompted segmentation compared with baselines.

    table = run("demo_out/imaging", seeds=3, quick=False)

1. MAE pretraining (`biofm pretrain`, the one training core) of the
   `imaging-mae-tiny` ViT on tiles of the `atlas-slices` corpus: Colin27 T1,
   the INIA19 macaque T1 and the InVesalius head CT. MNI152 is never seen.
2. brain-region-patch (classification, test subject MNI152): classical
   baselines on pooled pixels, scratch, pretrained probe / fine-tune / LoRA
   (`biofm.bench.compare`).
3. brain-box-seg (segmentation, test subject MNI152): the filled box, MONAI UNet
   from scratch with the box channel, and UNETR on the ViT from scratch, with
   the pretrained ViT fine-tuned (Dice, HD95 in mm); the frozen-encoder and
   LoRA modes are left out of the demo for time (`segmentation_rows(modes=...)`
   runs them).
   The fine-tuned segmenter of the first seed is saved for `biofm segment`
   (`OUTPUT/segmenter`).

`quick` (a sanity run: 10 MAE steps, two epochs, small subsets) keeps the probe and
fine-tune rows of the classification and the fine-tune, UNet and box rows of the
segmentation. Returns one `ResultTable` (tasks "brain-region-patch" and "brain-box-seg";
the second is a `tasks.SEGMENTATION_TASKS` name, not a `TASKS` one) and prints
both tables. When the data is not installed it prints how to get it and
returns an empty table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from biofm.bench.report import ResultTable
from biofm.config import PretrainConfig, preset_path
from biofm.device import small_model_threads

PRESET = "imaging-mae-tiny"
CORPUS = "atlas-slices"
SEG_TASK = "brain-box-seg"
SEG_LABELS = {"scratch": "UNETR scratch", "frozen": "pretrained: frozen encoder",
              "full": "pretrained: fine-tune", "lora": "pretrained: LoRA",
              "unet": "MONAI UNet (scratch)"}
# the demo's segmentation rows: UNETR costs ~0.5 s per step of 32 crops on a busy CPU
# core, so the frozen and LoRA modes are left to `segmentation_rows(modes=...)`
DEMO_SEG_MODES = ("scratch", "full", "unet")
PRETRAIN_STEPS = 200  # MAE steps of the demo (the preset's own count is for real runs)
MAX_TRAIN = 210  # brain-region-patch training patches per seed (30 per class)
SEG_EPOCHS, SEG_PATIENCE, SEG_FEATURES = 10, 3, 8

console = Console(width=110)


def demo_config(quick: bool = False) -> PretrainConfig:
    """The imaging-mae-tiny preset on the demo corpus; quick: a 10-step sanity run."""
    config = PretrainConfig.load(preset_path("pretrain", PRESET)).replace(data={"input": CORPUS})
    if quick:
        return config.replace(train={"max_steps": 10, "eval_every": 5, "save_every": 10,
                                     "warmup_steps": 2, "progress": False})
    return config.replace(train={"max_steps": PRETRAIN_STEPS, "eval_every": 100,
                                 "save_every": PRETRAIN_STEPS, "warmup_steps": 20})


def run(output: str | Path = "demo_out/imaging", seeds: int = 3, quick: bool = False,
        say: Callable[[str], None] | None = None, show: bool = True) -> ResultTable:
    """Pretrain, then the classification and segmentation comparisons (module docstring);
    `show=False` leaves printing the tables (`render`) to the caller."""
    from biofm.modalities.imaging.locate import available

    say = say or (lambda line: console.print(line, markup=False, highlight=False))
    ok, why = available()
    if not ok:
        say(f"imaging rows skipped: {why}")
        return ResultTable()
    output = Path(output)
    start = time.perf_counter()
    with small_model_threads():  # one thread when two would spin-wait on a busy CPU
        model = pretrain_vit(output / "pretrain", quick)
        say(f"imaging: MAE pretraining done ({time.perf_counter() - start:.0f} s)")
        table = classification_rows(model, seeds, quick, say)
        table.extend(segmentation_rows(model, seeds, quick, say, output / "segmenter",
                                       modes=("full", "unet") if quick else DEMO_SEG_MODES))
    if show:
        render(table, seeds)
    table.save(output)
    say(f"imaging rows finished in {time.perf_counter() - start:.0f} s; tables in {output}/")
    return table


def pretrain_vit(output: Path, quick: bool):
    from biofm.commands import pretrain
    from biofm.modalities.imaging.modality import image_inputs
    from biofm.model import FoundationModel

    result = pretrain(demo_config(quick), output, overwrite=True)
    return image_inputs(FoundationModel.load(result.model_dir))


def classification_rows(model, seeds: int, quick: bool,
                        say: Callable[[str], None]) -> ResultTable:
    from biofm.bench.compare import compare
    from biofm.registry import TASKS

    modes = ("probe", "full") if quick else ("scratch", "probe", "full", "lora")
    return compare(model, TASKS.get("brain-region-patch")(), seeds=seeds, quick=quick, say=say,
                   max_train=MAX_TRAIN, modes=modes)


def segmentation_rows(model, seeds: int, quick: bool, say: Callable[[str], None],
                      save_to: Path | None = None,
                      modes: tuple[str, ...] = DEMO_SEG_MODES, task_name: str = SEG_TASK,
                      device: str = "auto") -> ResultTable:
    """The filled box, then each of `modes` (UNETR scratch / frozen / full / lora, MONAI
    UNet) on `task_name` (a `tasks.SEGMENTATION_TASKS` name), per seed."""
    from biofm.modalities.imaging.segmentation import (
        SegmentConfig,
        box_baseline,
        build_segmenter,
        evaluate_segmenter,
        save_segmenter,
        train_segmenter,
    )
    from biofm.modalities.imaging.tasks import segmentation_task

    task = segmentation_task(task_name)
    train, valid, test = task.load()
    if quick:
        train, valid, test = (d.subset(range(min(len(d), n)))
                              for d, n in ((train, 48), (valid, 16), (test, 24)))
    table = ResultTable()
    table.add(task.name, "box prompt (filled box)", 0, _dice_hd95(box_baseline(test)))
    start = time.perf_counter()
    for seed in range(seeds):
        for mode in modes:
            label = SEG_LABELS[mode]
            config = SegmentConfig(mode=mode, seed=seed, epochs=2 if quick else SEG_EPOCHS,
                                   patience=1 if quick else SEG_PATIENCE,
                                   features=SEG_FEATURES, lr=3e-3 if mode == "lora" else 1e-3,
                                   device=device)
            result = train_segmenter(build_segmenter(config, model), train, valid, config)
            metrics = _dice_hd95(evaluate_segmenter(result.model, test))
            table.add(task.name, label, seed, metrics)
            say(f"{task.name} seed {seed + 1}/{seeds}: {label}: Dice {metrics['dice']:.3f}, "
                f"HD95 {metrics['hd95']:.1f} mm ({time.perf_counter() - start:.0f} s)")
            if save_to is not None and seed == 0 and mode == "full":
                save_segmenter(result, save_to, task=task.name)
    return table


def _dice_hd95(metrics: dict[str, float]) -> dict[str, float]:
    return {"dice": metrics["dice"], "hd95": metrics["hd95"]}


def render(table: ResultTable, seeds: int) -> None:
    """The classification and the segmentation tables of `run`."""
    for task, title in (("brain-region-patch", "imaging classification: AAL group of a T1 "
                                               "patch, test subject MNI152 (unseen)"),
                        (SEG_TASK, "imaging segmentation: box-prompted AAL structures, test "
                                   "subject MNI152 (unseen; split: subject)")):
        part = table.subset(lambda r: r["task"] == task)
        if part.rows:
            part.render(console, title=f"{title}; mean ± sd over {seeds} seed(s)")


__all__ = ["PRESET", "demo_config", "render", "run"]
