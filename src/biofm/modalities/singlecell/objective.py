"""Masked-value prediction (scGPT-style) over expression bins.

Of the gene positions (never special tokens or padding) a fraction `mask_rate`
is selected; their value bins are replaced by the mask bin (`value_size - 1`)
while the gene tokens stay visible, and the model predicts each hidden bin.
Loss: cross-entropy over the bins (bins are ordinal, but per-cell quantile
bins are a small discrete set and classification keeps the loss scale-free).
Needs a backbone with `values: bins`, e.g. the "scgpt" tokenizer's output.
"""

from __future__ import annotations

import torch

from biofm.config import BackboneConfig, ObjectiveConfig
from biofm.errors import BiofmError
from biofm.objectives.base import IGNORE_INDEX, Objective
from biofm.objectives.mlm import LMHead
from biofm.outputs import Batch
from biofm.registry import OBJECTIVES


@OBJECTIVES.register("masked-value")
class MaskedValue(Objective):
    backbone_kind = "encoder"
    values = "bins"

    def __init__(self, config: ObjectiveConfig, backbone: BackboneConfig,
                 special_ids: list[int]) -> None:
        super().__init__(config, backbone, special_ids)
        if backbone.values != "bins":
            raise BiofmError(f"objective 'masked-value' needs a backbone with values=bins, the "
                             f"config has values={backbone.values!r}",
                             fix="use the scgpt tokenizer with backbone.values=bins "
                                 "(preset cell-scgpt-tiny)")
        self.mask_bin = backbone.value_size - 1
        # the MLM head's shape (dense → GELU → LayerNorm → decoder), over bins, untied
        self.head = LMHead(backbone.d_model, backbone.value_size, backbone.norm_eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden)  # (B, T, value_size)

    def prepare(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        if batch.values is None:
            raise BiofmError("objective 'masked-value' got no expression values",
                             fix="use a tokenizer that yields values (scgpt)")
        ids, values = batch.input_ids, batch.values
        maskable = batch.attention_mask.bool() & ~torch.isin(ids, self.special_ids.to(ids.device))
        selected = maskable & (torch.rand(ids.shape, generator=generator,
                                          device=ids.device) < self.config.mask_rate)
        labels = torch.where(selected, values, torch.full_like(values, IGNORE_INDEX))
        hidden_values = torch.where(selected, torch.full_like(values, self.mask_bin), values)
        return batch.with_(values=hidden_values, labels=labels)
