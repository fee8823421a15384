"""Primitives shared by every backbone: rotary embeddings, attention, MLP, block.

Shapes: B batch, T tokens, d model width, h heads, hd head width (d = h * hd).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU, as ESM and BERT use; the tanh approximation differs by ~1e-3."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half convention of ESM-2 / GPT-NeoX)."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # positions (B, T) → cos, sin (B, 1, T, hd) in fp32
        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, None], emb.sin()[:, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x (B, h, T, hd); rotation in fp32 for bf16 stability
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
                rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))  # (B, h, T, hd)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, d))


class Mlp(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model, eps=eps)
        self.attn = Attention(d_model, n_heads, dropout)
        self.mlp_norm = nn.LayerNorm(d_model, eps=eps)
        self.mlp = Mlp(d_model, d_ff)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
                rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.attn_norm(x), mask, is_causal, rotary))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


def build_attention_mask(attention_mask: torch.Tensor, document_ids: torch.Tensor | None,
                   causal: bool) -> torch.Tensor | None:
    """Boolean SDPA mask (B, 1, Tq, Tk), True = may attend; None when nothing is masked.

    Padding keys are masked; packed documents (document_ids) see only their own
    tokens; decoders add the causal triangle. Padding queries keep one visible
    key so no softmax row is empty (their outputs are ignored downstream).
    """
    B, T = attention_mask.shape
    if document_ids is None and bool(attention_mask.all()):
        return None
    keys = attention_mask[:, None, None, :]  # (B, 1, 1, T)
    if document_ids is not None:
        same_doc = document_ids[:, None, :, None] == document_ids[:, None, None, :]
        mask = same_doc & keys
    else:
        mask = keys.expand(B, 1, T, T)
    if causal:
        mask = mask & torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
    eye = torch.eye(T, dtype=torch.bool, device=mask.device)
    return mask | (eye & ~attention_mask[:, None, :, None])


def pool(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
         special_ids: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, d) → (B, d). mean: over the sequence's own tokens; cls: first token."""
    if pooling == "cls":
        return hidden[:, 0]
    keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    keep = torch.where(keep.any(1, keepdim=True), keep, attention_mask.bool())
    w = keep[..., None].to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1)
