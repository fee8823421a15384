"""`biofm demo`: pretrain tiny models on real unlabeled data shipped in installed
packages, transfer them to real labeled tasks, and print the gain of
pretraining over training from scratch next to a classical baseline.

Rows (`biofm.bench.compare`): scratch (same architecture, random init),
pretrained + linear probe, pretrained + full fine-tune, pretrained + LoRA, and
classical baselines (molecules: RF on Morgan fingerprints; peptides: RF on
amino-acid and dipeptide composition; DNA: linear and RF on 4-mer frequencies;
cells: logistic regression on PCA of log-normalised expression), each over
several seeds (mean ± sd).
EHR (nafld: death within 5 years of a landmark, a patient-timeline model against
logistic regression and gradient-boosted trees on code counts and last values) and
clinical text (IU X-ray reports: abnormal or not, against TF-IDF + logistic regression)
are rows of the same kind. Imaging (`biofm.modalities.imaging.demo`): an MAE-pretrained
ViT classifies brain-region patches and segments box-prompted structures on a subject
never seen, against scratch, a MONAI UNet and the box itself. Drug–target
(`biofm.pairs.demo`): the demo's protein and molecule models as two towers on KIBA's
cold-target split, against gradient-boosted trees on ECFP + composition.
Forecasting: a patch transformer pretrained on other surveillance collections
forecasts a held-out one (Boston ILI) zero-shot, fine-tuned, and from scratch,
against seasonal naive, last value, ARIMA and ETS (rolling origin; WIS,
relative WIS, interval coverage). Whatever the numbers are, they are printed;
the table, per-seed rows and loss curves go to `output`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rich.console import Console

from biofm.bench.compare import compare
from biofm.bench.metrics import primary_metric
from biofm.bench.provenance import provenance
from biofm.bench.report import ResultTable, plot_loss_curves
from biofm.commands import pretrain
from biofm.config import PretrainConfig, preset_path
from biofm.device import chosen_small_model_threads
from biofm.errors import BiofmError
from biofm.io import atomic_write_text
from biofm.model import FoundationModel
from biofm.pairs.demo import KIBA_DEMO, QUICK, kiba_demo
from biofm.registry import TASKS

console = Console(width=110)


# seed caps where a row's seeds cost the most: the whole demo took 795-835 s on a quiet
# 2-core machine with 3 seeds of pbmc-celltype and 1,000 amp peptides (budget 900 s)
EHR_SEEDS, TEXT_SEEDS, CELL_SEEDS = 2, 2, 2


@dataclass(frozen=True)
class DemoTask:
    task: str
    preset: str
    max_train: int  # cap on training examples, to keep the demo within minutes
    seeds: int = 0  # at most this many seeds for the row (0: the demo's --seeds)


TASK_PLAN = (DemoTask("freesolv", "molecule-mlm-tiny", 0),
             DemoTask("solubility", "molecule-mlm-tiny", 0),
             DemoTask("amp", "protein-mlm-tiny", 600),
             DemoTask("crp-sites", "dna-mlm-tiny", 0),
             DemoTask("pbmc-celltype", "cell-geneformer-tiny", 0, seeds=CELL_SEEDS),
             DemoTask("nafld-death-5y", "ehr-mlm-tiny", 1000, seeds=EHR_SEEDS),
             DemoTask("iu-xray-abnormal", "text-mlm-tiny", 200, seeds=TEXT_SEEDS))
# domains with their own rows (not `bench.compare` on a TASKS task)
IMAGING, DRUG_TARGET = "imaging", "drug-target"
IMAGING_SEEDS = 1  # one seed: MAE pretraining + 2 tasks x 4-5 methods (~2 min on 2 cores)
DRUG_TARGET_SEEDS = 1  # a smoke test of the pipeline (docs/pairs.md has 3 seeds)


@dataclass(frozen=True)
class ForecastDemo:
    """Pretrain on other surveillance collections, forecast a held-out one."""

    target: str = "flu-boston"  # never seen in pretraining (the preset leaves it out)
    preset: str = "ts-patch-tiny"
    origins: int = 6  # rolling origins per series (the last ones), horizons 1-4
    steps: int = 100  # fine-tuning steps on each series' history before its first origin


FORECAST = ForecastDemo()


def domains() -> list[str]:
    """The demo's domains: the modalities of its presets, imaging and drug-target."""
    return sorted({_modality(p) for p in {t.preset for t in TASK_PLAN} | {FORECAST.preset}}
                  | {IMAGING, DRUG_TARGET})


def _modality(preset: str) -> str:
    return PretrainConfig.load(preset_path("pretrain", preset)).data.modality


def run_demo(output: str | Path = "demo_out", *, seeds: int = 3, quick: bool = False,
             only: Sequence[str] = ()) -> ResultTable:
    """Every domain's rows (or those of `only`, modality names); writes the tables,
    per-seed rows, loss curves and `provenance.json` (commit, date, machine, seeds)."""
    unknown = sorted(set(only) - set(domains()))
    if unknown:
        raise BiofmError(f"the demo has no domain {', '.join(unknown)}",
                         fix=f"choose --only among: {', '.join(domains())}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    wanted = set(only) or set(domains())
    plan = [t for t in TASK_PLAN if _modality(t.preset) in wanted]
    forecast = _modality(FORECAST.preset) in wanted
    presets = {t.preset for t in plan} | ({FORECAST.preset} if forecast else set())
    if DRUG_TARGET in wanted:  # its towers are the demo's protein and molecule models
        presets |= {KIBA_DEMO.protein_preset, KIBA_DEMO.molecule_preset}
    models, model_dirs, curves = {}, {}, {}
    for preset in sorted(presets):
        console.rule(f"pretraining {preset}")
        config = _demo_config(preset, quick)
        result = pretrain(config, output / "pretrain" / preset, overwrite=True)
        models[preset] = FoundationModel.load(result.model_dir)
        model_dirs[preset] = result.model_dir
        curves[preset] = [(h["step"], h["loss"]) for h in result.history if "loss" in h]
        curves[f"{preset} (valid)"] = [(h["step"], h["valid_loss"]) for h in result.history
                                       if "valid_loss" in h]
    if curves:
        plot_loss_curves(curves, output / "pretrain_loss.png",
                         title="Pretraining loss (real corpora)")

    table, row_seeds = ResultTable(), {}
    for row in plan:
        task = TASKS.get(row.task)()
        row_seeds[task.name] = min(seeds, row.seeds or seeds)
        console.rule(f"transfer: {task.name} ({task.kind}, {task.split} split)")
        table.extend(compare(models[row.preset], task, seeds=row_seeds[task.name],
                             max_train=row.max_train, quick=quick, say=console.print))
    forecasts = ResultTable()
    if forecast:
        console.rule(f"forecasting: {FORECAST.target} (held out of pretraining)")
        forecasts = _forecasting(model_dirs[FORECAST.preset], seeds, quick)
    images = ResultTable()
    if IMAGING in wanted:
        from biofm.modalities.imaging import demo as imaging

        console.rule("imaging: MAE pretraining, region classification, box-prompted "
                     "segmentation")
        n = min(seeds, IMAGING_SEEDS)
        images = imaging.run(output / "imaging", seeds=n, quick=quick, say=_say, show=False)
        if images.rows:  # none when the imaging data is not installed
            row_seeds[IMAGING] = n
    pairs = ResultTable()
    if DRUG_TARGET in wanted:
        console.rule(f"drug–target: KIBA {KIBA_DEMO.split} (two towers)")
        row_seeds[DRUG_TARGET] = min(seeds, DRUG_TARGET_SEEDS)
        pairs = kiba_demo(models[KIBA_DEMO.protein_preset], models[KIBA_DEMO.molecule_preset],
                          seeds=row_seeds[DRUG_TARGET], quick=quick, output=output, say=_say)
    elapsed = time.perf_counter() - start
    _render(table, row_seeds, forecasts, images, pairs, quick)
    console.print(f"demo finished in {elapsed:.0f} s")
    for part in (forecasts, images, pairs):
        table.extend(part)
    table.save(output)
    record = provenance(command="biofm demo", seeds=list(range(seeds)), quick=quick,
                        domains=sorted(wanted), elapsed_s=round(elapsed, 1),
                        row_seeds=row_seeds,
                        pretrain_seeds={p: _demo_config(p, quick).train.seed for p in models},
                        small_model_threads=chosen_small_model_threads())
    atomic_write_text(output / "provenance.json", json.dumps(record, indent=1))
    console.print(f"tables, per-seed results, pretrain_loss.png and provenance.json written "
                  f"to {output}/")
    return table


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _render(table: ResultTable, row_seeds: dict[str, int], forecasts: ResultTable,
            images: ResultTable, pairs: ResultTable, quick: bool) -> None:
    """The tables by domain; `row_seeds`: seeds per TASKS task, imaging and drug-target."""
    def over(part: ResultTable) -> str:
        counts = sorted({row_seeds[r["task"]] for r in part.rows})
        return "/".join(map(str, counts)) + " seed(s)"

    for kind in ("regression", "classification"):
        part = table.subset(lambda r: TASKS.get(r["task"])().kind == kind)
        if part.rows:
            part.render(console, title=f"{kind}: test metrics, mean ± sd over {over(part)}")
    if forecasts.rows:
        forecasts.render(console, title="forecasting: rolling origin, horizons 1-4 weeks "
                                        "(rel_wis < 1 beats seasonal naive)")
    if images.rows:
        from biofm.modalities.imaging.demo import render

        render(images, row_seeds[IMAGING])
    if pairs.rows:
        plan = QUICK if quick else KIBA_DEMO
        pairs.render(console, title=f"drug–target: KIBA {plan.split}, {plan.max_train} training "
                                    f"pairs, {row_seeds[DRUG_TARGET]} seed(s) (a smoke test of "
                                    "the pipeline; docs/pairs.md has 3 seeds)")


@dataclass(frozen=True)
class _Named:
    """A forecaster under another name (one per method and seed in one evaluation)."""

    name: str
    inner: object

    def forecast(self, history, horizon, quantiles):
        return self.inner.forecast(history, horizon, quantiles)  # type: ignore[attr-defined]

    def forecast_many(self, histories, horizon, quantiles):  # one batched pass per series
        return self.inner.forecast_many(histories, horizon, quantiles)  # type: ignore


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
                   "cov50": row.cov50, "cov95": row.cov95,
                   "fallbacks": row.fallbacks})  # ARIMA / ETS points that fell back
    return table


def _demo_config(preset: str, quick: bool) -> PretrainConfig:
    config = PretrainConfig.load(preset_path("pretrain", preset))
    if quick:
        return config.replace(data={"max_records": 300},
                              train={"max_steps": 10, "eval_every": 5, "save_every": 10,
                                     "warmup_steps": 2, "progress": False})
    return config


__all__ = ["domains", "primary_metric", "run_demo"]
