"""Single-cell RNA: AnnData `.h5ad` reader (counts required), Geneformer rank-value
and scGPT binned-expression encodings, the masked-value objective, packaged
corpora and the PBMC cell-type task.

Importing this package registers the "singlecell" modality, the tokenizers
"geneformer" and "scgpt", the objective "masked-value", the corpora
"celltypist-sample", "pbmc68k-reduced", "blood-cells" and the task "pbmc-celltype".
"""

from __future__ import annotations

from biofm.modalities.singlecell import datasets, objective  # noqa: F401  (register)
from biofm.modalities.singlecell.reader import (CellCounts, CountSource, cells_of_matrix,
                                               find_counts, gene_array, gene_keys, open_h5ad,
                                               read_h5ad)
from biofm.modalities.singlecell.tokenizers import (GeneformerTokenizer, GeneOverlap,
                                                   GeneTokenizer, ScGPTTokenizer,
                                                   check_gene_overlap, gene_overlap)
from biofm.modalities.singlecell.modality import SINGLECELL, SingleCellModality

__all__ = ["CountSource", "GeneOverlap", "GeneTokenizer", "GeneformerTokenizer", "SINGLECELL", "SingleCellModality",
           "ScGPTTokenizer", "CellCounts", "cells_of_matrix", "check_gene_overlap", "find_counts",
           "gene_array", "gene_keys", "gene_overlap", "open_h5ad", "read_h5ad"]
