"""`biofm` command line: a thin table of subcommands → typed functions in
`biofm.commands`. User errors print as one paragraph (no traceback), exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

from biofm.errors import BiofmError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Pretrain biomedical foundation models, transfer them, measure the gain.")
out = Console()
err = Console(stderr=True)


def _table_console() -> Console:
    """The terminal, or for a log or pipe a console wide enough for the whole table
    (rich would cut cells at 80 columns; a table with intervals runs past 160)."""
    return out if out.is_terminal else Console(width=400)


ModelOpt = typer.Option(..., "--model", help="biofm checkpoint dir, or an HF ESM (ESM-2, "
                                              "Nucleotide Transformer) or BERT (BERT, DNABERT, "
                                              "Geneformer) dir")
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when there is a GPU, with bf16 "
                                                  "autocast) | cpu | cuda | cuda:N")
OverwriteOpt = typer.Option(False, "--overwrite", help="replace an existing output file")
LayerOpt = typer.Option(None, help=".h5ad: the counts matrix (X, raw or a layer name; "
                                   "default: the first that holds counts)")


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v",
                                          help="log what biofm decides (the attention kernel, "
                                               "the device) to stderr")) -> None:
    """Pretrain biomedical foundation models, transfer them, measure the gain."""
    if verbose:
        import logging

        from rich.logging import RichHandler

        handler = RichHandler(console=err, show_path=False, show_time=False)
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s",
                            handlers=[handler], force=True)


@app.command()
def pretrain(
    config: Optional[str] = typer.Option(None, help="YAML file or preset name (see `biofm list`)"),
    modality: Optional[str] = typer.Option(None, help="protein | molecule | dna | singlecell | "
                                                      "timeseries"),
    input: Optional[str] = typer.Option(None, "--input", help="FASTA / FASTQ / SMILES / .h5ad / "
                                                              "CSV file, packaged corpus or "
                                                              "`biofm prepare` directory"),
    column: Optional[str] = typer.Option(None, help="SMILES column of a CSV"),
    objective: Optional[str] = typer.Option(None, help="mlm | clm | masked-value | masked-patch "
                                                       "| next-patch"),
    size: Optional[str] = typer.Option(None, help="tiny | mini | small | esm2-8m | ... | esm2-650m"),
    tokenizer: Optional[str] = typer.Option(None, help="a tokenizer name (`biofm list`), or a "
                                                       "checkpoint dir whose vocabulary to reuse"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    output: Path = typer.Option(Path("runs/pretrain"), help="run directory"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --output from its "
                                                        "last checkpoint, with its own settings"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a run already in --output"),
    init: Optional[str] = typer.Option(None, help="start from this checkpoint (continued pretraining)"),
    on_error: str = typer.Option("raise", help="raise | skip bad records"),
    set_: List[str] = typer.Option([], "--set", help="override any field: train.lr=1e-3"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Pretrain a model with a self-supervised objective."""
    from biofm import commands
    from biofm.config import pretrain_config
    from biofm.train.distributed import is_main

    from biofm.train.runs import run_config

    if resume and config is None and modality is None:  # the run's own settings
        config = str(run_config(output))
    cfg = pretrain_config(config, modality=modality, objective=objective, size=size,
                          data={"input": input, "column": column, "tokenizer": tokenizer,
                                "on_error": on_error},
                          train={"max_steps": steps, "batch_size": batch_size, "lr": lr,
                                 "seed": seed, "progress": False if no_progress else None},
                          overrides=set_)
    result = commands.pretrain(cfg, output, resume=resume, init=init, overwrite=overwrite)
    if is_main():  # under torchrun: one line, not one per rank
        out.print(f"done: {result.steps} steps, train loss {result.final_loss:.4f}"
                  + (f", best valid loss {result.best_valid_loss:.4f}"
                     if result.best_valid_loss else "")
                  + f"; model in {result.model_dir}")


@app.command()
def prepare(
    input: str = typer.Option(..., "--input", help="FASTA / SMILES file or packaged corpus"),
    output: Path = typer.Option(..., "--output", help="directory to write (an older prepared "
                                                       "corpus there is replaced)"),
    modality: str = typer.Option("protein", help="protein | molecule"),
    tokenizer: Optional[str] = typer.Option(None, help="tokenizer name, or a model / prepared "
                                                        "directory whose tokenizer.json to reuse"),
    column: Optional[str] = typer.Option(None, help="SMILES column of a CSV"),
    shard_tokens: int = typer.Option(1 << 24, "--shard-tokens", help="tokens per shard file"),
    max_len: int = typer.Option(1026, "--max-len", help="longest sequence in tokens, specials "
                                                        "included (longer ones are truncated)"),
    valid_fraction: float = typer.Option(0.05, help="share of records held out for validation"),
    seed: int = typer.Option(0, help="seed of the train/valid assignment"),
    on_error: str = typer.Option("raise", help="raise | skip bad records"),
    workers: int = typer.Option(1, "--workers", min=1,
                                help="tokenising processes (the shards are identical for any "
                                     "number)"),
) -> None:
    """Tokenise a corpus once into sharded, memory-mapped files for `pretrain --input DIR`."""
    from biofm import commands
    from biofm.config import DataConfig

    data = DataConfig.from_dict({"modality": modality, "input": input, "column": column,
                                 "tokenizer": tokenizer, "valid_fraction": valid_fraction,
                                 "on_error": on_error})
    index = commands.prepare(data, output, shard_tokens=shard_tokens, max_len=max_len, seed=seed,
                             workers=workers)
    train, valid = index["splits"]["train"], index["splits"]["valid"]
    out.print(f"wrote {train['sequences']:,} train and {valid['sequences']:,} valid sequences "
              f"({train['tokens'] + valid['tokens']:,} tokens in "
              f"{len(train['shards']) + len(valid['shards'])} shards) to {output}")


@app.command()
def embed(
    model: str = ModelOpt,
    input: Path = typer.Option(..., "--input", help="FASTA, SMILES or .h5ad file"),
    output: Path = typer.Option(..., "--output", help=".parquet (id + vector) or .npy; for "
                                                       ".h5ad input also .h5ad (a copy with "
                                                       "obsm['X_biofm'])"),
    pooling: str = typer.Option("mean", help="mean | cls"),
    batch_size: int = typer.Option(64),
    column: Optional[str] = typer.Option(None, help="input column of a CSV (SMILES, sequence, "
                                                    "text)"),
    on_error: str = typer.Option("raise", help="raise | skip bad records"),
    layer: Optional[str] = LayerOpt,
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Per-sequence embeddings of a FASTA / SMILES file, or per-cell of an .h5ad."""
    from biofm import commands

    vectors = commands.embed(model, input, output, pooling=pooling, batch_size=batch_size,
                             column=column, on_error=on_error, layer=layer, overwrite=overwrite,
                             device=device)
    out.print(f"wrote {vectors.shape[0]} embeddings of width {vectors.shape[1]} to {output}")


def _task(task: Optional[str], input: Optional[Path], label: Optional[str], kind: Optional[str],
          modality: str, split: str, column: Optional[str], layer: Optional[str] = None,
          classes=None):
    from biofm import commands

    if task:
        return commands.get_task(task)
    if input is None or label is None:
        raise BiofmError("say what to train on", fix="pass --task NAME, or --input CSV --label COLUMN")
    return commands.task_from_file(input, label, kind, modality, split, column, layer=layer,
                                   classes=classes)


@app.command()
def finetune(
    model: Optional[str] = typer.Option(None, "--model", help="pretrained checkpoint dir"),
    task: Optional[str] = typer.Option(None, help="packaged task (see `biofm list`)"),
    input: Optional[Path] = typer.Option(None, "--input", help="CSV of your own labeled data"),
    label: Optional[str] = typer.Option(None, help="label column of --input"),
    column: Optional[str] = typer.Option(None, help="sequence/SMILES column of --input"),
    kind: Optional[str] = typer.Option(None, help="classification | regression | survival "
                                                  "(ehr) (with --input; default: from the "
                                                  "labels)"),
    split: str = typer.Option("random", help="random | scaffold (molecules) | group (text) | given (ehr) (with --input)"),
    layer: Optional[str] = LayerOpt,
    mode: str = typer.Option("full", help="probe | full | lora | scratch"),
    epochs: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    seed: int = typer.Option(0),
    config: Optional[Path] = typer.Option(None, help="FinetuneConfig YAML"),
    output: Path = typer.Option(Path("runs/finetune"), help="output directory"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a fine-tuned model "
                                                              "already in --output"),
    set_: List[str] = typer.Option([], "--set", help="override a field: lora_r=16"),
    device: str = DeviceOpt,
) -> None:
    """Fine-tune / probe / LoRA-adapt a pretrained model on a labeled task."""
    from biofm import commands
    from biofm.adapt import FinetuneConfig
    from biofm.adapt.saving import check_finetune_output
    from biofm.config import deep_merge, parse_overrides

    if model is None:
        raise BiofmError("--model is required", fix="pass a pretrained checkpoint directory "
                         "(mode scratch uses its architecture with random weights)")
    check_finetune_output(output, overwrite)  # before the model and the data are read
    base = FinetuneConfig.load(config).model_dump(mode="json") if config else {}
    flags = {k: v for k, v in {"mode": mode, "epochs": epochs, "lr": lr, "seed": seed,
                               "device": device}.items()
             if v is not None}
    cfg = FinetuneConfig.from_dict(deep_merge(deep_merge(base, flags), parse_overrides(set_)))
    from biofm.interop import load_pretrained
    pretrained = load_pretrained(model)
    the_task = _task(task, input, label, kind, pretrained.config.data.modality, split, column,
                     layer)
    result = commands.finetune(model, the_task, cfg, output, seed=cfg.seed, base=pretrained,
                               overwrite=overwrite)
    out.print_json(json.dumps({"task": the_task.name, "mode": cfg.mode, "valid": result.valid_metrics,
                               "test": result.test_metrics}))
    out.print(f"model and metrics in {output}")


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", help="output dir of `biofm finetune`"),
    task: Optional[str] = typer.Option(None),
    input: Optional[Path] = typer.Option(None, "--input"),
    label: Optional[str] = typer.Option(None),
    column: Optional[str] = typer.Option(None),
    kind: Optional[str] = typer.Option(None, help="default: the fine-tuned model's kind"),
    layer: Optional[str] = LayerOpt,
    split: str = typer.Option("test", help="train | valid | test"),
    seed: Optional[int] = typer.Option(None, help="default: the fine-tuning seed"),
    output: Optional[Path] = typer.Option(None, help="metrics JSON"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Metrics of a fine-tuned model: ROC-AUC/PR-AUC/accuracy or RMSE/MAE/Spearman."""
    from biofm import commands
    from biofm.adapt import load_finetuned
    from biofm.io import check_new_output

    from biofm.registry import MODALITIES

    if output is not None:
        check_new_output(output, overwrite)  # before the model and the data are read
    info = load_finetuned(model).info
    modality = _modality(model)
    # rebuild the split the model was fine-tuned on (same strategy and seed), else the
    # "test" rows of a user's CSV may have been training rows
    strategies = MODALITIES.get(modality).split_strategies
    strategy = info.get("split") if info.get("split") in strategies else "random"
    seed = info["config"]["seed"] if seed is None else seed
    the_task = _task(task or (None if input else info.get("task")), input, label,
                     kind or info["kind"], modality, strategy, column, layer,
                     classes=commands.saved_classes(model))
    metrics = commands.evaluate(model, the_task, output, seed=seed, split=split, device=device,
                                overwrite=overwrite)
    out.print_json(json.dumps(metrics))


@app.command()
def predict(
    model: Path = typer.Option(..., "--model", help="output dir of `biofm finetune`"),
    input: Path = typer.Option(..., "--input", help="unlabeled inputs: FASTA, SMILES, .h5ad, "
                                                    "or a CSV with an input column"),
    output: Path = typer.Option(..., "--output", help="CSV: id, prediction, prob_<class>"),
    column: Optional[str] = typer.Option(None, help="input column of a CSV"),
    layer: Optional[str] = LayerOpt,
    on_error: str = typer.Option("raise", help="raise | skip bad records"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Apply a fine-tuned model to unlabeled data: predictions and class probabilities."""
    from biofm import commands

    frame = commands.predict(model, input, output, column=column, layer=layer,
                             on_error=on_error, overwrite=overwrite, device=device)
    out.print(f"wrote {len(frame)} predictions to {output}")


@app.command()
def compare(
    model: str = ModelOpt,
    task: Optional[str] = typer.Option(None, help="packaged task (see `biofm list`)"),
    input: Optional[Path] = typer.Option(None, "--input", help="CSV (or .h5ad) of your own "
                                                               "labeled data"),
    label: Optional[str] = typer.Option(None, help="label column of --input"),
    column: Optional[str] = typer.Option(None, help="sequence/SMILES column of --input"),
    kind: Optional[str] = typer.Option(None, help="classification | regression | survival "
                                                  "(ehr) (with --input; default: from the "
                                                  "labels)"),
    split: str = typer.Option("random", help="random | scaffold (molecules) | group (text) | given (ehr) (with --input)"),
    layer: Optional[str] = LayerOpt,
    seeds: int = typer.Option(3, help="splits / fine-tuning seeds (mean ± sd)"),
    mode: List[str] = typer.Option(["scratch", "probe", "full", "lora"],
                                   help="transfer modes to run (repeat)"),
    max_train: int = typer.Option(0, help="cap on training examples (0: all)"),
    intervals: bool = typer.Option(False, "--intervals",
                                   help="bootstrap 95% intervals of binary ROC-AUC / PR-AUC, "
                                        "of each property's ROC-AUC (admet), or of mean "
                                        "Dice / HD95 (segmentation); 1,000 resamples of "
                                        "the test split"),
    output: Optional[Path] = typer.Option(None, help="directory for results.md / .csv"),
    device: str = DeviceOpt,
) -> None:
    """What pretraining buys on one task: classical baselines, scratch, probe, fine-tune
    and LoRA on the same splits, as a table."""
    from biofm.bench.compare import compare as run_compare
    from biofm.interop import load_pretrained

    pretrained = load_pretrained(model)
    the_task = _task(task, input, label, kind, pretrained.config.data.modality, split, column,
                     layer)
    table = run_compare(pretrained, the_task, seeds=seeds, modes=list(mode),
                        max_train=max_train, say=err.print, device=device,
                        intervals=intervals)
    table.render(_table_console(),
                 title=f"{the_task.name}: test metrics, mean ± sd over {seeds} seed(s)")
    if output is not None:
        table.save(output)
        out.print(f"results in {output}/")


def _modality(finetuned: Path) -> str:
    from biofm.config import PretrainConfig
    return PretrainConfig.load(finetuned / "base" / "config.yaml").data.modality


@app.command()
def generate(
    model: str = ModelOpt,
    num: int = typer.Option(100, help="how many to sample"),
    output: Path = typer.Option(..., "--output", help="samples: .smi (molecules, one per "
                                                       "line), .fasta (proteins), .txt"),
    temperature: float = typer.Option(1.0),
    top_k: int = typer.Option(0, help="0 = off"),
    top_p: float = typer.Option(1.0, help="1.0 = off"),
    seed: int = typer.Option(0),
    max_length: int = typer.Option(128, help="max new tokens"),
    reference: Optional[str] = typer.Option(None, help="training set for novelty (file or corpus)"),
    keep_invalid: bool = typer.Option(False, "--keep-invalid", help="write invalid samples too "
                                                                    "(e.g. unparsable SMILES)"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Sample from a causal-LM model; report on the samples (molecules: validity /
    uniqueness / novelty; proteins: length and composition)."""
    from biofm import commands

    _, report = commands.generate(model, num, output, temperature=temperature, top_k=top_k,
                                  top_p=top_p, seed=seed, max_new_tokens=max_length,
                                  reference=reference, keep_invalid=keep_invalid,
                                  overwrite=overwrite, device=device)
    out.print_json(json.dumps(report))
    out.print(f"wrote {report['written']} of {num} samples to {output}"
              + (f" ({report['invalid']} invalid left out; --keep-invalid keeps them)"
                 if report["invalid"] and not keep_invalid else ""))


@app.command("score-variants")
def score_variants(
    model: str = ModelOpt,
    sequence: str = typer.Option(..., help="wild-type protein sequence"),
    variants: List[str] = typer.Option([], "--variant", help="e.g. A23G or A23G:K40R (repeat)"),
    variants_file: Optional[Path] = typer.Option(None, "--variants", help="CSV with a 'variant' "
                                                                         "column, or one per line"),
    output: Optional[Path] = typer.Option(None, help="CSV of scores"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Zero-shot mutation effect: masked-marginal log-likelihood ratio (ESM-1v)."""
    from biofm import commands

    frame = commands.score_variants(model, sequence, list(variants), output,
                                    variants_file=variants_file, overwrite=overwrite,
                                    device=device)
    out.print(frame.to_string(index=False))


@app.command()
def forecast(
    model: str = typer.Argument(..., help="time-series checkpoint dir, or a baseline: "
                                          "seasonal-naive | last-value | arima | ets | baselines"),
    input: str = typer.Argument(..., help="long / wide CSV, or a corpus: flu-boston | "
                                          "flu-chicago | us-contagious | covid-daily"),
    output: Path = typer.Option(..., "--output", help="directory for forecasts.csv, plots/ "
                                                      "and evaluation/"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier forecast in "
                                                              "--output"),
    horizon: int = typer.Option(4, help="periods ahead (weeks for weekly series)"),
    mode: List[str] = typer.Option(["zero-shot"], help="zero-shot | full | lora (fine-tune on "
                                                       "the history) | scratch (same "
                                                       "architecture, random init); repeat "
                                                       "to compare"),
    evaluate: bool = typer.Option(False, "--evaluate", help="rolling-origin evaluation against "
                                                            "the baselines"),
    origins: int = typer.Option(10, help="forecast origins per series (with --evaluate)"),
    context: int = typer.Option(52, help="periods of history before the first origin"),
    steps: int = typer.Option(100, help="fine-tuning steps (--mode full | lora | scratch)"),
    seed: int = typer.Option(0),
    target: Optional[str] = typer.Option(None, help="FluSight `target` column (default: 'wk inc "
                                                    "ili' weekly, 'day inc' daily, 'mo inc' "
                                                    "monthly)"),
    series: List[str] = typer.Option([], "--series", help="only these series ids (repeat)"),
    layout: str = typer.Option("auto", help="auto | long | wide"),
    id_column: str = typer.Option("series_id", help="series id column (long layout)"),
    date_column: Optional[str] = typer.Option(None, help="date column (default: date / week)"),
    value_column: str = typer.Option("value", help="value column (long layout)"),
    freq: Optional[str] = typer.Option(None, help="D | W | M (default: detected from the "
                                                  "dates)"),
    date_format: Optional[str] = typer.Option(None, "--date-format",
                                              help="strftime format of every date, e.g. "
                                                   "%d/%m/%Y (default: ISO dates, epi-weeks "
                                                   "YYYYWW, or d/m/y vs m/d/y read from the "
                                                   "data)"),
    negative: str = typer.Option("error", help="error | nan: negative values"),
    no_plots: bool = typer.Option(False, "--no-plots", help="skip the per-series PNGs"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    device: str = DeviceOpt,
) -> None:
    """Forecast time series with quantiles (FluSight CSV + plots); --evaluate scores
    rolling origins against seasonal naive, last value, ARIMA and ETS."""
    from biofm import commands

    result = commands.forecast(
        model, input, output, horizon=horizon, mode=list(mode), evaluate=evaluate, origins=origins,
        context=context, steps=steps, seed=seed, target=target, series_ids=list(series),
        plots=not no_plots, layout=layout, id_column=id_column, date_column=date_column,
        value_column=value_column, freq=freq, negative=negative, date_format=date_format,
        overwrite=overwrite, progress=not no_progress, device=device)
    if len(result.repairs):
        err.print(result.repairs.summary(), highlight=False)
    if result.evaluation is not None:
        out.print(result.evaluation.table(f"rolling-origin evaluation: "
                                          f"{', '.join(result.forecasters)} vs baselines "
                                          "(rel_WIS vs seasonal naive)"))
    for note in result.notes:
        err.print(note, highlight=False)
    n = result.forecasts["location"].nunique()
    for name in result.forecasters:
        plots = result.plots[name]
        out.print(f"{name}: forecasts of {n} series in {result.files[name]}"
                  + (f", plots in {plots[0].parent}" if plots else ""), markup=False,
                  highlight=False)


@app.command()
def segment(
    model: Path = typer.Option(..., "--model", help="segmenter dir (segmenter.json), e.g. "
                                                    "the demo's OUTPUT/imaging/segmenter"),
    input: Path = typer.Option(..., "--input", help="NIfTI / DICOM series / image to segment"),
    output: Path = typer.Option(..., "--output", help="mask .nii.gz (the input's shape and "
                                                      "affine)"),
    box: Optional[str] = typer.Option(None, help="voxel box i0,j0,i1,j1 (every slice) or "
                                                 "i0,j0,k0,i1,j1,k1, end-exclusive"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Segment the structure in a box (MedSAM-style) and write its mask as NIfTI."""
    from biofm import commands

    mask = commands.segment(model, input, output, box=box, overwrite=overwrite, device=device)
    out.print(f"wrote a mask of {int(mask.sum()):,} voxels, shape {mask.shape}, to {output}")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo_out"), help="where the table and plots go"),
    seeds: int = typer.Option(3, help="fine-tuning seeds per cell"),
    quick: bool = typer.Option(False, "--quick", help="a seconds-long run (for tests)"),
    only: List[str] = typer.Option([], "--only", help="only this domain (molecule, protein, "
                                                      "dna, singlecell, timeseries, ehr, text, "
                                                      "imaging, drug-target); repeat"),
) -> None:
    """Pretrain on real unlabeled data, transfer to real tasks, print the gain table."""
    from biofm.demo import run_demo

    run_demo(output, seeds=seeds, quick=quick, only=list(only))


@app.command()
def export(
    model: str = ModelOpt,
    output: Path = typer.Option(..., "--output", help="directory to write"),
    format: str = typer.Option("hf-esm", help="hf-esm: transformers EsmForMaskedLM layout; "
                                              "hf-bert: BertForMaskedLM (BERT-layout models); "
                                              "hf-gpt2: GPT2LMHeadModel (GPT-2-layout causal "
                                              "LMs)"),
) -> None:
    """Export a biofm model to Hugging Face layout (loadable with `transformers`)."""
    from biofm.interop import load_pretrained, save_hf_bert, save_hf_esm, save_hf_gpt2

    writers = {"hf-esm": (save_hf_esm, "EsmForMaskedLM"),
               "hf-bert": (save_hf_bert, "BertForMaskedLM"),
               "hf-gpt2": (save_hf_gpt2, "GPT2LMHeadModel")}
    if format not in writers:
        raise BiofmError(f"unknown export format {format!r}",
                         fix="use --format hf-esm, hf-bert or hf-gpt2")
    save, architecture = writers[format]
    save(load_pretrained(model), output)
    out.print(f"wrote a {architecture} directory to {output}")


@app.command()
def effects(
    data: str = typer.Option("acic2016", "--data", help="acic2016 | nhefs | a CSV file (with "
                                                       "--treatment and --outcome)"),
    output: Path = typer.Option(..., "--output", help="directory for results.md / results.csv "
                                                      "(and cate.csv)"),
    simulations: str = typer.Option("1", help="ACIC 2016 simulations, e.g. 1-3 or 1,4,7 (1-10)"),
    seeds: int = typer.Option(3, help="TransTEE bootstrap members (2+ give an interval)"),
    units: Optional[int] = typer.Option(None, help="a random subset of units, 0 = all (default: "
                                                   "1000 for acic2016, all otherwise)"),
    bootstrap: Optional[int] = typer.Option(None, help="bootstrap replicates for the baselines' "
                                                       "intervals (default: 0 for acic2016, 30 "
                                                       "otherwise)"),
    steps: Optional[int] = typer.Option(None, help="TransTEE optimizer steps per member at most "
                                                   "(default 1000; early stopping)"),
    method: List[str] = typer.Option([], "--method", help="only these methods (repeat): transtee, "
                                                          "s-learner-gbm, t-learner-gbm, "
                                                          "x-learner-gbm, ipw-logistic, "
                                                          "standardisation-ols"),
    treatment: Optional[str] = typer.Option(None, help="CSV: the 0/1 treatment column"),
    outcome: Optional[str] = typer.Option(None, help="CSV: the numeric outcome column"),
    covariates: List[str] = typer.Option([], "--covariates", help="CSV: covariate columns (repeat "
                                                                  "or comma-separate; default: "
                                                                  "all other columns)"),
    seed: int = typer.Option(0),
    device: str = DeviceOpt,
    overwrite: bool = OverwriteOpt,
) -> None:
    """Treatment effects: TransTEE against S/T/X-learners, IPW and standardisation
    (ACIC 2016: PEHE and ATE error; NHEFS or a CSV: ATE with 95% intervals)."""
    from biofm.causal import effects_note, run_effects

    names = [c.strip() for item in covariates for c in item.split(",") if c.strip()]
    table = run_effects(data, output, simulations=simulations, seeds=seeds, units=units,
                        bootstrap=bootstrap, steps=steps, methods=list(method),
                        treatment=treatment, outcome=outcome, covariates=names or None,
                        seed=seed, device=device, overwrite=overwrite,
                        log=lambda line: err.print(line, markup=False, highlight=False))
    table.render(_table_console(),
                 title=f"treatment effects: {data}")
    out.print(effects_note(data), markup=False, highlight=False)
    out.print(f"wrote {output / 'results.md'} and results.csv", markup=False, highlight=False)


# -- pairs (issue #15): two towers, one value per pair; typed functions in biofm.pairs.commands --
PairModelsOpt = typer.Option(..., "--model", help="two tower checkpoints, --model twice (biofm "
                                                  "or HF ESM-2 dirs); a packaged task gives "
                                                  "each the column of its modality")
PairColumnsOpt = typer.Option([], "--column", help="with --input: the two input columns, in "
                                                   "the order of the --model towers")
PairTaskOpt = typer.Option(None, help="packaged pair task: kiba")
PairInputOpt = typer.Option(None, "--input", help="CSV of labeled pairs")
PairLabelOpt = typer.Option(None, help="value column of --input")
PairMaxTrainOpt = typer.Option(0, "--max-train", help="at most this many training pairs")
PairOnErrorOpt = typer.Option("raise", help="raise | skip pairs with an invalid input")


def _say(line: str) -> None:
    err.print(line, markup=False, highlight=False)


@app.command("pair-finetune")
def pair_finetune_command(
    model: List[str] = PairModelsOpt,
    task: Optional[str] = PairTaskOpt,
    input: Optional[Path] = PairInputOpt,
    column: List[str] = PairColumnsOpt,
    label: Optional[str] = PairLabelOpt,
    split: str = typer.Option("random", help="random | cold-target | cold-drug (kiba; "
                                              "cold-COLUMN for --input) | cold-both | given"),
    mode: str = typer.Option("full", help="probe (frozen towers) | lora | full | scratch"),
    tower_mode: List[str] = typer.Option([], "--tower-mode", help="per tower, twice in side "
                                                                  "order: frozen | lora | full "
                                                                  "| scratch"),
    head: str = typer.Option("concat-mlp", help="concat-mlp | cross-attention"),
    epochs: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    seed: int = typer.Option(0),
    max_train: int = PairMaxTrainOpt,
    on_error: str = PairOnErrorOpt,
    set_: List[str] = typer.Option([], "--set", help="a PairConfig field: max_tokens=512, "
                                                     "long_inputs=truncate, per_item=8"),
    output: Path = typer.Option(Path("runs/pair-finetune"), help="pair model directory"),
    device: str = DeviceOpt,
) -> None:
    """Train a two-tower pair model (e.g. protein x SMILES affinity) and save it."""
    from biofm.config import deep_merge, parse_overrides
    from biofm.pairs.commands import run_pair_finetune
    from biofm.pairs.model import PairConfig

    flags = {"mode": mode, "head": head, "epochs": epochs, "lr": lr, "seed": seed,
             "device": device, "tower_modes": list(tower_mode) or None}
    cfg = PairConfig.from_dict(deep_merge({k: v for k, v in flags.items() if v is not None},
                                          parse_overrides(set_)))
    result = run_pair_finetune(model, cfg, task=task, input=input, columns=column, label=label,
                               split=split, max_train=max_train, on_error=on_error,
                               output=output, log=_say)
    out.print_json(json.dumps({"mode": result.mode, "valid": result.valid_metrics,
                               "test": result.test_metrics}))
    out.print(f"pair model and metrics in {output}", markup=False, highlight=False)


@app.command("pair-compare")
def pair_compare_command(
    model: List[str] = PairModelsOpt,
    task: Optional[str] = PairTaskOpt,
    input: Optional[Path] = PairInputOpt,
    column: List[str] = PairColumnsOpt,
    label: Optional[str] = PairLabelOpt,
    split: str = typer.Option("cold-target", help="random | cold-target | cold-drug | "
                                                   "cold-both | given"),
    seeds: int = typer.Option(3),
    mode: List[str] = typer.Option([], "--mode", help="only these (repeat): scratch, probe, "
                                                      "lora, full"),
    max_train: int = PairMaxTrainOpt,
    epochs: int = typer.Option(15, help="epochs at most (early stopping, patience 4)"),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="inputs cut to this many tokens "
                                                             "before windowing"),
    quick: bool = typer.Option(False, "--quick", help="a seconds-long run (tests)"),
    on_error: str = PairOnErrorOpt,
    output: Optional[Path] = typer.Option(None, help="directory for results.md / .csv"),
    device: str = DeviceOpt,
) -> None:
    """Pretrained towers (probe / LoRA / fine-tune) vs scratch towers vs GBT on ECFP +
    composition on a pair task: CI, MSE, Pearson, Spearman, per-target ranking."""
    from biofm.pairs.commands import run_pair_compare
    from biofm.pairs.compare import MODES

    table = run_pair_compare(model, task=task, input=input, columns=column, label=label,
                             split=split, seeds=seeds, modes=list(mode) or MODES,
                             max_train=max_train, epochs=epochs, max_tokens=max_tokens,
                             quick=quick, device=device, on_error=on_error, output=output,
                             log=_say)
    table.render(out, title=f"pair comparison ({split})")
    if output is not None:
        out.print(f"wrote {output / 'results.md'} and results.csv", markup=False,
                  highlight=False)


@app.command("screen")
def screen_command(
    model: Path = typer.Option(..., "--model", help="output dir of `biofm pair-finetune`"),
    target: Path = typer.Option(..., "--target", help="targets to screen against (FASTA)"),
    library: str = typer.Option("chembl-drugs", help="CSV of compounds, or chembl-drugs "
                                                     "(approved drugs: repurposing)"),
    column: Optional[str] = typer.Option(None, help="input column of the library"),
    output: Path = typer.Option(..., "--output", help="ranked CSV: target_id, rank, score, "
                                                      "library_line, the library's columns"),
    top: int = typer.Option(0, help="keep each target's best N (0: all)"),
    chunk_size: int = typer.Option(5000, "--chunk-size", help="library rows read at a time"),
    on_error: str = typer.Option("raise", help="raise | skip invalid compounds (counted)"),
    overwrite: bool = OverwriteOpt,
    device: str = DeviceOpt,
) -> None:
    """Score every library compound against each target and rank them."""
    from biofm.pairs.screen import screen

    result = screen(model, target, library, output, column=column, chunk_size=chunk_size,
                    top=top, on_error=on_error, overwrite=overwrite, device=device, log=_say)
    for note in result.notes:
        _say(note)
    if result.skipped:
        _say(result.skipped.summary())
    out.print(f"ranked {result.compounds:,} compounds against {len(result.targets)} target(s) "
              f"in {result.output}", markup=False, highlight=False)


@app.command("screen-report")
def screen_report_command(
    model: Path = typer.Option(..., "--model", help="output dir of `biofm pair-finetune "
                                                     "--task kiba`"),
    output: Optional[Path] = typer.Option(None, help="directory for results.md / .csv"),
    device: str = DeviceOpt,
) -> None:
    """Screen the model's test targets against its test compounds with `biofm screen`;
    per-target Spearman and EF10 of the ranking against the baselines."""
    from biofm.pairs.screen_report import screen_report

    table = screen_report(model, device=device, log=_say)
    table.render(_table_console(),
                 title="screen on unseen targets: per-target Spearman and top-10% enrichment "
                       "(EF10: 1 random, 10 perfect)")
    if output is not None:
        table.save(output)


@app.command("pair-pretrain")
def pair_pretrain_command(
    model: List[str] = PairModelsOpt,
    task: Optional[str] = typer.Option(None, help="packaged pair task: kiba | genes (DNA x "
                                                  "protein)"),
    input: Optional[Path] = PairInputOpt,
    column: List[str] = PairColumnsOpt,
    label: Optional[str] = PairLabelOpt,
    split: Optional[str] = typer.Option(None, help="kiba: random | cold-target (default) | "
                                                   "cold-drug | cold-both | given; genes: "
                                                   "by-genome (default) | random"),
    threshold: Optional[float] = typer.Option(None, help="pairs with a value >= this are "
                                                         "positives (default: the task's; "
                                                         "KIBA binders 12.1)"),
    mode: str = typer.Option("full", help="frozen | lora | full towers"),
    epochs: int = typer.Option(10),
    margin: float = typer.Option(0.0, help="additive margin on the positives (ConPLex)"),
    max_train: int = PairMaxTrainOpt,
    max_tokens: int = typer.Option(512, "--max-tokens", help="tokens per input at most"),
    seed: int = typer.Option(0),
    output: Optional[Path] = typer.Option(None, help="directory for tower_a/, tower_b/ "
                                                     "(usable by pair-finetune) and recall"),
    device: str = DeviceOpt,
) -> None:
    """Contrastive co-embedding of two towers (symmetric InfoNCE) on positive pairs;
    prints test retrieval recall@k both ways against the task's baselines."""
    from biofm.pairs.coembed import CoEmbedConfig
    from biofm.pairs.commands import run_pair_pretrain

    cfg = CoEmbedConfig.from_dict({"mode": mode, "epochs": epochs, "margin": margin,
                                   "max_tokens": max_tokens, "seed": seed, "device": device})
    result = run_pair_pretrain(model, cfg, task=task, input=input, columns=column,
                               label=label, split=split, max_train=max_train,
                               threshold=threshold, output=output, log=_say)
    a, b = result.sides
    result.table(task or "pairs").render(_table_console(),
                                         title=f"test retrieval: recall@k = each {a} "
                                                    f"ranks the {b}s; reverse = each {b} "
                                                    f"ranks the {a}s")


@app.command()
def convert(
    input: str = typer.Option(..., "--input", help="OMOP CDM (.duckdb, or a folder of CSV / "
                                                    "parquet tables), an events CSV, a MEDS "
                                                    "directory, or nafld | pbcseq | eunomia"),
    output: Path = typer.Option(..., "--output", help="MEDS directory to write"),
    to: str = typer.Option("meds", "--to", help="meds"),
    source_format: str = typer.Option("auto", "--from", help="auto | omop | events-csv | meds"),
    overwrite: bool = OverwriteOpt,
) -> None:
    """Convert EHR data (OMOP CDM, an events CSV, a packaged cohort) to MEDS."""
    from biofm.modalities.ehr import convert_to_meds

    if to != "meds":
        raise BiofmError(f"unknown target format {to!r}", fix="use --to meds")
    summary = convert_to_meds(input, output, source_format, overwrite=overwrite)
    for note in summary["notes"]:
        err.print(note, markup=False, highlight=False)
    out.print(f"wrote {summary['events']:,} events of {summary['subjects']:,} subjects "
              f"({summary['codes']:,} codes) to {output}")


@app.command("list")
def list_components() -> None:
    """Registered modalities, tokenizers, backbones, objectives, corpora, tasks, presets."""
    from importlib import resources

    from biofm.registry import BACKBONES, CORPORA, HEADS, MODALITIES, OBJECTIVES, TASKS, TOKENIZERS

    for title, reg in (("modalities", MODALITIES), ("tokenizers", TOKENIZERS),
                       ("backbones", BACKBONES), ("objectives", OBJECTIVES), ("heads", HEADS),
                       ("corpora", CORPORA), ("tasks", TASKS)):
        out.print(f"[bold]{title}[/]: {', '.join(reg.names())}")
    from biofm.pairs import PAIR_TASKS  # two inputs per example: pair-finetune / pair-pretrain

    out.print(f"[bold]pair tasks[/]: {', '.join(PAIR_TASKS.names())}")
    presets = sorted(p.name[:-5] for p in (resources.files("biofm") / "configs" / "pretrain").iterdir()
                     if p.name.endswith(".yaml"))
    out.print(f"[bold]pretrain presets[/]: {', '.join(presets)}")


# The click that parses argv: typer >= 0.2x vendors its own copy, whose errors derive
# from typer.TyperException (and whose Exit/Abort are typer's); older typer used click's.
_USAGE_ERRORS = tuple({click.ClickException, getattr(typer, "TyperException", click.ClickException)})


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one paragraph on stderr and exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="biofm", standalone_mode=False)
    except BiofmError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)  # "[nH]" is SMILES
        sys.exit(2)
    except _USAGE_ERRORS as exc:  # unknown option, missing value, no subcommand (shows help)
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:  # older typer raises it, newer returns it
        code = exc.exit_code
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit code 130
        err.print("interrupted: rerun with --resume to continue from the last checkpoint")
    if code:  # --help gives 0, a finished command None
        sys.exit(code)
