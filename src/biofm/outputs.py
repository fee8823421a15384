"""Typed containers passed between the pipeline stages (never positional tuples)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Batch:
    """A collated batch.

    input_ids:      (B, T) long
    attention_mask: (B, T) bool, True on real tokens
    labels:         (B, T) long with -100 where no loss, set by the objective
    document_ids:   (B, T) long for packed batches (one id per document, -1 on
                    padding); None for padded batches
    values:         a second input beside the ids (see BackboneConfig.values):
                    (B, T) long expression bins or (B, T, P) float patches
    value_labels:   targets of a value objective, (B, T) or (B, T, P) float,
                    NaN where no loss (mae: (B, N, P) over every patch of the
                    image, while the ids hold the visible ones only)
    positions:      (B, T) long position of each token, when they are not
                    0..T-1 (mae: the grid positions of the visible patches);
                    None: 0..T-1 (restarting per document when packed)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    document_ids: torch.Tensor | None = None
    values: torch.Tensor | None = None
    value_labels: torch.Tensor | None = None
    positions: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.labels),
                     move(self.document_ids), move(self.values), move(self.value_labels),
                     move(self.positions))

    def with_(self, **changes: torch.Tensor | None) -> "Batch":
        return replace(self, **changes)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


@dataclass
class BackboneOutput:
    last_hidden_state: torch.Tensor  # (B, T, d); (M, d) with outputs_at
    hidden_states: tuple[torch.Tensor, ...] | None = None  # (n_layers + 1) x (B, T, d)
    outputs_at: torch.Tensor | None = None  # (M,) flat token indices of last_hidden_state


@dataclass
class ObjectiveOutput:
    loss: torch.Tensor  # () mean over predicted tokens
    logits: torch.Tensor  # (B, T, V); mlm: (N, V) at the N predicted positions
    num_predicted: int  # tokens that entered the loss
