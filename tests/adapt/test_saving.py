"""LoRA merge: every weight of the plain model is accounted for after renaming peft's keys."""

from __future__ import annotations

import pytest
import torch

from biofm.adapt.finetune import inject_lora
from biofm.adapt.saving import merged_base
from tests.helpers import random_proteins, tiny_model


def _lora_model():
    torch.manual_seed(0)
    model = tiny_model()
    inject_lora(model, r=2, alpha=4, targets=("q_proj", "fc1"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # a non-zero delta to merge
    return model.eval()


def test_merge_keeps_the_outputs():
    model = _lora_model()
    texts = random_proteins(3)
    merged = merged_base(model).eval()
    assert not any("lora" in k or "base_layer" in k for k in merged.state_dict())
    torch.testing.assert_close(merged.embed(texts), model.embed(texts))


def _rename_base_layer(model):
    """peft wrapping the linear under another attribute than `base_layer`."""
    from peft.tuners.lora import LoraLayer

    layer = next(m for m in model.backbone.modules() if isinstance(m, LoraLayer))
    layer._modules["wrapped_layer"] = layer._modules.pop("base_layer")
    return "wrapped_layer.weight"


def _extra_buffer(model):
    """peft storing something beside the adapters that the plain model has no slot for."""
    from peft.tuners.lora import LoraLayer

    layer = next(m for m in model.backbone.modules() if isinstance(m, LoraLayer))
    layer.register_buffer("scale_hint", torch.ones(1))
    return "scale_hint"


@pytest.mark.parametrize("break_naming", [_rename_base_layer, _extra_buffer])
def test_merge_refuses_keys_that_do_not_map(break_naming):
    model = _lora_model()
    key = break_naming(model)
    with pytest.raises(RuntimeError, match=f"merging LoRA.*{key}"):
        merged_base(model)
