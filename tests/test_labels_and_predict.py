"""Labeled CSVs say what they did with the labels; `biofm predict` applies a fine-tuned model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tests.helpers import random_proteins, squeeze


def _csv(path, labels, n=90, seed=0):
    seqs = random_proteins(n, seed)
    pd.DataFrame({"sequence": seqs, "y": labels(seqs)}).to_csv(path, index=False)
    return path


def test_text_labels_are_classes_and_predict_names_them(cli, protein_mlm_run, tmp_path):
    data = _csv(tmp_path / "d.csv", lambda s: ["yes" if "K" in x else "no" for x in s])
    model = protein_mlm_run / "final"
    run = cli("finetune", "--model", model, "--input", data, "--label", "y", "--mode", "probe",
              "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert json.loads((tmp_path / "ft" / "labels.json").read_text()) == {
        "kind": "classification", "classes": ["no", "yes"]}
    run = cli("evaluate", "--model", tmp_path / "ft", "--input", data, "--label", "y")
    assert run.code == 0 and "roc_auc" in run.out, run.err

    unlabeled = tmp_path / "new.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "sequence": random_proteins(3, 9)}).to_csv(unlabeled,
                                                                                   index=False)
    run = cli("predict", "--model", tmp_path / "ft", "--input", unlabeled,
              "--output", tmp_path / "p.csv")
    assert run.code == 0, run.err
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["id"].tolist() == ["a", "b", "c"]
    assert set(table["prediction"]) <= {"yes", "no"}
    np.testing.assert_allclose(table["prob_no"] + table["prob_yes"], 1.0, rtol=1e-5)

    fasta = tmp_path / "new.fasta"
    fasta.write_text(">p1\nMKTAYIAK\n>p2\nGSHMLEK\n")
    run = cli("predict", "--model", tmp_path / "ft", "--input", fasta,
              "--output", tmp_path / "p2.csv")
    assert run.code == 0, run.err
    assert pd.read_csv(tmp_path / "p2.csv")["id"].tolist() == ["p1", "p2"]
    run = cli("predict", "--model", tmp_path / "ft", "--input", fasta,
              "--output", tmp_path / "p2.csv")
    assert run.code == 2 and "--overwrite" in run.err


def test_float_labels_are_a_regression_unless_told_otherwise(cli, protein_mlm_run, tmp_path):
    data = _csv(tmp_path / "d.csv", lambda s: [x.count("K") / len(x) for x in s])
    model = protein_mlm_run / "final"
    run = cli("finetune", "--model", model, "--input", data, "--label", "y", "--mode", "probe",
              "--output", tmp_path / "ft")
    assert run.code == 0 and '"rmse"' in run.out, run.err
    run = cli("finetune", "--model", model, "--input", data, "--label", "y", "--mode", "probe",
              "--kind", "classification", "--output", tmp_path / "ft2")
    assert run.code == 2 and "--kindregression" in squeeze(run.err)


def test_missing_labels_are_counted_and_one_class_is_refused(cli, protein_mlm_run, tmp_path):
    labels = lambda s: [None if i < 3 else int("K" in x) for i, x in enumerate(s)]  # noqa: E731
    data = _csv(tmp_path / "d.csv", labels)
    model = protein_mlm_run / "final"
    run = cli("finetune", "--model", model, "--input", data, "--label", "y", "--mode", "probe",
              "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    assert "leftout3row(s)withoutalabel('y')" in squeeze(run.err)
    one = _csv(tmp_path / "one.csv", lambda s: [1] * len(s))
    run = cli("finetune", "--model", model, "--input", one, "--label", "y", "--mode", "probe",
              "--kind", "classification", "--output", tmp_path / "ft3")
    assert run.code == 2 and "oneclassonly" in squeeze(run.err)


def test_a_header_only_csv_is_an_error(cli, protein_mlm_run, tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("sequence,y\n")
    run = cli("finetune", "--model", protein_mlm_run / "final", "--input", empty, "--label", "y",
              "--output", tmp_path / "ft")
    assert run.code == 2 and "headerbutnorows" in squeeze(run.err) and "Traceback" not in run.err


def test_finetune_and_compare_say_how_far_they_are(cli, protein_mlm_run, tmp_path):
    data = _csv(tmp_path / "d.csv", lambda s: [int("K" in x) for x in s])
    run = cli("finetune", "--model", protein_mlm_run / "final", "--input", data, "--label", "y",
              "--mode", "full", "--epochs", "2", "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    text = squeeze(run.err)
    assert "full:trainloss" in text and "afterepoch1of2" in text
    run = cli("compare", "--model", protein_mlm_run / "final", "--input", data, "--label", "y",
              "--seeds", "1", "--mode", "probe")
    assert run.code == 0 and "seed1/1:pretrained:probe:roc_auc" in squeeze(run.err), run.err
