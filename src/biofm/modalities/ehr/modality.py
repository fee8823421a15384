"""The "ehr" modality: patient timelines from MEDS, OMOP CDM or an events CSV; the
BEHRT-style code tokenizer; tasks from a MEDS label file; one embedding per
subject; count / last-value baselines (logistic regression, gradient-boosted trees).

User tasks: `--input DATA --label labels.parquet` (DATA: a MEDS directory or
shard, an OMOP CDM, an events CSV; `--label` names the MEDS label file, not a
column); `--kind survival`: time to event (boolean_value: event seen, float_value:
days to the event or censoring). `--split random` shuffles subjects with the seed;
`--split given` uses the MEDS dataset's metadata/subject_splits.parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from biofm.data.records import OnError, SkipLog
from biofm.errors import BiofmError
from biofm.modalities.base import Log, Modality
from biofm.modalities.ehr.baselines import BASELINES
from biofm.modalities.ehr.labels import labeled_task, read_labels, read_subject_splits
from biofm.modalities.ehr.readers import load_timelines, log_report, meds_root, read_ehr
from biofm.modalities.ehr.tokenizer import EhrTokenizer, require_timeline
from biofm.registry import MODALITIES

if TYPE_CHECKING:
    from biofm.data.tasks import Task
    from biofm.model import FoundationModel

MIN_KNOWN_EVENTS = 0.5  # least share of a file's events whose code the model knows


def fit_tokenizer(inputs: Sequence) -> EhrTokenizer:
    """Codes and value-bin edges fitted on the pretraining timelines."""
    return EhrTokenizer.fit(require_timeline(t) for t in inputs)


@dataclass(frozen=True)
class EhrModality(Modality):
    """Timelines of MEDS / OMOP / events-CSV inputs (see `readers`)."""

    def task_from_file(self, path: Path, *, label: str, kind: str | None, split: str,
                       seed: int, column: str | None = None, layer: str | None = None,
                       classes: Sequence[str] | None = None) -> "Task":
        self.read_options({"column": column, "layer": layer})
        if split not in self.split_strategies:
            raise BiofmError(f"split {split!r} does not apply to ehr data",
                             fix="use --split random (subjects shuffled) or given (the MEDS "
                                 "metadata/subject_splits.parquet)")
        label_path = Path(label)
        if not label_path.is_file():
            raise BiofmError(f"--label {label!r} is not a file: for EHR data it names the MEDS "
                             "label file", path=path,
                             fix="pass --label labels.parquet (subject_id, prediction_time, "
                                 "boolean_value | integer_value | float_value)")
        labels, value_column, notes = read_labels(label_path, survival=kind == "survival")
        timelines, report = load_timelines(path)
        given = read_subject_splits(meds_root(Path(path))) if split == "given" else None
        if split == "given" and given is None:
            raise BiofmError("--split given needs metadata/subject_splits.parquet", path=path,
                             fix="use --split random, or write the MEDS subject splits")
        return labeled_task(label_path.stem, {t.subject_id: t for t in timelines}, labels,
                            column=value_column, path=label_path, kind=kind, split=split,
                            given=given, classes=classes,
                            source=f"{path} + {label_path}",
                            description=f"{value_column} of {label_path.name}",
                            notes=(*report.lines(), *notes))

    def unlabeled(self, path: Path, *, column: str | None = None, layer: str | None = None,
                  on_error: OnError = "raise", skipped: SkipLog | None = None
                  ) -> tuple[list[str], list[Any]]:
        """(subject ids, full timelines): one row per subject."""
        self.read_options({"column": column, "layer": layer})
        timelines, report = load_timelines(path, on_error=on_error, skipped=skipped)
        log_report(report, path)
        return [t.subject_id for t in timelines], list(timelines)

    def check_inputs(self, model: "FoundationModel", inputs: Sequence[Any], where: str | Path,
                     log: Log) -> None:
        """Report how many events have a code of the model's vocabulary; refuse below half."""
        tokenizer = model.tokenizer
        if not isinstance(tokenizer, EhrTokenizer):
            raise BiofmError(f"this model's tokenizer ({tokenizer.name}) does not read patient "
                             "timelines", path=where, fix="use a model pretrained on EHR data")
        known, total = tokenizer.known_fraction(map(require_timeline, inputs))
        log(f"{where}: {known:,} of {total:,} events have a code in the model's vocabulary")
        if total and known / total < MIN_KNOWN_EVENTS:
            raise BiofmError(f"only {known / total:.0%} of the events have a code the model "
                             "knows (is the data coded with another vocabulary?)", path=where,
                             fix="pretrain on data coded like this, or map the codes to the "
                                 "model's vocabularies")


EHR = MODALITIES.register("ehr")(EhrModality(
    name="ehr", read=read_ehr, build_tokenizer=fit_tokenizer, suffixes=(".parquet", ".duckdb"),
    presets={"mlm": "ehr-mlm-tiny", "clm": "ehr-clm-tiny"}, csv_column="code",
    split_strategies=("random", "given"), baselines=BASELINES,
    # the tokenizer's age / gap / visit bins ride on the "bins" input, but no objective
    # predicts them: masked codes (mlm) and the next code (clm) are the objectives
    values=("none",),
))

__all__ = ["EHR", "EhrModality", "fit_tokenizer"]
