"""Contrastive co-embedding of two towers on labeled pairs (retrieval recall@k)."""

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.interop import load_pretrained
from biofm.pairs import PairData, PairSplits, Side
from biofm.pairs.coembed import (CoEmbedConfig, coembed, popularity_recall, random_recall,
                                 save_coembedding)
from tests.pairs.test_pair_model import SMILES, _model
from tests.helpers import random_proteins

SIDES = (Side("target", "sequence", "protein"), Side("drug", "smiles", "molecule"))


def _data(labels: np.ndarray, index: np.ndarray, n_targets: int = 6) -> PairData:
    return PairData(SIDES, (random_proteins(n_targets, seed=4, low=10, high=30), SMILES),
                    ([f"t{i}" for i in range(n_targets)], list(SMILES)), index,
                    labels.astype(np.float32), np.arange(len(index)) + 2)


def _grid(n_targets: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Target t binds drugs t and t + 1 (mod 8): value 13, else 11."""
    index = np.array([(t, d) for t in range(n_targets) for d in range(len(SMILES))])
    binds = (index[:, 1] == index[:, 0]) | (index[:, 1] == (index[:, 0] + 1) % len(SMILES))
    return index, np.where(binds, 13.0, 11.0)


def test_random_recall_is_the_hypergeometric_expectation():
    index, labels = _grid()
    data = _data(labels, index)
    # 8 ligands, 2 positives per target: P(no positive in the top k) = C(6, k) / C(8, k)
    got = random_recall(data, 12.1)
    assert got["recall@1"] == pytest.approx(2 / 8)
    assert got["recall@5"] == pytest.approx(1 - 6 / 56)
    assert got["recall@10"] == pytest.approx(1.0)
    # back: drugs 0 and 6 bind one of the 6 targets, drugs 1-5 two, drug 7 none
    assert got["reverse recall@1"] == pytest.approx((2 * 1 / 6 + 5 * 2 / 6) / 7)


def test_popularity_ranks_ligands_by_training_partners():
    index, labels = _grid()
    train = _data(labels, index)
    # every target binds drug 1 in the test data; drugs 1-5 bind two training targets each (the
    # most), and ties go to the first
    test_index = np.array([(t, d) for t in range(6) for d in range(8)])
    test_labels = np.where(test_index[:, 1] == 1, 13.0, 11.0)
    assert popularity_recall(train, _data(test_labels, test_index), 12.1)["recall@1"] == 1.0


def test_coembed_trains_and_saves_towers(tmp_path):
    index, labels = _grid()
    data = _data(labels, index)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(index))
    splits = PairSplits(data.subset(rows[:32]), data.subset(rows[32:40]), data)
    lines = []
    config = CoEmbedConfig(mode="full", epochs=3, batch_size=4, max_tokens=64, device="cpu")
    result = coembed((_model("protein"), _model("molecule")), splits, config, log=lines.append)
    assert set(result.test_recall) == {f"{way}recall@{k}" for way in ("", "reverse ")
                                       for k in (1, 5, 10)}
    assert set(result.baselines) == {"random", "popularity"}
    assert len(result.history) == 3 and "valid recall@1" in lines[-1]
    assert result.history[-1]["temperature"] != pytest.approx(0.07)  # learned
    save_coembedding(result, tmp_path / "co")
    tower = load_pretrained(tmp_path / "co" / "tower_a")
    assert tower.config.data.modality == "protein"
    assert (tmp_path / "co" / "coembed.json").is_file()


def test_too_few_positives():
    index, labels = _grid()
    data = _data(labels, index)
    with pytest.raises(BiofmError, match="reach the threshold 20.0"):
        coembed((_model("protein"), _model("molecule")), PairSplits(data, data, data),
                CoEmbedConfig(threshold=20.0, device="cpu"))
