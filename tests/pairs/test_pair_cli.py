"""`biofm pair-finetune`, `pair-compare` and `screen` end to end on tiny pretrained towers."""

from pathlib import Path

import pandas as pd
import pytest

from biofm.pairs.tasks import kiba_data
from tests.helpers import squeeze

FAST = ("--set", "max_tokens=128", "--device", "cpu")


@pytest.fixture(scope="module")
def towers(protein_mlm_run: Path, molecule_mlm_run: Path) -> tuple[Path, Path]:
    return protein_mlm_run / "final", molecule_mlm_run / "final"


def _kiba_csv(path: Path, n: int = 80) -> Path:
    """The first KIBA pairs of 8 targets as a user's file (own column names)."""
    data = kiba_data()
    rows = [i for i in range(len(data)) if data.index[i, 0] < 8][:n]
    frame = pd.DataFrame({"protein_seq": [data.items[0][data.index[i, 0]] for i in rows],
                          "ligand": [data.items[1][data.index[i, 1]] for i in rows],
                          "kiba": data.labels[rows]})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def pair_model(towers, tmp_path_factory) -> Path:
    from biofm.cli import main

    tmp = tmp_path_factory.mktemp("pair")
    out = tmp / "pair-model"
    main(["pair-finetune", "--model", str(towers[0]), "--model", str(towers[1]),
          "--input", str(_kiba_csv(tmp / "pairs.csv")), "--column", "protein_seq",
          "--column", "ligand", "--label", "kiba", "--mode", "lora", "--epochs", "1",
          "--output", str(out), *FAST])
    return out


def test_pair_finetune_writes_a_self_describing_directory(pair_model):
    names = {p.name for p in pair_model.iterdir()}
    assert {"pair.json", "tower_a", "tower_b", "head.safetensors", "metrics.json"} <= names
    from biofm.interop import load_pretrained
    from biofm.pairs import load_pair_model

    assert load_pretrained(pair_model / "tower_a").config.data.modality == "protein"
    _, sides, info = load_pair_model(pair_model)
    assert [s.column for s in sides] == ["protein_seq", "ligand"]
    assert info["config"]["mode"] == "lora" and set(info["test"]) == {"ci", "mse", "pearson",
                                                                       "spearman"}


def test_swapped_towers_for_a_users_csv_are_explained(cli, towers, tmp_path):
    run = cli("pair-finetune", "--model", towers[1], "--model", towers[0], "--input",
              _kiba_csv(tmp_path / "p.csv", 20), "--column", "protein_seq", "--column",
              "ligand", "--label", "kiba", "--output", tmp_path / "out", *FAST)
    assert run.code == 2
    assert squeeze("column 'protein_seq' holds protein inputs, but its tower is a molecule "
                   "model") in squeeze(run.err)


def test_a_tower_of_the_wrong_modality_for_kiba(cli, towers, tmp_path):
    run = cli("pair-compare", "--model", towers[0], "--model", towers[0], "--task", "kiba",
              "--quick", "--device", "cpu")
    assert run.code == 2
    assert squeeze("the task's columns are protein ('aa_sequence') and molecule ('smiles')") in \
        squeeze(run.err)


def test_invalid_sequence_is_named_by_line_and_skipped_on_request(cli, towers, tmp_path):
    path = _kiba_csv(tmp_path / "p.csv", 30)
    frame = pd.read_csv(path)
    frame.loc[4, "protein_seq"] = "MKT1234AYIAKQR"  # line 6
    frame.to_csv(path, index=False)
    argv = ["pair-finetune", "--model", towers[0], "--model", towers[1], "--input", path,
            "--column", "protein_seq", "--column", "ligand", "--label", "kiba", "--epochs", "1",
            "--output", tmp_path / "out", *FAST]
    run = cli(*argv)
    assert run.code == 2 and squeeze("p.csv (line 6): 'protein_seq' value") in squeeze(run.err)
    assert squeeze("not a valid protein input") in squeeze(run.err)
    run = cli(*argv, "--on-error", "skip")
    assert run.code == 0, run.err
    assert squeeze("skipped 1 bad record(s)") in squeeze(run.err)


def test_missing_pair_column(cli, towers, tmp_path):
    run = cli("pair-finetune", "--model", towers[0], "--model", towers[1], "--input",
              _kiba_csv(tmp_path / "p.csv", 20), "--column", "sequence", "--column", "ligand",
              "--label", "kiba", "--output", tmp_path / "out", *FAST)
    assert run.code == 2
    assert squeeze("column 'sequence' is missing") in squeeze(run.err)
    assert squeeze("available: protein_seq, ligand, kiba") in squeeze(run.err)


# -- screen ---------------------------------------------------------------------------------

def _targets(path: Path, n: int = 2) -> Path:
    data = kiba_data()
    path.write_text("".join(f">{data.item_ids[0][i]}\n{data.items[0][i]}\n" for i in range(n)))
    return path


def _library(path: Path, smiles: list[str]) -> Path:
    pd.DataFrame({"name": [f"cmpd{i}" for i in range(len(smiles))], "smiles": smiles,
                  "mw": range(len(smiles))}).to_csv(path, index=False)
    return path


LIBRARY = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "C1CC(", "CN1CCCC1c1cccnc1",
           "O=C(O)c1ccccc1", "CCN(CC)CC"]


def test_screen_ranks_in_chunks_keeps_columns_and_names_bad_lines(cli, pair_model, tmp_path):
    targets = _targets(tmp_path / "t.fasta")
    library = _library(tmp_path / "lib.csv", LIBRARY)
    run = cli("screen", "--model", pair_model, "--target", targets, "--library", library,
              "--output", tmp_path / "r.csv", "--device", "cpu")
    assert run.code == 2 and squeeze("lib.csv (line 5): invalid SMILES 'C1CC('") in \
        squeeze(run.err)
    ranked = {}
    for chunk in (2, 1000):
        out = tmp_path / f"ranked-{chunk}.csv"
        run = cli("screen", "--model", pair_model, "--target", targets, "--library", library,
                  "--output", out, "--on-error", "skip", "--chunk-size", chunk, "--device",
                  "cpu")
        assert run.code == 0, run.err
        assert squeeze("ranked 6 compounds against 2 target(s)") in squeeze(run.out)
        assert squeeze("skipped 1 bad record(s)") in squeeze(run.err)
        assert squeeze("read in windows") in squeeze(run.err)  # KIBA kinases > the tiny context
        ranked[chunk] = pd.read_csv(out)
    frame = ranked[2]
    assert list(frame.columns) == ["target_id", "rank", "score", "library_line", "name",
                                   "smiles", "mw"]
    assert len(frame) == 12 and 5 not in frame["library_line"].tolist()
    for _, group in frame.groupby("target_id"):
        assert group["rank"].tolist() == list(range(1, 7))
        assert group["score"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(frame, ranked[1000])
    top = tmp_path / "top.csv"
    assert cli("screen", "--model", pair_model, "--target", targets, "--library", library,
               "--output", top, "--on-error", "skip", "--top", "2", "--chunk-size", "3",
               "--device", "cpu").code == 0
    best = pd.read_csv(top)
    assert len(best) == 4
    pd.testing.assert_frame_equal(best, frame[frame["rank"] <= 2].reset_index(drop=True))


def test_screen_default_library_is_chembl_drugs(cli, pair_model, tmp_path):
    run = cli("screen", "--model", pair_model, "--target", _targets(tmp_path / "t.fa", 1),
              "--output", tmp_path / "r.csv", "--top", "5", "--device", "cpu")
    assert run.code == 0, run.err
    assert squeeze("ranked 1,935 compounds against 1 target(s)") in squeeze(run.out)
    assert len(pd.read_csv(tmp_path / "r.csv")) == 5


def test_screen_bad_libraries(cli, pair_model, tmp_path):
    targets = _targets(tmp_path / "t.fasta", 1)
    empty = tmp_path / "empty.csv"
    empty.write_text("name,smiles\n")
    run = cli("screen", "--model", pair_model, "--target", targets, "--library", empty,
              "--output", tmp_path / "r.csv")
    assert run.code == 2 and squeeze("the library holds no compounds") in squeeze(run.err)
    other = _library(tmp_path / "lib.csv", ["CCO"])
    run = cli("screen", "--model", pair_model, "--target", targets, "--library", other,
              "--column", "SMILES", "--output", tmp_path / "r.csv")
    assert run.code == 2 and squeeze("column 'SMILES' is missing from the library") in \
        squeeze(run.err)
    run = cli("screen", "--model", pair_model, "--target", _targets(tmp_path / "t.txt", 1),
              "--library", other, "--output", tmp_path / "r.csv")
    assert run.code == 2 and squeeze("the target file is not a format of either tower") in \
        squeeze(run.err)


# -- compare ------------------------------------------------------------------------------

def test_pair_compare_prints_the_table(cli, towers, tmp_path):
    run = cli("pair-compare", "--model", towers[1], "--model", towers[0], "--task", "kiba",
              "--split", "cold-target", "--seeds", "1", "--quick", "--max-train", "60",
              "--max-tokens", "64", "--mode", "probe", "--mode", "lora", "--device", "cpu",
              "--output", tmp_path / "cmp")
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "cmp" / "results.csv")
    assert table["method"].tolist() == [
        "GBT on AA + dipeptide composition + Morgan fingerprints", "train mean per target",
        "train mean per drug", "pretrained: probe (frozen towers)", "pretrained: LoRA"]
    for metric in ("ci", "mse", "pearson", "spearman", "target_spearman", "target_ef10"):
        assert metric in table.columns
    assert table.loc[1, "ci"] == 0.5  # unseen targets: the training mean, one value
    assert (tmp_path / "cmp" / "provenance.json").is_file()
    assert squeeze("per-target over") in squeeze(run.err)
    run = cli("pair-compare", "--model", towers[1], "--model", towers[0], "--task", "kiba",
              "--split", "scaffold", "--quick")
    assert run.code == 2 and squeeze("Use --split random | cold-target | cold-drug") in \
        squeeze(run.err)


def test_an_hf_esm2_directory_is_a_tower(cli, towers, tmp_path):
    import torch
    import transformers

    from biofm.modalities.proteins.tokenizer import ESM2_VOCAB

    torch.manual_seed(0)
    config = transformers.EsmConfig(vocab_size=33, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64,
                                    max_position_embeddings=66, token_dropout=True,
                                    position_embedding_type="rotary", pad_token_id=1,
                                    mask_token_id=32, emb_layer_norm_before=False)
    esm = tmp_path / "esm2"
    transformers.EsmForMaskedLM(config).save_pretrained(esm)
    (esm / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
    run = cli("pair-finetune", "--model", esm, "--model", towers[1], "--input",
              _kiba_csv(tmp_path / "p.csv", 30), "--column", "protein_seq", "--column",
              "ligand", "--label", "kiba", "--mode", "probe", "--epochs", "1", "--output",
              tmp_path / "out", *FAST)
    assert run.code == 0, run.err
    assert '"mode": "probe"' in run.out
    from biofm.pairs import load_pair_model

    model, _, _ = load_pair_model(tmp_path / "out")
    assert model.towers[0].d_model == 32 and model.towers[0].modality == "protein"


def test_pair_pretrain_coembeds_and_reports_recall(cli, towers, tmp_path):
    run = cli("pair-pretrain", "--model", towers[0], "--model", towers[1], "--task", "kiba",
              "--max-train", "120", "--epochs", "1", "--output", tmp_path / "co", "--device",
              "cpu")
    assert run.code == 0, run.err
    for name in ("co-embedding", "popularity", "random", "recall@10"):
        assert name in run.out
    assert (tmp_path / "co" / "tower_b" / "model.safetensors").is_file()
    run = cli("pair-pretrain", "--model", towers[0], "--model", towers[1], "--task", "kiba",
              "--mode", "half")
    assert run.code == 2 and "mode" in run.err


# -- screening report, pair tasks in `biofm list`, retrieval-only tasks ---------------------

def test_screen_report_scores_the_screen_on_unseen_targets(cli, towers, tmp_path):
    import numpy as np

    from biofm.pairs import load_pair_model
    from biofm.pairs.compare import cap_pairs
    from biofm.pairs.metrics import ranking_metrics

    model_dir = tmp_path / "kiba"
    run = cli("pair-finetune", "--model", towers[0], "--model", towers[1], "--task", "kiba",
              "--split", "cold-target", "--max-train", "60", "--epochs", "1", "--mode", "probe",
              "--output", model_dir, *FAST)
    assert run.code == 0, run.err
    run = cli("screen-report", "--model", model_dir, "--device", "cpu", "--output",
              tmp_path / "report")
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "report" / "results.csv").set_index("method")
    screen_row = table.loc["screen (kiba, probe)"]
    assert table.loc["train mean per target", "target_ef10"] == 1.0  # one value per target
    assert table.loc["train mean per target", "target_spearman"] == 0.0
    assert "GBT on AA + dipeptide composition + Morgan fingerprints" in table.index
    # the ranking `screen` wrote is the model's own prediction of each measured test pair
    model, _, info = load_pair_model(model_dir)
    test = cap_pairs(kiba_data_task().load("cold-target", 0), 60, 0).test
    direct = model.predict(test.items[0], test.items[1], test.index)
    expected = ranking_metrics(test.index[:, 0], test.labels, direct)
    assert screen_row["target_spearman"] == pytest.approx(expected["target_spearman"], abs=1e-4)
    assert screen_row["target_ef10"] == pytest.approx(expected["target_ef10"], abs=1e-4)
    assert screen_row["targets"] == expected["targets"] > 0 and info["max_train"] == 60
    assert np.isfinite(table["target_ef10"]).all()


def kiba_data_task():
    from biofm.pairs.data import PAIR_TASKS

    return PAIR_TASKS.get("kiba")()


def test_screen_report_needs_a_packaged_task(cli, pair_model):
    run = cli("screen-report", "--model", pair_model, "--device", "cpu")
    assert run.code == 2 and squeeze("not on a packaged pair task") in squeeze(run.err)


def test_list_shows_pair_tasks_and_admet(cli):
    run = cli("list")
    assert run.code == 0, run.err
    assert "pair tasks" in run.out and "genes" in run.out and "kiba" in run.out
    assert "admet-toxicity" in run.out


def test_genes_need_a_dna_and_a_protein_tower(cli, towers, tmp_path):
    run = cli("pair-finetune", "--model", towers[0], "--model", towers[1], "--task", "genes",
              "--output", tmp_path / "out", *FAST)
    assert run.code == 2  # a protein and a molecule tower for DNA x protein
    assert squeeze("the task's columns are dna ('gene') and protein ('protein')") in \
        squeeze(run.err)
