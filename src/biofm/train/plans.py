"""Micro-batch plans: which sequences micro-batch `k` holds, from `k` alone.

A plan is a pure function of (seed, k), so a resumed run reads exactly the
batches an uninterrupted run would have read, whether it stopped at an epoch
boundary or in the middle of one. Every rank of a distributed run builds the
same plan and takes its own rows of each (global) micro-batch.

    BatchPlan        fixed-size batches over an in-memory list, length-bucketed
    TokenBudgetPlan  batches of about `tokens` tokens (for the packing collator)
    ShardPlan        either of the two over a sharded on-disk corpus, read shard
                     by shard through a shuffle buffer (`biofm.data.shards`)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bucketed_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, bucket: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Cut `order` into batches; within windows of `bucket` batches sequences are
    sorted by length (less padding) and the batches of each window are shuffled."""
    window = bucket * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start: start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        group = [chunk[j: j + batch_size] for j in range(0, len(chunk), batch_size)]
        batches += [group[j] for j in rng.permutation(len(group))]
    return batches


def token_budget_batches(order: np.ndarray, lengths: np.ndarray, tokens: int,
                         drop_tail: bool = True) -> list[np.ndarray]:
    """Fill batches greedily in `order` up to `tokens` tokens; with `drop_tail` a
    final batch under half the budget is dropped (the ragged tail)."""
    batches, current, used = [], [], 0
    for i in order:
        if used + lengths[i] > tokens and current:
            batches.append(np.array(current))
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current and (used >= tokens // 2 or not drop_tail):
        batches.append(np.array(current))
    return batches


class BatchPlan:
    """Deterministic micro-batch order from a global index `k`.

    Epoch e uses a permutation seeded by (seed, e); within windows of
    `bucket` batches sequences are sorted by length, which cuts padding while
    keeping batches random. Any `k` maps to the same indices after a resume.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, bucket: int = 32) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = min(batch_size, len(lengths))
        self.seed = seed
        self.bucket = bucket
        self.per_epoch = len(lengths) // self.batch_size  # drop the ragged tail
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def __call__(self, k: int) -> np.ndarray:
        epoch, i = divmod(k, self.per_epoch)
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._epoch_batches(epoch))
        return self._cache[1][i]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))[: self.per_epoch * self.batch_size]
        return bucketed_batches(order, self.lengths, self.batch_size, self.bucket, rng)


class TokenBudgetPlan:
    """Micro-batches holding up to `tokens` tokens each (for packing).

    Epoch e shuffles with (seed, e) and fills batches greedily in that order,
    so every batch carries about the same number of real tokens whatever the
    length distribution; `k` maps to the same indices after a resume.
    """

    def __init__(self, lengths: Sequence[int], tokens: int, seed: int) -> None:
        self.lengths = np.asarray(lengths)
        self.tokens = max(tokens, int(self.lengths.max()))
        self.seed = seed
        self._epochs: dict[int, list[np.ndarray]] = {}
        self._sizes: dict[int, int] = {}  # batches per epoch, for every epoch seen
        self.per_epoch = self._size(0)

    def __call__(self, k: int) -> np.ndarray:
        epoch = 0
        while k >= self._size(epoch):
            k -= self._size(epoch)
            epoch += 1
        return self._epoch_batches(epoch)[k]

    def _size(self, epoch: int) -> int:
        if epoch not in self._sizes:
            self._sizes[epoch] = len(self._epoch_batches(epoch))
        return self._sizes[epoch]

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self._epochs:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.lengths))
            self._epochs = {epoch: token_budget_batches(order, self.lengths, self.tokens)}
        return self._epochs[epoch]


class ShardPlan:
    """Micro-batches over a sharded corpus that never holds an epoch's order in memory.

    Epoch e visits the shards in an order seeded by (seed, e). The resulting
    stream of sequence indices is cut into windows of `buffer` sequences (a
    shuffle buffer): each window is shuffled with (seed, e, w) and batched like
    `BatchPlan` (batch_size > 0) or `TokenBudgetPlan` (tokens > 0; each window
    keeps its last, partly filled batch, so none is ever empty). A window
    spans only a few consecutive shards, so reads stay local and a small shard
    cache suffices; memory is O(buffer + shards), not O(corpus). Any `k` maps
    to the same indices after a resume, mid-epoch included.

    shard_sizes: sequences per shard, in corpus order.
    lengths:     tokens per sequence, indexable by global sequence index (may
                 be a memory-mapped array).
    """

    def __init__(self, shard_sizes: Sequence[int], lengths: np.ndarray, seed: int, *,
                 batch_size: int = 0, tokens: int = 0, buffer: int = 8192, bucket: int = 32) -> None:
        if (batch_size > 0) == (tokens > 0):
            raise ValueError("give exactly one of batch_size and tokens")
        self.sizes = np.asarray(shard_sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])  # first index per shard
        self.total = int(self.sizes.sum())
        self.lengths = lengths
        self.seed = seed
        self.batch_size = min(batch_size, self.total)
        self.tokens = max(tokens, int(np.max(lengths))) if tokens else 0
        self.bucket = bucket
        # fixed-size batches never straddle a window when it holds whole batches
        step = self.batch_size or 1
        self.buffer = max(-(-buffer // step) * step, step)
        self.windows = -(-self.total // self.buffer)
        self._counts: dict[int, np.ndarray] = {}  # epoch -> batches per window
        self._window: tuple[tuple[int, int], list[np.ndarray]] | None = None
        self.per_epoch = int(self._window_counts(0).sum())

    def __call__(self, k: int) -> np.ndarray:
        epoch = 0
        while k >= (n := int(self._window_counts(epoch).sum())):
            k -= n
            epoch += 1
        ends = np.cumsum(self._window_counts(epoch))
        w = int(np.searchsorted(ends, k, side="right"))
        first = int(ends[w] - self._window_counts(epoch)[w])
        return self._window_batches(epoch, w)[k - first]

    def _window_counts(self, epoch: int) -> np.ndarray:
        """Batches in each window of `epoch` (closed form for fixed-size batches)."""
        if self.batch_size:
            sizes = np.full(self.windows, self.buffer)
            sizes[-1] = self.total - self.buffer * (self.windows - 1)
            return sizes // self.batch_size
        if epoch not in self._counts:  # one pass over the epoch's windows, then remembered
            counts = [len(self._window_batches(epoch, w)) for w in range(self.windows)]
            self._counts[epoch] = np.array(counts, dtype=np.int64)
        return self._counts[epoch]

    def _window_batches(self, epoch: int, w: int) -> list[np.ndarray]:
        if self._window is None or self._window[0] != (epoch, w):
            rng = np.random.default_rng([self.seed, epoch, w])
            window = self._window_indices(epoch, w)
            window = window[rng.permutation(len(window))]
            lengths = np.asarray(self.lengths[window], dtype=np.int64)  # (n,) by position
            batches = self._batch(np.arange(len(window)), lengths, rng)
            self._window = ((epoch, w), [window[b] for b in batches])
        return self._window[1]

    def _batch(self, order: np.ndarray, lengths: np.ndarray,
               rng: np.random.Generator) -> list[np.ndarray]:
        if self.batch_size:
            order = order[: len(order) // self.batch_size * self.batch_size]
            return bucketed_batches(order, lengths, self.batch_size, self.bucket, rng)
        return token_budget_batches(order, lengths, self.tokens, drop_tail=False)  # >= 1 per window

    def _window_indices(self, epoch: int, w: int) -> np.ndarray:
        """Global sequence indices at stream positions [w * buffer, (w + 1) * buffer)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.sizes))
        stream_ends = np.cumsum(self.sizes[order])
        lo, hi = w * self.buffer, min((w + 1) * self.buffer, self.total)
        pieces, s = [], int(np.searchsorted(stream_ends, lo, side="right"))
        while lo < hi:
            shard_start = int(stream_ends[s] - self.sizes[order[s]])
            a, b = lo - shard_start, min(hi - shard_start, int(self.sizes[order[s]]))
            pieces.append(self.starts[order[s]] + np.arange(a, b))
            lo += b - a
            s += 1
        return np.concatenate(pieces)
