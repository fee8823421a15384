"""Both real DNA tasks through the CLI on a tiny model: fine-tune + evaluate on CRP
sites, the comparison table on yeast ARS enrichment."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import run_cli

PRESET = ("data: {modality: dna, input: ecoli-k12, valid_fraction: 0.1, max_records: 60}\n"
          "backbone: {kind: encoder, size: tiny, max_len: 64}\n"
          "objective: {name: mlm, mask_rate: 0.15}\n"
          "train: {max_steps: 3, batch_size: 8, lr: 3.0e-3, warmup_steps: 1}\n")


@pytest.fixture(scope="module")
def dna_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from biofm.cli import main

    root = tmp_path_factory.mktemp("dna")
    (root / "dna.yaml").write_text(PRESET)
    main(["pretrain", "--config", str(root / "dna.yaml"), "--output", str(root / "run"),
          "--no-progress"])
    return root / "run" / "final"


def test_crp_sites_finetune_then_evaluate(capsys, dna_model, tmp_path):
    run = run_cli(capsys, "finetune", "--model", dna_model, "--task", "crp-sites",
                  "--mode", "probe", "--output", tmp_path / "crp")
    assert run.code == 0, run.err
    run = run_cli(capsys, "evaluate", "--model", tmp_path / "crp", "--task", "crp-sites")
    assert run.code == 0, run.err
    metrics = json.loads(run.out)
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 <= metrics["accuracy"] <= 1.0


def test_ars_enrichment_comparison_table(capsys, dna_model, tmp_path):
    run = run_cli(capsys, "compare", "--model", dna_model, "--task", "ars-enrichment",
                  "--seeds", 1, "--mode", "probe", "--max-train", 150,
                  "--output", tmp_path / "ars")
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "ars" / "results.csv")
    assert list(table["method"]) == ["linear on 4-mer frequencies", "RF on 4-mer frequencies",
                                     "pretrained: probe"]
    assert (table["rmse"] > 0).all() and table["spearman"].between(-1, 1).all()
