"""Single cell end to end through the CLI on tiny real data: pretrain (both encodings) on
an .h5ad → embed (to an obsm copy and to parquet) → finetune / evaluate the cell-type
task and a user's .h5ad label; bad input exits 2 with the file named, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biofm.cli import main
from tests.helpers import run_cli, squeeze
from tests.modalities.singlecell.cells import write_h5ad

TINY = ("--steps", "3", "--batch-size", "8", "--set", "backbone.max_len=48",
        "--set", "train.eval_every=3", "--no-progress")


def run(capsys, *argv) -> tuple[int, str, str]:
    result = run_cli(capsys, *argv)
    return result.code, result.out, result.err


@pytest.fixture(scope="module")
def runs(pbmc_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny Geneformer and scGPT models pretrained on the 120-cell file."""
    out = {}
    for name, flags in (("geneformer", []), ("scgpt", ["--objective", "masked-value"])):
        directory = tmp_path_factory.mktemp(name)
        main(["pretrain", "--modality", "singlecell", *flags, "--input", str(pbmc_subset),
              "--output", str(directory), *TINY])
        out[name] = directory / "final"
    return out


@pytest.mark.parametrize("name", ["geneformer", "scgpt"])
def test_pretrain_picks_the_encoding_preset(runs, name):
    from biofm.model import FoundationModel

    model = FoundationModel.load(runs[name])
    assert model.tokenizer.name == name and model.config.data.modality == "singlecell"
    assert model.config.backbone.values == ("bins" if name == "scgpt" else "none")


def test_embedding_in_chunks_equals_one_pass(runs, pbmc_subset):
    from biofm.model import FoundationModel
    from biofm.modalities.singlecell.embed import embed_h5ad

    model = FoundationModel.load(runs["scgpt"])
    ids, whole = embed_h5ad(model, pbmc_subset)
    chunked_ids, chunked = embed_h5ad(model, pbmc_subset, chunk_cells=7)
    assert chunked_ids == ids and len(ids) == 120
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


@pytest.mark.parametrize("name", ["geneformer", "scgpt"])
def test_embed_h5ad_to_an_obsm_copy_and_to_parquet(capsys, runs, pbmc_subset, tmp_path, name):
    import anndata

    copy = tmp_path / "with_embeddings.h5ad"
    code, out, err = run(capsys, "embed", "--model", runs[name], "--input", pbmc_subset,
                         "--output", copy)
    assert code == 0, err
    assert "wrote120embeddingsofwidth64" in squeeze(out)
    assert "756of756genes(100.0%ofcounts)areinthevocabulary" in squeeze(err)
    adata = anndata.read_h5ad(copy)
    original = anndata.read_h5ad(pbmc_subset)
    assert adata.obsm["X_biofm"].shape == (120, 64) and np.isfinite(adata.obsm["X_biofm"]).all()
    assert (adata.X != original.X).nnz == 0 and list(adata.obs_names) == list(original.obs_names)
    parquet = tmp_path / "cells.parquet"
    assert run(capsys, "embed", "--model", runs[name], "--input", pbmc_subset,
               "--output", parquet)[0] == 0
    frame = pd.read_parquet(parquet)
    assert frame["id"].tolist() == list(original.obs_names)
    np.testing.assert_allclose(np.stack(frame["embedding"]), adata.obsm["X_biofm"], atol=1e-6)


@pytest.mark.parametrize("name, mode", [("geneformer", "probe"), ("scgpt", "full")])
def test_finetune_and_evaluate_on_a_user_h5ad_label(capsys, runs, pbmc_subset, tmp_path, name,
                                                    mode):
    output = tmp_path / "ft"
    code, out, err = run(capsys, "finetune", "--model", runs[name], "--input", pbmc_subset,
                         "--label", "cell_type", "--mode", mode, "--epochs", "1",
                         "--output", output)
    assert code == 0, err
    reported = json.loads(out[: out.rindex("}") + 1])
    assert {"accuracy", "macro_f1", "roc_auc"} <= set(reported["test"])
    code, out, err = run(capsys, "evaluate", "--model", output, "--input", pbmc_subset,
                         "--label", "cell_type")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(reported["test"]["accuracy"])


def test_the_packaged_celltype_task(capsys, runs, tmp_path):
    output = tmp_path / "ft"
    code, out, err = run(capsys, "finetune", "--model", runs["geneformer"], "--task",
                         "pbmc-celltype", "--mode", "full", "--epochs", "1", "--output", output)
    assert code == 0, err
    assert json.loads(out[: out.rindex("}") + 1])["task"] == "pbmc-celltype"
    code, out, err = run(capsys, "evaluate", "--model", output)
    assert code == 0, err
    assert 0.0 <= json.loads(out)["macro_f1"] <= 1.0


def test_log_normalised_h5ad_exits_2_naming_the_file(capsys, runs, tmp_path):
    path = write_h5ad(tmp_path / "lognorm.h5ad", np.log1p(np.eye(3) * 5), ["CD3E", "LYZ", "NKG7"])
    code, _, err = run(capsys, "embed", "--model", runs["geneformer"], "--input", path,
                       "--output", tmp_path / "e.parquet")
    assert code == 2 and "Traceback" not in err
    assert "lognorm.h5ad" in squeeze(err) and "norawcounts" in squeeze(err)
    assert "layers['counts']" in squeeze(err)


def test_gene_vocabulary_mismatch_exits_2(capsys, runs, tmp_path):
    path = write_h5ad(tmp_path / "mouse.h5ad", np.eye(3) * 5 + 1, ["Cd3e", "Lyz2", "Nkg7"])
    code, _, err = run(capsys, "embed", "--model", runs["geneformer"], "--input", path,
                       "--output", tmp_path / "e.parquet")
    assert code == 2 and "Traceback" not in err
    assert "mouse.h5ad" in squeeze(err) and "0of3genes(0.0%ofcounts)" in squeeze(err)
    assert "min_gene_overlap" in squeeze(err)


def test_finetune_on_cells_outside_the_vocabulary_exits_2(capsys, runs, tmp_path):
    counts = np.random.default_rng(0).poisson(3.0, size=(30, 3)) + 1
    path = write_h5ad(tmp_path / "mouse.h5ad", counts, ["Cd3e", "Lyz2", "Nkg7"],
                      obs={"cell_type": ["a", "b", "c"] * 10})
    code, _, err = run(capsys, "finetune", "--model", runs["geneformer"], "--input", path,
                       "--label", "cell_type", "--mode", "probe", "--output", tmp_path / "ft")
    assert code == 2 and "Traceback" not in err
    assert "mouse.h5ad" in squeeze(err) and "0of3genes" in squeeze(err)


def test_prepare_then_pretrain_on_shards(capsys, pbmc_subset, tmp_path):
    """Rank-value cells go to memory-mapped shards for corpora larger than memory."""
    code, out, err = run(capsys, "prepare", "--modality", "singlecell", "--input", pbmc_subset,
                         "--tokenizer", "geneformer", "--max-len", "48", "--output",
                         tmp_path / "shards")
    assert code == 0, err
    assert "111trainand9validsequences" in squeeze(out)
    code, out, err = run(capsys, "pretrain", "--modality", "singlecell", "--input",
                         tmp_path / "shards", "--output", tmp_path / "run", *TINY)
    assert code == 0, err
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    code, _, err = run(capsys, "prepare", "--modality", "singlecell", "--input", pbmc_subset,
                       "--tokenizer", "scgpt", "--output", tmp_path / "bins")
    assert code == 2 and "Traceback" not in err and "expressionbin" in squeeze(err)


def test_finetune_reads_counts_from_the_named_layer(capsys, runs, tmp_path):
    from biofm.modalities.singlecell.datasets import pbmc68k_counts

    cells, genes, counts, labels = pbmc68k_counts()
    keep = np.arange(0, 700, 7)
    lognorm = np.log1p(counts[keep] / counts[keep].sum(1, keepdims=True) * 1e4)
    path = write_h5ad(tmp_path / "layered.h5ad", lognorm, genes, cells=[cells[i] for i in keep],
                      layers={"umi": counts[keep]},
                      obs={"cell_type": pd.Categorical([labels[i] for i in keep])})
    argv = ("finetune", "--model", runs["geneformer"], "--input", path, "--label", "cell_type",
            "--mode", "probe", "--output", tmp_path / "ft")
    code, _, err = run(capsys, *argv)
    assert code == 2 and "layered.h5ad" in squeeze(err)  # X is log-normalised: no counts found
    code, out, err = run(capsys, *argv, "--layer", "umi")
    assert code == 0, err
    code, out, err = run(capsys, "evaluate", "--model", tmp_path / "ft", "--input", path,
                         "--label", "cell_type", "--layer", "umi")
    assert code == 0, err


def test_embed_refuses_to_overwrite_its_input_before_computing(capsys, runs, pbmc_subset,
                                                               monkeypatch):
    import biofm.modalities.singlecell.embed as embed

    def never(*args, **kwargs):
        raise AssertionError("cells were embedded for an output that cannot be written")

    monkeypatch.setattr(embed, "embed_h5ad", never)
    code, _, err = run(capsys, "embed", "--model", runs["geneformer"], "--input", pbmc_subset,
                       "--output", pbmc_subset)
    assert code == 2 and "overwrite" in err and "Traceback" not in err


def test_an_obsm_copy_of_a_file_with_repeated_cell_names_is_refused(tmp_path):
    from biofm.errors import BiofmError
    from biofm.modalities.singlecell import SINGLECELL
    from biofm.modalities.singlecell.embed import write_obsm_copy

    counts = np.random.default_rng(0).poisson(3.0, size=(4, 3)) + 1
    path = write_h5ad(tmp_path / "dup.h5ad", counts, ["CD3E", "LYZ", "NKG7"],
                      cells=["a", "b", "a", "c"])
    output = tmp_path / "copy.h5ad"
    for refuse in (lambda: SINGLECELL.check_embedding_output(path, output),  # before the work
                   lambda: write_obsm_copy(path, output, ["a", "b", "a", "c"],
                                           np.eye(4, 2, dtype=np.float32))):
        with pytest.raises(BiofmError, match="obs names are not unique") as caught:
            refuse()
        assert "obs_names_make_unique()" in caught.value.fix
    assert not output.exists()
    SINGLECELL.check_embedding_output(path, tmp_path / "e.parquet")  # rows stay in file order


def test_predict_and_evaluate_use_the_saved_cell_type_names(capsys, runs, pbmc_subset,
                                                            tmp_path):
    import anndata

    output = tmp_path / "ft"
    code, _, err = run(capsys, "finetune", "--model", runs["geneformer"], "--input", pbmc_subset,
                       "--label", "cell_type", "--mode", "probe", "--output", output)
    assert code == 0, err
    cells = anndata.read_h5ad(pbmc_subset)
    names = sorted(map(str, cells.obs["cell_type"].unique()))
    assert json.loads((output / "labels.json").read_text())["classes"] == names
    code, _, err = run(capsys, "predict", "--model", output, "--input", pbmc_subset,
                       "--output", tmp_path / "p.csv")
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "p.csv")
    assert set(predicted["prediction"]) <= set(names)
    assert [c for c in predicted.columns if c.startswith("prob_")] == [f"prob_{n}" for n in names]
    # a file with a cell type the model never saw: refused, not silently renumbered
    cells.obs["cell_type"] = cells.obs["cell_type"].astype(str)
    cells.obs.loc[cells.obs_names[0], "cell_type"] = "Platelet"
    cells.write_h5ad(tmp_path / "new_type.h5ad")
    code, _, err = run(capsys, "evaluate", "--model", output, "--input",
                       tmp_path / "new_type.h5ad", "--label", "cell_type")
    assert code == 2 and "Traceback" not in err and "Platelet" in err
