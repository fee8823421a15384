import numpy as np
import pytest
import torch

from biofm.config import TrainConfig
from biofm.data.collate import ValuedSequence, pack_collate, pack_rows, pad_collate
from biofm.outputs import Batch
from biofm.train import train
from biofm.train.loop import TokenBudgetPlan
from tests.helpers import random_proteins, tiny_model


def test_pack_rows_respects_the_budget_and_places_every_sequence_once():
    lengths = [30, 10, 25, 5, 40, 12, 8]
    rows = pack_rows(lengths, 50)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 50 for row in rows)
    assert len(rows) == 3  # 130 tokens need at least 3 rows of 50


def test_pack_collate_marks_documents_and_padding():
    batch = pack_collate([[1, 2, 3], [4, 5], [6, 7, 8, 9]], pad_id=0, row_tokens=6)
    assert batch.input_ids.shape[0] == 2
    docs = batch.document_ids
    assert (docs[~batch.attention_mask] == -1).all()
    assert batch.attention_mask.sum() == 9
    for row_ids, row_docs in zip(batch.input_ids, docs):
        for d in row_docs.unique():
            if d >= 0:
                assert (row_docs == d).nonzero().flatten().diff().eq(1).all()  # contiguous


def _packed_like(padded: Batch, row_tokens: int) -> Batch:
    """The padded batch's rows (inputs and labels) concatenated into packed rows."""
    seqs, labels = [], []
    for ids, lab, mask in zip(padded.input_ids, padded.labels, padded.attention_mask):
        seqs.append(ids[mask].tolist())
        labels.append(lab[mask].tolist())
    packed = pack_collate(seqs, 1, row_tokens)
    packed_labels = pack_collate(labels, -100, row_tokens).input_ids
    return packed.with_(labels=packed_labels)


def test_packed_mlm_loss_equals_padded_loss():
    model = tiny_model().eval()
    seqs = model.encode(random_proteins(6, seed=4))
    padded = model.objective.prepare(pad_collate(seqs, 1), torch.Generator().manual_seed(0))
    packed = _packed_like(padded, 64)
    with torch.no_grad():
        a, b = model(padded), model(packed)
    assert a.num_predicted == b.num_predicted
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)


def test_packed_clm_loss_equals_padded_loss():
    model = tiny_model("decoder", "clm").eval()
    seqs = model.encode(random_proteins(6, seed=5))
    padded = model.objective.prepare(pad_collate(seqs, 1))
    packed = model.objective.prepare(pack_collate(seqs, 1, 64))
    with torch.no_grad():
        a, b = model(padded), model(packed)
    assert a.num_predicted == b.num_predicted
    torch.testing.assert_close(a.loss, b.loss, atol=1e-5, rtol=1e-5)


def test_token_budget_plan_fills_batches_and_is_deterministic():
    lengths = [int(x) for x in torch.randint(10, 60, (300,), generator=torch.Generator().manual_seed(0))]
    plan, again = TokenBudgetPlan(lengths, 400, seed=2), TokenBudgetPlan(lengths, 400, seed=2)
    sizes = [sum(lengths[i] for i in plan(k)) for k in range(plan.per_epoch)]
    assert max(sizes) <= 400 and min(sizes[:-1]) > 400 - 60
    assert all((plan(k) == again(k)).all() for k in range(plan.per_epoch + 3))


def test_training_with_packing_runs_and_learns(tmp_path):
    torch.manual_seed(0)
    model = tiny_model()
    ids = model.encode(random_proteins(120, seed=6))
    cfg = TrainConfig(max_steps=20, packing=True, tokens_per_batch=512, eval_every=0,
                      save_every=0, log_every=5, progress=False, lr=5e-3, warmup_steps=2)
    result = train(model, ids, None, cfg, tmp_path)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < losses[0]


def test_valued_sequences_collate_values_beside_ids():
    a = ValuedSequence(np.array([5, 6, 7]), np.array([1, 2, 3]))
    b = ValuedSequence(np.array([8]), np.array([4]))
    padded = pad_collate([a, b], pad_id=0)
    assert padded.values.tolist() == [[1, 2, 3], [4, 0, 0]]
    packed = pack_collate([a, b], pad_id=0, row_tokens=4)
    assert packed.input_ids.tolist() == [[5, 6, 7, 8]]
    assert packed.values.tolist() == [[1, 2, 3, 4]]
    patches = ValuedSequence(np.array([1, 1]), np.ones((2, 3), dtype=np.float32))
    assert pad_collate([patches], pad_id=0).values.shape == (1, 2, 3)
    with pytest.raises(ValueError, match="2 token ids but 1 values"):
        ValuedSequence(np.array([1, 2]), np.array([1]))


def test_length_batches_respect_a_token_budget():
    from biofm.data.collate import length_batches
    lengths = [5, 50, 10, 40, 30, 20, 100, 7]
    batches = list(length_batches(lengths, batch_size=3, max_tokens=60))
    assert sorted(int(i) for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 60
    assert [len(b) for b in length_batches(lengths, 3)] == [3, 3, 2]  # no budget: counts only
    assert [lengths[int(b[0])] for b in batches][-1] == 100  # too long alone: a batch of its own
