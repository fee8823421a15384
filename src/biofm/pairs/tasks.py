"""Pair tasks: the packaged KIBA sample, and a task from the user's pair CSV.

KIBA: the sample of the KIBA kinase-inhibitor data set (Tang et al. 2014, J Chem
Inf Model 54:735) shipped in pydebiaseddta 0.1.0 (MIT): 5,000 (ligand, protein)
pairs of 458 ChEMBL ligands and 189 UniProt kinases with their KIBA scores, as the
package's train / val / test files (3,000 / 1,000 / 1,000, read together; "given"
keeps that split, which shares no protein between its parts), and a Smith–Waterman
similarity matrix of the 189 proteins beside them. Cold-target splits cluster the
proteins by that matrix (single linkage at similarity >= 0.5: 128 clusters, the
largest 6), so near-identical kinases stay on one side; cold-drug splits group
ligands by Bemis–Murcko scaffold.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from biofm.data.packaged import package_file
from biofm.data.records import OnError, SkipLog
from biofm.errors import BiofmError
from biofm.pairs.data import PAIR_TASKS, PairData, PairSplits, PairTask, Parser, Side, read_pairs
from biofm.pairs.splits import Grouper, identity_groups, scaffold_groups, similarity_groups, split_pairs
from biofm.registry import MODALITIES

KIBA_DIR = "data/dta/dta_sample_data"
KIBA_SIMILARITY = "data/dta/dta_sample_sw_sim_matrix.csv"
KIBA_SOURCE = ("KIBA (Tang et al. 2014, J Chem Inf Model 54:735, doi:10.1021/ci400709d), the "
               "5,000-pair sample shipped in pydebiaseddta 0.1.0 (MIT) at "
               f"pydebiaseddta/{KIBA_DIR}/{{train,val,test}}.csv with the proteins' "
               f"Smith-Waterman similarities at pydebiaseddta/{KIBA_SIMILARITY}")
KIBA_SIDES = (Side("target", "aa_sequence", "protein", id_column="prot_id"),
              Side("drug", "smiles", "molecule", id_column="ligand_id"))
KIBA_SPLITS = ("random", "cold-target", "cold-drug", "cold-both", "given")
SIMILARITY_THRESHOLD = 0.5
BINDER = 12.1  # KIBA score from which a pair binds (He et al. 2017, SimBoost)


def modality_parsers(sides: Sequence[Side]) -> tuple[Parser, Parser]:
    """Each side's modality check of a CSV cell (molecules: RDKit-valid, canonical)."""
    return tuple(MODALITIES.get(s.modality).parse_input for s in sides)  # type: ignore[return-value]


def default_grouper(modality: str) -> Grouper:
    """Scaffolds for a modality whose tasks split by scaffold (molecules), else identity."""
    return scaffold_groups if "scaffold" in MODALITIES.get(modality).split_strategies \
        else identity_groups


@PAIR_TASKS.register("kiba")
def kiba() -> PairTask:
    return PairTask(name="kiba", sides=KIBA_SIDES, load=_load_kiba, splits=KIBA_SPLITS,
                    source=KIBA_SOURCE, positive_at=BINDER,
                    description="KIBA kinase-inhibitor scores of 5,000 (protein, ligand) "
                                "pairs: 189 kinases x 458 ligands; higher = tighter binding")


@lru_cache(maxsize=1)
def kiba_data() -> PairData:
    """The 5,000 KIBA pairs (train, val and test files in that order)."""
    paths = [package_file("pydebiaseddta", f"{KIBA_DIR}/{name}.csv")
             for name in ("train", "val", "test")]
    frame = pd.concat([pd.read_csv(p).assign(part=i) for i, p in enumerate(paths)],
                      ignore_index=True)
    return read_pairs(paths[0].parent / "{train,val,test}.csv", KIBA_SIDES, "affinity_score",
                      modality_parsers(KIBA_SIDES), frame=frame)


@lru_cache(maxsize=1)
def _kiba_parts() -> np.ndarray:
    """Which shipped file (0 train, 1 val, 2 test) each pair came from."""
    sizes = [len(pd.read_csv(package_file("pydebiaseddta", f"{KIBA_DIR}/{n}.csv")))
             for n in ("train", "val", "test")]
    return np.repeat(np.arange(3), sizes)


def kiba_target_clusters(ids: list[str]) -> list[str]:
    """Cluster of each protein id by the shipped Smith–Waterman similarities."""
    path = package_file("pydebiaseddta", KIBA_SIMILARITY)
    matrix = pd.read_csv(path, index_col=0)
    unknown = sorted(set(ids) - set(matrix.index))
    if unknown:
        raise BiofmError(f"proteins without a row in the similarity matrix: {unknown[:3]}",
                         path=path, fix="reinstall pydebiaseddta 0.1.0")
    clusters = similarity_groups(list(matrix.index), matrix.loc[:, matrix.index].to_numpy(),
                                 SIMILARITY_THRESHOLD)
    return [clusters[i] for i in ids]


def _load_kiba(split: str, seed: int) -> PairSplits:
    data = kiba_data()
    if split == "given":
        parts = _kiba_parts()[data.lines - 2]
        return PairSplits(*(data.subset(np.flatnonzero(parts == k)) for k in range(3)),
                          notes=("the package's own train / val / test files",))
    groupers = (lambda items, ids: kiba_target_clusters(ids), scaffold_groups)
    return split_pairs(data, split, seed, groupers)


def pair_task_from_file(path: Path, sides: tuple[Side, Side], label: str,
                        parsers: tuple[Parser, Parser], *, on_error: OnError = "raise",
                        skipped: SkipLog | None = None) -> PairTask:
    """A pair task over the user's CSV: `sides` name the two input columns, `label` the
    value; cells are checked by `parsers` (the towers' checks). Splits: random,
    cold-<side name> (molecules grouped by scaffold, others by identical input), cold-both."""
    data = read_pairs(path, sides, label, parsers, on_error=on_error, skipped=skipped)
    groupers = (default_grouper(sides[0].modality), default_grouper(sides[1].modality))
    splits = ("random", *(f"cold-{s.name}" for s in sides), "cold-both")

    def load(split: str, seed: int) -> PairSplits:
        return split_pairs(data, split, seed, groupers)

    return PairTask(name=path.stem, sides=sides, load=load, splits=splits, source=str(path),
                    notes=data.notes)


__all__ = ["KIBA_SIDES", "KIBA_SOURCE", "kiba", "kiba_data", "kiba_target_clusters",
           "pair_task_from_file"]
