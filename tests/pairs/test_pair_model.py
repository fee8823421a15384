"""Towers (windows), heads, training through the core, save / load."""

from pathlib import Path

import numpy as np
import pytest
import torch

from biofm.adapt.saving import merged_base
from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.molecules import SmilesTokenizer
from biofm.modalities.proteins import EsmTokenizer
from biofm.pairs import PairConfig, PairData, PairSplits, Side, Tower
from biofm.pairs.heads import PAIR_HEADS
from biofm.pairs.saving import load_pair_model, save_pair_model
from biofm.pairs.train import GroupedPlan, build_pair_model, pair_finetune
from tests.helpers import random_proteins

SIDES = (Side("target", "sequence", "protein"), Side("drug", "smiles", "molecule"))
SMILES = ["CCO", "Oc1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCCC1c1cccnc1", "CCN(CC)CC",
          "O=C(O)c1ccccc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "c1ccc2ccccc2c1"]


def _model(modality: str, max_len: int = 16, seed: int = 0) -> FoundationModel:
    torch.manual_seed(seed)
    config = PretrainConfig.from_dict({"data": {"modality": modality},
                                       "backbone": {"kind": "encoder", "max_len": max_len}})
    tokenizer = EsmTokenizer() if modality == "protein" else SmilesTokenizer.fit(SMILES)
    return FoundationModel(config, tokenizer).eval()


def test_long_inputs_are_read_in_windows():
    tower = Tower(_model("protein", max_len=16))  # 14 residues per window
    assert tower.window == 14
    protein = random_proteins(1, seed=1, low=40, high=41)[0]
    encoded = tower.encode_items([protein])
    assert [len(w) for w in encoded[0]] == [16, 16, 2 + 40 - 28]
    with torch.no_grad():
        states = tower(encoded)
        assert states.tokens.shape == (1, 40, 64) and states.mask.all()
        torch.testing.assert_close(states.pooled[0], states.tokens[0].mean(0))
        # the first window's states are the model's own on the first 14 residues
        alone = tower.base.hidden_states([protein[:14]]).last_hidden_state[0, 1:15]
        torch.testing.assert_close(states.tokens[0, :14], alone, atol=1e-5, rtol=1e-5)
    cut = Tower(tower.base, max_tokens=20).encode_items([protein])[0]
    assert sum(len(w) - 2 for w in cut) == 20
    first = Tower(tower.base, long_inputs="truncate")
    assert [len(w) for w in first.encode_items([protein])[0]] == [16]
    note = tower.length_report(encoded, [protein])
    assert "1 of 1 inputs are longer than its context (14 tokens)" in note


def test_states_do_not_depend_on_the_batch():
    tower = Tower(_model("protein"))
    proteins = random_proteins(4, seed=2, low=5, high=50)
    encoded = tower.encode_items(proteins)
    with torch.no_grad():
        together = tower(encoded)
        for i in range(4):
            alone = tower([encoded[i]])
            n = int(alone.mask.sum())
            torch.testing.assert_close(together.tokens[i, :n], alone.tokens[0], atol=1e-5,
                                       rtol=1e-5)
            torch.testing.assert_close(together.pooled[i], alone.pooled[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head", ["concat-mlp", "cross-attention"])
def test_heads_give_one_value_per_pair_whatever_the_batch(head):
    towers = (Tower(_model("protein")), Tower(_model("molecule")))
    model = build_pair_model((towers[0].base, towers[1].base), PairConfig(head=head)).eval()
    proteins = random_proteins(3, seed=3, low=5, high=40)
    index = np.array([[0, 0], [1, 2], [2, 5], [0, 7]])
    values = model.predict(proteins, SMILES, index)
    assert values.shape == (4,) and np.isfinite(values).all()
    one = model.predict(proteins, SMILES, index[1:2])
    assert one[0] == pytest.approx(values[1], abs=1e-5)
    assert set(PAIR_HEADS.names()) == {"concat-mlp", "cross-attention"}


def test_tower_parse_refuses_the_other_modality():
    protein, molecule = Tower(_model("protein")), Tower(_model("molecule"))
    where = (Path("pairs.csv"), 7, "seq")
    with pytest.raises(BiofmError, match=r"pairs.csv \(line 7\): 'seq' value 'CC\(=O\)O' has "
                                         r"3 of 7 characters / tokens unknown.*not a valid "
                                         r"protein input"):
        protein.parse("CC(=O)O", *where)
    with pytest.raises(BiofmError, match=r"line 7\): invalid SMILES 'MKTAYIAKQR'"):
        molecule.parse("MKTAYIAKQR", *where)
    assert protein.parse("mktayiakqr", *where) == "mktayiakqr"
    assert molecule.parse("OCC", *where) == "CCO"


def _toy_splits(seed: int = 0) -> PairSplits:
    """Pairs whose value is a sum of a target effect and a drug effect (learnable)."""
    rng = np.random.default_rng(seed)
    proteins = random_proteins(10, seed=seed, low=10, high=30)
    index = np.array([(t, d) for t in range(10) for d in range(len(SMILES))])
    labels = (index[:, 0] * 0.3 + np.array([len(s) for s in SMILES])[index[:, 1]] * 0.1
              + rng.normal(0, 0.05, len(index))).astype(np.float32)
    data = PairData(SIDES, (proteins, SMILES), ([f"t{i}" for i in range(10)], list(SMILES)),
                    index, labels, np.arange(len(index)) + 2)
    order = rng.permutation(len(index))
    return PairSplits(data.subset(order[:56]), data.subset(order[56:68]), data.subset(order[68:]))


@pytest.mark.parametrize("mode", ["probe", "lora", "full", "scratch"])
def test_finetune_through_the_core_and_round_trip(mode, tmp_path):
    bases = (_model("protein"), _model("molecule"))
    before = {k: v.clone() for k, v in bases[0].state_dict().items()}
    splits = _toy_splits()
    lines = []
    config = PairConfig(mode=mode, epochs=3, batch_size=16, per_item=4, lr=3e-3, device="cpu")
    result = pair_finetune(bases, splits, config, log=lines.append)
    assert len(result.history) == 3 and "valid MSE" in lines[-1]
    assert set(result.test_metrics) == {"ci", "mse", "pearson", "spearman"}
    assert all(torch.equal(v, bases[0].state_dict()[k]) for k, v in before.items())
    tower = merged_base(result.model.towers[0].base).state_dict()  # LoRA folded in
    moved = any(not torch.equal(tower[k], v) for k, v in before.items()
                if k.startswith("backbone."))
    assert moved == (mode != "probe")
    save_pair_model(result.model, SIDES, tmp_path / "pair", task="toy")
    loaded, sides, info = load_pair_model(tmp_path / "pair")
    assert sides == SIDES and info["task"] == "toy" and info["config"]["mode"] == mode
    test = splits.test
    np.testing.assert_allclose(loaded.predict(*test.items, test.index), result.test_predictions,
                               rtol=1e-4, atol=1e-4)


def test_training_learns_the_toy_signal():
    splits = _toy_splits()
    config = PairConfig(mode="probe", epochs=40, patience=0, batch_size=16, per_item=4, lr=1e-2,
                        dropout=0.0, device="cpu")
    result = pair_finetune((_model("protein"), _model("molecule")), splits, config)
    assert result.test_metrics["pearson"] > 0.8


def test_grouped_plan_batches_few_targets_and_covers_each_epoch():
    items = np.repeat(np.arange(10), [1, 3, 12, 7, 7, 2, 9, 4, 4, 11])
    plan = GroupedPlan(items, batch_size=8, per_item=2, seed=0)
    epoch = [plan(k) for k in range(plan.per_epoch)]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(len(items)))
    assert all(len(np.unique(items[b])) <= 4 and len(b) <= 8 for b in epoch)
    again = GroupedPlan(items, batch_size=8, per_item=2, seed=0)
    assert all(np.array_equal(again(k), b) for k, b in enumerate(epoch))
    assert not np.array_equal(np.concatenate([plan(plan.per_epoch + k)
                                              for k in range(plan.per_epoch)]),
                              np.concatenate(epoch))


def test_towers_can_be_adapted_differently():
    bases = (_model("protein"), _model("molecule"))
    config = PairConfig(tower_modes=("frozen", "full"), epochs=1, batch_size=16, per_item=4,
                        device="cpu")
    result = pair_finetune(bases, _toy_splits(), config)
    assert result.mode == "frozen+full"
    protein, molecule = (t.base.state_dict() for t in result.model.towers)
    assert all(torch.equal(v, protein[k]) for k, v in bases[0].state_dict().items())
    assert any(not torch.equal(v, molecule[k]) for k, v in bases[1].state_dict().items()
               if k.startswith("backbone."))


def test_towers_go_to_the_column_of_their_modality():
    from biofm.pairs.commands import match_towers
    from biofm.pairs.tasks import KIBA_SIDES

    protein, molecule = _model("protein"), _model("molecule")
    dna = FoundationModel(PretrainConfig.from_dict({"data": {"modality": "dna"},
                                                    "backbone": {"max_len": 16}}), EsmTokenizer())
    assert match_towers([molecule, protein], ["m", "p"], KIBA_SIDES) == (protein, molecule)
    with pytest.raises(BiofmError, match=r"^d: the tower checkpoint is a dna model, but the "
                                         r"task's columns are protein \('aa_sequence'\) and "
                                         r"molecule \('smiles'\)\. Pass one model per column"):
        match_towers([dna, molecule], ["d", "m"], KIBA_SIDES)
    with pytest.raises(BiofmError, match="both tower checkpoints are protein models"):
        match_towers([protein, protein], ["p", "q"], KIBA_SIDES)
