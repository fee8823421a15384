"""The per-task comparison: classical baselines on real tasks, and the table's rows."""

from __future__ import annotations

from biofm.bench.compare import baselines, cap_train, keep_metrics
from biofm.registry import TASKS


def test_kmer_baselines_find_the_crp_motif_signal():
    task = TASKS.get("crp-sites")()
    scores = baselines(task, task.load(0), seed=0)
    assert set(scores) == {"linear on 4-mer frequencies", "RF on 4-mer frequencies"}
    # CRP sites carry a real sequence signal that 4-mer frequencies partly capture
    assert all(0.6 < s["roc_auc"] <= 1.0 for s in scores.values()), scores


def test_cap_train_keeps_valid_and_test():
    splits = TASKS.get("freesolv")().load(0)
    capped = cap_train(splits, 50, seed=1)
    assert len(capped.train) == 50 and capped.test is splits.test and capped.valid is splits.valid
    assert cap_train(splits, 0, seed=1) is splits


def test_keep_metrics_per_kind():
    regression, binary = TASKS.get("freesolv")(), TASKS.get("amp")()
    metrics = {"rmse": 1.0, "mae": 0.5, "spearman": 0.3, "pearson": 0.2, "roc_auc": 0.9,
               "pr_auc": 0.8, "accuracy": 0.7}
    assert list(keep_metrics(regression, metrics)) == ["rmse", "mae", "spearman"]
    assert list(keep_metrics(binary, metrics)) == ["roc_auc", "pr_auc", "accuracy"]


def test_each_modality_declares_its_baselines():
    from biofm.registry import MODALITIES

    labels = {name: [b.label for b in MODALITIES.get(name).baselines]
              for name in ("molecule", "protein", "singlecell")}
    assert labels == {"molecule": ["RF on Morgan fingerprints"],
                      "protein": ["RF on AA + dipeptide composition"],
                      "singlecell": ["LogReg on PCA (log-norm)"]}


def test_molecule_baseline_runs_on_a_real_task():
    task = TASKS.get("freesolv")()
    scores = baselines(task, cap_train(task.load(0), 200, 0), seed=0)
    assert set(scores) == {"RF on Morgan fingerprints"}
    assert scores["RF on Morgan fingerprints"]["spearman"] > 0.3


def test_intervals_are_asked_for_and_only_binary_tasks_get_them():
    from biofm.bench.metrics import interval_columns
    from biofm.registry import MODALITIES

    task = TASKS.get("crp-sites")()
    splits = task.load(0)
    plain = baselines(task, splits, seed=0)
    scores = baselines(task, splits, seed=0, intervals=True)
    label = "linear on 4-mer frequencies"
    assert list(plain[label]) == ["roc_auc", "pr_auc", "accuracy"]  # unchanged unless asked
    assert list(scores[label]) == ["roc_auc", "pr_auc", "accuracy", "roc_auc_lo", "roc_auc_hi",
                                   "pr_auc_lo", "pr_auc_hi"]
    row = scores[label]
    assert row["roc_auc_lo"] < row["roc_auc"] < row["roc_auc_hi"]
    assert row["pr_auc_lo"] < row["pr_auc"] < row["pr_auc_hi"]
    linear = next(b for b in MODALITIES.get(task.modality).baselines if b.label == label)
    predictions = linear.predict(task.kind, splits, 0)  # seeded: the same predictions
    assert {k: row[k] for k in ("roc_auc_lo", "pr_auc_hi")} == {
        k: interval_columns(splits.test.labels, predictions, seed=0)[k]
        for k in ("roc_auc_lo", "pr_auc_hi")}
    regression = TASKS.get("freesolv")()
    capped = cap_train(regression.load(0), 100, 0)
    assert list(baselines(regression, capped, 0, intervals=True)["RF on Morgan fingerprints"]) \
        == ["rmse", "mae", "spearman"]
