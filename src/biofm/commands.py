"""Typed entry points behind the CLI; each returns its results so tests and
notebooks call them in-process.

    prepare → index dict        pretrain → TrainResult   embed → np.ndarray
    finetune → FinetuneResult   evaluate → dict          generate → list[str]
    score_variants → DataFrame
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from biofm.adapt import FinetuneConfig, FinetuneResult, finetune as _finetune, load_finetuned
from biofm.adapt.saving import check_finetune_output, save_finetuned
from biofm.backbones import count_parameters
from biofm.config import DataConfig, PretrainConfig
from biofm.data.embeddings import check_new_embeddings
from biofm.data.records import Record, SkipLog
from biofm.data.shards import DEFAULT_SHARD_TOKENS, ShardedCorpus, is_prepared_corpus, prepare_corpus
from biofm.data.splits import random_split
from biofm.device import autocast_context
from biofm.data.tasks import Split, Task
from biofm.errors import BiofmError, require_file
from biofm.interop import load_pretrained
from biofm.io import atomic_path, atomic_write_text, check_new_output
from biofm.modalities.base import Modality
from biofm.model import FoundationModel
from biofm.registry import MODALITIES, TASKS, TOKENIZERS
from biofm.tokenizer import Tokenizer, load_tokenizer
from biofm.train import TrainResult, train
from biofm.train.distributed import is_main
from biofm.train.runs import check_run_dir, plot_run_loss

console = Console(stderr=True)


# -- data --------------------------------------------------------------------------
def iter_records(data: DataConfig, skipped: SkipLog | None = None) -> Iterator[Record]:
    """Records from a packaged corpus name or from the user's file, streamed."""
    records = MODALITIES.get(data.modality).records(data, skipped)
    return itertools.islice(records, data.max_records or None)


def load_records(data: DataConfig, skipped: SkipLog | None = None) -> list[Record]:
    """All records of `iter_records`, in memory; an empty result is an error."""
    records = list(iter_records(data, skipped))
    if not records:
        raise BiofmError("no usable records", path=data.input,
                         fix="check the file format, or use --on-error skip only for a few bad records")
    return records


def build_tokenizer(data: DataConfig, inputs: Sequence | Iterable) -> Tokenizer:
    """The modality's default tokenizer, the named one (fitted if it learns a
    vocabulary), or the tokenizer.json of a model / prepared-corpus directory."""
    if data.tokenizer is not None and (Path(data.tokenizer) / "tokenizer.json").is_file():
        return load_tokenizer(data.tokenizer)
    if data.tokenizer is None:
        return MODALITIES.get(data.modality).build_tokenizer(inputs)
    cls = TOKENIZERS.get(data.tokenizer)
    return cls.fit(inputs) if hasattr(cls, "fit") else cls()


def _input_path(input: str | Path) -> Path:
    """A readable input file, or a directory (MEDS, a folder of .txt notes): its
    modality's reader says what it holds."""
    path = Path(input)
    return path if path.is_dir() else require_file(path)


TABLE_SUFFIXES = (".csv", ".tsv")  # a table of inputs may hold any modality's


def modality_of(model: FoundationModel, path: str | Path | None = None) -> Modality:
    """The model's modality (saved in its config); the input's suffix must agree."""
    name = model.config.data.modality
    modality = MODALITIES.get(name)
    if path is not None and Path(path).suffix.lower() not in TABLE_SUFFIXES:
        for other in MODALITIES.names():
            if other != name and MODALITIES.get(other).matches(path) and not modality.matches(path):
                raise BiofmError(f"this file looks like {other} data but the model is a "
                                 f"{name} model", path=path,
                                 fix=f"pass a {name} file, or a model pretrained on {other} data")
    return modality


# -- prepare / pretrain -------------------------------------------------------------
def prepare(data: DataConfig, output: str | Path, *, shard_tokens: int = DEFAULT_SHARD_TOKENS,
            max_len: int = 1026, seed: int = 0, workers: int = 1) -> dict[str, Any]:
    """Tokenise a corpus once into sharded, memory-mapped files (`biofm prepare`).

    Records stream from the input (a tokenizer that learns its vocabulary reads
    it once more first); `data.valid_fraction` of them go to the valid split.
    `workers` processes tokenise (the files are the same for any number).
    Returns the index written to `output/index.json`.
    """
    skipped = SkipLog()
    tokenizer = build_tokenizer(data, _Inputs(data))
    if hasattr(tokenizer, "value_bins"):  # shards hold ids only, not the bins beside them
        raise BiofmError(f"a prepared corpus stores token ids only; the {tokenizer.name} "
                         "encoding also carries an expression bin per gene", path=data.input,
                         fix="pretrain on the .h5ad itself (pretrain --input FILE), or prepare "
                             "it with --tokenizer geneformer")
    with Progress(TextColumn("[bold]prepare"), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("prepare", total=None)
        records = _counted(iter_records(data, skipped), lambda: progress.advance(task))
        index = prepare_corpus(records, tokenizer, output, shard_tokens=shard_tokens,
                               max_len=max_len, valid_fraction=data.valid_fraction, seed=seed,
                               meta={"modality": data.modality, "source": str(data.input)},
                               workers=workers)
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    return index


def pretrain(config: PretrainConfig, output: str | Path, *, resume: bool = False,
             init: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Pretrain a model from a config; checkpoints, `final/`, metrics.jsonl and
    loss.png go under `output`.

    `config.data.input` may be a directory from `prepare`: it is then read
    lazily within `data.memory_budget_mb`. Under torchrun every rank runs this.
    A directory that holds a run is continued (`resume`, with the run's own
    settings), replaced (`overwrite`), or refused.
    """
    check_run_dir(Path(output), config, resume=resume, overwrite=overwrite, log=_log)
    modality = MODALITIES.get(config.data.modality)
    run_data = modality.pretraining_data(
        config, lambda tokenizer: _model_for_run(config, init, tokenizer))
    if run_data is not None:
        model, train_ids, valid_ids = run_data
    elif is_prepared_corpus(config.data.input):
        model, train_ids, valid_ids = _prepared_data(config, output, resume, init)
    else:
        model, train_ids, valid_ids = _record_data(config, output, resume, init)
    if is_main():
        console.print(f"pretraining a {model.config.backbone.kind} with "
                      f"{count_parameters(model):,} parameters ({config.objective.name}) on "
                      f"{len(train_ids):,} "
                      f"{config.data.modality} records; {len(valid_ids or []):,} held out")
    modality.check_run(model.config, model)
    result = train(model, train_ids, valid_ids, config.train, output, resume=resume,
                   console=console, augment=modality.augmentation(config, model))
    if is_main():
        plot_run_loss(result.history, Path(output) / "loss.png", config.data.modality)
    return result


def _record_data(config: PretrainConfig, output: str | Path, resume: bool,
                 init: str | Path | None) -> tuple[FoundationModel, list, list | None]:
    """Read and tokenise the records in memory; hold out a seeded valid split."""
    skipped = SkipLog()
    records = load_records(config.data, skipped)
    if skipped and is_main():
        console.print(skipped.summary(), markup=False, highlight=False)
    inputs = [r.data for r in records]
    model = _model_for_run(config, init, lambda: _tokenizer_for_run(
        output, resume, lambda: build_tokenizer(config.data, inputs)))
    index = random_split(len(inputs), (1 - config.data.valid_fraction, config.data.valid_fraction,
                                       0.0), seed=config.train.seed)
    fitted_elsewhere = init is not None or resume or (
        config.data.tokenizer is not None and Path(config.data.tokenizer).is_dir())
    if fitted_elsewhere:  # a vocabulary fitted on other data: check these inputs against it
        MODALITIES.get(config.data.modality).check_inputs(model, inputs, config.data.input, _log)
    encoded = model.encode(inputs)
    return model, [encoded[i] for i in index.train], [encoded[i] for i in index.valid] or None


def _log(line: str) -> None:
    if is_main():
        console.print(line, markup=False, highlight=False)


def _prepared_data(config: PretrainConfig, output: str | Path, resume: bool,
                   init: str | Path | None) -> tuple[FoundationModel, ShardedCorpus,
                                                     ShardedCorpus | None]:
    """A prepared directory: its shards (read lazily), its tokenizer and its split."""
    directory = Path(config.data.input)
    budget = int(config.data.memory_budget_mb * 2**20)
    train_ids, valid_ids = (ShardedCorpus(directory, split, budget) for split in ("train", "valid"))
    prepared_as = train_ids.index.get("modality", config.data.modality)
    if prepared_as != config.data.modality:
        raise BiofmError(f"this corpus was prepared as {prepared_as} data, the config says "
                         f"{config.data.modality}", path=directory, fix=f"pass --modality {prepared_as}")
    corpus_tokenizer = train_ids.tokenizer()
    model = _model_for_run(config, init,
                           lambda: _tokenizer_for_run(output, resume, lambda: corpus_tokenizer))
    if model.tokenizer.to_dict() != corpus_tokenizer.to_dict():
        raise BiofmError("the corpus was tokenised with another vocabulary than the model's",
                         path=directory, fix="prepare it again with --tokenizer pointing at the "
                                             "model or checkpoint directory")
    longest, max_len = max(train_ids.longest, valid_ids.longest), model.config.backbone.max_len
    if longest > max_len:
        raise BiofmError(f"the corpus holds sequences of {longest} tokens, the model takes at most "
                         f"{max_len}", path=directory,
                         fix=f"prepare it with --max-len {max_len}, or set backbone.max_len={longest}")
    return model, train_ids, valid_ids if len(valid_ids) else None


def _model_for_run(config: PretrainConfig, init: str | Path | None,
                   tokenizer: Callable[[], Tokenizer]) -> FoundationModel:
    """A fresh model (initial weights drawn from `train.seed`), or a saved / published
    one to continue pretraining (`init`)."""
    if init is None:
        built = tokenizer()  # fitting a vocabulary may draw random numbers: seed after it
        torch.manual_seed(config.train.seed)
        return FoundationModel(config, built)
    model = load_pretrained(init)
    model.config = config.replace(backbone=model.config.backbone.model_dump(mode="json"))
    return model


def _tokenizer_for_run(output: str | Path, resume: bool,
                       fresh: Callable[[], Tokenizer]) -> Tokenizer:
    """A resumed run keeps its checkpoint's vocabulary (a refit could reorder ids)."""
    from biofm.train.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(Path(output)) if resume else None
    if checkpoint is not None:
        return load_tokenizer(checkpoint)
    return fresh()


class _Inputs:
    """Re-iterable inputs of a corpus (a fitted tokenizer reads them before prepare does)."""

    def __init__(self, data: DataConfig) -> None:
        self.data = data

    def __iter__(self) -> Iterator[str]:
        return (record.data for record in iter_records(self.data))


def _counted(records: Iterable[Record], tick: Callable[[], None]) -> Iterator[Record]:
    for record in records:
        tick()
        yield record


# -- embed -------------------------------------------------------------------------
def embed(model_dir: str | Path, input: str | Path, output: str | Path | None = None, *,
          pooling: Literal["mean", "cls"] = "mean", batch_size: int = 64,
          column: str | None = None, on_error: Literal["raise", "skip"] = "raise",
          layer: str | None = None, overwrite: bool = False, device: str = "auto") -> np.ndarray:
    """Per-record embeddings of an input file, written in one of the modality's
    `embedding_formats` (.parquet, .npy; cells also a copy of the .h5ad); on `device`
    ("auto": CUDA when there is a GPU, under bf16 autocast)."""
    model = load_pretrained(model_dir, device=device)
    modality = modality_of(model, input)
    input = _input_path(input)
    if output is not None:  # before any work: a wrong name should not cost the computation
        modality.check_embedding_output(input, Path(output))
        check_new_embeddings(output, overwrite)  # .npy: its .ids.txt too
    skipped = SkipLog()
    with _progress() as progress, autocast_context(model.device, "auto"):
        ids, vectors = modality.embed_file(
            model, input, pooling=pooling, batch_size=batch_size, on_error=on_error,
            skipped=skipped, progress=_Advance(progress, progress.add_task("embed", total=None)),
            log=_log, column=column, layer=layer)
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    if output is not None:
        modality.write_embeddings(input, Path(output), ids, vectors)
    return vectors


# -- finetune / evaluate ---------------------------------------------------------------
def task_from_file(input: str | Path, label: str, kind: str | None, modality: str,
                   split: str = "random", column: str | None = None, seed: int = 0,
                   layer: str | None = None, classes: Sequence[str] | None = None) -> Task:
    """A task from the user's labeled file, as its modality reads one (a CSV with an
    input column; cells: an .h5ad with the label in an `obs` column). `kind` None:
    inferred from the labels. Notes about the data (rows left out) are printed."""
    task = MODALITIES.get(modality).task_from_file(_input_path(input), label=label, kind=kind,
                                                   split=split, seed=seed, column=column,
                                                   layer=layer, classes=classes)
    for note in task.notes:
        _log(f"{input}: {note}")
    return task


def finetune(model_dir: str | Path | None, task: Task, config: FinetuneConfig,
             output: str | Path | None = None, seed: int = 0,
             base: FoundationModel | None = None, overwrite: bool = False) -> FinetuneResult:
    """Adapt a pretrained model (or, with mode=scratch, its architecture) to `task`;
    a fine-tuned model already in `output` is replaced only with `overwrite`."""
    if output is not None:
        check_finetune_output(output, overwrite)
    base = base if base is not None else load_pretrained(model_dir)
    if base.config.data.modality != task.modality:
        raise BiofmError(f"task {task.name!r} is {task.modality} data but the model is a "
                         f"{base.config.data.modality} model", path=model_dir,
                         fix=f"use a model pretrained on {task.modality} data")
    splits = task.load(seed)
    MODALITIES.get(task.modality).check_inputs(
        base, splits.train.inputs + splits.valid.inputs + splits.test.inputs,
        task.source if Path(task.source).is_file() else task.name, _log)
    result = _finetune(base, splits, task.kind, config, log=_log)
    if output is not None:
        save_finetuned(result, base, output, config, task.kind, task.name, task.split,
                       overwrite=overwrite)
        atomic_write_text(Path(output) / "metrics.json",
                          json.dumps({"valid": result.valid_metrics, "test": result.test_metrics},
                                     indent=1))
        atomic_write_text(Path(output) / LABELS_FILE,
                          json.dumps({"kind": task.kind, "classes": task.classes}, indent=1))
    return result


LABELS_FILE = "labels.json"  # the task kind and class names, beside a fine-tuned model


def saved_classes(model_dir: str | Path) -> tuple[str, ...] | None:
    """Class names saved with a fine-tuned model (None: the classes are ids)."""
    path = Path(model_dir) / LABELS_FILE
    classes = json.loads(path.read_text()).get("classes") if path.is_file() else None
    return tuple(classes) if classes else None


def predict(model_dir: str | Path, input: str | Path, output: str | Path | None = None, *,
            column: str | None = None, layer: str | None = None,
            on_error: Literal["raise", "skip"] = "raise", batch_size: int = 64,
            overwrite: bool = False, device: str = "auto") -> pd.DataFrame:
    """Apply a fine-tuned model to unlabeled inputs: one row per input with its id, the
    prediction (class name / id, or value) and, for classification, each class's
    probability. `input` is any file its modality reads, or a CSV with an input column."""
    if output is not None:
        check_new_output(output, overwrite)
    adapted = load_finetuned(model_dir, device=device)
    modality = modality_of(adapted.base, input)
    skipped = SkipLog()
    ids, inputs = modality.unlabeled(_input_path(input), column=column, layer=layer,
                                     on_error=on_error, skipped=skipped)
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    modality.check_inputs(adapted.base, inputs, input, _log)
    with autocast_context(adapted.base.device, "auto"):
        predictions = adapted.predict(inputs)
    edges = adapted.info.get("bin_edges")  # survival: name the columns by each bin's end
    frame = prediction_table(ids, predictions, adapted.kind,
                             [f"{e:g}" for e in edges[1:]] if edges else saved_classes(model_dir))
    if output is not None:
        with atomic_path(output) as tmp:
            frame.to_csv(tmp, index=False)
    return frame


def prediction_table(ids: list[str], predictions: np.ndarray, kind: str,
                     classes: Sequence[str] | None) -> pd.DataFrame:
    """id, prediction and (classification) prob_<class> columns; survival: the risk of
    the event by the last bin's end, and survival_<days> at each bin's end."""
    if kind == "regression":
        return pd.DataFrame({"id": ids, "prediction": predictions})
    if kind == "survival":
        frame = pd.DataFrame({"id": ids, "prediction": 1.0 - predictions[:, -1]})
        names = list(classes) if classes else [str(k) for k in range(predictions.shape[1])]
        for j, name in enumerate(names):
            frame[f"survival_{name}"] = predictions[:, j]
        return frame
    if kind == "multilabel":  # (N, L) probabilities: the labels at p >= 0.5
        names = list(classes) if classes else [str(i) for i in range(predictions.shape[1])]
        frame = pd.DataFrame({"id": ids, "prediction": [
            ";".join(n for n, p in zip(names, row) if p >= 0.5) for row in predictions]})
        for j, name in enumerate(names):
            frame[f"prob_{name}"] = predictions[:, j]
        return frame
    probs = np.stack([1 - predictions, predictions], axis=1) if predictions.ndim == 1 \
        else predictions
    names = list(classes) if classes else [str(i) for i in range(probs.shape[1])]
    frame = pd.DataFrame({"id": ids, "prediction": [names[i] for i in probs.argmax(axis=1)]})
    for j, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, j]
    return frame


def evaluate(model_dir: str | Path, task: Task, output: str | Path | None = None,
             seed: int = 0, split: str = "test", device: str = "auto",
             overwrite: bool = False) -> dict[str, float]:
    """Metrics of a fine-tuned model on a task split; written as JSON when asked (an
    existing file is replaced only with `overwrite`)."""
    from biofm.adapt.finetune import task_metrics

    if split not in ("train", "valid", "test"):
        raise BiofmError(f"unknown split {split!r}", fix="use train, valid or test")
    if output is not None:
        check_new_output(output, overwrite)
    adapted = load_finetuned(model_dir, device=device)
    part: Split = getattr(task.load(seed), split)
    with autocast_context(adapted.base.device, "auto"):
        predictions = adapted.predict(part.inputs)
    metrics = task_metrics(task.kind, part.labels, predictions)
    if output is not None:
        atomic_write_text(output, json.dumps({"task": task.name, "split": split, "n": len(part),
                                              "metrics": metrics}, indent=1))
    return metrics


def get_task(name: str) -> Task:
    return TASKS.get(name)()


# -- generate / zero-shot ----------------------------------------------------------------
def generate(model_dir: str | Path, num: int, output: str | Path | None = None, *,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
             max_new_tokens: int = 128, reference: str | None = None,
             keep_invalid: bool = False, overwrite: bool = False,
             device: str = "auto") -> tuple[list[str], dict]:
    """Sample from a causal LM; the modality reports on the samples (molecules:
    validity / uniqueness / novelty; proteins: length and composition) and writes
    them (proteins as FASTA). Invalid samples are counted and left out of the file
    unless `keep_invalid`."""
    from biofm.generate import sample

    if output is not None:
        check_new_output(output, overwrite)
    model = load_pretrained(model_dir, device=device)
    modality = MODALITIES.get(model.config.data.modality)
    with autocast_context(model.device, "auto"):
        samples = sample(model, num, temperature=temperature, top_k=top_k, top_p=top_p,
                         seed=seed, max_new_tokens=max_new_tokens)
    valid = [s for s in samples if modality.is_valid_sample(s)]
    kept = samples if keep_invalid else valid
    report: dict = {"num": num, "invalid": len(samples) - len(valid), "written": len(kept),
                    **modality.generation_report(samples, model, reference)}
    if output is not None:
        modality.write_samples(kept, Path(output))
    return samples, report


def score_variants(model_dir: str | Path, sequence: str, variants: list[str],
                   output: str | Path | None = None, *,
                   variants_file: str | Path | None = None,
                   overwrite: bool = False, device: str = "auto") -> pd.DataFrame:
    """Masked-marginal zero-shot scores of substitutions (ESM-1v method), for models
    of a modality with a `variant_alphabet` (proteins). Variants come from the list
    and / or a file (a CSV with a `variant` column, or one variant per line)."""
    from biofm.adapt.zeroshot import score_variants as _score

    if output is not None:
        check_new_output(output, overwrite)
    variants = list(variants) + (read_variants(variants_file) if variants_file else [])
    if not variants:
        raise BiofmError("no variants to score", fix="pass --variant A23G (repeat) or "
                                                     "--variants FILE")
    model = load_pretrained(model_dir, device=device)
    modality = MODALITIES.get(model.config.data.modality)
    if not modality.variant_alphabet:
        raise BiofmError(f"score-variants scores amino-acid substitutions; this is a "
                         f"{modality.name} model", path=model_dir,
                         fix="pass a protein model (biofm or an ESM-2 directory)")
    odd = sorted(set(sequence.upper()) - set(modality.variant_alphabet) - set("XBZUO"))
    if odd:
        raise BiofmError(f"the sequence holds letters that are not {modality.name} residues "
                         f"({''.join(odd)})", fix=f"pass a {modality.name} sequence")
    with autocast_context(model.device, "auto"):
        scores = _score(model, sequence, variants)
    frame = pd.DataFrame({"variant": variants, "score": scores})
    if output is not None:
        with atomic_path(output) as tmp:
            frame.to_csv(tmp, index=False)
    return frame


def read_variants(path: str | Path) -> list[str]:
    """Variants of a file: a CSV with a `variant` (or `mutant`) column, else one per line."""
    path = require_file(path, "variants file")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise BiofmError("the variants file holds only blank lines", path=path,
                         fix="list one variant per line (e.g. A23G, or A23G:K40R for a double "
                             "mutant), or give a CSV with a 'variant' column")
    header = [h.strip().lower() for h in lines[0].split(",")]
    for name in ("variant", "mutant", "mutation"):
        if name in header:
            from biofm.data.labeled import read_csv

            frame = read_csv(path)
            column = frame.columns[header.index(name)]
            return [str(v).strip() for v in frame[column].dropna()]
    if "," in lines[0]:
        raise BiofmError("no variant column (looked for variant, mutant, mutation)", path=path,
                         fix="name the column 'variant', or list one variant per line")
    return lines


def forecast(model: str, input: str, output: str | Path, **options):
    """Quantile forecasts of time series (FluSight CSV, plots, optional rolling-origin
    evaluation against baselines); see `biofm.modalities.timeseries.forecast`."""
    from biofm.modalities.timeseries.forecast import run_forecast

    return run_forecast(model, input, output, **options)


def segment(model_dir: str | Path, input: str | Path, output: str | Path, **options):
    """A box-prompted mask of a volume, written as NIfTI in the input's space; see
    `biofm.modalities.imaging.segment`."""
    from biofm.modalities.imaging.segment import segment as run_segment

    return run_segment(model_dir, input, output, **options)


# -- progress helpers ----------------------------------------------------------------
def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console)


class _Advance:
    """What modality hooks report progress to: `set_total(n)`, `advance(n)`."""

    def __init__(self, progress: Progress, task) -> None:
        self.progress, self.task = progress, task

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)
