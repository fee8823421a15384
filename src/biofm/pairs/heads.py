"""Interaction heads: two towers' states → one value per pair. Registered in `PAIR_HEADS`.

- "concat-mlp": each tower's pooled state, layer-normed (frozen towers of different
  scales meet on one footing), concatenated → MLP (DeepDTA's head on pretrained towers);
- "cross-attention": both towers' token states projected to a shared width; side a
  attends to side b and b to a (one multi-head layer each way, residual + norm),
  each side mean-pooled over its own tokens, concatenated → MLP. Padding is masked
  on both sides, so a pair's value does not depend on the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from biofm.pairs.towers import TowerStates
from biofm.registry import Registry

PAIR_HEADS: Registry = Registry("pair head")


def _mlp(d_in: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden // 2, 1))


@PAIR_HEADS.register("concat-mlp")
class ConcatMlpHead(nn.Module):
    uses_tokens = False  # reads the pooled states only

    def __init__(self, d_a: int, d_b: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm_a, self.norm_b = nn.LayerNorm(d_a), nn.LayerNorm(d_b)
        self.mlp = _mlp(d_a + d_b, hidden, dropout)

    def forward(self, a: TowerStates, b: TowerStates) -> torch.Tensor:
        joined = torch.cat([self.norm_a(a.pooled.float()), self.norm_b(b.pooled.float())], -1)
        return self.mlp(joined)[:, 0]  # (B,)


@PAIR_HEADS.register("cross-attention")
class CrossAttentionHead(nn.Module):
    uses_tokens = True

    def __init__(self, d_a: int, d_b: int, hidden: int = 256, dropout: float = 0.1,
                 width: int = 128, n_heads: int = 4) -> None:
        super().__init__()
        self.proj_a, self.proj_b = nn.Linear(d_a, width), nn.Linear(d_b, width)
        self.a_to_b = nn.MultiheadAttention(width, n_heads, dropout=dropout, batch_first=True)
        self.b_to_a = nn.MultiheadAttention(width, n_heads, dropout=dropout, batch_first=True)
        self.norm_a, self.norm_b = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mlp = _mlp(2 * width, hidden, dropout)

    def forward(self, a: TowerStates, b: TowerStates) -> torch.Tensor:
        x, y = self.proj_a(a.tokens.float()), self.proj_b(b.tokens.float())  # (B, La, w), (B, Lb, w)
        # key_padding_mask: True where a key is padding
        x2 = self.norm_a(x + self.a_to_b(x, y, y, key_padding_mask=~b.mask,
                                         need_weights=False)[0])
        y2 = self.norm_b(y + self.b_to_a(y, x, x, key_padding_mask=~a.mask,
                                         need_weights=False)[0])
        return self.mlp(torch.cat([_masked_mean(x2, a.mask), _masked_mean(y2, b.mask)], -1))[:, 0]


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, w) mean over the True positions of `mask` (B, L) → (B, w)."""
    w = mask[..., None].to(x.dtype)
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


__all__ = ["PAIR_HEADS", "ConcatMlpHead", "CrossAttentionHead"]
