"""Backbones: the shared transformer core, configured as encoder or decoder."""

from biofm.backbones import transformer, vision  # noqa: F401
from biofm.backbones.transformer import Transformer, build_backbone, count_parameters

__all__ = ["Transformer", "build_backbone", "count_parameters"]
