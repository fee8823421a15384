"""Masked language modelling (BERT / ESM-2 / ChemBERTa).

Of the maskable tokens (never special tokens or padding) a fraction
`mask_rate` is selected; of those 80% become <mask>, 10% a random regular
token, 10% stay unchanged (configurable). Loss: cross-entropy on selected
tokens only. The head is ESM-2's: dense → GELU → LayerNorm → tied decoder + bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biofm.backbones.layers import ACTIVATIONS
from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.objectives.base import IGNORE_INDEX, Objective
from biofm.outputs import BackboneOutput, Batch, ObjectiveOutput
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
        # host copies (plain attributes, which .to(device) leaves alone): training prepares
        # every micro-batch on the CPU, and reading the buffers from a GPU would sync each time
        self.host_special_ids = self.special_ids.clone()
        self.host_regular_ids = self.regular_ids.clone()

    def tie_weights(self, embedding: nn.Embedding) -> None:
        self.head.decoder.weight = embedding.weight

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)

    def forward(self, hidden: BackboneOutput, batch: Batch) -> ObjectiveOutput:
        """The head runs on the selected positions only: logits (N, V) for the N
        predicted tokens (a 10k-gene vocabulary at every position would cost ~7x more)."""
        if batch.labels is None:
            raise ValueError("batch has no labels: call objective.prepare(batch) first")
        selected = batch.labels != IGNORE_INDEX  # (B, T)
        states = hidden.last_hidden_state  # (N, d) when the backbone gave only those
        logits = self.logits(states if hidden.outputs_at is not None else states[selected])
        targets = batch.labels[selected]
        loss = F.cross_entropy(logits.float(), targets) if len(targets) else logits.sum() * 0.0
        return ObjectiveOutput(loss=loss, logits=logits, num_predicted=len(targets))

    def output_positions(self, batch: Batch) -> torch.Tensor | None:
        """The masked positions (row-major, as `forward` reads them): the last block
        computes only those (`Transformer.forward(outputs_at=)`)."""
        if batch.labels is None:
            return None
        return (batch.labels.flatten() != IGNORE_INDEX).nonzero().squeeze(1)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        ids = batch.input_ids
        special, regular = self._token_ids(ids.device)
        maskable = batch.attention_mask.bool() & ~torch.isin(ids, special)
        draw = lambda: torch.rand(ids.shape, generator=generator, device=ids.device)  # noqa: E731
        selected = maskable & (draw() < self.config.mask_rate)
        labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))

        action = draw()  # one uniform per token decides mask / random / keep
        to_mask = selected & (action < self.config.mask_token_fraction)
        to_random = selected & ~to_mask & (
            action < self.config.mask_token_fraction + self.config.random_token_fraction)
        random_ids = regular[torch.randint(len(regular), ids.shape, generator=generator,
                                           device=ids.device)]
        corrupted = torch.where(to_mask, torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(to_random, random_ids, corrupted)
        return batch.with_(input_ids=corrupted, labels=labels)

    def _token_ids(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(special ids, regular ids) on `device`; the host copies for a host batch."""
        if device.type == "cpu":
            return self.host_special_ids, self.host_regular_ids
        return self.special_ids.to(device), self.regular_ids.to(device)
