"""Symmetric InfoNCE over two towers' pooled embeddings (CLIP, ConPLex, MolCLR).

    loss_fn = SymmetricInfoNCE(temperature=0.07, margin=0.1)
    out = loss_fn(z_a, z_b)            # (B, d) each: row i of z_a pairs with row i of z_b
    out.loss.backward()

Both embeddings are L2-normalised; logits[i, j] = (cos(a_i, b_j) - margin * [j pairs
with i]) / temperature. The loss is the mean of the cross-entropy over rows (a → b:
which b belongs to a_i, the other rows' b being the in-batch negatives) and over
columns (b → a). The temperature is learnable (stored as log(1 / temperature), its
inverse capped at `max_scale` as in CLIP). `margin` > 0 is the additive margin that
ConPLex-style training puts between a positive and the negatives. With `positives`
given (a (B, B) boolean mask, e.g. a protein that binds two ligands of the batch),
a row's loss is -log of the softmax mass on all of its positives.

The objective sees two matrices and a mask: it does not know, and must not know,
which modalities the towers read. It is not in the `OBJECTIVES` registry, whose
members train one backbone (`objective(backbone(ids), batch)`); the pair models of
`biofm.pairs` own the towers and call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from biofm.errors import BiofmError


@dataclass
class ContrastiveOutput:
    loss: torch.Tensor  # () mean of the a → b and b → a cross-entropies
    logits: torch.Tensor  # (B, B) scaled similarities (margin applied), rows = a
    temperature: torch.Tensor  # () the temperature used


class SymmetricInfoNCE(nn.Module):
    """Symmetric InfoNCE with in-batch negatives, a learnable temperature and an
    optional additive margin on the positives (see the module docstring).

    Args:
        temperature: initial temperature (CLIP: 0.07).
        learn_temperature: False keeps it fixed (a buffer, not a parameter).
        margin: subtracted from each positive cosine before scaling (0: plain InfoNCE).
        max_scale: largest 1 / temperature (CLIP clamps at 100).
    """

    def __init__(self, temperature: float = 0.07, *, learn_temperature: bool = True,
                 margin: float = 0.0, max_scale: float = 100.0) -> None:
        super().__init__()
        if not 0 < temperature or not 0 <= margin < 2 or 1 / temperature > max_scale:
            raise BiofmError(f"contrastive settings out of range (temperature {temperature}, "
                             f"margin {margin}, max_scale {max_scale})",
                             fix="use 1 / max_scale <= temperature, and 0 <= margin < 2 "
                                 "(cosines lie in [-1, 1])")
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.margin = margin
        self.max_log_scale = math.log(max_scale)

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                positives: torch.Tensor | None = None) -> ContrastiveOutput:
        """a: (B, d), b: (B, d) paired by row; positives: (B, B) bool, default the diagonal."""
        if a.ndim != 2 or a.shape != b.shape:
            raise BiofmError(f"the two towers' embeddings must both be (batch, width) with the "
                             f"same shape, got {tuple(a.shape)} and {tuple(b.shape)}",
                             fix="project both towers to one width before the contrastive loss")
        n = a.shape[0]
        if positives is None:
            positives = torch.eye(n, dtype=torch.bool, device=a.device)
        if positives.shape != (n, n) or not positives.any(1).all() or not positives.any(0).all():
            raise BiofmError("the positives mask must be (batch, batch) with a positive in "
                             "every row and column", fix="mark at least each example's own pair")
        cosine = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T  # (B, B)
        scale = self.log_scale.clamp(max=self.max_log_scale).exp()
        logits = scale * (cosine - self.margin * positives.float())
        loss = 0.5 * (_multi_positive_ce(logits, positives)
                      + _multi_positive_ce(logits.T, positives.T))
        return ContrastiveOutput(loss, logits, 1.0 / scale)


def _multi_positive_ce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log(softmax mass on the row's positives); with one positive
    per row this is the cross-entropy with that column as the target."""
    log_all = torch.logsumexp(logits, dim=1)  # (B,)
    log_pos = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)
    return (log_all - log_pos).mean()


def recall_at_k(a: torch.Tensor, b: torch.Tensor, positives: torch.Tensor,
                ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Retrieval from a to b by cosine: the share of rows of `a` with a positive column
    of `b` among its k nearest (positives: (Na, Nb) bool; rows without one are left out)."""
    cosine = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T  # (Na, Nb)
    keep = positives.any(1)
    order = cosine[keep].argsort(dim=1, descending=True)
    hits = positives[keep].gather(1, order)  # (n, Nb) positives in rank order
    return {f"recall@{k}": float(hits[:, :k].any(1).float().mean()) if keep.any() else float("nan")
            for k in ks}


__all__ = ["ContrastiveOutput", "SymmetricInfoNCE", "recall_at_k"]
