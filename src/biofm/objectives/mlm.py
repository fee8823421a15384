"""Masked language modelling (BERT / ESM-2 / ChemBERTa).

Of the maskable tokens (never special tokens or padding) a fraction
`mask_rate` is selected; of those 80% become <mask>, 10% a random regular
token, 10% stay unchanged (configurable). Loss: cross-entropy on selected
tokens only. The head is ESM-2's: dense → GELU → LayerNorm → tied decoder + bias.
"""

from __future__ import annotations

import torch
from torch import nn

from biofm.backbones.layers import ACTIVATIONS
from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.objectives.base import IGNORE_INDEX, Objective
from biofm.outputs import Batch
from biofm.registry import OBJECTIVES


class LMHead(nn.Module):
    def __init__(self, d_model: int, vocab_size: int, eps: float,
                 activation: str = "gelu") -> None:
        super().__init__()
        self.act = ACTIVATIONS[activation]  # BERT's head uses the backbone's hidden_act
        self.dense = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.decoder = nn.Linear(d_model, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x)))) + self.bias


@OBJECTIVES.register("mlm")
class MaskedLM(Objective):
    backbone_kind = "encoder"

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__(config, backbone, special_ids)
        self.mask_id = backbone.mask_id
        self.head = LMHead(backbone.d_model, backbone.vocab_size, backbone.norm_eps,
                           backbone.activation)
        regular = torch.ones(backbone.vocab_size, dtype=torch.bool)
        regular[self.special_ids] = False
        self.register_buffer("regular_ids", regular.nonzero().squeeze(1), persistent=False)

    def tie_weights(self, embedding: nn.Embedding) -> None:
        self.head.decoder.weight = embedding.weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        ids = batch.input_ids
        maskable = batch.attention_mask.bool() & ~torch.isin(ids, self.special_ids.to(ids.device))
        draw = lambda: torch.rand(ids.shape, generator=generator, device=ids.device)  # noqa: E731
        selected = maskable & (draw() < self.config.mask_rate)
        labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))

        action = draw()  # one uniform per token decides mask / random / keep
        to_mask = selected & (action < self.config.mask_token_fraction)
        to_random = selected & ~to_mask & (
            action < self.config.mask_token_fraction + self.config.random_token_fraction)
        regular = self.regular_ids.to(ids.device)
        random_ids = regular[torch.randint(len(regular), ids.shape, generator=generator,
                                           device=ids.device)]
        corrupted = torch.where(to_mask, torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(to_random, random_ids, corrupted)
        return batch.with_(input_ids=corrupted, labels=labels)
