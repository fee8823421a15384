"""Collators: token-id lists → `Batch`, by padding or by packing."""

from __future__ import annotations

from typing import Sequence

import torch

from biofm.outputs import Batch


def pad_collate(sequences: Sequence[Sequence[int]], pad_id: int,
                multiple_of: int = 1) -> Batch:
    """Right-pad to the longest sequence (rounded up to `multiple_of`)."""
    longest = max(len(s) for s in sequences)
    T = -(-longest // multiple_of) * multiple_of
    ids = torch.full((len(sequences), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), T), dtype=torch.bool)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = True
    return Batch(input_ids=ids, attention_mask=mask)


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


def pack_collate(sequences: Sequence[Sequence[int]], pad_id: int, row_tokens: int) -> Batch:
    """Concatenate sequences into rows of `row_tokens` with per-document ids.

    The backbone then attends only within a document and restarts positions at
    each document start, so outputs equal those of the sequences run one by one.
    document_ids: (B, T) with 0, 1, ... per row and -1 on padding.
    """
    rows = pack_rows([len(s) for s in sequences], row_tokens)
    T = max(sum(len(sequences[i]) for i in row) for row in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    docs = torch.full((len(rows), T), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for d, i in enumerate(row):
            n = len(sequences[i])
            ids[r, start: start + n] = torch.as_tensor(sequences[i], dtype=torch.long)
            docs[r, start: start + n] = d
            start += n
    return Batch(input_ids=ids, attention_mask=docs >= 0, document_ids=docs)
