"""Train a pair model on labeled pairs through the one training core.

    result = pair_finetune((protein_model, molecule_model), splits, PairConfig(mode="lora"))

The towers are copied (the caller's models are not changed), frozen / LoRA-injected /
re-initialised per `PairConfig.modes`, and trained with the head by
`biofm.train.trainer.fit` (AdamW, warmup + cosine, gradient clipping). Targets are
standardised on the training pairs; after each epoch the validation pairs are
scored and the weights of the epoch with the lowest validation MSE are kept
(early stopping after `patience` epochs without one).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from biofm.device import resolve_device
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.pairs.data import PairSplits
from biofm.pairs.metrics import pair_metrics
from biofm.pairs.model import PairConfig, PairModel, SideFeed
from biofm.pairs.towers import Tower
from biofm.adapt.finetune import fit_config
from biofm.train.trainer import BestEpoch, Loss, Trainer, fit

Log = Callable[[str], None]


@dataclass
class PairResult:
    mode: str
    valid_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_predictions: np.ndarray
    model: PairModel
    history: list[dict[str, float]] = field(default_factory=list)


def build_pair_model(bases: tuple[FoundationModel, FoundationModel], config: PairConfig,
                     target_stats: tuple[float, float] = (0.0, 1.0)) -> PairModel:
    """Copies of `bases` as towers, each frozen / LoRA / full / scratch per `config.modes`."""
    towers = []
    for base, mode in zip(bases, config.modes):
        base = copy.deepcopy(base)
        if mode == "scratch":  # same shape, random weights
            base = FoundationModel(base.config, base.tokenizer)
        if mode == "lora":
            config.add_lora(base)
        elif mode == "frozen":
            base.requires_grad_(False)
        base.objective.requires_grad_(False)  # the pretraining head is not used
        towers.append(Tower(base, max_tokens=config.max_tokens, long_inputs=config.long_inputs))
    return PairModel((towers[0], towers[1]), config, target_stats)


def pair_finetune(bases: tuple[FoundationModel, FoundationModel], splits: PairSplits,
                  config: PairConfig = PairConfig(), log: Log | None = None) -> PairResult:
    """Train a pair model on `splits.train`, keep the best validation epoch, score test."""
    torch.manual_seed(config.seed)
    labels = splits.train.labels
    stats = (float(labels.mean()), float(labels.std() or 1.0))
    model = build_pair_model(bases, config, stats)
    device = resolve_device(config.device)
    model.to(device)
    frozen = tuple(m == "frozen" for m in config.modes)
    items = splits.train.items
    feeds = model.feeds(items, frozen)  # type: ignore[arg-type]
    if log is not None:
        for side, (tower, feed) in enumerate(zip(model.towers, feeds)):
            note = tower.length_report(feed.encoded, items[side])
            if note:
                log(note)
    history = _fit(model, feeds, splits, config, device, log)
    valid = model.predict_feeds(feeds, splits.valid.index)
    test = model.predict_feeds(feeds, splits.test.index)
    return PairResult(config.mode if not config.tower_modes else "+".join(config.modes),
                      pair_metrics(splits.valid.labels, valid),
                      pair_metrics(splits.test.labels, test), test, model, history)


def _fit(model: PairModel, feeds: tuple[SideFeed, SideFeed], splits: PairSplits,
         config: PairConfig, device: torch.device, log: Log | None) -> list[dict[str, float]]:
    train = splits.train
    if not any(p.requires_grad for p in model.parameters()):
        raise BiofmError("nothing to train", fix="internal: the head is always trained")
    plan = GroupedPlan(train.index[:, 0], config.batch_size, config.per_item, config.seed)
    batches = map(plan, itertools.count())
    targets = torch.as_tensor((train.labels - model.target_mean) / model.target_std,
                              dtype=torch.float32)

    def loss_fn(rows: np.ndarray) -> Loss:
        raw = model.raw(feeds, train.index[rows])  # (B,)
        return Loss(F.mse_loss(raw.float(), targets[rows].to(device)))

    valid = splits.valid

    def evaluate() -> dict[str, float]:  # predict_feeds leaves frozen towers in eval
        metrics = pair_metrics(valid.labels, model.predict_feeds(feeds, valid.index))
        return {"mse": metrics["mse"], "ci": metrics["ci"]}

    epochs = BestEpoch(model, evaluate, "mse", higher_is_better=False,
                       patience=config.patience, per_epoch=plan.per_epoch,
                       labels={"mse": "MSE", "ci": "CI"},
                       log=None if log is None else
                       (lambda line: log(f"{config.mode}: {line} of {config.epochs}")))
    _train_mode(model, config)
    fit(Trainer(model, fit_config(config, config.epochs * plan.per_epoch), device),
        lambda: next(batches), loss_fn, epochs)
    return epochs.restore()


def _train_mode(model: PairModel, config: PairConfig) -> None:
    """Train mode, except frozen towers (their cached states were computed in eval)."""
    model.train()
    for tower, mode in zip(model.towers, config.modes):
        if mode == "frozen":
            tower.eval()


class GroupedPlan:
    """Batches of pairs that share few first-side items (BatchDTA's batching by target).

    Each epoch (a permutation seeded by (seed, epoch)) shuffles every item's pairs and
    cuts them into chunks of at most `per_item`; a batch is `batch_size // per_item`
    shuffled chunks. A batch of 64 pairs then holds about 8 targets instead of ~50,
    so a trained protein tower runs over 8 inputs per step. `per_item` 0: plain
    shuffled batches. Batch k is a pure function of (seed, k), as `BatchPlan`'s.
    """

    def __init__(self, items: np.ndarray, batch_size: int, per_item: int, seed: int) -> None:
        self.items, self.seed = np.asarray(items), seed
        self.per_item = per_item if per_item > 0 else batch_size
        self.chunks_per_batch = max(batch_size // self.per_item, 1)
        if per_item <= 0:
            self.items = np.arange(len(items))  # every pair its own item: no grouping
        counts = np.unique(self.items, return_counts=True)[1]
        n_chunks = int(np.sum(-(-counts // self.per_item)))
        self.per_epoch = -(-n_chunks // self.chunks_per_batch)
        self._epoch, self._batches = -1, []  # type: ignore[var-annotated]

    def __call__(self, k: int) -> np.ndarray:
        epoch, j = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._epoch_batches(epoch)
        return self._batches[j]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.items))
        chunks = []
        for item in np.unique(self.items):
            rows = order[self.items[order] == item]
            chunks += [rows[i: i + self.per_item] for i in range(0, len(rows), self.per_item)]
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        step = self.chunks_per_batch
        return [np.concatenate(chunks[i: i + step]) for i in range(0, len(chunks), step)]


__all__ = ["PairResult", "build_pair_model", "pair_finetune"]
