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
   LoRA modes are left out of the demo for time (`biofm compare --task brain-box-seg`,
   i.e. `segmentation.compare_segmenters`, runs them).
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
# the demo's segmentation rows: UNETR costs ~0.5 s per step of 32 crops on a busy CPU
# core, so the frozen and LoRA modes are left to `compare_segmenters(modes=...)`
DEMO_SEG_MODES = ("scratch", "full", "unet")
PRETRAIN_STEPS = 200  # MAE steps of the demo (the preset's own count is for real runs)
MAX_TRAIN = 210  # brain-region-patch training patches per seed (30 per class)

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
    from biofm.modalities.imaging.segmentation import compare_segmenters

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
        table.extend(compare_segmenters(model, SEG_TASK, seeds, quick=quick, say=say,
                                        modes=("full", "unet") if quick else DEMO_SEG_MODES,
                                        save_to=output / "segmenter"))
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
