"""The "singlecell" modality: `.h5ad` counts, the gene-vocabulary overlap check,
tasks from an `obs` column, embeddings into a copy of the file (`obsm`), and the
PCA + logistic-regression baseline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from biofm.bench.baselines import Baseline
from biofm.data.embeddings import EMBEDDING_FORMATS, write_embeddings
from biofm.data.records import OnError, SkipLog
from biofm.modalities.base import Log, Modality
from biofm.modalities.singlecell import bench
from biofm.modalities.singlecell.reader import read_h5ad
from biofm.modalities.singlecell.tokenizers import GeneformerTokenizer, check_gene_overlap
from biofm.registry import MODALITIES

if TYPE_CHECKING:
    from biofm.data.tasks import Task
    from biofm.model import FoundationModel

H5AD_COPY = {".h5ad": "a copy of the input with obsm['X_biofm']"}


def _geneformer_tokenizer(inputs: Sequence) -> GeneformerTokenizer:
    """The default encoding: rank values, medians fitted on the pretraining cells."""
    return GeneformerTokenizer.fit(inputs)


@dataclass(frozen=True)
class SingleCellModality(Modality):
    """Cells of an `.h5ad` (counts from X, a layer or raw: `--layer`)."""

    def check_inputs(self, model: "FoundationModel", inputs: Sequence[Any], where: str | Path,
                     log: Log) -> None:
        """Report the gene-vocabulary overlap; refuse below the model's data.min_gene_overlap."""
        overlap = check_gene_overlap(model.tokenizer, inputs, where,
                                     model.config.data.min_gene_overlap)
        if overlap is not None:
            log(f"{where}: {overlap.describe()}")

    def task_from_file(self, path: Path, *, label: str, kind: str | None, split: str,
                       seed: int, column: str | None = None, layer: str | None = None,
                       classes: Sequence[str] | None = None) -> "Task":
        from biofm.modalities.singlecell.tasks import task_from_h5ad

        self.read_options({"column": column})  # an .h5ad has no input column
        return task_from_h5ad(path, label, kind or "classification", split, seed,  # type: ignore
                              layer=layer, classes=classes)

    @property
    def embedding_formats(self) -> dict[str, str]:
        return {**H5AD_COPY, **EMBEDDING_FORMATS}

    def check_embedding_output(self, input: Path, output: Path) -> None:
        from biofm.modalities.singlecell.embed import check_not_input, check_unique_cells

        super().check_embedding_output(input, output)
        check_not_input(input, output)
        if output.suffix.lower() == ".h5ad":
            check_unique_cells(input)

    def embed_file(self, model: "FoundationModel", input: Path, *, pooling: str,
                   batch_size: int, on_error: OnError, skipped: SkipLog, progress: Any,
                   log: Log, column: str | None = None,
                   layer: str | None = None) -> tuple[list[str], np.ndarray]:
        from biofm.modalities.singlecell.embed import embed_h5ad

        self.read_options({"column": column})
        return embed_h5ad(model, input, pooling=pooling, batch_size=batch_size,  # type: ignore
                          layer=layer, min_gene_overlap=model.config.data.min_gene_overlap,
                          on_error=on_error, skipped=skipped, progress=progress, log=log)

    def write_embeddings(self, input: Path, output: Path, ids: list[str],
                         vectors: np.ndarray) -> Path:
        from biofm.modalities.singlecell.embed import write_obsm_copy

        if output.suffix.lower() == ".h5ad":
            return write_obsm_copy(input, output, ids, vectors)
        return write_embeddings(ids, vectors, output)


SINGLECELL = MODALITIES.register("singlecell")(SingleCellModality(
    name="singlecell", read=read_h5ad, build_tokenizer=_geneformer_tokenizer, suffixes=(".h5ad",),
    options=("layer",), values=("none", "bins"), presets={"mlm": "cell-geneformer-tiny",
                                 "masked-value": "cell-scgpt-tiny"},
    baselines=(Baseline(bench.BASELINE, bench.pca_features, "linear",
                        kinds=("classification",)),),
))

__all__ = ["SINGLECELL", "SingleCellModality"]
