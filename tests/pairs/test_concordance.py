import numpy as np
import pytest
from lifelines.utils import concordance_index as lifelines_ci

from biofm.bench.metrics import concordance_index
from biofm.errors import BiofmError


def test_hand_counted_case():
    # comparable pairs (distinct truths): 5; concordant: 3 -> 0.6
    assert concordance_index([1, 2, 3, 3], [1, 3, 2, 2]) == pytest.approx(0.6)
    # prediction ties count one half: pairs (1,2) tied, (1,3) and (2,3) right -> 2.5 / 3
    assert concordance_index([1, 2, 3], [5, 5, 9]) == pytest.approx(2.5 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_matches_lifelines_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    y = np.round(rng.normal(11.5, 0.8, n), 1)  # KIBA-like values with many ties
    p = np.round(y + rng.normal(0, 0.7, n), int(rng.integers(0, 3)))
    assert concordance_index(y, p) == pytest.approx(lifelines_ci(y, p), abs=1e-12)


def test_perfect_reversed_and_undefined():
    y = np.arange(10.0)
    assert concordance_index(y, y * 3) == 1.0
    assert concordance_index(y, -y) == 0.0
    assert np.isnan(concordance_index([2.0, 2.0], [1.0, 3.0]))
    with pytest.raises(BiofmError, match="3 predictions for 2 targets"):
        concordance_index([1, 2], [1, 2, 3])
