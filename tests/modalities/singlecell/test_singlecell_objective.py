"""The masked-value objective and the bins-aware model: masking, loss, backward,
embeddings (packed = padded), save → load, and the error without a bins backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.config import PretrainConfig
from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.singlecell import CellCounts, GeneformerTokenizer, ScGPTTokenizer
from biofm.objectives.base import IGNORE_INDEX
from tests.modalities.singlecell.cells import cells as matrix_cells


def cells(n: int = 12, genes: int = 30, seed: int = 0) -> list[CellCounts]:
    """Random Poisson profiles (synthetic, for shapes and masking only)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(0.5, 4.0, size=genes), size=(n, genes))
    return matrix_cells(counts, [f"g{j}" for j in range(genes)])


def scgpt_model(objective: str = "masked-value") -> FoundationModel:
    config = PretrainConfig.from_dict({"backbone": {"max_len": 24},
                                       "objective": {"name": objective, "mask_rate": 0.3}})
    return FoundationModel(config, ScGPTTokenizer.fit(cells(), n_bins=8))


def test_the_tokenizer_sets_the_backbone_value_input():
    model = scgpt_model()
    assert model.config.backbone.values == "bins" and model.config.backbone.value_size == 10


def test_masks_values_of_genes_only_and_predicts_the_hidden_bins():
    model = scgpt_model()
    batch = pad_collate(model.encode(cells()), model.tokenizer.pad_id)
    prepared = model.objective.prepare(batch, torch.Generator().manual_seed(0))
    selected = prepared.labels != IGNORE_INDEX
    special = torch.isin(batch.input_ids, torch.tensor(model.tokenizer.special_ids))
    assert selected.any() and not (selected & (special | ~batch.attention_mask)).any()
    assert torch.equal(prepared.labels[selected], batch.values[selected])  # the true bins
    assert (prepared.values[selected] == model.tokenizer.mask_bin).all()
    assert torch.equal(prepared.values[~selected], batch.values[~selected])
    assert torch.equal(prepared.input_ids, batch.input_ids)  # gene tokens stay visible
    out = model(prepared)
    assert out.logits.shape == (*batch.input_ids.shape, 10)
    assert torch.isfinite(out.loss) and out.num_predicted == int(selected.sum())
    out.loss.backward()
    assert model.backbone.embed_values.weight.grad.abs().sum() > 0


def test_masked_value_needs_a_bins_backbone():
    config = PretrainConfig.from_dict({"backbone": {"max_len": 24},
                                       "objective": {"name": "masked-value"}})
    with pytest.raises(BiofmError, match="values=bins"):
        FoundationModel(config, GeneformerTokenizer.fit(cells()))


def test_mlm_on_scgpt_cells_masks_genes_instead():
    """Both objectives run on the same binned input (the backbone is shared)."""
    model = scgpt_model("mlm")
    batch = model.objective.prepare(pad_collate(model.encode(cells()), model.tokenizer.pad_id),
                                    torch.Generator().manual_seed(0))
    assert batch.values is not None and torch.isfinite(model(batch).loss)


def test_embeddings_use_the_bins_and_survive_save_load(tmp_path):
    model = scgpt_model()
    profiles = cells(6)
    packed = model.embed(profiles, packing=True)
    assert packed.shape == (6, model.config.backbone.d_model) and packed.dtype == np.float32
    np.testing.assert_allclose(model.embed(profiles, packing=False), packed, atol=1e-5)
    shifted = [CellCounts(c.genes, c.indices, np.ones_like(c.counts)) for c in profiles]
    assert not np.allclose(model.embed(shifted), packed, atol=1e-4)  # same genes, other bins
    again = FoundationModel.load(model.save(tmp_path / "model"))
    np.testing.assert_allclose(again.embed(profiles), packed, atol=1e-6)
