"""TransTEE (Zhang et al. 2022) on the shared transformer: covariates and the
treatment as tokens, potential outcomes read from the treatment token.

    est = TransTEEEstimator(seed=0, config=TransTEEConfig(members=5))
    est.fit(data)                  # EffectData: covariates, treatment, outcome
    effects = est.estimate(units)  # CATE per unit, ATE, 95% intervals, y0 / y1

A unit becomes K + 1 tokens. Covariate k is a token of its own id whose value
(its z-score, through the backbone's "patches" input with one value per token)
is projected and added to the id's embedding; a categorical covariate is a
token per level (value 0). The last token is the treatment, id CONTROL or
TREATED. The bidirectional encoder mixes them; a small MLP reads the treatment
token's final state as the outcome (z-scored). Swapping the treatment token
gives y0 and y1 for every unit: CATE = y1 - y0, ATE = its mean.

Training is the factual MSE through the one core (`Trainer` / `fit`), with
early stopping on a held-out set. Intervals come from a bootstrap over units:
each of `members` models trains on a resample of the units (drawn within each
arm) with its own seed, and stops early on the units its resample left out
(out-of-bag). The estimate is the members' mean; the 95% interval their 2.5
and 97.5 percentiles, for each unit's CATE and for the ATE. With few members
(the default 3) the interval is crude, close to their range.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from biofm.backbones import build_backbone
from biofm.causal.data import EffectData
from biofm.causal.estimators import Effects, percentile_interval, resample_units
from biofm.config import BackboneConfig, Config
from biofm.device import resolve_device
from biofm.errors import BiofmError
from biofm.train.trainer import BestEpoch, FitConfig, Loss, Trainer, fit

__all__ = ["CovariateTokenizer", "TransTEE", "TransTEEConfig", "TransTEEEstimator"]

PREDICT_CHUNK = 2048  # units per forward pass at prediction time


class TransTEEConfig(Config):
    """The model and how each bootstrap member trains.

    Args:
        d_model / n_layers / n_heads / d_ff / dropout: the shared encoder's shape.
        lr / weight_decay / batch_size: AdamW on random batches of units.
        max_steps: optimizer steps per member at most (warmup 5%, cosine decay).
        eval_every: steps between validation scores (0: a pass over the training units).
        patience: validation scores without improvement before a member stops.
        members: bootstrap members (1: a point estimate without an interval).
    """

    d_model: int = Field(32, ge=2)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    d_ff: int = Field(64, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = 0.01
    batch_size: int = Field(64, ge=1)
    max_steps: int = Field(1000, ge=1)
    eval_every: int = Field(0, ge=0)
    patience: int = Field(10, ge=0)
    members: int = Field(3, ge=1)


class CovariateTokenizer:
    """Covariate frame → token ids (N, K + 1) and values (N, K + 1, 1), the last
    token the treatment's (its id set per forward pass).

    Ids: 0 padding (unused), 1 control, 2 treated, then one per numeric column,
    then one per level of each categorical column. Numeric values are z-scored
    with the fitted frame's mean and sd; categorical tokens carry 0.
    """

    PAD, CONTROL, TREATED = 0, 1, 2

    def __init__(self, covariates: pd.DataFrame) -> None:
        self.columns = list(covariates.columns)
        self.first_id: dict[str, int] = {}
        self.scale: dict[str, tuple[float, float]] = {}
        self.levels: dict[str, list] = {}
        next_id = 3
        for name in self.columns:
            column = covariates[name]
            self.first_id[name] = next_id
            if isinstance(column.dtype, pd.CategoricalDtype):
                self.levels[name] = list(column.cat.categories)
                next_id += len(self.levels[name])
            else:
                sd = float(column.std(ddof=0))
                self.scale[name] = (float(column.mean()), sd if sd > 0 else 1.0)
                next_id += 1
        self.vocab_size = next_id

    @property
    def n_tokens(self) -> int:
        return len(self.columns) + 1

    def encode(self, covariates: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        N = len(covariates)
        ids = np.full((N, self.n_tokens), self.CONTROL, dtype=np.int64)
        values = np.zeros((N, self.n_tokens), dtype=np.float32)
        for k, name in enumerate(self.columns):
            column = covariates[name]
            if name in self.levels:
                codes = pd.Categorical(column, categories=self.levels[name]).codes
                if (codes < 0).any():  # a level the fitted frame did not have
                    raise BiofmError(f"covariate {name!r} has a category the model has not seen",
                                     fix="fit on units that cover every category")
                ids[:, k] = self.first_id[name] + codes
            else:
                mean, sd = self.scale[name]
                ids[:, k] = self.first_id[name]
                values[:, k] = (column.to_numpy(float) - mean) / sd
        return torch.from_numpy(ids), torch.from_numpy(values)[..., None]


class TransTEE(nn.Module):
    """Shared encoder over covariate tokens + a treatment token → outcome."""

    def __init__(self, config: TransTEEConfig, vocab_size: int, n_tokens: int) -> None:
        super().__init__()
        self.backbone = build_backbone(BackboneConfig(
            size=None, d_model=config.d_model, n_layers=config.n_layers, n_heads=config.n_heads,
            d_ff=config.d_ff, dropout=config.dropout, vocab_size=vocab_size, max_len=n_tokens,
            values="patches", value_size=1, position="learned"))
        d = config.d_model
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, ids: torch.Tensor, values: torch.Tensor,
                treatment: torch.Tensor) -> torch.Tensor:
        """ids (B, K + 1), values (B, K + 1, 1), treatment (B,) in {0, 1} → outcome (B,)."""
        ids = torch.cat([ids[:, :-1], (CovariateTokenizer.CONTROL + treatment)[:, None]], dim=1)
        hidden = self.backbone(ids, values=values).last_hidden_state  # (B, K + 1, d)
        return self.head(hidden[:, -1]).squeeze(-1)  # (B,)


@dataclass
class _Units:
    """Encoded units on one device: ids (N, K + 1), values (N, K + 1, 1), t (N,), y (N,)."""

    ids: torch.Tensor
    values: torch.Tensor
    t: torch.Tensor
    y: torch.Tensor

    def __getitem__(self, index: torch.Tensor) -> _Units:
        return _Units(self.ids[index], self.values[index], self.t[index], self.y[index])


class TransTEEEstimator:
    """A bootstrap ensemble of TransTEE models (see the module docstring)."""

    name, gives_cate = "transtee", True

    def __init__(self, seed: int = 0, config: TransTEEConfig | None = None,
                 device: str = "cpu") -> None:
        self.seed, self.config = seed, config or TransTEEConfig()
        self.device = resolve_device(device)
        self.members: list[TransTEE] = []
        self.histories: list[list[dict[str, float]]] = []

    def fit(self, data: EffectData) -> TransTEEEstimator:
        with _threads(self.device):
            return self._fit(data)

    def _fit(self, data: EffectData) -> TransTEEEstimator:
        self.tokenizer = CovariateTokenizer(data.covariates)
        self.y_mean = float(data.outcome.mean())
        self.y_sd = float(data.outcome.std()) or 1.0
        units = self._units(data)
        rng = np.random.default_rng(self.seed)
        self.members, self.histories = [], []
        for k in range(self.config.members):
            train, valid = _bootstrap_split(rng, data.treatment)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1000 + k)  # initialisation
                model = TransTEE(self.config, self.tokenizer.vocab_size, self.tokenizer.n_tokens)
            history = _train_member(model, units, train, valid, self.config,
                                    self.seed * 1000 + k, self.device)
            self.members.append(model.cpu().eval())
            self.histories.append(history)
        return self

    def estimate(self, data: EffectData) -> Effects:
        if not self.members:
            raise RuntimeError("TransTEEEstimator.estimate before fit")
        ids, values = self.tokenizer.encode(data.covariates)
        with _threads(self.device):
            y0, y1 = zip(*(self._potential(m, ids, values) for m in self.members))  # each (N,)
        y0, y1 = np.stack(y0), np.stack(y1)  # (M, N)
        cate = y1 - y0
        effects = Effects(float(cate.mean()), cate.mean(0), y0=y0.mean(0), y1=y1.mean(0))
        if len(self.members) > 1:
            effects.cate_low, effects.cate_high = percentile_interval(cate)
            effects.ate_low, effects.ate_high = map(float, percentile_interval(cate.mean(1)))
        return effects

    def _units(self, data: EffectData) -> _Units:
        ids, values = self.tokenizer.encode(data.covariates)
        y = (data.outcome - self.y_mean) / self.y_sd
        return _Units(ids.to(self.device), values.to(self.device),
                      torch.as_tensor(data.treatment, device=self.device),
                      torch.as_tensor(y, dtype=torch.float32, device=self.device))

    @torch.no_grad()
    def _potential(self, model: TransTEE, ids: torch.Tensor,
                   values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(N,) predicted outcomes under control and under treatment, in outcome units."""
        model.to(self.device)
        out = []
        for arm in (0, 1):
            chunks = []
            for start in range(0, len(ids), PREDICT_CHUNK):
                i = ids[start:start + PREDICT_CHUNK].to(self.device)
                v = values[start:start + PREDICT_CHUNK].to(self.device)
                t = torch.full((len(i),), arm, dtype=torch.long, device=self.device)
                chunks.append(model(i, v, t).float().cpu())
            out.append(torch.cat(chunks).numpy() * self.y_sd + self.y_mean)
        model.cpu()
        return out[0], out[1]


@contextlib.contextmanager
def _threads(device: torch.device) -> Iterator[None]:
    """One intra-op thread on the CPU while a member trains or predicts: the model is
    too small to split, and OpenMP workers spin-wait. Measured on a busy 2-core
    machine: 100 steps took 56 s with two threads, 21 s with one."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bootstrap_split(rng: np.random.Generator,
                     treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A resample of the units (within each arm) to train on, and the units it left
    out to stop on (a random fifth when fewer than 2 were left out)."""
    train = resample_units(rng, treatment)
    valid = np.setdiff1d(np.arange(len(treatment)), train)
    if len(valid) < 2:
        valid = rng.permutation(len(treatment))[: max(2, len(treatment) // 5)]
    return train, valid


def _train_member(model: TransTEE, units: _Units, train: np.ndarray, valid: np.ndarray,
                  config: TransTEEConfig, seed: int,
                  device: torch.device) -> list[dict[str, float]]:
    """Factual MSE on random batches of `train` until `max_steps` or until the
    MSE on `valid` stops improving; `model` ends with its best validation weights."""
    model.to(device).train()
    fit_config = FitConfig(lr=config.lr, max_steps=config.max_steps,
                           weight_decay=config.weight_decay,
                           warmup_steps=math.ceil(0.05 * config.max_steps))
    generator = torch.Generator().manual_seed(seed)  # batch order
    train_index = torch.as_tensor(train)
    valid_units = units[torch.as_tensor(valid, device=units.ids.device)]
    per_pass = math.ceil(len(train) / config.batch_size)

    def valid_mse() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            v = valid_units
            score = F.mse_loss(model(v.ids, v.values, v.t).float(), v.y).item()
        model.train()
        return {"mse": score}

    stop = BestEpoch(model, valid_mse, "mse", higher_is_better=False, patience=config.patience,
                     per_epoch=config.eval_every or per_pass, min_delta=1e-4, count="step")

    def next_batch() -> _Units:
        pick = torch.randint(len(train_index), (config.batch_size,), generator=generator)
        return units[train_index[pick].to(units.ids.device)]

    def loss_fn(batch: _Units) -> Loss:
        return Loss(F.mse_loss(model(batch.ids, batch.values, batch.t).float(), batch.y))

    fit(Trainer(model, fit_config, device), next_batch, loss_fn, stop)
    stop.restore()
    if not all(math.isfinite(h["train_loss"]) for h in stop.history):
        raise BiofmError("TransTEE training diverged (the loss is not finite)",
                         fix="lower the learning rate, or check the outcome for extreme values")
    return stop.history
