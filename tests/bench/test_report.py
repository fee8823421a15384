"""Result tables: summary statistics, rendering, files, loss-curve plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from rich.console import Console

from biofm.bench.report import ResultTable, plot_loss_curves


@pytest.fixture
def table() -> ResultTable:
    t = ResultTable()
    for seed, auc in enumerate([0.80, 0.90, 1.00]):
        t.add("amp", "pretrained", seed, {"roc_auc": auc, "accuracy": 0.5 + seed * 0.1})
    t.add("amp", "scratch", 0, {"roc_auc": 0.7, "accuracy": 0.6})
    t.add("esol", "pretrained", 0, {"rmse": 1.25})
    return t


def test_summary_mean_and_sample_sd(table):
    s = table.summary()
    assert list(s.columns) == ["task", "method", "seeds", "roc_auc", "roc_auc_sd", "roc_auc_n",
                               "accuracy", "accuracy_sd", "accuracy_n", "rmse", "rmse_sd",
                               "rmse_n"]
    assert list(zip(s.task, s.method)) == [("amp", "pretrained"), ("amp", "scratch"),
                                           ("esol", "pretrained")]
    first = s.iloc[0]
    assert first.seeds == 3 and first.roc_auc_n == 3
    assert first.roc_auc == pytest.approx(0.9) and first.roc_auc_sd == pytest.approx(0.1)
    assert math.isnan(s.iloc[1].roc_auc_sd)            # one seed: no sd
    assert math.isnan(s.iloc[2].roc_auc) and s.iloc[2].rmse == 1.25
    assert s.iloc[2].roc_auc_n == 0 and s.iloc[2].rmse_n == 1
    assert len(table) == 5 and len(table.frame()) == 5


def test_means_say_how_many_seeds_they_are_over(tmp_path):
    t = ResultTable()
    t.add("amp", "pretrained", 0, {"roc_auc": 0.8, "accuracy": 0.5})
    t.add("amp", "pretrained", 1, {"roc_auc": float("nan"), "accuracy": 0.7})  # one-class split
    t.add("amp", "pretrained", 2, {"roc_auc": 0.9, "accuracy": 0.6})
    row = t.summary().iloc[0]
    assert row.seeds == 3 and row.roc_auc_n == 2 and row.accuracy_n == 3
    assert row.roc_auc == pytest.approx(0.85)
    line = t.to_markdown(tmp_path / "r.md").read_text().splitlines()[2]
    assert line == "| amp | pretrained | 3 | 0.850 ± 0.071 (n=2) | 0.600 ± 0.100 |"
    t.add("amp", "scratch", 0, {"roc_auc": float("nan"), "accuracy": 0.5})
    t.add("amp", "scratch", 1, {"roc_auc": 0.7, "accuracy": 0.5})
    assert t.to_markdown(tmp_path / "r.md").read_text().splitlines()[3] == \
        "| amp | scratch | 2 | 0.700 (n=1) | 0.500 ± 0.000 |"


def test_empty_table():
    assert ResultTable().summary().empty


def test_render_and_markdown(tmp_path, table):
    console = Console(record=True, width=120)
    table.render(console, title="AMP")
    text = console.export_text()
    assert "0.900 ± 0.100" in text and "scratch" in text and "AMP" in text
    path = table.to_markdown(tmp_path / "out" / "report.md")
    lines = path.read_text().splitlines()
    assert lines[0] == "| task | method | seeds | roc_auc | accuracy | rmse |"
    assert lines[1] == "|---|---|---:|---:|---:|---:|"
    assert lines[2] == "| amp | pretrained | 3 | 0.900 ± 0.100 | 0.600 ± 0.100 | — |"
    assert lines[3] == "| amp | scratch | 1 | 0.700 | 0.600 | — |"
    assert len(lines) == 5


def test_csv_summary_and_per_seed(tmp_path, table):
    summary = pd.read_csv(table.to_csv(tmp_path / "s.csv"))
    assert summary.shape == (3, 12) and summary.roc_auc[0] == pytest.approx(0.9)
    runs = pd.read_csv(table.to_csv(tmp_path / "r.csv", per_seed=True))
    assert list(runs.columns[:3]) == ["task", "method", "seed"] and len(runs) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "s.csv"]  # no temp left


def test_plot_loss_curves_writes_png(tmp_path):
    curves = {"pretrain": [(i, 3.0 / (i + 1)) for i in range(50)],
              "finetune": [(0, 1.0), (10, 0.5)], "empty": []}
    path = plot_loss_curves(curves, tmp_path / "plots" / "loss.png", log_y=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in path.parent.iterdir()] == ["loss.png"]


def test_interval_columns_show_beside_their_metric(tmp_path, table):
    t = ResultTable()
    for seed, (auc, low, high) in enumerate([(0.80, 0.70, 0.88), (0.90, 0.82, 0.96)]):
        t.add("amp", "pretrained", seed, {"roc_auc": auc, "accuracy": 0.6, "roc_auc_lo": low,
                                          "roc_auc_hi": high})
    t.add("amp", "scratch", 0, {"roc_auc": 0.7, "accuracy": 0.5})  # a row without intervals
    lines = t.to_markdown(tmp_path / "r.md").read_text().splitlines()
    assert lines[0] == "| task | method | seeds | roc_auc | roc_auc 95% CI | accuracy |"
    assert lines[2] == "| amp | pretrained | 2 | 0.850 ± 0.071 | [0.760, 0.920] | 0.600 ± 0.000 |"
    assert lines[3] == "| amp | scratch | 1 | 0.700 | — | 0.500 |"
    summary = pd.read_csv(t.to_csv(tmp_path / "s.csv"))
    assert summary.roc_auc_lo[0] == pytest.approx(0.76) and "roc_auc_hi" in summary.columns
    # one bound alone is not an interval: shown as a plain metric column
    t.add("amp", "scratch", 1, {"pr_auc_lo": 0.1})
    assert "pr_auc_lo" in t.to_markdown(tmp_path / "r.md").read_text().splitlines()[0]
