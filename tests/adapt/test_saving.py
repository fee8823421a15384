"""LoRA merge: every weight of the plain model is accounted for after renaming peft's keys;
a model directory is replaced only when asked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.adapt import FinetuneConfig, finetune, load_finetuned, save_finetuned
from biofm.adapt.finetune import inject_lora
from biofm.adapt.saving import merged_base
from biofm.data.tasks import Split, Splits
from biofm.errors import BiofmError
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


def _probe():
    """A linear probe on a random tiny model: (result, base, config) to save."""
    parts = []
    for seed, n in ((0, 24), (1, 8), (2, 8)):
        seqs = random_proteins(n, seed=seed)
        parts.append(Split([f"s{seed}_{i}" for i in range(n)], seqs, np.arange(n) % 2))
    base, config = tiny_model(), FinetuneConfig(mode="probe")
    return finetune(base, Splits(*parts), "classification", config), base, config


def test_a_saved_model_is_replaced_only_with_overwrite(tmp_path):
    result, base, config = _probe()
    out = save_finetuned(result, base, tmp_path / "ft", config, "classification", "first")
    (out / "labels.json").write_text("{}")  # a file of the old model that the new one lacks
    with pytest.raises(BiofmError, match="already holds a fine-tuned model") as caught:
        save_finetuned(result, base, out, config, "classification", "second")
    assert "--overwrite" in caught.value.fix and load_finetuned(out).info["task"] == "first"
    save_finetuned(result, base, out, config, "classification", "second", overwrite=True)
    assert load_finetuned(out).info["task"] == "second" and not (out / "labels.json").exists()


def test_a_file_at_the_output_path_is_a_clear_error(tmp_path):
    result, base, config = _probe()
    (tmp_path / "ft").write_text("not a directory")
    with pytest.raises(BiofmError, match="the output directory is a file"):
        save_finetuned(result, base, tmp_path / "ft", config, "classification", overwrite=True)
