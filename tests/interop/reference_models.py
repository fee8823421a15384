"""Tiny random timm / open_clip models, made by the libraries themselves in the reference
venv (`make ref-venv`), for parity tests against biofm's loaders."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "reference" / "make_reference.py"


def reference_python() -> Path:
    """The reference venv's python; the test skips (naming the make target) without it."""
    venv = Path(os.environ.get("BIOFM_REFERENCE_VENV", ROOT / ".venv-ref"))
    if not (venv / "installed").is_file():
        pytest.skip(f"no reference venv at {venv}: run `make ref-venv` (timm and open_clip "
                    "beside their own torch) for the parity tests")
    return venv / "bin" / "python"


def make_reference(kind: str, spec: dict, out: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """(the saved model directory, the library's inputs and outputs on them)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([str(reference_python()), str(SCRIPT), kind, str(out),
                             json.dumps(spec)], capture_output=True, text=True, env=env,
                            timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"the reference script failed:\n{result.stderr[-3000:]}")
    with np.load(out / "reference.npz") as data:
        return out / "model", {k: data[k] for k in data.files}
