"""Transfer a pretrained model to a labeled task: probe, full fine-tune, LoRA, scratch.

- probe:   frozen embeddings → standardised → logistic / ridge regression, the
           regularisation strength chosen on the validation split;
- full:    backbone + head trained end to end;
- lora:    LoRA adapters (via `peft`, injected into the attention and MLP
           linears of the same backbone) + head; the backbone stays frozen;
- scratch: the same architecture, randomly initialised, trained end to end:
           the baseline that shows what pretraining buys.
Gradient-trained modes run the shared optimizer step (`biofm.train.trainer`:
AdamW without decay on norms, biases and embeddings, warmup + cosine over
`epochs`), score the validation split after each epoch and keep the epoch
with the best validation metric. Regression targets are standardised on the
training split for training. Time-to-event tasks ("survival") get one output per
follow-up bin, trained on the discrete-time hazard likelihood (`adapt.survival`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biofm.adapt.probe import LinearProbe
from biofm.adapt.survival import (baseline_logits, bin_targets, hazard_nll, survival_bins,
                                  survival_curve)
from biofm.backbones.layers import pool
from biofm.bench.metrics import kind_metrics, primary_metric
from biofm.config import Config
from biofm.data.collate import length_batches, pad_collate
from biofm.data.tasks import Splits, TaskKind
from biofm.device import autocast_context, resolve_device
from biofm.model import FoundationModel, evaluating
from biofm.outputs import Batch
from biofm.registry import HEADS
from biofm.train.plans import BatchPlan
from biofm.train.trainer import BestEpoch, FitConfig, Loss, Trainer, fit

Mode = Literal["probe", "full", "lora", "scratch"]


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


class LoraSettings(Config):
    """LoRA settings of the configs that can adapt a backbone with LoRA (fine-tuning,
    pair towers, co-embedding towers): rank, alpha (scaling alpha / r), adapter
    dropout and the backbone's linears (module names) that get adapters."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS

    def add_lora(self, base: FoundationModel) -> None:
        """Freeze `base` and inject these adapters into its backbone (`inject_lora`)."""
        inject_lora(base, r=self.lora_r, alpha=self.lora_alpha, targets=self.lora_targets,
                    dropout=self.lora_dropout)


class FinetuneConfig(LoraSettings):
    """How to adapt.

    Args:
        mode: "probe", "full", "lora" or "scratch" (see module docstring).
        head: registry name of the head ("linear" or "mlp").
        epochs / patience: epochs at most; stop after `patience` epochs
            without a better validation metric (0 = never stop early).
        lr: backbone and head learning rate (LoRA adapters use it too), reached
            after `warmup_ratio` of the steps of `epochs` epochs, then decayed
            on a cosine to `min_lr_ratio * lr`.
        grad_clip: largest global gradient norm.
        lora_r / lora_alpha / lora_dropout / lora_targets: LoRA settings;
            targets are module names inside the backbone.
    """

    mode: Mode = "full"
    pooling: Literal["mean", "cls"] = "mean"
    head: str = "linear"
    head_dropout: float = 0.1
    epochs: int = 30
    patience: int = 6
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"


@dataclass
class FinetuneResult:
    mode: str
    valid_metrics: dict[str, float]
    test_metrics: dict[str, float]
    test_predictions: np.ndarray
    model: "TaskModel | LinearProbe"
    history: list[dict[str, float]] = field(default_factory=list)


class TaskModel(nn.Module):
    """Backbone + pooling + head: (B, T) ids → (B, n_outputs). Survival: one hazard logit
    per follow-up bin between `edges` ((K + 1,) days)."""

    def __init__(self, base: FoundationModel, kind: TaskKind, n_outputs: int,
                 config: FinetuneConfig, target_stats: tuple[float, float] = (0.0, 1.0),
                 edges: np.ndarray | None = None) -> None:
        super().__init__()
        self.edges = None if edges is None else np.asarray(edges, dtype=np.float64)
        self.base = base  # carries tokenizer + backbone (+ the pretraining head, unused)
        self.kind = kind
        self.config = config
        self.head = HEADS.get(config.head)(base.config.backbone.d_model, n_outputs,
                                           config.head_dropout)
        self.head_outputs = n_outputs
        self.target_mean, self.target_std = target_stats
        self.register_buffer("special_ids", torch.tensor(base.tokenizer.special_ids),
                             persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                values: torch.Tensor | None = None) -> torch.Tensor:
        """values: the backbone's second input (e.g. (B, T) expression bins), if it takes one."""
        hidden = self.base.backbone(input_ids, attention_mask, values=values).last_hidden_state
        pooled = pool(hidden, input_ids, attention_mask, self.special_ids, self.config.pooling)
        return self.head(pooled.float())

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Probabilities (binary: (N,), multiclass: (N, C)), regression values (N,), or
        survival at each follow-up bin's end (N, K)."""
        self.eval()
        device = next(self.parameters()).device
        raw = torch.zeros(len(texts), self.head_outputs)
        for index in length_batches([len(t) for t in texts], batch_size):
            batch = pad_collate(self.base.encode([texts[i] for i in index]),
                                self.base.tokenizer.pad_id).to(device)
            raw[torch.as_tensor(index)] = self(batch.input_ids, batch.attention_mask,
                                               batch.values).float().cpu()
        return _to_predictions(raw, self.kind, self.target_mean, self.target_std)


def _to_predictions(raw: torch.Tensor, kind: TaskKind, mean: float, std: float) -> np.ndarray:
    if kind == "regression":
        return (raw[:, 0] * std + mean).numpy()
    if kind == "multilabel":
        return torch.sigmoid(raw).numpy()  # (N, L): one probability per label
    if kind == "survival":
        return survival_curve(raw).numpy()  # (N, K)
    if raw.shape[1] == 1:
        return torch.sigmoid(raw[:, 0]).numpy()
    return torch.softmax(raw, dim=1).numpy()


def task_metrics(kind: TaskKind, y_true: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    return kind_metrics(kind, y_true, predictions)


def n_outputs_for(kind: TaskKind, labels: np.ndarray, edges: np.ndarray | None = None) -> int:
    if kind == "survival":
        return len(edges) - 1  # one hazard per follow-up bin
    if kind == "regression":
        return 1
    if kind == "multilabel":
        return labels.shape[1]  # (N, L) 0/1 labels: one output per label
    n_classes = int(np.max(labels)) + 1
    return 1 if n_classes <= 2 else n_classes


def finetune(base: FoundationModel, splits: Splits, kind: TaskKind,
             config: FinetuneConfig = FinetuneConfig(),
             log: Callable[[str], None] | None = None) -> FinetuneResult:
    """Adapt `base` to the task and report validation and test metrics; `log` gets a
    line per epoch (train loss, validation metric) of gradient-trained modes."""
    if config.mode == "probe":
        return _probe(base, splits, kind, config)
    return _gradient_finetune(base, splits, kind, config, log)


def _probe(base: FoundationModel, splits: Splits, kind: TaskKind,
           config: FinetuneConfig) -> FinetuneResult:
    device, home = resolve_device(config.device), base.device
    base.to(device)  # embedding runs where asked; the caller's model goes back home after
    try:
        with autocast_context(device, config.precision):
            x_train, x_valid, x_test = (base.embed(s.inputs, pooling=config.pooling)
                                        for s in (splits.train, splits.valid, splits.test))
    finally:
        base.to(home)
    probe = LinearProbe.fit(kind, x_train, splits.train.labels, x_valid, splits.valid.labels)
    valid_pred, test_pred = probe.predict(x_valid), probe.predict(x_test)
    return FinetuneResult("probe", task_metrics(kind, splits.valid.labels, valid_pred),
                          task_metrics(kind, splits.test.labels, test_pred), test_pred, probe)


def _gradient_finetune(base: FoundationModel, splits: Splits, kind: TaskKind,
                       config: FinetuneConfig,
                       log: Callable[[str], None] | None = None) -> FinetuneResult:
    torch.manual_seed(config.seed)
    base = copy.deepcopy(base)
    if config.mode == "scratch":
        base = FoundationModel(base.config, base.tokenizer)  # same shape, random weights
    stats = ((float(splits.train.labels.mean()), float(splits.train.labels.std() or 1.0))
             if kind == "regression" else (0.0, 1.0))
    edges = survival_bins(splits.train.labels) if kind == "survival" else None
    model = TaskModel(base, kind, n_outputs_for(kind, splits.train.labels, edges), config, stats,
                      edges)
    if edges is not None:  # hazards start at the training split's, not at 0.5 per bin
        last = [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            last.bias.copy_(torch.as_tensor(baseline_logits(splits.train.labels, edges)))
    if config.mode == "lora":
        config.add_lora(model.base)
    device = resolve_device(config.device)
    model.to(device)
    history = _fit(model, splits, kind, config, device, log)
    valid_pred, test_pred = model.predict(splits.valid.inputs), model.predict(splits.test.inputs)
    return FinetuneResult(config.mode, task_metrics(kind, splits.valid.labels, valid_pred),
                          task_metrics(kind, splits.test.labels, test_pred), test_pred,
                          model, history)


def inject_lora(base: FoundationModel, *, r: int, alpha: int, targets: Sequence[str],
                dropout: float = 0.0) -> None:
    """Freeze `base` (backbone and objective head) and inject trainable LoRA adapters
    into its backbone's linears named `targets` (peft)."""
    from peft import LoraConfig, inject_adapter_in_model

    for p in base.parameters():
        p.requires_grad_(False)
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
    inject_adapter_in_model(lora, base.backbone)
    for name, p in base.backbone.named_parameters():
        p.requires_grad_("lora_" in name)


def _fit(model: TaskModel, splits: Splits, kind: TaskKind, config: FinetuneConfig,
         device: torch.device, log: Callable[[str], None] | None = None
         ) -> list[dict[str, float]]:
    """Train for up to `epochs`; keep the weights of the best validation epoch."""
    train_ids = model.base.encode(splits.train.inputs)
    # length-bucketed, seeded batches (as in pretraining): little padding, same order on rerun
    plan = BatchPlan([len(s) for s in train_ids], config.batch_size, config.seed)
    targets = _targets(splits.train.labels, kind, model.target_mean, model.target_std,
                       model.edges)
    batches = map(plan, itertools.count())  # batch k of the run is plan(k)
    pad_id = model.base.tokenizer.pad_id

    def next_batch() -> tuple[Batch, torch.Tensor]:
        index = next(batches)
        return pad_collate([train_ids[i] for i in index], pad_id).to(device), targets[index]

    def loss_fn(item: tuple[Batch, torch.Tensor]) -> Loss:
        batch, target = item
        raw = model(batch.input_ids, batch.attention_mask, batch.values)  # (B, n_outputs)
        return Loss(_loss(raw.float(), target.to(device), kind))

    metric, higher_is_better = primary_metric(kind)

    def evaluate() -> dict[str, float]:
        valid = splits.valid
        with evaluating(model):
            return {metric: task_metrics(kind, valid.labels, model.predict(valid.inputs))[metric]}

    epochs = BestEpoch(model, evaluate, metric, higher_is_better=higher_is_better,
                       patience=config.patience, per_epoch=plan.per_epoch,
                       log=None if log is None else
                       (lambda line: log(f"{config.mode}: {line} of {config.epochs}")))
    model.train()
    fit(Trainer(model, fit_config(config, config.epochs * plan.per_epoch), device),
        next_batch, loss_fn, epochs)
    return epochs.restore()


class EpochSchedule(Protocol):
    """The optimizer settings a fine-tuning config carries (`FinetuneConfig`, `PairConfig`)."""

    lr: float
    weight_decay: float
    warmup_ratio: float
    min_lr_ratio: float
    grad_clip: float
    precision: str


def fit_config(config: EpochSchedule, steps: int) -> FitConfig:
    """The shared optimizer step for `steps` steps: AdamW at `lr`, warmup over
    `warmup_ratio` of the steps, cosine decay to `min_lr_ratio`, clipping, precision."""
    return FitConfig(lr=config.lr, max_steps=steps, weight_decay=config.weight_decay,
                     warmup_steps=round(config.warmup_ratio * steps),
                     min_lr_ratio=config.min_lr_ratio, grad_clip=config.grad_clip,
                     precision=config.precision)


def _targets(labels: np.ndarray, kind: TaskKind, mean: float, std: float,
             edges: np.ndarray | None = None) -> torch.Tensor:
    if kind == "survival":  # (N, 2): follow-up bin, event seen
        bins, events = bin_targets(labels, edges)
        return torch.as_tensor(np.stack([bins, events], axis=1), dtype=torch.float32)
    if kind == "regression":
        return torch.as_tensor((labels - mean) / std, dtype=torch.float32)
    if kind == "multilabel":
        return torch.as_tensor(labels, dtype=torch.float32)  # (N, L), NaN: not measured
    return torch.as_tensor(labels, dtype=torch.long)


def _loss(raw: torch.Tensor, target: torch.Tensor, kind: TaskKind) -> torch.Tensor:
    if kind == "survival":
        return hazard_nll(raw, target[:, 0].long(), target[:, 1])
    if kind == "regression":
        return F.mse_loss(raw[:, 0], target)
    if kind == "multilabel":  # (B, L), mean over the measured labels (NaN: not measured)
        seen = ~torch.isnan(target)
        return F.binary_cross_entropy_with_logits(raw[seen], target[seen]) if seen.any() \
            else raw.sum() * 0.0
    if raw.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(raw[:, 0], target.float())
    return F.cross_entropy(raw, target)
