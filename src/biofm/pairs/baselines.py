"""Classical baselines of a pair task, on the same splits as the pair models.

- "GBT on <side features>": gradient-boosted trees (scikit-learn's histogram GBT,
  seeded, early stopping on an internal 10% of the training pairs, one thread) on
  each side's classical features joined: the first per-input featurizer of each side's
  modality (`Modality.baselines`): ECFP4 (2,048-bit Morgan radius 2) for molecules,
  amino-acid + dipeptide composition (420) for proteins;
- "train mean per <side>": each test pair gets the mean training label of its
  item on that side (the overall mean for an item unseen in training). On KIBA the
  ligand's mean alone carries much of the signal (the bias pydebiaseddta is about);
  beating it is what shows a model reads the target.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from biofm.bench.baselines import Baseline
from biofm.data.tasks import Split, Splits
from biofm.pairs.data import PairData, PairSplits
from biofm.registry import MODALITIES

PairBaseline = Callable[[PairSplits, int], np.ndarray]  # (splits, seed) → test predictions


def side_features(data: PairData, side: int) -> tuple[str, np.ndarray]:
    """(label, (n_items, F) features) of every item of `side`, with the first per-input
    featurizer of its modality's baselines."""
    baseline: Baseline = MODALITIES.get(data.sides[side].modality).baselines[0]
    items = data.items[side]
    whole = Split([str(i) for i in range(len(items))], list(items), np.zeros(len(items)))
    features = baseline.featurize(Splits(whole, whole, whole), 0)[0]  # per input: any split
    return _feature_name(baseline.label), np.asarray(features, dtype=np.float32)


def _feature_name(label: str) -> str:
    """'RF on Morgan fingerprints' → 'Morgan fingerprints'."""
    return label.split(" on ", 1)[1] if " on " in label else label


def gbt_baseline(splits: PairSplits, seed: int) -> tuple[str, np.ndarray]:
    """Histogram GBT on both sides' features joined: (label, test predictions)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    named = [side_features(splits.train, s) for s in (0, 1)]
    features = [f for _, f in named]

    def design(data: PairData) -> np.ndarray:
        return np.hstack([features[0][data.index[:, 0]], features[1][data.index[:, 1]]])

    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1,
                                          early_stopping=True, validation_fraction=0.1,
                                          random_state=seed)
    with threadpool_limits(1):  # OpenMP threads on a shared, busy CPU cost far more than they give
        model.fit(design(splits.train), splits.train.labels)
    return f"GBT on {' + '.join(n for n, _ in named)}", model.predict(design(splits.test))


def side_mean_baseline(splits: PairSplits, side: int) -> tuple[str, np.ndarray]:
    """Mean training label of each test pair's item on `side` (label, predictions)."""
    train = splits.train
    n = len(train.items[side])
    sums = np.bincount(train.index[:, side], weights=train.labels, minlength=n)
    counts = np.bincount(train.index[:, side], minlength=n)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), train.labels.mean())
    return f"train mean per {train.sides[side].name}", means[splits.test.index[:, side]]


def run_baselines(splits: PairSplits, seed: int) -> dict[str, np.ndarray]:
    """Label → test predictions of every pair baseline."""
    out = dict([gbt_baseline(splits, seed)])
    for side in (0, 1):
        label, predictions = side_mean_baseline(splits, side)
        out[label] = predictions
    return out


__all__ = ["gbt_baseline", "run_baselines", "side_features", "side_mean_baseline"]
