"""The MEDS community's first baselines: per-code counts and last lab values (MEDS-Tab's
simplest aggregation), into logistic regression and gradient-boosted trees, and (time
to event) a penalised Cox proportional-hazards model.

Features of a (cut) timeline, with every choice fitted on the training split only:

- counts of each code seen in at least `MIN_SUBJECTS` training timelines (at most
  `MAX_CODES`, the most frequent; value bins are not split out: raw codes);
- for each code with numeric values in training: its last value in the timeline
  (missing: the training median) and whether there was one;
- age at the prediction time (the timeline's `end`, else its last event; missing:
  the training median) and days from the last event to the prediction time.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from biofm.bench.baselines import Baseline, Features
from biofm.data.tasks import Splits
from biofm.modalities.ehr.timeline import DAY, Timeline

MIN_SUBJECTS = 5
MAX_CODES = 2000
LABEL = "counts + last values"


class CountFeatures:
    """Per-code counts, last values and age, with codes and medians from training timelines."""

    def __init__(self, train: Sequence[Timeline]) -> None:
        subjects = Counter(c for t in train for c in set(t.codes.tolist()))
        frequent = [c for c, n in subjects.most_common(MAX_CODES) if n >= MIN_SUBJECTS]
        self.codes = {c: j for j, c in enumerate(sorted(frequent))}
        numeric = sorted({c for t in train for c in t.codes[np.isfinite(t.values)].tolist()
                          if c in self.codes})
        self.numeric = {c: j for j, c in enumerate(numeric)}
        self.medians = np.nanmedian(self._raw(train), axis=0) if len(train) else None

    @property
    def width(self) -> int:
        return len(self.codes) + 2 * len(self.numeric) + 2

    def _raw(self, timelines: Sequence[Timeline]) -> np.ndarray:
        """(N, width) with NaN for missing last values and ages."""
        n_codes, n_num = len(self.codes), len(self.numeric)
        out = np.zeros((len(timelines), self.width), dtype=np.float64)
        if not len(timelines):
            return out
        row = np.repeat(np.arange(len(timelines)), [len(t) for t in timelines])
        codes = np.concatenate([t.codes for t in timelines])
        values = np.concatenate([t.values for t in timelines])
        column = np.fromiter((self.codes.get(c, -1) for c in codes), np.int64, len(codes))
        known = column >= 0
        np.add.at(out, (row[known], column[known]), 1.0)
        # last value: events are in time order, so the last write per (row, code) wins
        num = np.fromiter((self.numeric.get(c, -1) for c in codes), np.int64, len(codes))
        valued = np.flatnonzero((num >= 0) & np.isfinite(values))
        last = np.full((len(timelines), n_num), np.nan)
        key = row[valued] * max(n_num, 1) + num[valued]
        _, first_from_end = np.unique(key[::-1], return_index=True)
        pick = valued[::-1][first_from_end]
        last[row[pick], num[pick]] = values[pick]
        out[:, n_codes:n_codes + n_num] = last
        out[:, n_codes + n_num:n_codes + 2 * n_num] = np.isfinite(last)
        out[:, -2:] = [_age_and_gap(t) for t in timelines]
        return out

    def __call__(self, timelines: Sequence[Timeline]) -> np.ndarray:
        """(N, width) float32, missing values filled with the training medians."""
        x = self._raw(timelines)
        if self.medians is not None:
            fill = np.where(np.isnan(self.medians), 0.0, self.medians)
            x = np.where(np.isnan(x), fill, x)
        return x.astype(np.float32)


def _age_and_gap(timeline: Timeline) -> tuple[float, float]:
    """(age in years at the prediction time (else the last event), days from the last
    event to the prediction time)."""
    last = timeline.last_time
    end = timeline.end if not np.isnat(timeline.end) else last
    if np.isnat(end):
        return float("nan"), 0.0
    gap = (end - last) / DAY if not np.isnat(last) else 0.0
    return float(timeline.age_years(end)), float(gap)


def count_features(splits: Splits, seed: int = 0) -> Features:
    """(train, valid, test) features; codes and medians from the training timelines."""
    featurize = CountFeatures(splits.train.inputs)
    return featurize(splits.train.inputs), featurize(splits.valid.inputs), \
        featurize(splits.test.inputs)


BASELINES = (Baseline(f"LogReg on {LABEL}", count_features, "linear"),
             Baseline(f"GBT on {LABEL}", count_features, "gradient-boosting"),
             Baseline(f"Cox on {LABEL}", count_features, "cox", kinds=("survival",)))

__all__ = ["BASELINES", "CountFeatures", "count_features"]
