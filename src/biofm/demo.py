"""`biofm demo`: pretrain tiny models on real unlabeled data shipped in installed
packages, transfer them to real labeled tasks, and print the gain of
pretraining over training from scratch next to a classical baseline.

Rows: scratch (same architecture, random init), pretrained + linear probe,
pretrained + full fine-tune, pretrained + LoRA, and a random forest on
fingerprints (molecules: Morgan; peptides: amino-acid and dipeptide
composition; DNA: 4-mer frequencies) or, for cells, logistic regression on PCA
of log-normalised expression, each over several seeds (mean ± sd).
Forecasting: a patch transformer pretrained on other surveillance collections
forecasts a held-out one (Boston ILI) zero-shot, fine-tuned, and from scratch,
against seasonal naive, last value, ARIMA and ETS (rolling origin; WIS,
relative WIS, interval coverage). Whatever the numbers are, they are printed;
the table, per-seed rows and loss curves go to `output`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from biofm.adapt import FinetuneConfig, finetune
from biofm.adapt.finetune import task_metrics
from biofm.bench.metrics import primary_metric
from biofm.bench.report import ResultTable, plot_loss_curves
from biofm.commands import pretrain
from biofm.config import PretrainConfig, preset_path
from biofm.data.tasks import Splits, Task
from biofm.model import FoundationModel
from biofm.registry import TASKS

console = Console(width=110)


@dataclass(frozen=True)
class DemoTask:
    task: str
    preset: str
    max_train: int  # cap on training examples, to keep the demo within minutes


TASK_PLAN = (DemoTask("freesolv", "molecule-mlm-tiny", 0),
             DemoTask("solubility", "molecule-mlm-tiny", 0),
             DemoTask("amp", "protein-mlm-tiny", 1500),
             DemoTask("crp-sites", "dna-mlm-tiny", 0),
             DemoTask("pbmc-celltype", "cell-scgpt-tiny", 0))
MODES = ("scratch", "probe", "full", "lora")


@dataclass(frozen=True)
class ForecastDemo:
    """Pretrain on other surveillance collections, forecast a held-out one."""

    target: str = "flu-boston"  # never seen in pretraining (the preset leaves it out)
    preset: str = "ts-patch-tiny"
    origins: int = 6  # rolling origins per series (the last ones), horizons 1-4
    steps: int = 100  # fine-tuning steps on each series' history before its first origin


FORECAST = ForecastDemo()


def run_demo(output: str | Path = "demo_out", *, seeds: int = 3, quick: bool = False) -> ResultTable:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models, model_dirs, curves = {}, {}, {}
    for preset in sorted({t.preset for t in TASK_PLAN} | {FORECAST.preset}):
        console.rule(f"pretraining {preset}")
        config = _demo_config(preset, quick)
        result = pretrain(config, output / "pretrain" / preset)
        models[preset] = FoundationModel.load(result.model_dir)
        model_dirs[preset] = result.model_dir
        curves[preset] = [(h["step"], h["loss"]) for h in result.history if "loss" in h]
        curves[f"{preset} (valid)"] = [(h["step"], h["valid_loss"]) for h in result.history
                                       if "valid_loss" in h]
    plot_loss_curves(curves, output / "pretrain_loss.png", title="Pretraining loss (real corpora)")

    table = ResultTable()
    for plan in TASK_PLAN:
        task = TASKS.get(plan.task)()
        console.rule(f"transfer: {task.name} ({task.kind}, {task.split} split)")
        task_start = time.perf_counter()
        for seed in range(seeds):
            splits = _cap(task.load(seed), 200 if quick else plan.max_train, seed)
            table.add(task.name, _baseline_label(task), seed, _baseline(task, splits, seed))
            for mode in MODES:
                cfg = _finetune_config(mode, seed, quick)
                result = finetune(models[plan.preset], splits, task.kind, cfg)
                table.add(task.name, _label(mode), seed, _keep(task, result.test_metrics))
        console.print(f"{task.name}: {seeds} seed(s) x {len(MODES) + 1} methods in "
                      f"{time.perf_counter() - task_start:.0f} s")
    console.rule(f"forecasting: {FORECAST.target} (held out of pretraining)")
    forecasts = _forecasting(model_dirs[FORECAST.preset], seeds, quick)
    elapsed = time.perf_counter() - start
    for kind in ("regression", "classification"):
        part = ResultTable([r for r in table.rows if TASKS.get(r["task"])().kind == kind])
        part.metric_names = [m for m in table.metric_names if any(m in r for r in part.rows)]
        if part.rows:
            part.render(console, title=f"{kind}: test metrics, mean ± sd over {seeds} seed(s)")
    forecasts.render(console, title="forecasting: rolling origin, horizons 1-4 weeks "
                                    "(rel_wis < 1 beats seasonal naive)")
    console.print(f"demo finished in {elapsed:.0f} s")
    table = ResultTable(table.rows + forecasts.rows,
                        table.metric_names + [m for m in forecasts.metric_names
                                              if m not in table.metric_names])
    table.to_markdown(output / "results.md")
    table.to_csv(output / "results.csv")
    table.to_csv(output / "results_per_seed.csv", per_seed=True)
    console.print(f"table, per-seed results and pretrain_loss.png written to {output}/")
    return table


@dataclass(frozen=True)
class _Named:
    """A forecaster under another name (one per method and seed in one evaluation)."""

    name: str
    inner: object

    def forecast(self, history, horizon, quantiles):
        return self.inner.forecast(history, horizon, quantiles)  # type: ignore[attr-defined]


def _forecasting(model_dir: Path, seeds: int, quick: bool) -> ResultTable:
    """Zero-shot, fine-tuned and from-scratch forecasters against the four baselines,
    scored by rolling origin on a collection the model never saw. Fine-tuning sees
    only each series' values before its first scored origin."""
    from biofm.modalities.timeseries import load_corpus
    from biofm.modalities.timeseries.evaluation import choose_origins, rolling_origin
    from biofm.modalities.timeseries.finetune import finetune_forecaster
    from biofm.modalities.timeseries.forecast import baselines_for
    from biofm.modalities.timeseries.model import PatchForecaster

    series = load_corpus(FORECAST.target)
    origins, steps = (2, 5) if quick else (FORECAST.origins, FORECAST.steps)
    series = series[:3] if quick else series
    history = [s.head(choose_origins(s, n_origins=origins, max_horizon=4, context=52)[0])
               for s in series]
    methods: list[tuple[str, int, object]] = [("pretrained: zero-shot", 0,
                                               PatchForecaster.load(model_dir))]
    for seed in range(seeds):
        methods += [(label, seed, finetune_forecaster(model_dir, history, mode=mode, steps=steps,
                                                      seed=seed))
                    for label, mode in (("scratch", "scratch"), ("pretrained: fine-tune", "full"))]
    named = [_Named(f"{label}#{seed}", f) for label, seed, f in methods]
    evaluation = rolling_origin(series, [*named, *baselines_for(series)], horizons=range(1, 5),
                                context=52, origins=origins)
    table = ResultTable()
    for row in evaluation.summary.itertuples(index=False):
        label, _, seed = str(row.forecaster).partition("#")
        table.add(FORECAST.target, label, int(seed or 0),
                  {"rel_wis": row.rel_WIS, "wis": row.WIS, "mae": row.MAE,
                   "cov50": row.cov50, "cov95": row.cov95})
    return table


def _demo_config(preset: str, quick: bool) -> PretrainConfig:
    config = PretrainConfig.load(preset_path("pretrain", preset))
    if quick:
        return config.replace(data={"max_records": 300},
                              train={"max_steps": 10, "eval_every": 5, "save_every": 10,
                                     "warmup_steps": 2, "progress": False})
    return config


def _finetune_config(mode: str, seed: int, quick: bool) -> FinetuneConfig:
    lr = {"scratch": 2e-3, "full": 1e-3, "lora": 3e-3, "probe": 0.0}[mode]
    return FinetuneConfig(mode=mode, seed=seed, lr=lr, batch_size=64, epochs=2 if quick else 15,
                          patience=1 if quick else 4)


def _label(mode: str) -> str:
    return {"scratch": "scratch", "probe": "pretrained: probe",
            "full": "pretrained: fine-tune", "lora": "pretrained: LoRA"}[mode]


def _keep(task: Task, metrics: dict[str, float]) -> dict[str, float]:
    """Regression: rmse, mae, spearman. Classification: roc_auc, accuracy, and pr_auc
    (binary) or macro_f1 (multiclass)."""
    keys = ("roc_auc", "pr_auc", "macro_f1", "accuracy") if task.kind == "classification" \
        else ("rmse", "mae", "spearman")
    return {k: metrics[k] for k in keys if k in metrics}


def _cap(splits: Splits, max_train: int, seed: int) -> Splits:
    if not max_train or len(splits.train) <= max_train:
        return splits
    keep = np.random.default_rng(seed).choice(len(splits.train), max_train, replace=False)
    return Splits(splits.train.subset(np.sort(keep)), splits.valid, splits.test)


def _baseline_label(task: Task) -> str:
    if task.modality == "singlecell":
        from biofm.modalities.singlecell.bench import BASELINE
        return BASELINE
    return "RF on fingerprints/k-mers"


def _baseline(task: Task, splits: Splits, seed: int) -> dict[str, float]:
    if task.modality == "singlecell":  # what a scanpy user does first
        from biofm.modalities.singlecell.bench import baseline_metrics
        return _keep(task, baseline_metrics(splits, seed))
    featurise = {"molecule": _morgan, "protein": _composition, "dna": _kmer_frequencies}[task.modality]
    x_train, x_test = featurise(splits.train.texts), featurise(splits.test.texts)
    if task.kind == "regression":
        model = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=-1)
        pred = model.fit(x_train, splits.train.labels).predict(x_test)
    else:
        model = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=-1)
        pred = model.fit(x_train, splits.train.labels).predict_proba(x_test)[:, 1]
    return _keep(task, task_metrics(task.kind, splits.test.labels, pred))


def _morgan(smiles: list[str]) -> np.ndarray:
    from biofm.modalities.molecules.fingerprints import morgan_fingerprints
    return morgan_fingerprints(smiles)


def _kmer_frequencies(sequences: list[str], k: int = 4) -> np.ndarray:
    """Overlapping k-mer (k=4, 256 features) frequencies: the classic DNA baseline."""
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    out = np.zeros((len(sequences), len(index)), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        hits = [index[seq[i: i + k]] for i in range(len(seq) - k + 1) if seq[i: i + k] in index]
        for j in hits:
            out[row, j] += 1 / max(len(hits), 1)
    return out


AMINO = "ACDEFGHIKLMNPQRSTVWY"
DIPEPTIDES = {a + b: i for i, (a, b) in enumerate(itertools.product(AMINO, AMINO))}


def _composition(sequences: list[str]) -> np.ndarray:
    """Amino-acid (20) + dipeptide (400) frequencies: the classic peptide baseline."""
    out = np.zeros((len(sequences), 420), dtype=np.float32)
    for row, seq in enumerate(sequences):
        seq = seq.upper()
        for aa in seq:
            if aa in AMINO:
                out[row, AMINO.index(aa)] += 1 / max(len(seq), 1)
        for i in range(len(seq) - 1):
            j = DIPEPTIDES.get(seq[i: i + 2])
            if j is not None:
                out[row, 20 + j] += 1 / max(len(seq) - 1, 1)
    return out


__all__ = ["run_demo", "primary_metric"]
