"""Task heads over pooled backbone states."""

from __future__ import annotations

import torch
from torch import nn

from biofm.backbones.layers import pool  # noqa: F401  (re-exported for heads' users)
from biofm.registry import HEADS


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
