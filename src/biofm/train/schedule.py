"""Learning-rate schedule and optimizer parameter groups."""

from __future__ import annotations

import math

import torch
from torch import nn


def warmup_cosine(warmup_steps: int, max_steps: int, min_ratio: float):
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at `max_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        progress = min((step - warmup_steps) / max(max_steps - warmup_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


_TOKENS = ("mask_token", "cls_token")  # learned vectors standing in for inputs


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, norms, embedding tables and learned tokens (MAE's
    mask token), as in BERT / ESM / MAE training (timm's rule); linear projections of
    a second input (a ViT's patch embedding, time-series patches) decay like any
    other weight matrix."""
    exempt = {id(p) for module in model.modules()
              if isinstance(module, (nn.Embedding, nn.LayerNorm))
              for p in module.parameters(recurse=False)}
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if p.ndim < 2 or id(p) in exempt or "norm" in name or name.endswith(_TOKENS):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float,
                    betas: tuple[float, float]) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas,
                             foreach=True)
