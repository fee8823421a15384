"""Contrastive co-embedding of two modalities on labeled pairs (ConPLex / CLIP style).

    result = coembed((protein_model, molecule_model), splits, CoEmbedConfig(threshold=12.1))
    result.test_recall            # {"recall@1": ..., "recall@5": ..., "recall@10": ...}

The pairs whose value reaches `threshold` are positives (KIBA: a score of 12.1 or
more, the binder threshold of He et al. 2017). Each tower's pooled state is mapped
by a linear projection to a shared width and trained with the modality-blind
`SymmetricInfoNCE` (in-batch negatives; a ligand of the batch that is a known
binder of a row's target counts as a positive, not a negative) through the one
training core. Retrieval is scored on the test split: each test target (with at
least one binder) ranks every test ligand by cosine; recall@k is the share of
targets with a binder among their k nearest. Two references come with it: the
expected recall of a random ranking, and "popularity" (ligands ranked by how many
training targets they bind: promiscuous kinase inhibitors are a strong prior).

The trained towers are written as biofm checkpoints (LoRA merged in), so a
co-embedded pair of towers feeds `biofm pair-finetune` like any other.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
import torch
from torch import nn

from biofm.adapt.finetune import LoraSettings
from biofm.device import resolve_device
from biofm.errors import BiofmError
from biofm.model import FoundationModel, evaluating
from biofm.objectives.contrastive import SymmetricInfoNCE, recall_at_k
from biofm.pairs.data import PairData, PairSplits
from biofm.pairs.model import SideFeed
from biofm.pairs.towers import Tower
from biofm.train.trainer import FitConfig, Loss, StepOutput, Trainer, fit

if TYPE_CHECKING:
    from biofm.bench.report import ResultTable

Log = Callable[[str], None]
Baselines = Callable[[PairSplits, float], dict[str, dict[str, float]]]
KS = (1, 5, 10)


class CoEmbedConfig(LoraSettings):
    """Contrastive co-embedding settings.

    Args:
        threshold: pairs with a value >= threshold are positives.
        mode: the towers: frozen (projections only), lora or full.
        dim / temperature / margin: shared width, initial (learnable) temperature,
            additive margin of `SymmetricInfoNCE`.
        epochs / batch_size / lr / max_tokens: training; an epoch is one pass over the
            training positives.
        lora_*: LoRA settings of lora towers (`adapt.finetune.LoraSettings`).
    """

    threshold: float = 12.1
    mode: Literal["frozen", "lora", "full"] = "full"
    dim: int = 128
    temperature: float = 0.07
    margin: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    max_tokens: int = 512
    seed: int = 0
    device: str = "auto"


class CoEmbedModel(nn.Module):
    """Two towers, a projection each, and the contrastive loss (its temperature)."""

    def __init__(self, towers: tuple[Tower, Tower], config: CoEmbedConfig) -> None:
        super().__init__()
        self.towers = nn.ModuleList(towers)
        self.proj = nn.ModuleList([nn.Linear(t.d_model, config.dim) for t in towers])
        self.loss = SymmetricInfoNCE(config.temperature, margin=config.margin)

    def embed(self, side: int, feed: SideFeed, rows: np.ndarray) -> torch.Tensor:
        return self.proj[side](feed.states(rows).pooled.float())  # (B, dim)


@dataclass
class CoEmbedResult:
    """Test recall@k both ways of the co-embedding and of the baselines (name → recall)."""

    test_recall: dict[str, float]
    baselines: dict[str, dict[str, float]]
    model: CoEmbedModel
    history: list[dict[str, float]] = field(default_factory=list)
    sides: tuple[str, str] = ("first side", "second side")  # recall@k: sides[0] ranks sides[1]

    def table(self, task: str) -> "ResultTable":
        """The co-embedding and the baselines as rows of recall@k both ways."""
        from biofm.bench.report import ResultTable

        table = ResultTable()
        for method, recall in {"co-embedding": self.test_recall, **self.baselines}.items():
            table.add(task, method, 0, recall)
        return table

    @property
    def random_recall(self) -> dict[str, float]:
        return self.baselines["random"]

    @property
    def popularity_recall(self) -> dict[str, float]:
        return self.baselines.get("popularity", {})


def coembed(bases: tuple[FoundationModel, FoundationModel], splits: PairSplits,
            config: CoEmbedConfig = CoEmbedConfig(), log: Log | None = None,
            baselines: Baselines | None = None) -> CoEmbedResult:
    """Train the co-embedding on `splits.train`'s positives; retrieval on `splits.test`,
    next to `baselines(splits, threshold)` (default: random and popularity)."""
    torch.manual_seed(config.seed)
    train = splits.train
    positive = train.labels >= config.threshold
    if positive.sum() < 2:
        raise BiofmError(f"{int(positive.sum())} training pair(s) reach the threshold "
                         f"{config.threshold}", fix="lower --threshold (a value at or above "
                                                    "it marks a binding pair)")
    model = CoEmbedModel(tuple(_tower(b, config) for b in bases), config)  # type: ignore[arg-type]
    device = resolve_device(config.device)
    model.to(device)
    frozen = config.mode == "frozen"
    feeds = tuple(SideFeed.build(model.towers[s], train.items[s], frozen, False) for s in (0, 1))
    pairs = train.index[positive]  # (P, 2)
    known = {(int(a), int(b)) for a, b in pairs}
    rng = np.random.default_rng(config.seed)
    per_epoch = max(len(pairs) // config.batch_size, 1)
    order = itertools.chain.from_iterable(rng.permutation(len(pairs)) for _ in itertools.count())

    def next_batch() -> np.ndarray:
        return pairs[np.fromiter(itertools.islice(order, config.batch_size), dtype=np.int64)]

    def loss_fn(batch: np.ndarray) -> Loss:
        a = model.embed(0, feeds[0], batch[:, 0])
        b = model.embed(1, feeds[1], batch[:, 1])
        mask = torch.tensor([[(int(t), int(d)) in known for d in batch[:, 1]]
                             for t in batch[:, 0]], device=device)
        return Loss(model.loss(a, b, mask).loss)

    history: list[dict[str, float]] = []

    def after(out: StepOutput) -> bool:
        if out.step % per_epoch == 0:
            recall = retrieval(model, feeds, splits.valid, config.threshold)
            history.append({"epoch": out.step // per_epoch, "loss": out.loss.item(),
                            "temperature": float(model.loss.temperature.detach()), **recall})
            if log is not None:
                log(f"co-embed: loss {out.loss.item():.4f}, valid "
                    + ", ".join(f"{k} {v:.3f}" for k, v in recall.items())
                    + f" after epoch {out.step // per_epoch} of {config.epochs}")
        return False

    steps = config.epochs * per_epoch
    model.train()
    fit(Trainer(model, FitConfig(lr=config.lr, max_steps=steps, weight_decay=config.weight_decay,
                                 warmup_steps=max(steps // 20, 1)), device),
        next_batch, loss_fn, after)
    return CoEmbedResult(retrieval(model, feeds, splits.test, config.threshold),
                         (baselines or default_baselines)(splits, config.threshold), model,
                         history)


def _tower(base: FoundationModel, config: CoEmbedConfig) -> Tower:
    base = copy.deepcopy(base)
    base.objective.requires_grad_(False)
    if config.mode == "frozen":
        base.requires_grad_(False)
    elif config.mode == "lora":
        config.add_lora(base)
    return Tower(base, max_tokens=config.max_tokens)


def positives(data: PairData, threshold: float) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """The first side's items and the second side's items that `data` uses, and their
    (n_a, n_b) positives mask (a pair with a value >= threshold)."""
    rows, cols = data.used_items(0), data.used_items(1)
    row = {int(i): k for k, i in enumerate(rows)}
    col = {int(i): k for k, i in enumerate(cols)}
    mask = np.zeros((len(rows), len(cols)), dtype=bool)
    for (a, b), y in zip(data.index, data.labels):
        if y >= threshold:
            mask[row[int(a)], col[int(b)]] = True
    return rows, cols, torch.as_tensor(mask)


def both_ways(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor,
              ks: tuple[int, ...] = KS) -> dict[str, float]:
    """recall@k from the first side to the second ("recall@k": each KIBA target ranks
    the ligands) and back ("reverse recall@k"); a: (n_a, d), b: (n_b, d)."""
    backward = recall_at_k(b, a, mask.T, ks)
    return {**recall_at_k(a, b, mask, ks), **{f"reverse {k}": v for k, v in backward.items()}}


@torch.no_grad()
def retrieval(model: CoEmbedModel, feeds: tuple[SideFeed, ...], data: PairData,
              threshold: float) -> dict[str, float]:
    """recall@k both ways by cosine: each first-side item with a positive ranks the
    split's second-side items, and each second-side item with a positive the first's."""
    rows, cols, mask = positives(data, threshold)
    with evaluating(model):
        a = model.embed(0, feeds[0].cached_for(rows), rows).cpu()
        b = model.embed(1, feeds[1].cached_for(cols), cols).cpu()
    return both_ways(a, b, mask)


def random_recall(data: PairData, threshold: float) -> dict[str, float]:
    """Expected recall@k of a random ranking, both ways: 1 - C(n - p, k) / C(n, k) per
    query with p positives among n candidates."""
    from math import comb

    def expected(mask: np.ndarray) -> dict[str, float]:
        n = mask.shape[1]
        per = [p for p in mask.sum(1).tolist() if p]
        return {f"recall@{k}": float(np.mean([1 - comb(n - p, min(k, n)) / comb(n, min(k, n))
                                              for p in per])) if per else float("nan")
                for k in KS}

    mask = positives(data, threshold)[2].numpy()
    backward = expected(mask.T)
    return {**expected(mask), **{f"reverse {k}": v for k, v in backward.items()}}


def popularity_recall(train: PairData, test: PairData, threshold: float) -> dict[str, float]:
    """Every query ranks the test candidates by their number of training positives
    (promiscuous ligands first; targets with many binders first the other way)."""
    rows, cols, mask = positives(test, threshold)
    scores = []
    for side, items in ((1, cols), (0, rows)):
        count = np.bincount(train.index[train.labels >= threshold, side],
                            minlength=len(train.items[side]))[items].astype(np.float32)
        scores.append(torch.as_tensor(count - np.arange(len(items)) * 1e-6))  # ties: split order
    return both_ways_scores(scores[0].expand(len(rows), -1), scores[1].expand(len(cols), -1),
                            mask)


def both_ways_scores(forward: torch.Tensor, backward: torch.Tensor, mask: torch.Tensor,
                     ks: tuple[int, ...] = KS) -> dict[str, float]:
    """recall@k of given score matrices: forward (n_a, n_b), backward (n_b, n_a)."""
    def recall(score: torch.Tensor, m: torch.Tensor) -> dict[str, float]:
        keep = m.any(1)
        hits = m[keep].gather(1, score[keep].argsort(dim=1, descending=True))
        return {f"recall@{k}": float(hits[:, :k].any(1).float().mean()) if keep.any()
                else float("nan") for k in ks}
    return {**recall(forward, mask), **{f"reverse {k}": v
                                         for k, v in recall(backward, mask.T).items()}}


def default_baselines(splits: PairSplits, threshold: float) -> dict[str, dict[str, float]]:
    """A random ranking, and candidates ranked by their training positives."""
    return {"random": random_recall(splits.test, threshold),
            "popularity": popularity_recall(splits.train, splits.test, threshold)}


def save_coembedding(result: CoEmbedResult, directory: str | Path) -> Path:
    """tower_a/ and tower_b/ as biofm checkpoints (LoRA merged), projections and recall."""
    import json

    from safetensors.torch import save_file

    from biofm.adapt.saving import merged_base
    from biofm.io import atomic_path, atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, tower in zip(("tower_a", "tower_b"), result.model.towers):
        merged_base(tower.base).save(directory / name)
    weights = {f"proj.{k}": v.detach().cpu().contiguous()
               for k, v in result.model.proj.state_dict().items()}
    weights["log_scale"] = result.model.loss.log_scale.detach().cpu().reshape(1)
    with atomic_path(directory / "projections.safetensors") as tmp:
        save_file(weights, str(tmp))
    atomic_write_text(directory / "coembed.json", json.dumps(
        {"test_recall": result.test_recall, "baselines": result.baselines,
         "history": result.history}, indent=1))
    return directory


__all__ = ["CoEmbedConfig", "CoEmbedModel", "CoEmbedResult", "both_ways", "coembed",
           "default_baselines", "popularity_recall", "positives", "random_recall", "retrieval",
           "save_coembedding"]
