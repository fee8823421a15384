"""ADMET as multi-task molecules: the five binary ADMET sets shipped in TrialBench.

    table = compare(molecule_model, TASKS.get("admet")(), seeds=1, max_train=1000)

TrialBench 0.3.2 (MIT; Chen et al. 2024, "TrialBench: multi-modal AI-ready datasets for
clinical trial prediction", the ADMET pretraining sets of HINT, Fu et al. 2022) ships
`trialbench/data/ADMET/cooked/{absorption,distribution,metabolism,excretion,toxicity}_
{train,valid}.txt`: one `SMILES<TAB>0/1` per line, 57,811 rows in all. The files do not
name the assays behind each property; the labels are binary.

One molecule table over the five files (RDKit-canonical SMILES): a molecule carries
the labels of the files it appears in, NaN elsewhere (not measured). Splits:

- test: the given `valid` files. A molecule in any test file is a test molecule for
  every property: its labels in the other properties' train files are dropped, so
  no test molecule is seen in training under any label (a molecule in the train and
  valid file of one property is a test molecule);
- train / valid: the remaining molecules, 90 / 10 by Bemis–Murcko scaffold (seeded),
  the same for every property.

Within one file, duplicates that agree count once and molecules with both labels are
dropped; invalid SMILES are skipped; the counts are in the task's notes.

Tasks: `admet` (multilabel, five labels, NaN = not measured) and one classification
task per property (`admet-absorption`, ...) over the same splits. `biofm compare
--task admet` runs `admet_compare`: per seed, RF on Morgan fingerprints and one
model per property (single-task) against one model with a head per property
(multi-task: a sigmoid output per property on the shared pooled state, trained with
the binary cross-entropy of the measured labels only), each in the transfer modes
asked for; the table holds each property's test ROC-AUC and their mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from biofm.data.packaged import package_file
from biofm.data.splits import scaffold_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.registry import TASKS

from .reader import canonical_smiles

PROPERTIES = ("absorption", "distribution", "metabolism", "excretion", "toxicity")
COOKED = "data/ADMET/cooked"
SOURCE = ("TrialBench 0.3.2 (MIT; Chen et al. 2024, arXiv:2407.00631), the ADMET sets of HINT "
          "(Fu et al. 2022, Patterns 3:100445), as shipped at "
          f"trialbench/{COOKED}/<property>_{{train,valid}}.txt (SMILES, 0/1)")
SPLIT = ("given valid file = test (its molecules out of all training); valid = 10% of train "
         "by scaffold")
VALID_FRACTION = 0.1


@dataclass(frozen=True)
class AdmetTable:
    """Every molecule of the five files: canonical SMILES, labels (N, 5) float32 with
    NaN = not measured, test (N,) bool (in a given valid file)."""

    smiles: tuple[str, ...]
    labels: np.ndarray
    test: np.ndarray
    notes: tuple[str, ...]


def cooked_dir() -> Path:
    return package_file("trialbench", f"{COOKED}/absorption_train.txt").parent


@lru_cache(maxsize=2)
def admet_table(directory: Path | None = None) -> AdmetTable:
    """Read the ten files of `directory` (default: the installed package's)."""
    directory = Path(directory) if directory is not None else cooked_dir()
    labels: dict[str, dict[int, float]] = {}  # smiles → {property: label}
    test: set[str] = set()
    invalid = conflicting = dropped = 0
    for part in ("valid", "train"):  # test files first: their molecules leave training
        for j, name in enumerate(PROPERTIES):
            rows, bad, clash = _read_file(directory / f"{name}_{part}.txt")
            invalid, conflicting = invalid + bad, conflicting + clash
            for smiles, label in rows.items():
                if part == "valid":
                    test.add(smiles)
                elif smiles in test:
                    dropped += 1
                    continue
                labels.setdefault(smiles, {})[j] = label
    smiles = tuple(labels)
    matrix = np.full((len(smiles), len(PROPERTIES)), np.nan, dtype=np.float32)
    for i, s in enumerate(smiles):
        for j, label in labels[s].items():
            matrix[i, j] = label
    is_test = np.array([s in test for s in smiles], dtype=bool)
    notes = (f"{len(smiles):,} molecules, {int(is_test.sum()):,} of them in a test file",
             *(text for n, text in (
                 (invalid, f"{invalid:,} invalid SMILES skipped"),
                 (conflicting, f"{conflicting:,} molecules with both labels in one file "
                               "dropped there"),
                 (dropped, f"{dropped:,} training labels of test molecules dropped (no test "
                           "molecule is seen in training)")) if n))
    return AdmetTable(smiles, matrix, is_test, notes)


def _read_file(path: Path) -> tuple[dict[str, float], int, int]:
    """{canonical smiles: label} of one file, (invalid rows), (conflicting molecules)."""
    if not path.exists():
        raise BiofmError(f"ADMET file {path.name} is missing", path=path,
                         fix="reinstall the data extra: pip install --no-deps trialbench==0.3.2")
    seen: dict[str, float] = {}
    clash: set[str] = set()
    invalid = 0
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        smiles, _, label = line.rpartition("\t")
        if label.strip() not in ("0", "1"):
            raise BiofmError(f"label {label!r} is not 0 or 1", path=path, record=line_no,
                             fix="the packaged file is damaged: reinstall trialbench==0.3.2")
        canonical = canonical_smiles(smiles.strip())
        if canonical is None:
            invalid += 1
            continue
        value = float(label)
        if seen.get(canonical, value) != value:
            clash.add(canonical)
        seen[canonical] = value
    for smiles in clash:
        del seen[smiles]
    return seen, invalid, len(clash)


def admet_splits(table: AdmetTable, seed: int) -> Splits:
    """Multilabel splits: test = the given valid files' molecules; the others 90 / 10
    train / valid by scaffold (`seed`)."""
    pool = np.flatnonzero(~table.test)
    parts = scaffold_split([table.smiles[i] for i in pool], (1 - VALID_FRACTION,
                                                             VALID_FRACTION, 0.0), seed=seed)
    whole = Split(list(table.smiles), list(table.smiles), table.labels)
    return Splits(whole.subset(pool[parts.train]), whole.subset(pool[parts.valid]),
                  whole.subset(np.flatnonzero(table.test)))


def one_property(splits: Splits, j: int) -> Splits:
    """The molecules measured for property `j`, with its 0/1 labels (classification)."""
    def take(split: Split) -> Split:
        rows = np.flatnonzero(~np.isnan(split.labels[:, j]))
        part = split.subset(rows)
        return Split(part.ids, part.inputs, part.labels[:, j].astype(np.int64))
    return Splits(take(splits.train), take(splits.valid), take(splits.test))


def admet_task(directory: Path | None = None) -> Task:
    """The multi-task set (five labels, NaN = not measured); `directory` holds the ten
    files (default: the installed package's)."""
    def load(seed: int) -> Splits:
        return admet_splits(admet_table(directory), seed)

    from .admet_compare import admet_compare

    return Task(name="admet", modality="molecule", kind="multilabel", load=load, split=SPLIT,
                source=SOURCE, classes=PROPERTIES, compare=admet_compare,
                notes=admet_table(directory).notes,
                description="five binary ADMET properties (absorption, distribution, "
                            "metabolism, excretion, toxicity) of molecules each measured for "
                            "some of them: one head per property")


def property_task(name: str, directory: Path | None = None) -> Task:
    """One property as a classification task over the same splits."""
    j = PROPERTIES.index(name)

    def load(seed: int) -> Splits:
        return one_property(admet_splits(admet_table(directory), seed), j)

    return Task(name=f"admet-{name}", modality="molecule", kind="classification", load=load,
                split=SPLIT, source=SOURCE, notes=admet_table(directory).notes,
                description=f"ADMET {name} (0/1) from SMILES, TrialBench / HINT set")


@TASKS.register("admet")
def admet() -> Task:
    return admet_task()


def _register(name: str) -> Callable[[], Task]:
    return TASKS.register(f"admet-{name}")(lambda: property_task(name))


for _name in PROPERTIES:  # admet-absorption, ..., admet-toxicity
    _register(_name)


__all__ = ["PROPERTIES", "SOURCE", "AdmetTable", "admet_splits", "admet_table", "admet_task",
           "one_property", "property_task"]

