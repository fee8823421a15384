"""The `biofm` command line, run in-process on tiny checkpoints (see conftest.py), plus a
few runs as a real process. Every subcommand's contract, and the error contract: bad
input exits with status 2 and one paragraph naming the file (and line or record),
never a traceback."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import biofm.commands
from biofm.config import PretrainConfig
from biofm.interop import load_pretrained
from biofm.modalities.imaging.locate import available
from biofm.modalities.molecules import canonical_smiles
from biofm.modalities.proteins import read_fasta
from tests.helpers import Run, squeeze

SUBCOMMANDS = ("pretrain", "embed", "finetune", "evaluate", "generate", "score-variants",
               "forecast", "compare", "demo", "list", "export", "prepare", "predict", "convert",
               "effects", "pair-finetune", "pair-compare", "pair-pretrain", "screen", "segment",
               "screen-report")
WILD_TYPE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
FASTA = ">a first protein\nMKTAYIAKQR\nQISFVKSHFSRQ\n>b\nGSHMLEK\n>c\nMKVLAAGIVG\n"
SMILES = "CCO ethanol\nc1ccccc1\nCC(=O)Oc1ccccc1C(=O)O aspirin\n"


def assert_user_error(run: Run, path: Path | None, *phrases: str) -> None:
    """Exit 2; one paragraph starting with 'error:' that names `path` and each phrase."""
    assert run.code == 2, f"exit {run.code}\n{run.out}\n{run.err}"
    assert "Traceback" not in run.err
    message = run.err[run.err.index("error:"):].strip()
    assert "\n\n" not in message, message
    for needle in ([str(path)] if path is not None else []) + list(phrases):
        assert squeeze(needle) in squeeze(message), f"{needle!r} not in: {message}"


def printed_json(text: str) -> dict:
    """The JSON object a command printed before its closing status line."""
    return json.loads(text[text.index("{"): text.rindex("}") + 1])


def final(run_dir: Path) -> Path:
    return run_dir / "final"


def d_model(model_dir: Path) -> int:
    return PretrainConfig.load(model_dir / "config.yaml").backbone.d_model


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- help and list ---------------------------------------------------------------------

@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(cli, command):
    run = cli(command, "--help")
    assert run.code == 0, run.err
    assert "Usage" in run.out and command in run.out


def test_list_prints_the_registries(cli):
    run = cli("list")
    assert run.code == 0, run.err
    for word in ("modalities", "tokenizers", "backbones", "objectives", "corpora", "tasks",
                 "pretrain presets", "protein", "molecule", "freesolv", "amp", "proteome",
                 "nci", "protein-mlm-tiny", "molecule-clm-tiny"):
        assert word in run.out


@pytest.mark.parametrize("argv, phrase", [
    (("embed",), "--model"),                               # required option missing
    (("pretrain", "--steps", "many"), "--steps"),          # wrong type
    (("bogus",), "bogus"),                                 # unknown command
])
def test_usage_errors_exit_2(cli, argv, phrase):
    run = cli(*argv)
    assert run.code == 2
    assert phrase in run.err and "Error" in run.err


def test_interrupt_exits_130_and_says_how_to_resume(cli, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(biofm.commands, "pretrain", interrupted)
    run = cli("pretrain", "--output", tmp_path / "run")
    assert run.code == 130
    assert "--resume" in run.err


# -- pretrain --------------------------------------------------------------------------

@pytest.mark.parametrize("run_fixture, modality, objective, kind", [
    ("protein_mlm_run", "protein", "mlm", "encoder"),
    ("molecule_mlm_run", "molecule", "mlm", "encoder"),
    ("molecule_clm_run", "molecule", "clm", "decoder"),
])
def test_pretrain_writes_a_loadable_final_model(request, run_fixture, modality, objective, kind):
    run_dir: Path = request.getfixturevalue(run_fixture)
    for name in ("config.yaml", "model.safetensors", "tokenizer.json", "biofm.json"):
        assert (final(run_dir) / name).is_file(), name
    config = load_pretrained(final(run_dir)).config
    assert (config.data.modality, config.objective.name, config.backbone.kind) == \
        (modality, objective, kind)
    # flags and --set overrides reach the saved config
    assert config.train.lr == pytest.approx(3e-3)
    assert (config.train.max_steps, config.train.batch_size) == (5, 8)
    assert (config.backbone.max_len, config.data.max_records) == (64, 200)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["step"] == 5
    assert all(math.isfinite(h.get("loss", h.get("valid_loss"))) for h in history)


def test_pretrain_resume_of_a_finished_run(pretrain_tiny, molecule_clm_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(molecule_clm_run, run_dir)
    capsys.readouterr()
    pretrain_tiny(run_dir, "molecule", "clm", "--resume")
    captured = capsys.readouterr()
    assert "resuming from" in captured.err and "step 5" in captured.err
    assert "done: 5 steps" in captured.out
    assert (final(run_dir) / "model.safetensors").is_file()


def test_verbose_logs_the_device(cli, tmp_path):
    import logging

    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        run = cli("-v", "pretrain", "--modality", "protein", "--steps", "1", "--batch-size", "4",
                  "--set", "data.max_records=20", "--no-progress", "--output", tmp_path / "run")
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    assert run.code == 0, run.err
    assert squeeze("biofm: training on cpu (rank 0 of 1") in squeeze(run.err)


@pytest.mark.parametrize("override, phrase", [
    ("train.bogus=1", "train.bogus"),
    ("train.lr=fast", "train.lr"),
    ("trainlr", "KEY=VALUE"),
])
def test_pretrain_bad_override_exits_2(cli, tmp_path, override, phrase):
    run = cli("pretrain", "--set", override, "--output", tmp_path / "run")
    assert_user_error(run, None, phrase)
    if "=" in override:  # the options are blamed, not the preset file they override
        assert squeeze("the command-line options") in squeeze(run.err)
    assert not (tmp_path / "run").exists()


# -- embed -----------------------------------------------------------------------------

def test_embed_rejects_an_unknown_output_format_before_computing(cli, protein_mlm_run, tmp_path,
                                                                monkeypatch):
    from biofm.model import FoundationModel

    def never(*args, **kwargs):
        raise AssertionError("embeddings were computed for an output that cannot be written")

    monkeypatch.setattr(FoundationModel, "embed", never)
    fasta = write(tmp_path / "proteins.fasta", FASTA)
    run = cli("embed", "--model", final(protein_mlm_run), "--input", fasta,
              "--output", tmp_path / "e.csv")
    assert_user_error(run, tmp_path / "e.csv", "unknown embedding output format", ".parquet")


def test_embed_fasta_to_parquet_and_npy(cli, protein_mlm_run, tmp_path):
    model = final(protein_mlm_run)
    fasta = write(tmp_path / "proteins.fasta", FASTA)
    run = cli("embed", "--model", model, "--input", fasta, "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == ["id", "embedding"]
    assert frame["id"].tolist() == ["a", "b", "c"]
    table = np.stack(frame["embedding"].to_numpy())
    assert table.shape == (3, d_model(model)) and np.isfinite(table).all()

    run = cli("embed", "--model", model, "--input", fasta, "--output", tmp_path / "e.npy")
    assert run.code == 0, run.err
    array = np.load(tmp_path / "e.npy")
    assert (tmp_path / "e.ids.txt").read_text().split() == ["a", "b", "c"]
    np.testing.assert_allclose(array, table, rtol=1e-5, atol=1e-6)


def test_embed_npy_refuses_to_replace_its_ids_file(cli, protein_mlm_run, tmp_path):
    fasta = write(tmp_path / "proteins.fasta", FASTA)
    ids = write(tmp_path / "e.ids.txt", "another run's ids\n")
    argv = ("embed", "--model", final(protein_mlm_run), "--input", fasta,
            "--output", tmp_path / "e.npy")
    assert_user_error(cli(*argv), ids, "already exists", "--overwrite")
    assert ids.read_text() == "another run's ids\n" and not (tmp_path / "e.npy").exists()
    assert cli(*argv, "--overwrite").code == 0 and ids.read_text().split() == ["a", "b", "c"]


def test_embed_smiles(cli, molecule_mlm_run, tmp_path):
    model = final(molecule_mlm_run)
    smi = write(tmp_path / "mols.smi", SMILES)
    run = cli("embed", "--model", model, "--input", smi, "--output", tmp_path / "m.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "m.parquet")
    assert frame["id"].tolist() == ["ethanol", "mols.smi:2", "aspirin"]
    assert {len(v) for v in frame["embedding"]} == {d_model(model)}
    run = cli("embed", "--model", model, "--input", smi, "--output", tmp_path / "m.npy")
    assert run.code == 0, run.err
    assert np.load(tmp_path / "m.npy").shape == (3, d_model(model))


@pytest.fixture(scope="module")
def hf_esm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny `transformers` ESM-2 saved as on the Hub (config.json, weights, vocab.txt)."""
    import transformers
    import torch

    from biofm.modalities.proteins.tokenizer import ESM2_VOCAB

    config = transformers.EsmConfig(
        vocab_size=33, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, token_dropout=True,
        position_embedding_type="rotary", pad_token_id=1, mask_token_id=32,
        emb_layer_norm_before=False)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf-esm2")
    transformers.EsmForMaskedLM(config).save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
    return directory


def test_embed_with_an_hf_esm2_directory(cli, hf_esm_dir, tmp_path):
    fasta = write(tmp_path / "proteins.fa", FASTA)
    run = cli("embed", "--model", hf_esm_dir, "--input", fasta, "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert frame["id"].tolist() == ["a", "b", "c"]
    assert {len(v) for v in frame["embedding"]} == {32}


def test_export_round_trips_through_transformers(cli, protein_mlm_run, tmp_path):
    import transformers
    import torch

    from biofm.interop import load_pretrained

    run = cli("export", "--model", final(protein_mlm_run), "--output", tmp_path / "hf")
    assert run.code == 0, run.err
    hf = transformers.EsmForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    ours = load_pretrained(final(protein_mlm_run)).eval()
    ids = torch.tensor(ours.encode(["MKTAYIAKQR"]))
    with torch.no_grad():
        expected = ours.objective.logits(ours.backbone(ids).last_hidden_state)
        torch.testing.assert_close(hf(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
    clm = cli("export", "--model", final(protein_mlm_run), "--output", tmp_path / "x",
              "--format", "onnx")
    assert clm.code == 2 and "hf-esm" in clm.err


# -- generate and zero-shot ------------------------------------------------------------------

def test_generate_writes_n_samples_and_reports(cli, molecule_clm_run, tmp_path):
    reference = write(tmp_path / "train.smi", SMILES)
    out = tmp_path / "samples.smi"
    run = cli("generate", "--model", final(molecule_clm_run), "--num", 8, "--output", out,
              "--max-length", 24, "--reference", reference)
    assert run.code == 0, run.err
    report = printed_json(run.out)
    assert report["num"] == 8 and report["written"] + report["invalid"] == 8
    written = out.read_text().splitlines()
    assert len(written) == report["written"]
    assert all(canonical_smiles(s) is not None for s in written)  # invalid ones left out
    for key in ("validity", "uniqueness", "novelty"):
        assert 0.0 <= report[key] <= 1.0
    assert report["validity"] == report["written"] / 8

    again = cli("generate", "--model", final(molecule_clm_run), "--num", 8, "--output", out)
    assert_user_error(again, out, "already exists", "--overwrite")
    kept = cli("generate", "--model", final(molecule_clm_run), "--num", 8, "--output", out,
               "--max-length", 24, "--keep-invalid", "--overwrite")
    assert kept.code == 0, kept.err
    assert out.read_text().count("\n") == 8


def test_generate_proteins_writes_fasta_and_composition(cli, pretrain_tiny, tmp_path):
    run_dir = pretrain_tiny(tmp_path / "pclm", "protein", "clm")
    out = tmp_path / "samples.fasta"
    run = cli("generate", "--model", final(run_dir), "--num", 4, "--max-length", 20,
              "--output", out)
    assert run.code == 0, run.err
    report = printed_json(run.out)
    assert report["length_max"] <= 20 and abs(sum(report["composition"].values())
                                              + report["non_standard"] - 1) < 0.01
    records = list(read_fasta(out))
    assert [r.id for r in records] == ["sample_1", "sample_2", "sample_3", "sample_4"]


def test_generate_needs_a_causal_model(cli, molecule_mlm_run, tmp_path):
    run = cli("generate", "--model", final(molecule_mlm_run), "--num", 2,
              "--output", tmp_path / "s.smi")
    assert_user_error(run, None, "causal-LM")


def test_score_variants(cli, protein_mlm_run, tmp_path):
    run = cli("score-variants", "--model", final(protein_mlm_run), "--sequence", WILD_TYPE,
              "--variant", "K2A", "--variant", "T3A", "--output", tmp_path / "scores.csv")
    assert run.code == 0, run.err
    assert "K2A" in run.out and "T3A" in run.out
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores["variant"].tolist() == ["K2A", "T3A"]
    assert np.isfinite(scores["score"]).all()


def test_score_variants_from_a_file_and_only_with_protein_models(cli, protein_mlm_run,
                                                                molecule_mlm_run, tmp_path):
    variants = write(tmp_path / "variants.csv", "variant,note\nK2A,x\nT3A:A4G,y\n")
    run = cli("score-variants", "--model", final(protein_mlm_run), "--sequence", WILD_TYPE,
              "--variants", variants, "--output", tmp_path / "s.csv")
    assert run.code == 0, run.err
    assert pd.read_csv(tmp_path / "s.csv")["variant"].tolist() == ["K2A", "T3A:A4G"]
    lines = write(tmp_path / "variants.txt", "K2A\n\nT3A\n")
    run = cli("score-variants", "--model", final(protein_mlm_run), "--sequence", WILD_TYPE,
              "--variants", lines)
    assert run.code == 0 and "T3A" in run.out, run.err
    run = cli("score-variants", "--model", final(molecule_mlm_run), "--sequence", WILD_TYPE,
              "--variant", "K2A")
    assert_user_error(run, None, "amino-acid substitutions", "molecule model")
    run = cli("score-variants", "--model", final(protein_mlm_run), "--sequence", "ACGTJJ",
              "--variant", "C2A")
    assert_user_error(run, None, "not protein residues")


def test_a_blank_variants_file_is_a_clear_error(cli, tmp_path):
    blank = write(tmp_path / "variants.txt", "  \n\n \n")
    run = cli("score-variants", "--model", tmp_path / "unused", "--sequence", WILD_TYPE,
              "--variants", blank)
    assert_user_error(run, blank, "only blank lines", "one variant per line")


def test_score_variants_wild_type_mismatch_exits_2(cli, protein_mlm_run):
    run = cli("score-variants", "--model", final(protein_mlm_run), "--sequence", WILD_TYPE,
              "--variant", "A2G")
    assert_user_error(run, None, "A2G", "residue 2", "is K, not A")


# -- finetune and evaluate ------------------------------------------------------------------

REGRESSION = ("rmse", "mae", "spearman")
CLASSIFICATION = ("roc_auc", "pr_auc", "accuracy")


def finetune_and_evaluate(cli, model: Path, out: Path, *args: object) -> tuple[dict, dict]:
    """Run `finetune ... --output out`, then `evaluate --model out`; both metric dicts."""
    run = cli("finetune", "--model", model, "--output", out, *args)
    assert run.code == 0, run.err
    for name in ("finetune.json", "metrics.json", "head.safetensors", "base/model.safetensors"):
        assert (out / name).is_file(), name
    trained = json.loads((out / "metrics.json").read_text())
    run = cli("evaluate", "--model", out, "--output", out / "m.json")
    assert run.code == 0, run.err
    evaluated = json.loads((out / "m.json").read_text())
    assert evaluated["split"] == "test" and evaluated["metrics"] == printed_json(run.out)
    return trained, evaluated


@pytest.mark.parametrize("mode", ["probe", "full", "lora", "scratch"])
def test_finetune_then_evaluate_freesolv(cli, molecule_mlm_run, tmp_path, mode):
    out = tmp_path / mode
    trained, evaluated = finetune_and_evaluate(
        cli, final(molecule_mlm_run), out, "--task", "freesolv", "--mode", mode,
        "--epochs", 1, "--set", "batch_size=64")
    info = json.loads((out / "finetune.json").read_text())
    assert (info["mode"], info["task"], info["kind"]) == (mode, "freesolv", "regression")
    assert (info["config"]["epochs"], info["config"]["batch_size"]) == (1, 64)
    assert evaluated["task"] == "freesolv" and evaluated["n"] > 0
    for key in REGRESSION:
        assert key in trained["valid"] and key in evaluated["metrics"]
    assert evaluated["metrics"]["rmse"] > 0 and math.isfinite(evaluated["metrics"]["mae"])
    # the saved model, reloaded, reproduces the test metrics seen at the end of training
    assert evaluated["metrics"]["rmse"] == pytest.approx(trained["test"]["rmse"], rel=1e-3)


def test_finetune_then_evaluate_classification(cli, protein_mlm_run, tmp_path):
    trained, evaluated = finetune_and_evaluate(
        cli, final(protein_mlm_run), tmp_path / "amp", "--task", "amp", "--mode", "probe")
    for key in CLASSIFICATION:
        assert 0.0 <= evaluated["metrics"][key] <= 1.0
    assert evaluated["metrics"]["roc_auc"] == pytest.approx(trained["test"]["roc_auc"], rel=1e-6)


@pytest.fixture(scope="module")
def labeled_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 real FreeSolv molecules with labels in a user-style CSV (varied scaffolds)."""
    from biofm.registry import TASKS

    splits = TASKS.get("freesolv")().load(0)
    texts = splits.test.inputs + splits.valid.inputs
    labels = np.concatenate([splits.test.labels, splits.valid.labels])
    path = tmp_path_factory.mktemp("csv") / "hydration.csv"
    pd.DataFrame({"smiles": texts[:80], "dG": labels[:80]}).to_csv(path, index=False)
    return path


def test_finetune_on_a_user_csv_with_scaffold_split(cli, molecule_mlm_run, labeled_csv, tmp_path):
    out = tmp_path / "ft"
    run = cli("finetune", "--model", final(molecule_mlm_run), "--input", labeled_csv,
              "--label", "dG", "--kind", "regression", "--split", "scaffold", "--epochs", 1,
              "--output", out)
    assert run.code == 0, run.err
    info = json.loads((out / "finetune.json").read_text())
    assert (info["task"], info["kind"], info["split"]) == ("hydration", "regression", "scaffold")
    trained = json.loads((out / "metrics.json").read_text())
    # evaluate rebuilds the same scaffold split from the same CSV (kind from the model)
    run = cli("evaluate", "--model", out, "--input", labeled_csv, "--label", "dG",
              "--output", out / "m.json")
    assert run.code == 0, run.err
    evaluated = json.loads((out / "m.json").read_text())["metrics"]
    assert evaluated["rmse"] == pytest.approx(trained["test"]["rmse"], rel=1e-3)


def test_evaluate_a_damaged_finetuned_directory(cli, molecule_mlm_run, tmp_path):
    out = tmp_path / "probe"
    run = cli("finetune", "--model", final(molecule_mlm_run), "--task", "freesolv",
              "--mode", "probe", "--output", out)
    assert run.code == 0, run.err
    assert_user_error(cli("evaluate", "--model", out, "--split", "holdout"), None, "'holdout'")
    head = out / "head.safetensors"
    head.write_bytes(head.read_bytes()[:40])
    assert_user_error(cli("evaluate", "--model", out), head, "truncated")
    (out / "finetune.json").write_text('{"mode": ')
    assert_user_error(cli("evaluate", "--model", out), out / "finetune.json", "unreadable")
    assert_user_error(cli("evaluate", "--model", tmp_path), tmp_path, "finetune.json")


def test_finetune_and_evaluate_refuse_to_replace_their_output(cli, protein_mlm_run, tmp_path,
                                                               monkeypatch):
    out, metrics = tmp_path / "amp", tmp_path / "m.json"
    argv = ("finetune", "--model", final(protein_mlm_run), "--task", "amp", "--mode", "probe",
            "--output", out)
    assert cli(*argv).code == 0
    first = (out / "finetune.json").read_text()

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded for an output that will not be written")

    with monkeypatch.context() as patch:  # refused before any work
        patch.setattr("biofm.interop.load_pretrained", never)
        patch.setattr("biofm.adapt.load_finetuned", never)
        assert_user_error(cli(*argv), out, "already holds a fine-tuned model", "--overwrite")
        metrics.write_text("earlier metrics")
        assert_user_error(cli("evaluate", "--model", out, "--output", metrics), metrics,
                          "already exists", "--overwrite")
        assert_user_error(cli(*argv[:-1], tmp_path / "m.json"), metrics, "is a file")
    assert (out / "finetune.json").read_text() == first and metrics.read_text() == "earlier metrics"
    assert cli(*argv, "--seed", 1, "--overwrite").code == 0
    assert json.loads((out / "finetune.json").read_text())["config"]["seed"] == 1
    assert cli("evaluate", "--model", out, "--output", metrics, "--overwrite").code == 0
    assert "metrics" in json.loads(metrics.read_text())


# -- bad input: exit 2, one paragraph naming the file, no traceback ------------------------------

def corrupt_copy(model: Path, target: Path, edit) -> Path:
    shutil.copytree(model, target)
    edit(target)
    return target


def other_size(directory: Path) -> None:
    config = yaml.safe_load((directory / "config.yaml").read_text())
    config["backbone"]["n_layers"] += 1
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def truncate_weights(directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def bad_input_cases(tmp: Path, protein: Path, molecule: Path) -> dict[str, tuple]:
    """name → (argv, the path the message must name, phrases it must hold)."""
    fasta = write(tmp / "ok.fasta", FASTA)
    out = ("--output", tmp / "out.npy")

    def embed(model: Path, path: Path, *more: object) -> tuple:
        return ("embed", "--model", model, "--input", path, *out, *more)

    missing, empty = tmp / "missing.fasta", write(tmp / "empty.fasta", "")
    bad_fasta = write(tmp / "bad.fasta", ">a\nMKT\n>b\nMK1T\n>c\nGGG\n")
    bad_smiles = write(tmp / "bad.smi", "CCO\nc1cc[nH]c1C(\nc1ccccc1\n")
    no_column = write(tmp / "assay.csv", "smiles,pIC50\nCCO,1.0\n")
    text_labels = write(tmp / "text_labels.csv", "smiles,dG\nCCO,low\nCCC,high\n")
    few_rows = write(tmp / "few.csv", "smiles,dG\nCCO,1.0\nCCC,2.0\nc1ccccc1,3.0\n")
    bad_label_smiles = write(tmp / "assay_bad.csv", "smiles,dG\nCCO,1.0\nC1CC,2.0\nCCC,3.0\n")
    other_arch = corrupt_copy(protein, tmp / "other_arch", other_size)
    truncated = corrupt_copy(protein, tmp / "truncated", truncate_weights)
    not_model = tmp / "not_a_model"
    not_model.mkdir()
    write(not_model / "notes.txt", "hello")
    csv_finetune = ("finetune", "--model", molecule, "--kind", "regression", "--output", tmp / "ft")
    return {
        "missing file": (embed(protein, missing), missing, "does not exist"),
        "empty file": (embed(protein, empty), empty, "empty"),
        "malformed FASTA record": (embed(protein, bad_fasta), bad_fasta, "line 4", "record 'b'",
                                   "'1'"),
        "invalid SMILES": (embed(molecule, bad_smiles), bad_smiles, "line 2", "'c1cc[nH]c1C('"),
        "CSV without the label column": (csv_finetune + ("--input", no_column, "--label", "dG"),
                                         no_column, "'dG'", "missing", "pIC50"),
        "CSV without the SMILES column": (embed(molecule, no_column, "--column", "mol"),
                                          no_column, "'mol'"),
        "CSV with text labels": (csv_finetune + ("--input", text_labels, "--label", "dG"),
                                 text_labels, "'dG'", "regression"),
        "CSV too small to split": (csv_finetune + ("--input", few_rows, "--label", "dG",
                                                   "--split", "scaffold"), few_rows, "too few"),
        "labeled CSV with an invalid SMILES": (csv_finetune + ("--input", bad_label_smiles,
                                                               "--label", "dG"),
                                               bad_label_smiles, "line 3", "'C1CC'"),
        "protein file, molecule model": (embed(molecule, fasta), fasta, "protein"),
        "other architecture": (embed(other_arch, fasta), other_arch / "model.safetensors",
                               "do not match", "missing"),
        "truncated weights": (embed(truncated, fasta), truncated / "model.safetensors",
                              "truncated"),
        "not a model directory": (embed(not_model, fasta), not_model, "notes.txt"),
        "missing model directory": (embed(tmp / "nowhere", fasta), tmp / "nowhere",
                                    "does not exist"),
        "unknown output format": (("embed", "--model", protein, "--input", fasta,
                                   "--output", tmp / "e.csv"), tmp / "e.csv", ".parquet"),
    }


BAD_INPUTS = ("missing file", "empty file", "malformed FASTA record", "invalid SMILES",
              "CSV without the label column", "CSV without the SMILES column",
              "CSV with text labels", "CSV too small to split",
              "labeled CSV with an invalid SMILES", "protein file, molecule model",
              "other architecture", "truncated weights", "not a model directory",
              "missing model directory", "unknown output format")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_exits_2_naming_the_file(cli, protein_mlm_run, molecule_mlm_run, tmp_path, case):
    argv, path, *phrases = bad_input_cases(tmp_path, final(protein_mlm_run),
                                           final(molecule_mlm_run))[case]
    assert_user_error(cli(*argv), path, *phrases)


@pytest.mark.parametrize("argv, phrase", [
    (("embed", "--on-error", "ignore"), "on_error"),
    (("embed", "--pooling", "max"), "'max'"),
    (("finetune", "--mode", "adapter"), "mode"),
    (("finetune", "--task", "tox21"), "'tox21'"),
])
def test_bad_option_values_exit_2(cli, protein_mlm_run, tmp_path, argv, phrase):
    model = final(protein_mlm_run)
    fasta = write(tmp_path / "p.fa", FASTA)
    common = {"embed": ("--model", model, "--input", fasta, "--output", tmp_path / "e.npy"),
              "finetune": ("--model", model, "--output", tmp_path / "ft")}[argv[0]]
    if argv[0] == "finetune" and "--task" not in argv:
        common += ("--task", "amp")
    run = cli(argv[0], *common, *argv[1:])
    assert_user_error(run, None, phrase)


@pytest.mark.parametrize("suffix, text, bad_line", [
    (".fasta", ">a\nMKT\n>b\nMK1T\n>c\nGGG\n", 4),
    (".smi", "CCO\nc1cc[nH]c1C(\nc1ccccc1\n", 2),
])
def test_on_error_skip_drops_bad_records_and_says_how_many(
        cli, protein_mlm_run, molecule_mlm_run, tmp_path, suffix, text, bad_line):
    model = final(protein_mlm_run if suffix == ".fasta" else molecule_mlm_run)
    path = write(tmp_path / f"mixed{suffix}", text)
    run = cli("embed", "--model", model, "--input", path, "--output", tmp_path / "e.parquet",
              "--on-error", "skip")
    assert run.code == 0, run.err
    assert "skipped 1 bad record" in run.err
    assert squeeze(f"{path} (line {bad_line}") in squeeze(run.err)
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 2


# -- the same contract in a real process (what a user's shell sees) ---------------------------

def test_real_process_exits_2_without_traceback(protein_mlm_run, tmp_path):
    bad_fasta = write(tmp_path / "bad.fasta", ">a\nMKT\n>b\nMK1T\n")
    truncated = corrupt_copy(final(protein_mlm_run), tmp_path / "truncated", truncate_weights)
    cases = [  # (model, input, what stderr must name)
        (final(protein_mlm_run), bad_fasta, f"{bad_fasta} (line 4"),
        (truncated, write(tmp_path / "ok.fasta", FASTA), f"{truncated / 'model.safetensors'}"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # started together: each process spends seconds importing torch
    procs = [subprocess.Popen([sys.executable, "-m", "biofm", "embed", "--model", str(model),
                               "--input", str(path), "--output", str(tmp_path / "e.npy")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for model, path, _ in cases]
    for proc, (_, path, needle) in zip(procs, cases):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, f"{path}: exit {proc.returncode}\n{stderr}"
        assert "Traceback" not in stderr, stderr
        assert squeeze(needle) in squeeze(stderr), stderr


# -- compare ---------------------------------------------------------------------------------

def test_compare_prints_and_writes_the_table(cli, molecule_mlm_run, tmp_path):
    run = cli("compare", "--model", final(molecule_mlm_run), "--task", "freesolv", "--seeds", 1,
              "--mode", "scratch", "--mode", "probe", "--max-train", 80,
              "--output", tmp_path / "cmp")
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert list(table["method"]) == ["RF on Morgan fingerprints", "scratch", "pretrained: probe"]
    assert np.isfinite(table["rmse"]).all() and (table["rmse"] > 0).all()
    assert "pretrained: probe" in run.out and (tmp_path / "cmp" / "results.md").is_file()


def test_compare_refuses_a_task_of_another_modality(cli, molecule_mlm_run):
    run = cli("compare", "--model", final(molecule_mlm_run), "--task", "amp", "--seeds", 1)
    assert_user_error(run, None, "protein", "molecule")


# -- demo ------------------------------------------------------------------------------------

def test_demo_quick(cli, tmp_path):
    out = tmp_path / "demo"
    run = cli("demo", "--quick", "--seeds", 1, "--output", out)
    assert run.code == 0, run.err
    for name in ("results.md", "results.csv", "pretrain_loss.png", "provenance.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    record = json.loads((out / "provenance.json").read_text())
    assert record["seeds"] == [0] and record["quick"] is True and record["date"]
    assert record["machine"]["cpu_count"] >= 1 and "torch" in record["software"]
    # the intra-op threads the imaging and drug-target rows ran on (empty: one thread)
    assert all(n >= 1 for n in record["small_model_threads"].values())
    table = pd.read_csv(out / "results.csv")
    imaging = {"brain-region-patch", "brain-box-seg"} if available()[0] else set()
    assert set(table["task"]) == {"freesolv", "solubility", "amp", "crp-sites", "pbmc-celltype",
                                  "nafld-death-5y", "iu-xray-abnormal", "flu-boston",
                                  "kiba (cold-target)", *imaging}
    assert set(record["domains"]) == {"molecule", "protein", "dna", "singlecell", "ehr", "text",
                                      "timeseries", "imaging", "drug-target"}
    ehr = table[table["task"] == "nafld-death-5y"]
    assert {"scratch", "pretrained: fine-tune"} <= set(ehr["method"])
    assert any(m.startswith("GBT on ") for m in ehr["method"])  # the MEDS baselines
    assert ehr["roc_auc"].between(0, 1).all()
    text = table[table["task"] == "iu-xray-abnormal"]
    assert "TF-IDF + logistic regression" in set(text["method"]) and text["roc_auc"].between(0, 1).all()
    kiba = table[table["task"] == "kiba (cold-target)"]
    assert {"pretrained: fine-tune", "scratch towers"} <= set(kiba["method"])
    assert kiba["ci"].between(0, 1).all()
    if imaging:
        segmentation = table[table["task"] == "brain-box-seg"]
        assert "MONAI UNet (scratch)" in set(segmentation["method"])
        assert segmentation["dice"].between(0, 1).all()
    cells = table[table["task"] == "pbmc-celltype"]
    assert "LogReg on PCA (log-norm)" in set(cells["method"])
    assert cells["macro_f1"].between(0, 1).all() and cells["pr_auc"].isna().all()
    assert {"scratch", "pretrained: probe", "pretrained: fine-tune", "pretrained: LoRA",
            "RF on Morgan fingerprints", "RF on AA + dipeptide composition",
            "linear on 4-mer frequencies"} <= set(table["method"])
    regression = table[table["task"].isin(["freesolv", "solubility"])]
    assert np.isfinite(regression["rmse"]).all()
    classification = table[table["task"].isin(["amp", "crp-sites"])]
    assert classification["roc_auc"].between(0, 1).all()
    forecasting = table[table["task"] == "flu-boston"].set_index("method")
    assert {"pretrained: zero-shot", "pretrained: fine-tune", "scratch", "seasonal-naive",
            "last-value", "arima", "ets"} == set(forecasting.index)
    assert forecasting.loc["seasonal-naive", "rel_wis"] == 1.0  # the reference
    assert np.isfinite(forecasting["wis"]).all() and forecasting["cov95"].between(0, 1).all()


def test_demo_only_one_domain(cli, tmp_path):
    run = cli("demo", "--quick", "--seeds", 1, "--only", "dna", "--output", tmp_path)
    assert run.code == 0, run.err
    assert set(pd.read_csv(tmp_path / "results.csv")["task"]) == {"crp-sites"}
    run = cli("demo", "--only", "radiology", "--output", tmp_path)
    assert run.code == 2 and "no domain radiology" in run.err and "drug-target" in run.err


def test_demo_only_drug_target_pretrains_its_two_towers(cli, tmp_path):
    run = cli("demo", "--quick", "--only", "drug-target", "--output", tmp_path)
    assert run.code == 0, run.err
    assert set(pd.read_csv(tmp_path / "results.csv")["task"]) == {"kiba (cold-target)"}
    assert {p.name for p in (tmp_path / "pretrain").iterdir()} == {"protein-mlm-tiny",
                                                                  "molecule-mlm-tiny"}
