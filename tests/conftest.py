"""Session fixtures: tiny pretrained checkpoints, each built once through `biofm pretrain`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

# Tiny models gain nothing from intra-op threads, and OpenMP workers spin-wait: on a
# busy 2-core machine a 5-step pretrain took ~8 s with two threads and ~1 s with one.
torch.set_num_threads(1)

# 5 steps on 200 records, short sequences: seconds on a CPU, yet a real run directory
# (checkpoint, best/, final/, metrics.jsonl) written by the real CLI path.
TINY_PRETRAIN = ("--steps", "5", "--batch-size", "8", "--set", "data.max_records=200",
                 "--set", "backbone.max_len=64", "--set", "train.lr=3e-3", "--no-progress")

Pretrain = Callable[..., Path]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """`cli("embed", "--model", ...)` → Run(exit code, stdout, stderr), in-process."""
    from tests.helpers import run_cli

    return lambda *argv: run_cli(capsys, *argv)


@pytest.fixture(scope="session")
def pretrain_tiny() -> Pretrain:
    """`pretrain_tiny(run_dir, modality, objective, *more_flags)` → run_dir (model in final/)."""
    from biofm.cli import main

    def run(output: Path, modality: str, objective: str, *flags: str) -> Path:
        main(["pretrain", "--modality", modality, "--objective", objective,
              "--output", str(output), *TINY_PRETRAIN, *flags])
        return output

    return run


@pytest.fixture(scope="session")
def protein_mlm_run(pretrain_tiny: Pretrain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ESM-2-style MLM on the packaged proteome corpus."""
    return pretrain_tiny(tmp_path_factory.mktemp("protein-mlm"), "protein", "mlm")


@pytest.fixture(scope="session")
def molecule_mlm_run(pretrain_tiny: Pretrain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ChemBERTa-style MLM on the packaged NCI SMILES corpus."""
    return pretrain_tiny(tmp_path_factory.mktemp("molecule-mlm"), "molecule", "mlm")


@pytest.fixture(scope="session")
def molecule_clm_run(pretrain_tiny: Pretrain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MolGPT-style causal LM on the packaged NCI SMILES corpus."""
    return pretrain_tiny(tmp_path_factory.mktemp("molecule-clm"), "molecule", "clm")
