"""A modality = reader(s) + tokenizer(s) + everything else that depends on the data
kind, exposed as hooks. Registered in `MODALITIES`.

Adding a modality means one new package under `biofm/modalities/` that registers
a `Modality` (or a subclass overriding some hooks), its tokenizers, corpora and
tasks; generic code (`commands`, `cli`, `bench`) asks the modality and never
branches on its name. The defaults here serve text-like modalities (one string
per record, labeled data as a CSV with an input column):

    read / read_options      records of a file; which DataConfig options apply
    preset_for               the pretraining preset of an objective
    pretraining_data         numeric modalities build their own windows (None: records)
    augmentation             a per-batch augmentation (DNA reverse complement)
    check_inputs             inputs against a model (single-cell gene overlap)
    task_from_file           a labeled task from the user's file
    embed_file / write_embeddings / embedding_formats
    baselines                classical baselines for `biofm compare`
    generation_report        what to say about sampled outputs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from biofm.data.embeddings import EMBEDDING_FORMATS, write_embeddings
from biofm.data.records import OnError, Record, SkipLog, handle_bad_record
from biofm.errors import BiofmError
from biofm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from biofm.bench.baselines import Baseline
    from biofm.config import DataConfig, PretrainConfig
    from biofm.data.tasks import Task
    from biofm.model import FoundationModel

Reader = Callable[..., Iterator[Record]]
Augment = Callable[[list, int, Sequence[int]], list]
Log = Callable[[str], None]

# DataConfig fields that only some readers take: option → the CLI flag that sets it
READER_OPTIONS = {"column": "--column", "window": "--set data.window",
                  "stride": "--set data.stride", "rc_prob": "--set data.rc_prob",
                  "layer": "--layer"}


@dataclass(frozen=True)
class Modality:
    """How to read a modality's files, tokenize, and build its tasks and baselines.

    `read(path, on_error=..., skipped=..., **options)` streams `Record`s.
    `build_tokenizer(inputs)` returns the default tokenizer, fitted on `inputs`
    when its vocabulary depends on the corpus (SMILES), fixed otherwise (ESM-2).
    `suffixes` lets `biofm embed` recognise the modality of an input file.
    `options` names the READER_OPTIONS its reader takes; setting any other is an error.
    `presets` maps an objective to its pretraining preset (default
    "{name}-{objective}-tiny" when that preset exists).
    `csv_column` is the input column of a labeled CSV; `split_strategies` the
    ways its labeled files can be split ("random" always).
    `variant_alphabet`: the letters of substitutions `biofm score-variants` scores
    (one token per residue); empty when the modality has no such scoring.
    `values`: the second inputs its tokenizers can give the backbone ("none",
    "bins", "patches"); an objective that needs another one does not fit.
    """

    name: str
    read: Reader
    build_tokenizer: Callable[[Sequence[Any]], Tokenizer]
    suffixes: tuple[str, ...]
    options: tuple[str, ...] = ()
    default_objective: str = "mlm"
    presets: Mapping[str, str] = field(default_factory=dict)
    csv_column: str = "sequence"
    split_strategies: tuple[str, ...] = ("random",)
    baselines: tuple["Baseline", ...] = ()
    variant_alphabet: str = ""
    values: tuple[str, ...] = ("none",)

    # -- files ------------------------------------------------------------------
    def matches(self, path: str | Path) -> bool:
        name = Path(path).name.lower()
        if name.endswith(".gz"):
            name = name[:-3]
        return any(name.endswith(s) for s in self.suffixes)

    def read_options(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The reader's keyword options among `values` (unset ones dropped); an option
        that this modality's reader does not take is an error, not silently ignored."""
        chosen = {k: v for k, v in values.items() if v not in (None, 0, 0.0, "")}
        wrong = [k for k in chosen if k not in self.options]
        if wrong:
            takers = _modalities_taking(wrong[0])
            raise BiofmError(f"{READER_OPTIONS.get(wrong[0], wrong[0])} does not apply to "
                             f"{self.name} data"
                             + (f" (it applies to: {', '.join(takers)})" if takers else ""),
                             fix=f"drop {READER_OPTIONS.get(wrong[0], wrong[0])}")
        return chosen

    def records(self, data: "DataConfig", skipped: SkipLog | None = None) -> Iterator[Record]:
        """Records of `data.input` (a packaged corpus name, or a file read with the data
        config's reader options)."""
        from biofm.registry import CORPORA

        if data.input in CORPORA and not Path(data.input).exists():
            return iter(CORPORA.get(data.input)())
        options = self.read_options({k: getattr(data, k) for k in READER_OPTIONS
                                     if k != "rc_prob"})
        if options.get("stride") and not options.get("window"):
            raise BiofmError("data.stride needs data.window", fix="set data.window too")
        return self.read(data.input, on_error=data.on_error, skipped=skipped, **options)

    # -- pretraining ------------------------------------------------------------
    def preset_for(self, objective: str | None) -> str | None:
        """The preset of `objective` (default: the modality's default objective), or
        None when the modality ships none (the generic defaults then apply)."""
        from biofm.config import preset_exists

        objective = objective or self.default_objective
        name = self.presets.get(objective, f"{self.name}-{objective}-tiny")
        return name if preset_exists("pretrain", name) else None

    def pretraining_data(self, config: "PretrainConfig",
                         new_model: Callable[[Callable[[], Tokenizer]], "FoundationModel"]
                         ) -> tuple["FoundationModel", Sequence, Sequence | None] | None:
        """(model, train, valid) for modalities whose training examples are not one
        record each (series windows); None: records are read and encoded one to one."""
        return None

    def objectives(self) -> list[str]:
        """The registered objectives whose second input this modality's tokenizers give."""
        from biofm.registry import OBJECTIVES

        return [n for n in OBJECTIVES.names() if OBJECTIVES.get(n).values in self.values]

    def check_run(self, config: "PretrainConfig", model: "FoundationModel") -> None:
        """Before pretraining: settings that cannot work with this data are errors."""
        if config.data.rc_prob and "rc_prob" not in self.options:
            self.read_options({"rc_prob": config.data.rc_prob})  # raises

    def augmentation(self, config: "PretrainConfig", model: "FoundationModel") -> Augment | None:
        """`augment(sequences, micro_step, indices)` applied to training batches, or None."""
        return None

    def check_inputs(self, model: "FoundationModel", inputs: Sequence[Any], where: str | Path,
                     log: Log) -> None:
        """Check `inputs` (of `where`) against the model before using them (default: none)."""

    # -- labeled data --------------------------------------------------------------
    def parse_input(self, value: str, path: Path, line: int, column: str) -> Any:
        """One labeled-CSV cell → what the tokenizer encodes (default: the text)."""
        return value

    def task_from_file(self, path: Path, *, label: str, kind: str | None, split: str,
                       seed: int, column: str | None = None, layer: str | None = None,
                       classes: Sequence[str] | None = None) -> "Task":
        """A task from the user's labeled file (default: a CSV with an input column);
        `kind` None infers it from the labels; `classes` fixes the order of named classes."""
        from biofm.data.labeled import csv_task

        self.read_options({"layer": layer})
        return csv_task(self, path, label=label, kind=kind, split=split, seed=seed,
                        column=column or self.csv_column, classes=classes)

    def unlabeled(self, path: Path, *, column: str | None = None, layer: str | None = None,
                  on_error: OnError = "raise", skipped: SkipLog | None = None
                  ) -> tuple[list[str], list[Any]]:
        """(ids, inputs) to predict: the modality's own file format, or a CSV with an
        input column (`column`, default `csv_column`) and ids from an "id" column."""
        if path.suffix.lower() == ".csv" and not self.matches(path):
            from biofm.data.labeled import csv_lines, read_csv

            self.read_options({"layer": layer})
            frame, column = read_csv(path, text_columns=["id"]), column or self.csv_column
            if column not in frame.columns:
                raise BiofmError(f"column {column!r} is missing", path=path,
                                 fix=f"name the input column with --column (available: "
                                     f"{', '.join(map(str, frame.columns))})")
            lines = csv_lines(path, len(frame))
            frame = frame.dropna(subset=[column])
            rows = lines[frame.index]
            given = frame["id"].str.strip() if "id" in frame.columns else [""] * len(frame)
            ids = [i or f"{path.name}:{line}" for i, line in zip(given, rows)]
            kept_ids, inputs = [], []
            for id_, line, value in zip(ids, rows, frame[column]):
                try:
                    inputs.append(self.parse_input(str(value), path, int(line), column))
                except BiofmError as error:  # a bad row: raised, or skipped and logged
                    handle_bad_record(error, on_error, skipped, str(path), int(line))
                    continue
                kept_ids.append(id_)
            if not inputs:
                raise BiofmError(f"no usable {column!r} values", path=path,
                                 fix="check the column, or use --on-error skip only for a few "
                                     "bad rows")
            return kept_ids, inputs
        records = self.load(path, on_error, skipped, column=column, layer=layer)
        return [r.id for r in records], [r.data for r in records]

    def split_index(self, strategy: str, inputs: Sequence[Any], labels: np.ndarray, kind: str,
                    seed: int):
        """Train / valid / test indices of a labeled file (`split_strategies`)."""
        from biofm.data.splits import random_split

        if strategy not in self.split_strategies:
            raise BiofmError(f"split {strategy!r} does not apply to {self.name} data",
                             fix=f"use --split {' or '.join(self.split_strategies)}")
        return random_split(len(inputs), seed=seed,
                            stratify=labels if kind == "classification" else None)

    # -- embeddings ------------------------------------------------------------------
    @property
    def embedding_formats(self) -> dict[str, str]:
        """Output suffix → what `write_embeddings` writes there."""
        return EMBEDDING_FORMATS

    def check_embedding_output(self, input: Path, output: Path) -> None:
        """Before any work: a wrong output name should not cost the computation."""
        suffix = output.suffix.lower()
        if suffix not in self.embedding_formats:
            choices = ", ".join(f"{s} ({what})" for s, what in self.embedding_formats.items())
            raise BiofmError(f"unknown embedding output format {suffix!r}", path=output,
                             fix=f"use {choices}")

    def embed_file(self, model: "FoundationModel", input: Path, *, pooling: str,
                   batch_size: int, on_error: OnError, skipped: SkipLog, progress: Any,
                   log: Log, column: str | None = None,
                   layer: str | None = None) -> tuple[list[str], np.ndarray]:
        """(ids, (N, d) vectors) of every input of `input` (its own format, or a CSV)."""
        ids, inputs = self.unlabeled(input, column=column, layer=layer, on_error=on_error,
                                     skipped=skipped)
        progress.set_total(len(ids))
        records = [Record(i, x, str(input)) for i, x in zip(ids, inputs)]
        vectors = self.embed_records(model, records, pooling=pooling, batch_size=batch_size,
                                     progress=progress)
        return ids, vectors

    def load(self, input: Path, on_error: OnError, skipped: SkipLog | None,
             **options: Any) -> list[Record]:
        records = list(self.read(input, on_error=on_error, skipped=skipped,
                                 **self.read_options(options)))
        if not records:
            raise BiofmError("no usable records", path=input,
                             fix="check the file format, or use --on-error skip only for a few "
                                 "bad records")
        return records

    def embed_records(self, model: "FoundationModel", records: Sequence[Record], *,
                      pooling: str, batch_size: int, progress: Any) -> np.ndarray:
        return model.embed([r.data for r in records], pooling=pooling,  # type: ignore[arg-type]
                           batch_size=batch_size, progress=progress)

    def write_embeddings(self, input: Path, output: Path, ids: list[str],
                         vectors: np.ndarray) -> Path:
        return write_embeddings(ids, vectors, output)

    # -- generation ------------------------------------------------------------------
    def generation_report(self, samples: list[str], model: "FoundationModel",
                          reference: str | None) -> dict[str, Any]:
        """Figures about sampled outputs (molecules: validity, uniqueness, novelty)."""
        return {}

    def is_valid_sample(self, sample: str) -> bool:
        """Whether a sample is a well-formed input (molecules: RDKit parses it)."""
        return True

    def write_samples(self, samples: list[str], output: Path) -> None:
        """One sample per line (proteins: FASTA)."""
        from biofm.io import atomic_write_text

        atomic_write_text(output, "".join(f"{s}\n" for s in samples))


def _modalities_taking(option: str) -> list[str]:
    from biofm.registry import MODALITIES

    return [n for n in MODALITIES.names() if option in MODALITIES.get(n).options]


def read_records(modality: Modality, path: str | Path, *, on_error: OnError = "raise",
                 skipped: SkipLog | None = None, **options) -> list[Record]:
    return list(modality.read(path, on_error=on_error, skipped=skipped, **options))
