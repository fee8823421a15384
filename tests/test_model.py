"""`FoundationModel.embed`: packed batches give the vectors padded batches give."""

import numpy as np
import pytest

from biofm.errors import BiofmError
from tests.helpers import random_proteins, tiny_model


@pytest.mark.parametrize("kind,objective", [("encoder", "mlm"), ("decoder", "clm")])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_embeddings_equal_padded_embeddings(kind, objective, pooling):
    model = tiny_model(kind, objective, token_dropout=kind == "encoder")
    texts = random_proteins(11, seed=10, low=1, high=60) + ["", "A"]
    packed = model.embed(texts, pooling=pooling, batch_size=4, packing=True)
    padded = model.embed(texts, pooling=pooling, batch_size=4, packing=False)
    assert packed.shape == (len(texts), model.config.backbone.d_model)
    np.testing.assert_allclose(packed, padded, atol=1e-5, rtol=1e-5)


def test_embedding_does_not_depend_on_the_other_sequences_in_the_batch():
    model = tiny_model(position="learned")
    texts = random_proteins(6, seed=11)
    together = model.embed(texts, batch_size=6)
    alone = np.concatenate([model.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=1e-5)


def test_embed_keeps_training_mode_and_rejects_unknown_pooling():
    model = tiny_model().train()
    model.embed(["ACDE"])
    assert model.training
    with pytest.raises(BiofmError, match="pooling"):
        model.embed(["ACDE"], pooling="max")  # type: ignore[arg-type]


def test_loaded_model_is_in_eval_mode_and_hidden_states_are_deterministic(tmp_path):
    import torch

    import biofm
    from biofm.model import FoundationModel

    tiny_model(dropout=0.5).save(tmp_path / "model")
    for load in (biofm.load, FoundationModel.load):
        model = load(tmp_path / "model")
        assert not model.training and not any(m.training for m in model.modules())
    texts = random_proteins(3, seed=12)
    model.train()  # inference runs without dropout whatever the caller's mode ...
    first, second = model.hidden_states(texts), model.hidden_states(texts)
    torch.testing.assert_close(first.last_hidden_state, second.last_hidden_state, rtol=0, atol=0)
    np.testing.assert_array_equal(model.embed(texts), model.embed(texts))
    assert all(m.training for m in model.modules())  # ... and leaves that mode as it was


def test_inference_restores_each_submodule_own_mode():
    model = tiny_model(dropout=0.5).train()
    model.objective.eval()  # e.g. a frozen part kept in eval while the rest trains
    model.hidden_states(["ACDE"])
    model.embed(["ACDE"])
    assert model.training and model.backbone.training and not model.objective.training
