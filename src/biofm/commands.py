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
from biofm.adapt.saving import save_finetuned
from biofm.backbones import count_parameters
from biofm.config import DataConfig, PretrainConfig
from biofm.data.records import Record, SkipLog
from biofm.data.shards import DEFAULT_SHARD_TOKENS, ShardedCorpus, is_prepared_corpus, prepare_corpus
from biofm.data.splits import random_split, scaffold_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError, require_file
from biofm.interop import load_pretrained
from biofm.io import atomic_path, atomic_write_text
from biofm.model import FoundationModel
from biofm.registry import CORPORA, MODALITIES, TASKS, TOKENIZERS
from biofm.tokenizer import Tokenizer, load_tokenizer
from biofm.train import TrainResult, train
from biofm.train.distributed import is_main

console = Console(stderr=True)


# -- data --------------------------------------------------------------------------
def iter_records(data: DataConfig, skipped: SkipLog | None = None) -> Iterator[Record]:
    """Records from a packaged corpus name or from the user's file, streamed."""
    if data.input in CORPORA and not Path(data.input).exists():
        records: Iterator[Record] = iter(CORPORA.get(data.input)())
    else:
        modality = MODALITIES.get(data.modality)
        options: dict = {"column": data.column} if data.column and data.modality == "molecule" else {}
        if data.modality == "dna" and data.window:
            options.update(window=data.window, stride=data.stride or None)
        if data.modality == "singlecell" and data.layer:
            options.update(layer=data.layer)
        records = modality.read(data.input, on_error=data.on_error, skipped=skipped, **options)
    return itertools.islice(records, data.max_records or None)


def load_records(data: DataConfig, skipped: SkipLog | None = None) -> list[Record]:
    """All records of `iter_records`, in memory; an empty result is an error."""
    records = list(iter_records(data, skipped))
    if not records:
        raise BiofmError("no usable records", path=data.input,
                         fix="check the file format, or use --on-error skip only for a few bad records")
    return records


def build_tokenizer(data: DataConfig, texts: Sequence[str] | Iterable[str]) -> Tokenizer:
    """The modality's default tokenizer, the named one (fitted if it learns a
    vocabulary), or the tokenizer.json of a model / prepared-corpus directory."""
    if data.tokenizer is not None and (Path(data.tokenizer) / "tokenizer.json").is_file():
        return load_tokenizer(data.tokenizer)
    if data.tokenizer is None:
        return MODALITIES.get(data.modality).build_tokenizer(texts)
    cls = TOKENIZERS.get(data.tokenizer)
    return cls.fit(texts) if hasattr(cls, "fit") else cls()


def modality_of(model: FoundationModel, path: str | Path | None = None) -> str:
    """The model's modality (saved in its config); the input's suffix must agree."""
    name = model.config.data.modality
    if path is not None:
        for other in MODALITIES.names():
            if other != name and MODALITIES.get(other).matches(path) \
                    and not MODALITIES.get(name).matches(path):
                raise BiofmError(f"this file looks like {other} data but the model is a "
                                 f"{name} model", path=path,
                                 fix=f"pass a {name} file, or a model pretrained on {other} data")
    return name


# -- prepare / pretrain -------------------------------------------------------------
def prepare(data: DataConfig, output: str | Path, *, shard_tokens: int = DEFAULT_SHARD_TOKENS,
            max_len: int = 1026, seed: int = 0) -> dict[str, Any]:
    """Tokenise a corpus once into sharded, memory-mapped files (`biofm prepare`).

    Records stream from the input (a tokenizer that learns its vocabulary reads
    it once more first); `data.valid_fraction` of them go to the valid split.
    Returns the index written to `output/index.json`.
    """
    skipped = SkipLog()
    tokenizer = build_tokenizer(data, _Texts(data))
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
                               meta={"modality": data.modality, "source": str(data.input)})
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    return index


def pretrain(config: PretrainConfig, output: str | Path, *, resume: bool = False,
             init: str | Path | None = None) -> TrainResult:
    """Pretrain a model from a config; checkpoints and `final/` go under `output`.

    `config.data.input` may be a directory from `prepare`: it is then read
    lazily within `data.memory_budget_mb`. Under torchrun every rank runs this.
    """
    if config.data.modality == "timeseries":  # windows of numeric series, not text records
        from biofm.modalities.timeseries.pretraining import timeseries_run_data
        model, train_ids, valid_ids = timeseries_run_data(
            config, lambda tokenizer: _model_for_run(config, init, tokenizer))
    elif is_prepared_corpus(config.data.input):
        model, train_ids, valid_ids = _prepared_data(config, output, resume, init)
    else:
        model, train_ids, valid_ids = _record_data(config, output, resume, init)
    if is_main():
        console.print(f"pretraining a {model.config.backbone.kind} with "
                      f"{count_parameters(model):,} parameters ({config.objective.name}) on "
                      f"{len(train_ids):,} "
                      f"{config.data.modality} records; {len(valid_ids or []):,} held out")
    return train(model, train_ids, valid_ids, config.train, output, resume=resume, console=console,
                 augment=_augmentation(config, model))


def _augmentation(config: PretrainConfig, model: FoundationModel):
    """Strand augmentation for DNA (`data.rc_prob`); None for other modalities."""
    if config.data.modality != "dna" or not config.data.rc_prob:
        return None
    from biofm.modalities.dna import RandomReverseComplement

    return RandomReverseComplement(config.data.rc_prob, config.train.seed, model.tokenizer,
                                   model.config.backbone.max_len).batch


def _record_data(config: PretrainConfig, output: str | Path, resume: bool,
                 init: str | Path | None) -> tuple[FoundationModel, list, list | None]:
    """Read and tokenise the records in memory; hold out a seeded valid split."""
    skipped = SkipLog()
    records = load_records(config.data, skipped)
    if skipped and is_main():
        console.print(skipped.summary(), markup=False, highlight=False)
    texts = [r.data for r in records]
    model = _model_for_run(config, init, lambda: _tokenizer_for_run(
        output, resume, lambda: build_tokenizer(config.data, texts)))
    index = random_split(len(texts), (1 - config.data.valid_fraction, config.data.valid_fraction, 0.0),
                         seed=config.train.seed)
    fitted_elsewhere = init is not None or resume or (
        config.data.tokenizer is not None and Path(config.data.tokenizer).is_dir())
    if config.data.modality == "singlecell" and fitted_elsewhere:
        _check_genes(model, texts, config.data.input)  # a vocabulary fitted elsewhere
    encoded = model.encode(texts)
    return model, [encoded[i] for i in index.train], [encoded[i] for i in index.valid] or None


def _check_genes(model: FoundationModel, texts: Sequence[str], where: str | Path) -> None:
    """Single cell: report the gene-vocabulary overlap of `texts` (cells of `where`);
    refuse below the model's data.min_gene_overlap."""
    from biofm.modalities.singlecell import check_gene_overlap

    overlap = check_gene_overlap(model.tokenizer, texts, where,
                                 model.config.data.min_gene_overlap)
    if overlap is not None and is_main():
        console.print(f"{where}: {overlap.describe()}", markup=False, highlight=False)


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


class _Texts:
    """Re-iterable texts of a corpus (a fitted tokenizer reads them before prepare does)."""

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
          layer: str | None = None) -> np.ndarray:
    """Per-record embeddings of a FASTA or SMILES file, written to .parquet or .npy
    (cells of an .h5ad also to a copy of it; `layer` names its counts matrix)."""
    model = load_pretrained(model_dir)
    modality = modality_of(model, input)
    skipped = SkipLog()
    data = DataConfig.from_dict({"modality": modality, "input": str(require_file(input)),
                                 "column": column, "on_error": on_error, "valid_fraction": 0.0})
    if modality == "singlecell":
        return _embed_cells(model, input, output, pooling, batch_size, on_error, layer)
    if output is not None:  # before any work: a wrong name should not cost the computation
        _check_output_suffix(output, EMBEDDING_SUFFIXES)
    records = load_records(data, skipped)
    with _progress() as progress:
        task = progress.add_task("embed", total=len(records))
        texts, advance = [r.data for r in records], _Advance(progress, task)
        if modality == "dna":  # sliding windows over long sequences, both strands averaged
            from biofm.modalities.dna import embed_dna
            vectors = embed_dna(model, texts, pooling=pooling, batch_size=batch_size,
                                ids=[r.id for r in records], progress=advance)
        else:
            vectors = model.embed(texts, pooling=pooling, batch_size=batch_size, progress=advance)
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    if output is not None:
        write_embeddings([r.id for r in records], vectors, output)
    return vectors


def _embed_cells(model: FoundationModel, input: str | Path, output: str | Path | None,
                 pooling: Literal["mean", "cls"], batch_size: int,
                 on_error: Literal["raise", "skip"], layer: str | None) -> np.ndarray:
    """Cells of an .h5ad: to a copy of it (`obsm['X_biofm']`) or to .parquet / .npy."""
    from biofm.modalities.singlecell.embed import check_not_input, embed_h5ad, write_obsm_copy

    skipped, data = SkipLog(), model.config.data
    if output is not None:  # before any work, as for other inputs
        _check_output_suffix(output, {".h5ad": "a copy of the input with obsm['X_biofm']",
                                      **EMBEDDING_SUFFIXES})
        check_not_input(input, output)
    with _progress() as progress:
        task = progress.add_task("embed", total=None)
        ids, vectors = embed_h5ad(model, input, pooling=pooling, batch_size=batch_size,
                                  layer=layer, min_gene_overlap=data.min_gene_overlap,
                                  on_error=on_error, skipped=skipped,
                                  progress=_Advance(progress, task),
                                  log=lambda line: console.print(line, markup=False,
                                                                 highlight=False))
    if skipped:
        console.print(skipped.summary(), markup=False, highlight=False)
    if output is not None and Path(output).suffix.lower() == ".h5ad":
        write_obsm_copy(input, output, ids, vectors)
    elif output is not None:
        write_embeddings(ids, vectors, output)
    return vectors


EMBEDDING_SUFFIXES = {".parquet": "id + vector per row", ".npy": "an (N, d) array + .ids.txt"}


def _check_output_suffix(output: str | Path, known: dict[str, str]) -> None:
    suffix = Path(output).suffix.lower()
    if suffix not in known:
        choices = ", ".join(f"{s} ({what})" for s, what in known.items())
        raise BiofmError(f"unknown embedding output format {suffix!r}", path=output,
                         fix=f"use {choices}")


def write_embeddings(ids: list[str], vectors: np.ndarray, output: str | Path) -> Path:
    output = Path(output)
    _check_output_suffix(output, EMBEDDING_SUFFIXES)
    suffix = output.suffix.lower()
    if suffix == ".npy":
        with atomic_path(output) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors)
        atomic_write_text(output.with_suffix(".ids.txt"), "\n".join(ids) + "\n")
    else:  # .parquet
        frame = pd.DataFrame({"id": ids, "embedding": list(vectors)})
        with atomic_path(output) as tmp:
            frame.to_parquet(tmp, index=False)
    return output


# -- finetune / evaluate ---------------------------------------------------------------
def task_from_file(input: str | Path, label: str, kind: str, modality: str,
                   split: str = "random", column: str | None = None, seed: int = 0,
                   layer: str | None = None) -> Task:
    """A task from the user's CSV: one input column, one label column (or, for single
    cell, an .h5ad with the label in an `obs` column and counts in `layer`)."""
    path = require_file(input)
    if modality == "singlecell":
        from biofm.modalities.singlecell.tasks import task_from_h5ad
        return task_from_h5ad(path, label, kind, split, seed, layer=layer)  # type: ignore
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BiofmError(f"not a readable CSV file ({exc})", path=path,
                         fix="pass a comma-separated file with a header row") from None
    text_col = column or ("smiles" if modality == "molecule" else "sequence")
    for col in (text_col, label):
        if col not in frame.columns:
            raise BiofmError(f"column {col!r} is missing", path=path,
                             fix=f"available columns: {', '.join(map(str, frame.columns))}")
    frame = frame.dropna(subset=[text_col, label])
    try:
        labels = frame[label].to_numpy(dtype=np.float32 if kind == "regression" else np.int64)
    except (ValueError, TypeError) as exc:
        raise BiofmError(f"column {label!r} does not hold {kind} labels ({exc})", path=path,
                         fix="use numbers (regression) or integer class ids 0, 1, ... "
                             "(classification)") from None
    texts = frame[text_col].astype(str).tolist()
    if modality == "molecule":  # RDKit-valid and canonical, as every molecule reader yields
        texts = _canonical_molecules(texts, [int(i) + 2 for i in frame.index], path, text_col)
    whole = Split([f"{path.name}:{i + 2}" for i in frame.index], texts, labels)

    def load(seed: int) -> Splits:
        if split == "scaffold":
            idx = scaffold_split(whole.inputs, seed=seed)
        else:
            idx = random_split(len(whole), seed=seed,
                               stratify=labels if kind == "classification" else None)
        sizes = {"train": len(idx.train), "valid": len(idx.valid), "test": len(idx.test)}
        if not all(sizes.values()):
            raise BiofmError(f"too few records for a {split} split into train/valid/test "
                             f"({', '.join(f'{k} {v}' for k, v in sizes.items())})", path=path,
                             fix="use more labeled rows (dozens at least), or --split random")
        return Splits(whole.subset(idx.train), whole.subset(idx.valid), whole.subset(idx.test))

    return Task(path.stem, modality, kind, load, split, source=str(path))  # type: ignore[arg-type]


def _canonical_molecules(smiles: list[str], lines: list[int], path: Path,
                         column: str) -> list[str]:
    from biofm.modalities.molecules.reader import canonical_smiles

    out = []
    for text, line in zip(smiles, lines):
        canonical = canonical_smiles(text)
        if canonical is None:
            raise BiofmError(f"invalid SMILES {text!r} in column {column!r}", path=path,
                             record=line, fix="correct or remove that row (RDKit cannot parse it)")
        out.append(canonical)
    return out


def finetune(model_dir: str | Path | None, task: Task, config: FinetuneConfig,
             output: str | Path | None = None, seed: int = 0,
             base: FoundationModel | None = None) -> FinetuneResult:
    """Adapt a pretrained model (or, with mode=scratch, its architecture) to `task`."""
    base = base if base is not None else load_pretrained(model_dir)
    if base.config.data.modality != task.modality:
        raise BiofmError(f"task {task.name!r} is {task.modality} data but the model is a "
                         f"{base.config.data.modality} model", path=model_dir,
                         fix=f"use a model pretrained on {task.modality} data")
    splits = task.load(seed)
    if task.modality == "singlecell":
        _check_genes(base, splits.train.inputs + splits.valid.inputs + splits.test.inputs,
                     task.source if Path(task.source).is_file() else task.name)
    result = _finetune(base, splits, task.kind, config)
    if output is not None:
        save_finetuned(result, base, output, config, task.kind, task.name, task.split)
        atomic_write_text(Path(output) / "metrics.json",
                          json.dumps({"valid": result.valid_metrics, "test": result.test_metrics},
                                     indent=1))
    return result


def evaluate(model_dir: str | Path, task: Task, output: str | Path | None = None,
             seed: int = 0, split: str = "test") -> dict[str, float]:
    """Metrics of a fine-tuned model on a task split; written as JSON when asked."""
    from biofm.adapt.finetune import task_metrics

    if split not in ("train", "valid", "test"):
        raise BiofmError(f"unknown split {split!r}", fix="use train, valid or test")
    adapted = load_finetuned(model_dir)
    part: Split = getattr(task.load(seed), split)
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
             max_new_tokens: int = 128, reference: str | None = None) -> tuple[list[str], dict]:
    """Sample molecules (or sequences); report validity / uniqueness / novelty for SMILES."""
    from biofm.generate import sample
    from biofm.modalities.molecules.generation import generation_metrics

    model = load_pretrained(model_dir)
    samples = sample(model, num, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                     max_new_tokens=max_new_tokens)
    report: dict = {"num": num}
    if model.config.data.modality == "molecule":
        ref = DataConfig(modality="molecule", input=reference or model.config.data.input,
                         column=model.config.data.column, on_error="skip")
        training = [r.data for r in load_records(ref)]
        report.update(generation_metrics(samples, training))
    if output is not None:
        atomic_write_text(output, "\n".join(samples) + "\n")
    return samples, report


def score_variants(model_dir: str | Path, sequence: str, variants: list[str],
                   output: str | Path | None = None) -> pd.DataFrame:
    """Masked-marginal zero-shot scores of protein variants (ESM-1v method)."""
    from biofm.adapt.zeroshot import score_variants as _score

    model = load_pretrained(model_dir)
    frame = pd.DataFrame({"variant": variants, "score": _score(model, sequence, variants)})
    if output is not None:
        with atomic_path(output) as tmp:
            frame.to_csv(tmp, index=False)
    return frame


def forecast(model: str, input: str, output: str | Path, **options):
    """Quantile forecasts of time series (FluSight CSV, plots, optional rolling-origin
    evaluation against baselines); see `biofm.modalities.timeseries.forecast`."""
    from biofm.modalities.timeseries.forecast import run_forecast

    return run_forecast(model, input, output, **options)


# -- progress helpers ----------------------------------------------------------------
def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console)


class _Advance:
    def __init__(self, progress: Progress, task) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)
