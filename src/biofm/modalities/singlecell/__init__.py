"""Single-cell RNA: AnnData `.h5ad` reader (counts required), Geneformer rank-value
and scGPT binned-expression encodings, the masked-value objective, packaged
corpora and the PBMC cell-type task.

Importing this package registers the "singlecell" modality, the tokenizers
"geneformer" and "scgpt", the objective "masked-value", the corpora
"celltypist-sample", "pbmc68k-reduced", "blood-cells" and the task "pbmc-celltype".
"""

from __future__ import annotations

from typing import Sequence

from biofm.modalities.base import Modality
from biofm.modalities.singlecell import datasets, objective  # noqa: F401  (register)
from biofm.modalities.singlecell.reader import (CountSource, find_counts, format_cell, gene_keys,
                                               open_h5ad, parse_cell, read_h5ad)
from biofm.modalities.singlecell.tokenizers import (GeneformerTokenizer, GeneOverlap,
                                                   GeneTokenizer, ScGPTTokenizer,
                                                   check_gene_overlap, gene_overlap)
from biofm.registry import MODALITIES


def _geneformer_tokenizer(texts: Sequence[str]) -> GeneformerTokenizer:
    """The default encoding: rank values, medians fitted on the pretraining cells."""
    return GeneformerTokenizer.fit(texts)


SINGLECELL = MODALITIES.register("singlecell")(Modality(
    name="singlecell", read=read_h5ad, build_tokenizer=_geneformer_tokenizer, suffixes=(".h5ad",),
))

__all__ = ["CountSource", "GeneOverlap", "GeneTokenizer", "GeneformerTokenizer", "SINGLECELL",
           "ScGPTTokenizer", "check_gene_overlap", "find_counts", "format_cell", "gene_keys",
           "gene_overlap", "open_h5ad", "parse_cell", "read_h5ad"]
