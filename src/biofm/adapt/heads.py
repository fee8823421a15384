"""Task heads over pooled backbone states, and the pooling itself."""

from __future__ import annotations

import torch
from torch import nn

from biofm.registry import HEADS


def pool(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
         special_ids: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, d) → (B, d). mean: over the sequence's own tokens; cls: first token."""
    if pooling == "cls":
        return hidden[:, 0]
    keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    keep = torch.where(keep.any(1, keepdim=True), keep, attention_mask.bool())
    w = keep[..., None].to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1)


@HEADS.register("linear")
class LinearHead(nn.Module):
    """Dropout + linear map to `n_outputs` (1 for regression and binary tasks)."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(d_model, n_outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(pooled))


@HEADS.register("mlp")
class MlpHead(nn.Module):
    """One hidden layer (width d_model, GELU) before the output map."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, d_model), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(d_model, n_outputs))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)
