"""Collators: token-id lists → `Batch`. Padding here; packing is the other collator."""

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
