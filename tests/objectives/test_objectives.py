import pytest
import torch

from biofm.config import ObjectiveConfig, PretrainConfig
from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.proteins import EsmTokenizer
from biofm.objectives.base import IGNORE_INDEX
from tests.helpers import random_proteins, tiny_model


def _masked(rate=0.15, n=400, seed=0):
    model = tiny_model()
    model.objective.config.__dict__  # frozen config; rebuild with another rate when needed
    if rate != 0.15:
        model = tiny_model()
        from biofm.objectives.mlm import MaskedLM
        model.objective = MaskedLM(ObjectiveConfig(mask_rate=rate), model.config.backbone,
                                   model.tokenizer.special_ids)
    batch = pad_collate(model.encode(random_proteins(n, seed=seed, low=20, high=60)),
                        model.tokenizer.pad_id)
    return model, batch, model.objective.prepare(batch, torch.Generator().manual_seed(seed))


def test_mlm_never_masks_special_tokens_or_padding():
    model, before, after = _masked(rate=0.5)
    special = torch.isin(before.input_ids, torch.tensor(model.tokenizer.special_ids))
    assert (after.labels[special] == IGNORE_INDEX).all()
    assert torch.equal(after.input_ids[special], before.input_ids[special])


def test_mlm_rate_and_80_10_10_split():
    model, before, after = _masked(rate=0.15, n=600)
    maskable = before.attention_mask & ~torch.isin(before.input_ids,
                                                   torch.tensor(model.tokenizer.special_ids))
    selected = after.labels != IGNORE_INDEX
    assert abs(selected.sum() / maskable.sum() - 0.15) < 0.01
    assert torch.equal(after.labels[selected], before.input_ids[selected])
    is_mask = after.input_ids[selected] == model.tokenizer.mask_id
    unchanged = after.input_ids[selected] == before.input_ids[selected]
    n = selected.sum().item()
    assert abs(is_mask.sum().item() / n - 0.8) < 0.03
    assert abs(unchanged.sum().item() / n - 0.1 - 0.1 / 20) < 0.03  # kept + random hits itself
    random_tokens = after.input_ids[selected][~is_mask & ~unchanged]
    assert not torch.isin(random_tokens, torch.tensor(model.tokenizer.special_ids)).any()


def test_mlm_masking_is_reproducible_from_the_generator():
    _, _, a = _masked(seed=3)
    _, _, b = _masked(seed=3)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)


def test_mlm_prepares_a_host_batch_without_reading_the_device_buffers():
    """Training masks every micro-batch on the CPU while the model is on the GPU: buffers
    on the meta device (unreadable, as a GPU would be without a sync) are never touched."""
    model, batch, expected = _masked(seed=4, n=20)
    objective = model.objective
    objective.special_ids = objective.special_ids.to("meta")
    objective.regular_ids = objective.regular_ids.to("meta")
    got = objective.prepare(batch, torch.Generator().manual_seed(4))
    assert torch.equal(got.input_ids, expected.input_ids)
    assert torch.equal(got.labels, expected.labels)


def test_clm_labels_are_next_tokens_without_padding():
    model = tiny_model("decoder", "clm")
    batch = pad_collate(model.encode(["ACD", "ACDEFG"]), model.tokenizer.pad_id)
    labels = model.objective.prepare(batch).labels
    ids = batch.input_ids
    assert torch.equal(labels[1, :-1], ids[1, 1:])
    assert labels[1, -1] == IGNORE_INDEX
    assert (labels[0, 4:] == IGNORE_INDEX).all()  # <cls> A C D <eos> then padding
    assert labels[0, 3] == model.tokenizer.eos_id


def test_clm_never_predicts_across_packed_documents():
    model = tiny_model("decoder", "clm")
    from biofm.outputs import Batch
    ids = torch.tensor([[0, 5, 2, 0, 6, 2]])
    docs = torch.tensor([[0, 0, 0, 1, 1, 1]])
    batch = model.objective.prepare(Batch(ids, torch.ones_like(ids, dtype=torch.bool), None, docs))
    assert batch.labels[0, 2] == IGNORE_INDEX and batch.labels[0, 3] == 6


def test_mlm_loss_of_a_uniform_model_is_log_vocab():
    model, _, batch = _masked()
    with torch.no_grad():
        for p in model.objective.head.parameters():
            p.zero_()
    out = model(batch)
    assert out.loss.item() == pytest.approx(torch.log(torch.tensor(33.0)).item(), rel=1e-5)


def test_objective_backbone_mismatch_is_explained():
    with pytest.raises(BiofmError, match="decoder backbone"):
        tiny_model("encoder", "clm")


# -- objective.quantiles (read by the quantile objectives; see tests/modalities/timeseries) ---

def test_quantiles_round_trip_through_yaml(tmp_path):
    config = PretrainConfig.from_dict({"objective": {"name": "next-patch",
                                                     "quantiles": [0.1, 0.5, 0.9]}})
    assert config.objective.quantiles == (0.1, 0.5, 0.9)
    config.save(tmp_path / "c.yaml")
    assert PretrainConfig.load(tmp_path / "c.yaml") == config
    assert ObjectiveConfig().quantiles is None  # unset: the objective's default levels
    assert PretrainConfig.from_dict({"objective": {"name": "masked-patch"}}) \
        .objective.quantiles is None  # an old checkpoint's config still loads


@pytest.mark.parametrize("levels", [[], [0.5, 0.1], [0.1, 0.1], [0.0, 0.5], [0.5, 1.0],
                                    [-0.1, 0.5]])
def test_quantiles_must_increase_strictly_inside_0_1(levels):
    with pytest.raises(BiofmError, match="quantiles must be a non-empty, strictly increasing"):
        ObjectiveConfig.from_dict({"name": "masked-patch", "quantiles": levels})


@pytest.mark.parametrize("kind,objective", [("encoder", "mlm"), ("decoder", "clm")])
def test_objectives_without_quantiles_refuse_levels(kind, objective):
    config = PretrainConfig.from_dict({"backbone": {"kind": kind, "max_len": 64},
                                       "objective": {"name": objective, "quantiles": [0.5]}})
    with pytest.raises(BiofmError, match="predicts no quantiles"):
        FoundationModel(config, EsmTokenizer())
