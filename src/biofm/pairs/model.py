"""The two-tower pair model: two `Tower`s + an interaction head → one value per pair.

    model = PairModel((Tower(protein_model), Tower(molecule_model)), PairConfig())
    values = model.predict(proteins, ligands, index)     # (N,) KIBA scores

Each tower is frozen, LoRA-adapted, fully fine-tuned or trained from scratch
(`PairConfig.modes`). Training and prediction work on distinct items: a side's
items are tokenized once (`SideFeed`), a frozen tower runs over each item once and
its states are reused for every pair, a trained tower runs per batch over the
batch's distinct items only.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from biofm.adapt.finetune import LoraSettings
from biofm.model import evaluating
from biofm.pairs.heads import PAIR_HEADS
from biofm.pairs.towers import LongInputs, Tower, TowerStates

Mode = Literal["probe", "full", "lora", "scratch"]
TowerMode = Literal["frozen", "lora", "full", "scratch"]
MODE_TOWERS: dict[str, tuple[str, str]] = {
    "probe": ("frozen", "frozen"), "lora": ("lora", "lora"), "full": ("full", "full"),
    "scratch": ("scratch", "scratch")}


class PairConfig(LoraSettings):
    """How a pair model is built and trained.

    Args:
        mode: probe (both towers frozen, the head trained), lora, full or scratch
            (the towers' architectures, randomly initialised, trained end to end).
        tower_modes: per tower (frozen | lora | full | scratch), overriding `mode`,
            e.g. ["lora", "full"].
        head: "concat-mlp" or "cross-attention" (`PAIR_HEADS`); hidden / dropout: its MLP.
        per_item: pairs of one first-side item (target) per batch chunk; a batch
            holds batch_size / per_item targets (0: plain shuffled batches).
        epochs / patience / batch_size / lr / weight_decay / warmup_ratio /
            min_lr_ratio / grad_clip: the shared optimizer step's settings; the
            epoch with the best validation MSE is kept.
        lora_*: LoRA settings of lora towers (targets: module names in the backbone).
        max_tokens / long_inputs: how towers read inputs longer than their context
            (see `biofm.pairs.towers`).
    """

    mode: Mode = "full"
    tower_modes: tuple[TowerMode, TowerMode] | None = None
    head: str = "concat-mlp"
    hidden: int = 256
    dropout: float = 0.1
    epochs: int = 20
    patience: int = 5
    batch_size: int = 64
    per_item: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    max_tokens: int = 1024
    long_inputs: LongInputs = "window"
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    @property
    def modes(self) -> tuple[str, str]:
        return tuple(self.tower_modes) if self.tower_modes else MODE_TOWERS[self.mode]  # type: ignore[return-value]


class PairModel(nn.Module):
    """Two towers and a head; `forward(a, b)` → (B,) standardised values."""

    def __init__(self, towers: tuple[Tower, Tower], config: PairConfig,
                 target_stats: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.towers = nn.ModuleList(towers)
        self.config = config
        self.head = PAIR_HEADS.get(config.head)(towers[0].d_model, towers[1].d_model,
                                                config.hidden, config.dropout)
        self.target_mean, self.target_std = target_stats

    def forward(self, a: TowerStates, b: TowerStates) -> torch.Tensor:
        return self.head(a, b)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def feeds(self, items: tuple[Sequence, Sequence],
              frozen: tuple[bool, bool] = (False, False)) -> tuple["SideFeed", "SideFeed"]:
        """Tokenized sides (with every item's states computed once for `frozen` towers)."""
        return (SideFeed.build(self.towers[0], items[0], frozen[0], self.head.uses_tokens),
                SideFeed.build(self.towers[1], items[1], frozen[1], self.head.uses_tokens))

    def raw(self, feeds: tuple["SideFeed", "SideFeed"], index: np.ndarray) -> torch.Tensor:
        """(B,) standardised outputs of the pairs `index` (B, 2) of the feeds' items."""
        return self(feeds[0].states(index[:, 0]), feeds[1].states(index[:, 1]))

    @torch.no_grad()
    def predict_feeds(self, feeds: tuple["SideFeed", "SideFeed"], index: np.ndarray,
                      batch_size: int = 256) -> np.ndarray:
        out = np.zeros(len(index), dtype=np.float32)
        with evaluating(self):  # every item's states once, then the head over the pairs
            feeds = (feeds[0].cached_for(index[:, 0]), feeds[1].cached_for(index[:, 1]))
            for start in range(0, len(index), batch_size):
                rows = index[start: start + batch_size]
                out[start: start + len(rows)] = self.raw(feeds, rows).float().cpu().numpy()
        return out * self.target_std + self.target_mean

    def predict(self, items_a: Sequence, items_b: Sequence, index: np.ndarray | None = None,
                batch_size: int = 256) -> np.ndarray:
        """Values (N,) of the pairs `index` (N, 2) of the two item lists (default:
        items_a[i] with items_b[i])."""
        if index is None:
            index = np.stack([np.arange(len(items_a)), np.arange(len(items_b))], 1)
        return self.predict_feeds(self.feeds((items_a, items_b)), np.asarray(index), batch_size)


class SideFeed:
    """One side's items, tokenized once, and the states of any batch of them.

    A frozen tower's feed is cached: the tower runs over every item once, in eval
    mode, and the states stay on the CPU (pooled only when the head reads no
    tokens); a trained tower runs per batch over that batch's distinct items.
    `cached_for(rows)` gives a cached feed over the items `rows` (for prediction).
    """

    def __init__(self, tower: Tower, encoded: list, keep_tokens: bool,
                 cached: TowerStates | None = None, slot: np.ndarray | None = None) -> None:
        self.tower, self.encoded, self.keep_tokens = tower, encoded, keep_tokens
        self.cached, self.slot = cached, slot  # slot: item -> row of `cached` (-1: none)

    @classmethod
    def build(cls, tower: Tower, items: Sequence, cache: bool, keep_tokens: bool) -> "SideFeed":
        feed = cls(tower, tower.encode_items(items), keep_tokens)
        return feed.cached_for(np.arange(len(items))) if cache else feed

    def cached_for(self, rows: np.ndarray) -> "SideFeed":
        """This feed with the states of items `rows` computed once (eval mode)."""
        if self.cached is not None:
            return self
        needed = np.unique(np.asarray(rows))
        states = _all_states(self.tower, [self.encoded[i] for i in needed], self.keep_tokens)
        slot = np.full(len(self.encoded), -1, dtype=np.int64)
        slot[needed] = np.arange(len(needed))
        return SideFeed(self.tower, self.encoded, self.keep_tokens, states, slot)

    def states(self, rows: np.ndarray) -> TowerStates:
        """States of items `rows` (B,) (repeats allowed), on the tower's device."""
        unique, inverse = np.unique(np.asarray(rows), return_inverse=True)
        device = self.tower.special_ids.device
        if self.cached is not None:
            assert self.slot is not None
            states = self.cached.take(torch.as_tensor(self.slot[unique])).to(device)
        else:
            states = self.tower([self.encoded[i] for i in unique])
        return states.take(torch.as_tensor(inverse, device=device))


@torch.no_grad()
def _all_states(tower: Tower, encoded: list, keep_tokens: bool, chunk: int = 64) -> TowerStates:
    """States of every item, chunk by chunk (longest first: little padding), on the CPU."""
    order = sorted(range(len(encoded)), key=lambda i: -sum(len(w) for w in encoded[i]))
    pooled = torch.zeros(len(encoded), tower.d_model)
    lengths = [sum(len(w) for w in windows) for windows in encoded]
    width = max(lengths, default=1) if keep_tokens else 1
    tokens = torch.zeros(len(encoded), width, tower.d_model)
    mask = torch.zeros(len(encoded), width, dtype=torch.bool)
    with evaluating(tower):
        for start in range(0, len(order), chunk):
            rows = order[start: start + chunk]
            states = tower([encoded[i] for i in rows])
            index = torch.tensor(rows)
            pooled[index] = states.pooled.float().cpu()
            if keep_tokens:
                n = states.tokens.shape[1]
                tokens[index, :n] = states.tokens.float().cpu()
                mask[index, :n] = states.mask.cpu()
    if not keep_tokens:
        mask[:, 0] = True  # one placeholder token: the head reads the pooled states only
    return TowerStates(tokens, mask, pooled)


__all__ = ["MODE_TOWERS", "PairConfig", "PairModel", "SideFeed"]
