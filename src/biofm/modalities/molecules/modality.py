"""The "molecule" modality: SMILES files, RDKit-canonical inputs, scaffold splits,
Morgan-fingerprint baselines and generation metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from biofm.bench.baselines import Baseline, per_input
from biofm.errors import BiofmError
from biofm.modalities.base import Modality
from biofm.registry import MODALITIES

from .fingerprints import morgan_fingerprints
from .reader import canonical_smiles, read_smiles
from .tokenizer import SmilesTokenizer

if TYPE_CHECKING:
    from biofm.model import FoundationModel


@dataclass(frozen=True)
class MoleculeModality(Modality):
    """Labeled CSV cells must be valid SMILES (canonicalised); "scaffold" splits keep
    each Bemis–Murcko scaffold in one split; samples get validity / uniqueness / novelty."""

    def parse_input(self, value: str, path: Path, line: int, column: str) -> Any:
        canonical = canonical_smiles(value)
        if canonical is None:
            raise BiofmError(f"invalid SMILES {value!r} in column {column!r}", path=path,
                             record=line, fix="correct or remove that row (RDKit cannot parse it)")
        return canonical

    def split_index(self, strategy: str, inputs: Sequence[Any], labels: np.ndarray, kind: str,
                    seed: int):
        if strategy == "scaffold":
            from biofm.data.splits import scaffold_split
            return scaffold_split(list(inputs), seed=seed)
        return super().split_index(strategy, inputs, labels, kind, seed)

    def generation_report(self, samples: list[str], model: "FoundationModel",
                          reference: str | None) -> dict[str, Any]:
        from biofm.config import DataConfig

        from .generation import generation_metrics

        data = model.config.data
        ref = DataConfig(modality=self.name, input=reference or data.input, column=data.column,
                         on_error="skip")
        return generation_metrics(samples, [r.data for r in self.records(ref)])

    def is_valid_sample(self, sample: str) -> bool:
        return canonical_smiles(sample.strip()) is not None


MOLECULE = MODALITIES.register("molecule")(MoleculeModality(
    name="molecule", read=read_smiles, build_tokenizer=SmilesTokenizer.fit,
    suffixes=(".smi", ".smiles", ".csv"), options=("column",), csv_column="smiles",
    split_strategies=("random", "scaffold"),
    baselines=(Baseline("RF on Morgan fingerprints", per_input(morgan_fingerprints),
                        "random-forest"),),
))

__all__ = ["MOLECULE", "MoleculeModality"]
