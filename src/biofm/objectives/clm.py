"""Causal language modelling (GPT-2 / MolGPT / ProtGPT2): predict token t+1.

Labels are the inputs shifted left; the final position and padding carry no
loss. The head is a LayerNorm-free linear map tied to the input embedding
(the backbone already ends in a LayerNorm).
"""

from __future__ import annotations

import torch
from torch import nn

from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.objectives.base import IGNORE_INDEX, Objective
from biofm.outputs import Batch
from biofm.registry import OBJECTIVES


@OBJECTIVES.register("clm")
class CausalLM(Objective):
    backbone_kind = "decoder"

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__(config, backbone, special_ids)
        self.decoder = nn.Linear(backbone.d_model, backbone.vocab_size, bias=False)

    def tie_weights(self, embedding: nn.Embedding) -> None:
        self.decoder.weight = embedding.weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(hidden)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        ids = batch.input_ids
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, :-1] = ids[:, 1:]
        valid_next = batch.attention_mask.bool()[:, 1:]
        if batch.document_ids is not None:  # never predict across packed documents
            valid_next = valid_next & (batch.document_ids[:, 1:] == batch.document_ids[:, :-1])
        labels[:, :-1] = labels[:, :-1].masked_fill(~valid_next, IGNORE_INDEX)
        return batch.with_(labels=labels)
