"""Both expression encodings on hand-computed inputs, their save → load round trip,
the gene-overlap report and refusal, and Ensembl ↔ symbol alias resolution."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.modalities.singlecell import (GeneformerTokenizer, ScGPTTokenizer, check_gene_overlap,
                                         gene_overlap)
from biofm.tokenizer import load_tokenizer

# totals 10 each → per 10k: A g1 2000 g2 6000 g3 2000; B g1 1000 g2 1000 g4 8000
CORPUS = ["g1=2 g2=6 g3=2", "g1=1 g2=1 g4=8"]
G1, G2, G3, G4 = 5, 6, 7, 8  # after <pad> <mask> <cls> <eos> <unk>
CLS, EOS = 2, 3


def test_geneformer_fits_nonzero_medians_on_the_corpus():
    tok = GeneformerTokenizer.fit(CORPUS)
    assert tok.vocab[G1:] == ["g1", "g2", "g3", "g4"]
    assert tok.medians[G1:].tolist() == [1500.0, 3500.0, 2000.0, 8000.0]
    assert tok.vocab[:2] == ["<pad>", "<mask>"]  # Geneformer's own ids for these


def test_geneformer_ranks_by_median_scaled_expression():
    tok = GeneformerTokenizer.fit(CORPUS)
    # A: g1 2000/1500 = 1.33, g2 6000/3500 = 1.71, g3 2000/2000 = 1.0
    assert tok.encode(CORPUS[0]) == [CLS, G2, G1, G3, EOS]
    # B: g1 0.67, g2 0.29, g4 1.0 — raw counts alone would rank g4, then g1 = g2
    assert tok.encode(CORPUS[1]) == [CLS, G4, G1, G2, EOS]
    assert tok.encode(CORPUS[0], max_length=4) == [CLS, G2, G1, EOS]
    assert tok.split(CORPUS[0]) == ["g2", "g1", "g3"]


def test_geneformer_total_count_normalisation_and_unknown_genes():
    tok = GeneformerTokenizer.fit(CORPUS)
    # the same cell sequenced twice as deep, with reads on a gene outside the vocabulary
    assert tok.encode("g1=4 g2=12 g3=4 gX=50") == tok.encode(CORPUS[0])
    # g3 2/3 * 1e4 / 2000 = 3.3 beats g1 1/3 * 1e4 / 1500 = 2.2; input order does not matter
    assert tok.encode("g1=1 g3=2", add_special_tokens=False) == [G3, G1]
    assert tok.rank("g4=8000 g3=2000").tolist() == [G3, G4]  # 1.0 vs 1.0: vocabulary order


def test_scgpt_quantile_bins():
    tok = ScGPTTokenizer(["<pad>", "<mask>", "<cls>", "<eos>", "<unk>"], n_bins=4)
    # quantiles at 25/50/75% of 1..8: 2.75, 4.5, 6.25
    assert tok.bins(np.arange(1, 9.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    assert tok.bins(np.array([1, 1, 1, 1, 5.0])).tolist() == [1, 1, 1, 1, 4]  # ties → lowest
    assert tok.value_bins == 6 and tok.mask_bin == 5


def test_scgpt_encodes_genes_with_bins_and_keeps_the_most_expressed():
    tok = ScGPTTokenizer.fit(CORPUS, n_bins=4)
    # counts g1 1, g2 4, g3 2, g4 8 → quantile edges 1.75, 3, 5 → bins 1, 3, 2, 4
    full = tok.encode("g1=1 g2=4 g3=2 g4=8 gX=100")
    assert isinstance(full, ValuedSequence)
    assert full.ids.tolist() == [CLS, G1, G2, G3, G4, EOS]
    assert full.values.tolist() == [0, 1, 3, 2, 4, 0]
    short = tok.encode("g1=1 g2=4 g3=2 g4=8", max_length=4)  # room for g4 and g2, in vocab order
    assert short.ids.tolist() == [CLS, G2, G4, EOS] and short.values.tolist() == [0, 3, 4, 0]


@pytest.mark.parametrize("cls", [GeneformerTokenizer, ScGPTTokenizer])
def test_save_load_round_trip(tmp_path, cls):
    tok = cls.fit(CORPUS)
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert type(again) is cls and again.to_dict() == tok.to_dict()
    a, b = tok.encode(CORPUS[1]), again.encode(CORPUS[1])
    if cls is ScGPTTokenizer:
        a, b = (a.ids.tolist(), a.values.tolist()), (b.ids.tolist(), b.values.tolist())
    assert a == b


def test_gene_aliases_resolve_to_the_vocabulary_id_space():
    ensembl = GeneformerTokenizer.fit(["ENSG00000198851|CD3E=3 ENSG00000090382|LYZ=1"])
    assert ensembl.vocab[5:] == ["ENSG00000090382", "ENSG00000198851"]  # Ensembl first
    assert ensembl.encode("ENSG00000198851|CD3E=3", add_special_tokens=False) == [6]
    symbols = GeneformerTokenizer.fit(["CD3E=3 LYZ=1"])
    assert symbols.encode("ENSG00000198851|CD3E=3", add_special_tokens=False) == [5]
    assert symbols.gene_id("<mask>") == -1  # special tokens are never genes


def test_gene_overlap_reports_genes_and_share_of_counts(tmp_path):
    tok = GeneformerTokenizer.fit(CORPUS)
    texts = ["g1=2 gX=6", "g2=1 gY=1"]
    overlap = gene_overlap(tok, texts)
    assert (overlap.n_known, overlap.n_genes) == (2, 4)
    assert overlap.count_fraction == pytest.approx(0.3)
    assert overlap.describe() == "2 of 4 genes (30.0% of counts) are in the vocabulary"
    assert check_gene_overlap(tok, texts, tmp_path / "cells.h5ad", 0.5) == overlap
    with pytest.raises(BiofmError) as info:
        check_gene_overlap(tok, texts, tmp_path / "cells.h5ad", 0.6)
    message = str(info.value)
    assert "cells.h5ad" in message and "2 of 4 genes" in message
    assert "50.0% is below the minimum gene overlap of 60%" in message
    assert "min_gene_overlap" in message


def test_medians_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        GeneformerTokenizer(["<pad>", "<mask>", "<cls>", "<eos>", "<unk>", "g"],
                            medians=[1, 1, 1, 1, 1, 0])


def test_symbols_against_an_ensembl_vocabulary_say_which_id_space_each_uses(tmp_path):
    ensembl = GeneformerTokenizer.fit(["ENSG00000198851=2 ENSG00000105369=6",
                                       "ENSG00000090382=1 ENSG00000105374=8"])
    with pytest.raises(BiofmError) as caught:
        check_gene_overlap(ensembl, ["CD3E=3 LYZ=9", "CD79A=2"], tmp_path / "sym.h5ad", 0.5)
    message = str(caught.value)
    assert "sym.h5ad" in message and "only 0 of 3 genes" in message
    assert "(e.g. LYZ, CD3E, CD79A) look like gene symbols" in message  # most counted first
    assert "(e.g. ENSG00000090382, ENSG00000105369, ENSG00000105374) like Ensembl ids" in message


def test_cells_without_any_counts_are_not_reported_as_a_vocabulary_mismatch(tmp_path):
    with pytest.raises(BiofmError, match="no cell has any counts") as caught:
        check_gene_overlap(GeneformerTokenizer.fit(CORPUS), [], tmp_path / "zeros.h5ad", 0.5)
    assert "zeros.h5ad" in str(caught.value) and "overlap" not in str(caught.value)
