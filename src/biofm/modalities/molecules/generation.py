"""Standard metrics for generated molecules (MolGPT / GuacaMol / MOSES style).

- validity: fraction of samples that RDKit parses into a non-empty molecule;
- uniqueness: distinct canonical SMILES among the valid ones / valid;
- novelty: distinct valid molecules absent from the training set / distinct valid.

Comparisons use canonical SMILES on both sides, so "CCO" and "OCC" are one
molecule. Ratios with an empty denominator are 0.0, not NaN: a model that
generates nothing valid has neither unique nor novel molecules, and a report
table should say 0 rather than break.
"""

from __future__ import annotations

from typing import Iterable

from .reader import canonical_smiles


def generation_metrics(samples: list[str], training_smiles: Iterable[str]) -> dict[str, float]:
    """Validity, uniqueness and novelty of `samples` against `training_smiles`.

    Returns the three ratios plus the counts behind them (`n_samples`,
    `n_valid`, `n_unique`, `n_novel`) so reports can show both. Invalid
    training SMILES are ignored.
    """
    valid = [c for c in (canonical_smiles(s.strip()) for s in samples) if c is not None]
    unique = set(valid)
    known = {c for c in (canonical_smiles(s.strip()) for s in training_smiles) if c is not None}
    novel = unique - known
    return {
        "validity": _ratio(len(valid), len(samples)),
        "uniqueness": _ratio(len(unique), len(valid)),
        "novelty": _ratio(len(novel), len(unique)),
        "n_samples": len(samples),
        "n_valid": len(valid),
        "n_unique": len(unique),
        "n_novel": len(novel),
    }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
