"""Small builders shared by the core tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

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


@dataclass
class Run:
    """One in-process CLI run: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> Run:
    """`biofm ARGV...` in this process (as `main` runs it), output captured."""
    from biofm.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def write_file(tmp_path: Path, text: str, name: str, gz: bool = False) -> Path:
    """`text` written to tmp_path/name, gzip-compressed when `gz`."""
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def squeeze(text: str) -> str:
    """Text without whitespace: rich wraps long lines wherever it likes."""
    return "".join(text.split())


def tiny_vit_config(image_size=(16, 16), patch_size=(4, 4), channels=1, **objective):
    """An MAE ViT config (tiny encoder, fixed sin-cos positions) for images of this shape."""
    return PretrainConfig.from_dict({
        "data": {"modality": "imaging"},
        "backbone": {"kind": "encoder", "size": "tiny", "image_size": list(image_size),
                     "patch_size": list(patch_size), "channels": channels,
                     "position": "sincos", "norm_eps": 1e-6},
        "objective": {"name": "mae", "mask_rate": 0.75, **objective}})
