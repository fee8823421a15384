"""Small builders shared by the core tests."""

from __future__ import annotations

import numpy as np

from biofm.config import PretrainConfig
from biofm.model import FoundationModel
from biofm.modalities.proteins import EsmTokenizer

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def random_proteins(n: int, seed: int = 0, low: int = 8, high: int = 40) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AMINO), size=int(rng.integers(low, high)))) for _ in range(n)]


def tiny_model(kind: str = "encoder", objective: str = "mlm", **backbone) -> FoundationModel:
    config = PretrainConfig.from_dict({"backbone": {"kind": kind, "max_len": 64, **backbone},
                                       "objective": {"name": objective}})
    return FoundationModel(config, EsmTokenizer())
