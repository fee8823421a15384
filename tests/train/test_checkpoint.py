"""Training state files: read with `weights_only=True`, numpy values stored as plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.train.checkpoint import (STATE_FILE, LoopState, load_training_state, restore_rng,
                                    save_training_checkpoint)
from biofm.train.distributed import ParallelModel
from biofm.train.schedule import build_optimizer, warmup_cosine
from tests.helpers import random_proteins, tiny_model


class _NotTensorData:
    """Stands for any pickled object: loading it would run code from the file."""


def _save(tmp_path, history):
    torch.manual_seed(0)
    model = tiny_model()
    optimizer = build_optimizer(model, 1e-3, 0.01, (0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(2, 10, 0.1))
    batch = pad_collate(model.encode(random_proteins(4)), model.tokenizer.pad_id)
    model(model.objective.prepare(batch, torch.Generator().manual_seed(0))).loss.backward()
    optimizer.step()
    scheduler.step()
    generator = torch.Generator().manual_seed(7)
    loop = LoopState(step=1, micro_step=1, best_valid=float("inf"), history=history)
    target = save_training_checkpoint(tmp_path, ParallelModel.local(model), optimizer, scheduler,
                                      generator, loop)
    return target, optimizer, generator


def test_training_state_reads_back_with_weights_only(tmp_path):
    history = [{"step": 1, "loss": np.float32(2.5), "tokens": np.int64(16),
                "per_class": np.array([0.5, 0.25])}]
    target, optimizer, generator = _save(tmp_path, history)
    state = load_training_state(target)
    torch.load(target / STATE_FILE, weights_only=True)  # what load_training_state relies on

    record = state["loop"]["history"][0]
    assert record["loss"] == 2.5 and type(record["loss"]) is float
    assert record["tokens"] == 16 and type(record["tokens"]) is int
    torch.testing.assert_close(record["per_class"], torch.tensor([0.5, 0.25], dtype=torch.float64))
    assert state["loop"]["best_valid"] == float("inf")
    # optimizer moments come back exactly
    saved = state["optimizer"]["state"]
    name = next(iter(saved))
    assert set(saved[name]) >= {"exp_avg", "exp_avg_sq", "step"}

    # RNG states restore to the very same draws
    expected_torch, expected_mask = torch.rand(3), torch.rand(3, generator=generator)
    other = torch.Generator().manual_seed(123)
    restore_rng(state, other)
    torch.testing.assert_close(torch.rand(3, generator=other), expected_mask, rtol=0, atol=0)
    torch.testing.assert_close(torch.rand(3), expected_torch, rtol=0, atol=0)


def test_training_state_with_arbitrary_objects_is_refused(tmp_path):
    target, *_ = _save(tmp_path, [])
    state = torch.load(target / STATE_FILE, weights_only=True)
    state["loop"]["history"].append({"step": 2, "payload": _NotTensorData()})
    torch.save(state, target / STATE_FILE)
    with pytest.raises(BiofmError, match="training state is unreadable"):
        load_training_state(target)
