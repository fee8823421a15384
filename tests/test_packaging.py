"""What a plain `pip install .` gives: no optional extra needed to import biofm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from biofm.errors import BiofmError

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("selfies", "tensorboard", "torch.utils.tensorboard")

# Imports every biofm module with the optional extras hidden (`sys.modules[name] = None`
# makes `import name` raise ImportError, as if not installed), then runs `biofm list`.
WITHOUT_EXTRAS = f"""
import importlib, pkgutil, sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None
import biofm, biofm.cli
for info in pkgutil.walk_packages(biofm.__path__, "biofm."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
biofm.cli.main(["list"])
"""


def test_biofm_imports_and_cli_starts_without_optional_extras():
    run = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "tokenizers:" in run.stdout and "selfies" in run.stdout


def test_selfies_tokenizer_names_the_extra_when_selfies_is_missing(monkeypatch):
    from biofm.modalities.molecules.tokenizer import SelfiesTokenizer

    monkeypatch.setitem(sys.modules, "selfies", None)
    with pytest.raises(BiofmError, match=r"pip install 'biofm\[selfies\]'"):
        SelfiesTokenizer.fit(["CCO"])
