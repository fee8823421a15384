"""Typed entry points behind `biofm pair-finetune`, `pair-compare` and `pair-pretrain`
(`screen` is `biofm.pairs.screen.screen`); each returns its results so tests call
them in-process.

Towers are given as two model directories (`--model` twice: biofm checkpoints or HF
ESM-2 directories). For a packaged task each model goes to the side of its own
modality (a protein model reads KIBA's sequences whatever the order); for the user's
CSV the models read the `--column`s in the order given, and a column whose first
cells are clearly the other tower's kind is an error that says to swap them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from biofm.bench.report import ResultTable
from biofm.data.labeled import read_csv
from biofm.data.records import OnError, SkipLog
from biofm.errors import BiofmError
from biofm.io import atomic_write_text
from biofm.model import FoundationModel
from biofm.pairs.compare import MODES, cap_pairs, check_split, pair_compare
from biofm.pairs.data import PAIR_TASKS, PairTask, Side
from biofm.pairs.model import PairConfig
from biofm.pairs.saving import save_pair_model
from biofm.pairs.tasks import pair_task_from_file
from biofm.pairs.towers import Tower
from biofm.pairs.train import PairResult, pair_finetune

if TYPE_CHECKING:
    from biofm.pairs.coembed import CoEmbedConfig, CoEmbedResult

Log = Callable[[str], None]
SNIFF_ROWS = 20  # cells of each column tried against both towers


def load_towers(models: Sequence[str | Path]) -> list[FoundationModel]:
    from biofm.interop import load_pretrained

    if len(models) != 2:
        raise BiofmError(f"a pair model needs two towers, got {len(models)} --model",
                         fix="pass --model twice (e.g. a protein and a molecule checkpoint)")
    return [load_pretrained(m) for m in models]


def match_towers(bases: list[FoundationModel], models: Sequence[str | Path],
                 sides: tuple[Side, Side]) -> tuple[FoundationModel, FoundationModel]:
    """The towers in the order of `sides`: each model to the side of its modality."""
    kinds = [b.config.data.modality for b in bases]
    wanted = [s.modality for s in sides]
    if kinds == wanted:
        return bases[0], bases[1]
    if kinds[::-1] == wanted:
        return bases[1], bases[0]
    columns = " and ".join(f"{s.modality} ({s.column!r})" for s in sides)
    fix = "pass one model per column: " + ", ".join(f"a {s.modality} model for {s.column!r}"
                                                    for s in sides)
    if kinds[0] == kinds[1]:
        raise BiofmError(f"both tower checkpoints are {kinds[0]} models, but the task's "
                         f"columns are {columns}", path=models[1], fix=fix)
    wrong = next(i for i, k in enumerate(kinds) if k not in wanted)
    raise BiofmError(f"the tower checkpoint is a {kinds[wrong]} model, but the task's columns "
                     f"are {columns}", path=models[wrong], fix=fix)


def build_task(bases: list[FoundationModel], models: Sequence[str | Path], *, task: str | None,
               input: Path | None, columns: Sequence[str], label: str | None,
               on_error: OnError = "raise", skipped: SkipLog | None = None
               ) -> tuple[PairTask, tuple[FoundationModel, FoundationModel]]:
    """(the task, its two towers in side order): a packaged pair task, or the user's CSV."""
    if task is not None:
        the_task = PAIR_TASKS.get(task)()
        return the_task, match_towers(bases, models, the_task.sides)
    if input is None or label is None or len(columns) != 2:
        raise BiofmError("say what to train on",
                         fix="pass --task kiba, or --input CSV --column A --column B --label Y "
                             "(the columns in the order of the --model towers)")
    sides = (Side(columns[0], columns[0], bases[0].config.data.modality),
             Side(columns[1], columns[1], bases[1].config.data.modality))
    towers = (Tower(bases[0]), Tower(bases[1]))
    check_columns(input, sides, towers, models)
    the_task = pair_task_from_file(input, sides, label, (towers[0].parse, towers[1].parse),
                                   on_error=on_error, skipped=skipped)
    return the_task, (bases[0], bases[1])


def check_columns(path: Path, sides: tuple[Side, Side], towers: tuple[Tower, Tower],
                  models: Sequence[str | Path]) -> None:
    """A column the other tower reads and its own does not: the towers are swapped (or
    one is of the wrong modality)."""
    frame = read_csv(path)
    for s, side in enumerate(sides):
        if side.column not in frame.columns:
            continue  # read_pairs names the missing column
        cells = [str(v).strip() for v in frame[side.column].dropna().head(SNIFF_ROWS)]
        own, other = (_share_valid(towers[k], cells, path, side.column) for k in (s, 1 - s))
        if own < 0.5 and other >= 0.5 and towers[s].modality != towers[1 - s].modality:
            raise BiofmError(f"column {side.column!r} holds {towers[1 - s].modality} inputs, "
                             f"but its tower is a {towers[s].modality} model", path=models[s],
                             fix="give --model in the order of the --column flags (or pass a "
                                 f"{towers[1 - s].modality} model for {side.column!r})")


def _share_valid(tower: Tower, cells: list[str], path: Path, column: str) -> float:
    ok = 0
    for line, cell in enumerate(cells):
        try:
            tower.parse(cell, path, line + 2, column)
            ok += 1
        except BiofmError:
            pass
    return ok / max(len(cells), 1)


def run_pair_finetune(models: Sequence[str | Path], config: PairConfig, *,
                      task: str | None = None, input: Path | None = None,
                      columns: Sequence[str] = (), label: str | None = None,
                      split: str = "random", max_train: int = 0, on_error: OnError = "raise",
                      output: Path | None = None, log: Log | None = None) -> PairResult:
    """Train a pair model (split by `split` with the config's seed); saved to `output`
    as a pair model directory with metrics.json."""
    bases = load_towers(models)
    skipped = SkipLog()
    the_task, towers = build_task(bases, models, task=task, input=input, columns=columns,
                                  label=label, on_error=on_error, skipped=skipped)
    _say_skips(skipped, the_task, log)
    check_regression(the_task)
    check_split(the_task, split)
    splits = cap_pairs(the_task.load(split, config.seed), max_train, config.seed)
    result = pair_finetune(towers, splits, config, log=log)
    if output is not None:
        metrics = {"valid": result.valid_metrics, "test": result.test_metrics}
        save_pair_model(result.model, the_task.sides, output, task=the_task.name, split=split,
                        max_train=max_train, source=the_task.source, **metrics)
        atomic_write_text(Path(output) / "metrics.json", json.dumps(metrics, indent=1))
    return result


def run_pair_compare(models: Sequence[str | Path], *, task: str | None = None,
                     input: Path | None = None, columns: Sequence[str] = (),
                     label: str | None = None, split: str = "cold-target", seeds: int = 3,
                     modes: Sequence[str] = MODES, max_train: int = 0, epochs: int = 15,
                     max_tokens: int = 1024, quick: bool = False, device: str = "auto",
                     on_error: OnError = "raise", output: Path | None = None,
                     log: Log | None = None) -> ResultTable:
    """`pair_compare` on a packaged or user pair task; the table (and its provenance)
    saved under `output` when given."""
    import time

    from biofm.bench.provenance import provenance

    bases = load_towers(models)
    skipped = SkipLog()
    the_task, towers = build_task(bases, models, task=task, input=input, columns=columns,
                                  label=label, on_error=on_error, skipped=skipped)
    _say_skips(skipped, the_task, log)
    check_regression(the_task)
    start = time.perf_counter()
    table = pair_compare(towers, the_task, split=split, seeds=seeds, modes=modes,
                         max_train=max_train, epochs=epochs, quick=quick, device=device,
                         max_tokens=max_tokens, say=log)
    if output is not None:
        table.save(output)
        atomic_write_text(Path(output) / "provenance.json", json.dumps(provenance(
            task=the_task.name, split=split, seeds=seeds, max_train=max_train, epochs=epochs,
            max_tokens=max_tokens, models=[str(m) for m in models], source=the_task.source,
            elapsed_s=round(time.perf_counter() - start, 1)), indent=1))
    return table


def default_split(task: PairTask) -> str:
    """A cold split where the task has one (cold-target, by-genome), else its first."""
    return next((s for s in task.splits if s in ("cold-target", "by-genome")), task.splits[0])


def check_regression(task: PairTask) -> None:
    if task.kind == "retrieval":
        raise BiofmError(f"the pair task {task.name!r} has no value to predict: every pair is "
                         "a positive", fix=f"co-embed it: biofm pair-pretrain --task {task.name}")


def _say_skips(skipped: SkipLog, task: PairTask, log: Log | None) -> None:
    if log is None:
        return
    if skipped:
        log(skipped.summary())
    for note in task.notes:
        log(f"{task.source}: {note}")




def run_pair_pretrain(models: Sequence[str | Path], config: "CoEmbedConfig", *,
                      task: str | None = None, input: Path | None = None,
                      columns: Sequence[str] = (), label: str | None = None,
                      split: str | None = None, max_train: int = 0,
                      threshold: float | None = None, on_error: OnError = "raise",
                      output: Path | None = None, log: Log | None = None) -> "CoEmbedResult":
    """Contrastive co-embedding of the two towers on a pair task's positive pairs
    (`biofm.pairs.coembed`: value >= `threshold`, default the task's own, else
    `config.threshold`); towers and projections saved to `output`. `split` None: the
    task's first cold split (KIBA cold-target, genes by-genome)."""
    from biofm.pairs.coembed import coembed, save_coembedding

    bases = load_towers(models)
    skipped = SkipLog()
    the_task, towers = build_task(bases, models, task=task, input=input, columns=columns,
                                  label=label, on_error=on_error, skipped=skipped)
    _say_skips(skipped, the_task, log)
    split = split or default_split(the_task)
    check_split(the_task, split)
    threshold = threshold if threshold is not None else the_task.positive_at
    if threshold is not None:
        config = config.replace(threshold=threshold)
    splits = cap_pairs(the_task.load(split, config.seed), max_train, config.seed)
    if log is not None:
        log(f"{the_task.name} ({split}): {len(splits.train):,} train / {len(splits.valid):,} "
            f"valid / {len(splits.test):,} test pairs" + "".join(f"; {n}" for n in splits.notes))
    result = coembed(towers, splits, config, log=log, baselines=the_task.retrieval_baselines)
    result.sides = (the_task.sides[0].name, the_task.sides[1].name)
    if output is not None:
        save_coembedding(result, output)
    return result


__all__ = ["build_task", "check_columns", "check_regression", "default_split", "load_towers",
           "match_towers", "run_pair_compare", "run_pair_finetune", "run_pair_pretrain"]
