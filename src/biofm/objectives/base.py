"""The objective contract.

    batch = objective.prepare(batch, generator)       # corrupt inputs, set labels
    out = objective(backbone(batch.input_ids, batch.attention_mask), batch)

`prepare` runs on the CPU with an explicit generator, so masking is identical
on every device and after a resume.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.errors import BiofmError
from biofm.outputs import BackboneOutput, Batch, ObjectiveOutput
from biofm.registry import OBJECTIVES

IGNORE_INDEX = -100


class Objective(nn.Module):
    """Base class: a head over hidden states plus a loss."""

    backbone_kind: ClassVar[str]  # which backbone kind the objective needs
    values: ClassVar[str] = "none"  # the second input it needs (BackboneConfig.values)
    predicts_quantiles: ClassVar[bool] = False  # reads ObjectiveConfig.quantiles
    has_decoder: ClassVar[bool] = False  # reads ObjectiveConfig.decoder_dim / decoder_layers
    images: ClassVar[bool] = False  # needs a ViT backbone (BackboneConfig.image_size)

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__()
        if config.quantiles is not None and not self.predicts_quantiles:
            raise BiofmError(f"objective {config.name!r} predicts no quantiles, but "
                             f"objective.quantiles is set", fix="remove objective.quantiles")
        if (config.decoder_dim or config.decoder_layers) and not self.has_decoder:
            raise BiofmError(f"objective {config.name!r} has no decoder, but "
                             "objective.decoder_dim / decoder_layers is set",
                             fix="remove them (they size the mae decoder)")
        self.config = config
        self.vocab_size = backbone.vocab_size
        self.register_buffer("special_ids", torch.tensor(sorted(special_ids), dtype=torch.long),
                             persistent=False)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output_positions(self, batch: Batch) -> torch.Tensor | None:
        """(M,) flat indices of the only tokens whose final states the loss reads, for
        the backbone's `outputs_at`; None: every token (the default)."""
        return None

    def tie_weights(self, embedding: nn.Embedding) -> None:
        """Share the output projection with the input embedding."""

    def forward(self, hidden: BackboneOutput, batch: Batch) -> ObjectiveOutput:
        logits = self.logits(hidden.last_hidden_state)  # (B, T, V)
        labels = batch.labels
        if labels is None:
            raise ValueError("batch has no labels: call objective.prepare(batch) first")
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels.view(-1),
                               ignore_index=IGNORE_INDEX)
        return ObjectiveOutput(loss=loss, logits=logits,
                               num_predicted=int((labels != IGNORE_INDEX).sum()))


def build_objective(config: ObjectiveConfig, backbone: BackboneConfig,
                    special_ids: list[int]) -> Objective:
    cls = OBJECTIVES.get(config.name)
    if cls.backbone_kind != backbone.kind:
        raise BiofmError(f"objective {config.name!r} needs a {cls.backbone_kind} backbone, "
                         f"the config has {backbone.kind!r}",
                         fix=f"set backbone.kind={cls.backbone_kind}")
    return cls(config, backbone, special_ids)
