"""Collators: token-id lists → `Batch`, by padding or by packing.

A sequence is a list of token ids, or a `ValuedSequence` that carries a value
per token beside its ids (scGPT expression bins, time-series patches); the
values are collated into `Batch.values` in the same layout as the ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from biofm.outputs import Batch


@dataclass(frozen=True)
class ValuedSequence:
    """Token ids (n,) with a value per token: (n,) int bins or (n, P) float patches."""

    ids: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if len(self.values) != len(self.ids):
            raise ValueError(f"{len(self.ids)} token ids but {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.ids)


def _ids(seq: Sequence[int] | ValuedSequence) -> torch.Tensor:
    return torch.as_tensor(seq.ids if isinstance(seq, ValuedSequence) else seq, dtype=torch.long)


def _empty_values(sequences: Sequence, shape: tuple[int, int]) -> torch.Tensor | None:
    """Zeros shaped like the batch's values, or None for plain id sequences."""
    first = sequences[0]
    if not isinstance(first, ValuedSequence):
        return None
    values = torch.as_tensor(first.values)
    return torch.zeros((*shape, *values.shape[1:]), dtype=values.dtype)


def pad_collate(sequences: Sequence[Sequence[int] | ValuedSequence], pad_id: int,
                multiple_of: int = 1) -> Batch:
    """Right-pad to the longest sequence (rounded up to `multiple_of`)."""
    longest = max(len(s) for s in sequences)
    T = -(-longest // multiple_of) * multiple_of
    ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), T), dtype=torch.bool)
    values = _empty_values(sequences, (len(sequences), T))
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = _ids(seq)
        mask[i, : len(seq)] = True
        if values is not None:
            values[i, : len(seq)] = torch.as_tensor(seq.values)  # type: ignore[union-attr]
    return Batch(input_ids=ids, attention_mask=mask, values=values)


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Assign sequences to rows of at most `row_tokens` tokens (first-fit decreasing).

    Returns, per row, the indices of the sequences it holds. A sequence longer
    than a row gets a row of its own (callers truncate to the context first).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(row_tokens - lengths[i])
    return rows


def pack_collate(sequences: Sequence[Sequence[int] | ValuedSequence], pad_id: int,
                 row_tokens: int) -> Batch:
    """Concatenate sequences into rows of `row_tokens` with per-document ids.

    The backbone then attends only within a document and restarts positions at
    each document start, so outputs equal those of the sequences run one by one.
    document_ids: (B, T) with 0, 1, ... per row and -1 on padding.
    """
    rows = pack_rows([len(s) for s in sequences], row_tokens)
    T = max(sum(len(sequences[i]) for i in row) for row in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    docs = torch.full((len(rows), T), -1, dtype=torch.long)
    values = _empty_values(sequences, (len(rows), T))
    for r, row in enumerate(rows):
        start = 0
        for d, i in enumerate(row):
            n = len(sequences[i])
            ids[r, start: start + n] = _ids(sequences[i])
            if values is not None:
                values[r, start: start + n] = torch.as_tensor(sequences[i].values)  # type: ignore
            docs[r, start: start + n] = d
            start += n
    return Batch(input_ids=ids, attention_mask=docs >= 0, document_ids=docs, values=values)


def length_batches(lengths: Sequence[int], batch_size: int,
                   max_tokens: int | None = None) -> Iterator[np.ndarray]:
    """Inference batches: indices sorted by length (stable), `batch_size` at a time,
    so each batch pads little; callers scatter results back by these indices.
    max_tokens: also cut a batch before its padded size (count x longest) would
    exceed it (a longer sequence still gets a batch of its own)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        if max_tokens is not None:  # ascending lengths: the last one is the longest
            fits = (np.arange(start + 1, end + 1) - start) * np.asarray(lengths)[order[start:end]]
            end = start + max(1, int(np.sum(fits <= max_tokens)))
        yield order[start:end]
        start = end
