"""Embedding files: `.parquet` (an id and a vector per row) or `.npy` (+ `.ids.txt`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text, check_new_output

EMBEDDING_FORMATS = {".parquet": "id + vector per row", ".npy": "an (N, d) array + .ids.txt"}


def embedding_files(output: str | Path) -> list[Path]:
    """The files `write_embeddings` writes for `output`: it, and for `.npy` its ids."""
    output = Path(output)
    return [output, output.with_suffix(".ids.txt")] if output.suffix.lower() == ".npy" \
        else [output]


def check_new_embeddings(output: str | Path, overwrite: bool) -> None:
    """Before any work: refuse to replace any file of `output` unless `overwrite`."""
    for path in embedding_files(output):
        check_new_output(path, overwrite)


def write_embeddings(ids: list[str], vectors: np.ndarray, output: str | Path) -> Path:
    """Write (N, d) `vectors` with their `ids`, atomically, by the output's suffix."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in EMBEDDING_FORMATS:
        choices = ", ".join(f"{s} ({what})" for s, what in EMBEDDING_FORMATS.items())
        raise BiofmError(f"unknown embedding output format {suffix!r}", path=output,
                         fix=f"use {choices}")
    if suffix == ".npy":
        with atomic_path(output) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, vectors)
        atomic_write_text(embedding_files(output)[1], "\n".join(ids) + "\n")
    else:
        frame = pd.DataFrame({"id": ids, "embedding": list(vectors)})
        with atomic_path(output) as tmp:
            frame.to_parquet(tmp, index=False)
    return output


__all__ = ["EMBEDDING_FORMATS", "check_new_embeddings", "embedding_files", "write_embeddings"]
