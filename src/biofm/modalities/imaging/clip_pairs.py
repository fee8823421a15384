"""A small CLIP-style demonstration on real images: atlas-region crops paired with the
names of their regions.

Real paired images and reports do not ship offline. What does: T1 volumes with the
AAL atlas drawn on them. Each 64 x 64 mm axial patch of `brain-region-patch`
(`tasks.py`: Colin27 for training, MNI152 2009c — a subject never seen — for
testing) is paired with the name of the AAL region at its centre, written out
("Frontal_Sup_Orb_L" → "frontal sup orb left"). A ViT (scratch, or MAE-pretrained)
and a small text encoder (the text modality's WordPiece, fitted on the training
names) are trained with the symmetric InfoNCE (`biofm.objectives.clip`), then on
MNI152:

- zero-shot classification into the 7 anatomical groups of the task, each group
  described by the names of its regions (prompt ensembling, no group label used
  in training);
- image → region-name retrieval, recall@1 / @5 among the names present in the test set.

A handful of subjects: enough to show the machinery works on real anatomy, not a
claim about clinical image–text models.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from biofm.bench.report import ResultTable
from biofm.config import PretrainConfig
from biofm.data.tasks import Split
from biofm.model import FoundationModel
from biofm.objectives.clip import (
    ClipModel,
    retrieval_recall,
    train_clip,
    zero_shot_classify,
)
from biofm.train.trainer import FitConfig

TASK = "atlas-clip"
_ID = re.compile(r"^(?P<subject>\w+):x(?P<x>\d+)y(?P<y>\d+)z(?P<z>\d+)$")
_SIDES = {"L": "left", "R": "right"}


def region_text(name: str) -> str:
    """An AAL name as words: "Frontal_Sup_Orb_L" → "frontal sup orb left"."""
    return " ".join(_SIDES.get(part, part.lower()) for part in name.split("_") if part)


def region_names(split: Split) -> list[str]:
    """The AAL region at the centre of each crop of a `brain-region-patch` split, as text."""
    from biofm.modalities.imaging.atlas import subject
    from biofm.modalities.imaging.locate import atlas_names

    names = atlas_names("aal")
    labels: dict[str, np.ndarray] = {}
    out = []
    for ident in split.ids:
        m = _ID.match(ident)
        if m is None:
            raise ValueError(f"crop id {ident!r} does not name a voxel")
        if m["subject"] not in labels:
            labels[m["subject"]] = subject(m["subject"]).labels
        region = int(labels[m["subject"]][int(m["x"]), int(m["y"]), int(m["z"])])
        out.append(region_text(names[region]))
    return out


def group_prompts() -> dict[str, list[str]]:
    """Anatomical group → the written names of its AAL regions."""
    from biofm.modalities.imaging.atlas import LOBES, lobe_of_label
    from biofm.modalities.imaging.locate import atlas_names

    names, groups = atlas_names("aal"), list(LOBES)
    prompts: dict[str, list[str]] = {g: [] for g in groups}
    for ident, k in sorted(lobe_of_label().items()):
        prompts[groups[k]].append(region_text(names[ident]))
    return prompts


def _text_tower(texts: list[str]) -> FoundationModel:
    from biofm.modalities.text import fit_wordpiece

    config = PretrainConfig.from_dict({"data": {"modality": "text"},
                                       "backbone": {"size": "tiny", "max_len": 16}})
    return FoundationModel(config, fit_wordpiece(texts))


def run(pretrained: FoundationModel | str | Path | None = None, *, seeds: int = 1,
        steps: int = 300, quick: bool = False,
        say: Callable[[str], None] | None = None) -> ResultTable:
    """Train scratch (and, given `pretrained`, MAE-pretrained) ViT × text towers on Colin27
    crop–name pairs; test zero-shot groups and name retrieval on MNI152. Returns the rows
    (task "atlas-clip"; zero_shot_accuracy, image_to_text_recall@1 / @5)."""
    from biofm.backbones.vision import build_vit
    from biofm.device import small_model_threads
    from biofm.modalities.imaging.tasks import region_patch_splits

    say = say or print
    start = time.perf_counter()
    splits = region_patch_splits()
    train, test = splits.train, splits.test
    if quick:
        steps = min(steps, 10)
        train, test = train.subset(range(0, len(train), 8)), test.subset(range(0, len(test), 4))
    train_texts, test_texts = region_names(train), region_names(test)
    train_images = torch.from_numpy(np.stack(train.inputs))
    test_images = torch.from_numpy(np.stack(test.inputs))
    prompts = group_prompts()
    vocabulary = sorted(set(test_texts))
    positives = torch.tensor([[t == v for v in vocabulary] for t in test_texts])
    say(f"{TASK}: {len(train_texts)} Colin27 crop-name pairs ({len(set(train_texts))} regions), "
        f"{len(test_texts)} MNI152 test crops ({len(vocabulary)} regions)")
    table = ResultTable()
    table.add(TASK, "chance", 0, {"zero_shot_accuracy": 1 / len(prompts),
                                  "image_to_text_recall@1": float(positives.float().mean()),
                                  "image_to_text_recall@5": float(np.mean(
                                      [min(1.0, 5 * float(p.float().mean())) for p in positives]
                                  ))})
    towers: list[tuple[str, Callable[[], FoundationModel]]] = [
        ("scratch ViT", lambda: build_vit("imaging-mae-tiny", seed=seed))]
    if pretrained is not None:
        towers.append(("MAE-pretrained ViT", lambda: _copy(pretrained)))
    with small_model_threads():  # tiny models: one thread where two would spin-wait
        for seed in range(seeds):
            for label, image_tower in towers:
                torch.manual_seed(seed)
                clip = ClipModel.from_towers(image_tower(), _text_tower(train_texts),
                                             embed_dim=64)
                fit = FitConfig(lr=1e-3, max_steps=steps, warmup_steps=max(1, steps // 10))
                train_clip(clip, train_images, train_texts, fit, batch_size=32, seed=seed)
                shot = zero_shot_classify(clip, test_images, prompts)
                metrics = {"zero_shot_accuracy": float((shot.predicted == test.labels).mean())}
                recall = retrieval_recall(clip, test_images, vocabulary, ks=(1, 5),
                                          positives=positives)
                metrics.update({k: v for k, v in recall.items()
                                if k.startswith("image_to_text")})
                table.add(TASK, label, seed, metrics)
                say(f"{TASK} seed {seed + 1}/{seeds}: {label}: zero-shot group accuracy "
                    f"{metrics['zero_shot_accuracy']:.3f}, name recall@1 "
                    f"{metrics['image_to_text_recall@1']:.3f} "
                    f"({time.perf_counter() - start:.0f} s)")
    return table


def _copy(model: FoundationModel | str | Path) -> FoundationModel:
    """A fresh copy of the pretrained ViT (each run trains its own)."""
    import copy

    if isinstance(model, (str, Path)):
        return FoundationModel.load(model)
    return copy.deepcopy(model)


__all__ = ["TASK", "group_prompts", "region_names", "region_text", "run"]
