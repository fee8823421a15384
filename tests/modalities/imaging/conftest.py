"""Imaging test helpers: real data when installed (skipped with the install command
otherwise), and tiny files the tests write themselves."""

from __future__ import annotations

import pytest


def require(name: str, kind: str = "volume"):
    """The path of a packaged volume / atlas, or skip saying how to install it."""
    from biofm.modalities.imaging.locate import DataMissing, atlas_path, volume_path

    try:
        return volume_path(name) if kind == "volume" else atlas_path(name)
    except DataMissing as exc:
        pytest.skip(f"imaging data not installed (make data): {exc}")
