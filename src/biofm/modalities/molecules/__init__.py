"""Molecules (SMILES / SELFIES): the ChemBERTa / MolGPT family.

Importing this package registers the `molecule` modality, the `smiles-regex`
and `selfies` tokenizers, the `nci` and `chembl-drugs` corpora and the
`freesolv` and `solubility` tasks.
"""

from . import admet, datasets, fingerprints, generation, modality, reader, tokenizer  # noqa: F401
from .fingerprints import morgan_fingerprints
from .generation import generation_metrics
from .modality import MOLECULE, MoleculeModality
from .reader import canonical_smiles, parse_smiles, read_smiles
from .tokenizer import SelfiesTokenizer, SmilesTokenizer

__all__ = ["MOLECULE", "MoleculeModality", "SelfiesTokenizer", "SmilesTokenizer", "canonical_smiles",
           "generation_metrics", "morgan_fingerprints", "parse_smiles", "read_smiles"]
