"""Pretraining objectives: each owns its masking, its head and its loss."""

from biofm.objectives import clm, contrastive, mae, mlm, patch  # noqa: F401
from biofm.objectives.base import Objective, build_objective

__all__ = ["Objective", "build_objective"]
