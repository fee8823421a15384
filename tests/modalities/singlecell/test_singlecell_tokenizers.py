"""Both expression encodings on hand-computed inputs and on golden values of a small known
matrix, their save → load round trip, the gene-overlap report and refusal, and
Ensembl ↔ symbol alias resolution."""

from __future__ import annotations

import numpy as np
import pytest

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.modalities.singlecell import (CellCounts, GeneformerTokenizer, ScGPTTokenizer,
                                         check_gene_overlap, gene_overlap)
from biofm.tokenizer import load_tokenizer
from tests.modalities.singlecell.cells import cell, cells

# totals 10 each → per 10k: A g1 2000 g2 6000 g3 2000; B g1 1000 g2 1000 g4 8000
CORPUS = cells([[2, 6, 2, 0],
                [1, 1, 0, 8]], ["g1", "g2", "g3", "g4"])
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
    assert tok.encode(cell(g1=4, g2=12, g3=4, gX=50)) == tok.encode(CORPUS[0])
    # g3 2/3 * 1e4 / 2000 = 3.3 beats g1 1/3 * 1e4 / 1500 = 2.2; input order does not matter
    assert tok.encode(cell(g1=1, g3=2), add_special_tokens=False) == [G3, G1]
    assert tok.rank(cell(g4=8000, g3=2000)).tolist() == [G3, G4]  # 1.0 vs 1.0: vocabulary order


def test_scgpt_quantile_bins():
    tok = ScGPTTokenizer(["<pad>", "<mask>", "<cls>", "<eos>", "<unk>"], n_bins=4)
    # quantiles at 25/50/75% of 1..8: 2.75, 4.5, 6.25
    assert tok.bins(np.arange(1, 9.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    assert tok.bins(np.array([1, 1, 1, 1, 5.0])).tolist() == [1, 1, 1, 1, 4]  # ties → lowest
    assert tok.value_bins == 6 and tok.mask_bin == 5


def test_scgpt_encodes_genes_with_bins_and_keeps_the_most_expressed():
    tok = ScGPTTokenizer.fit(CORPUS, n_bins=4)
    # counts g1 1, g2 4, g3 2, g4 8 → quantile edges 1.75, 3, 5 → bins 1, 3, 2, 4
    full = tok.encode(cell(g1=1, g2=4, g3=2, g4=8, gX=100))
    assert isinstance(full, ValuedSequence)
    assert full.ids.tolist() == [CLS, G1, G2, G3, G4, EOS]
    assert full.values.tolist() == [0, 1, 3, 2, 4, 0]
    short = tok.encode(cell(g1=1, g2=4, g3=2, g4=8), max_length=4)  # g4, g2: in vocab order
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
    aliased = CellCounts.from_dict({"ENSG00000198851|CD3E": 3})
    ensembl = GeneformerTokenizer.fit([CellCounts.from_dict({"ENSG00000198851|CD3E": 3,
                                                             "ENSG00000090382|LYZ": 1})])
    assert ensembl.vocab[5:] == ["ENSG00000090382", "ENSG00000198851"]  # Ensembl first
    assert ensembl.encode(aliased, add_special_tokens=False) == [6]
    symbols = GeneformerTokenizer.fit([cell(CD3E=3, LYZ=1)])
    assert symbols.encode(aliased, add_special_tokens=False) == [5]
    assert symbols.gene_id("<mask>") == -1  # special tokens are never genes


def test_gene_overlap_reports_genes_and_share_of_counts(tmp_path):
    tok = GeneformerTokenizer.fit(CORPUS)
    profiles = cells([[2, 0, 6, 0], [0, 1, 0, 1]], ["g1", "g2", "gX", "gY"])
    overlap = gene_overlap(tok, profiles)
    assert (overlap.n_known, overlap.n_genes) == (2, 4)
    assert overlap.count_fraction == pytest.approx(0.3)
    assert overlap.describe() == "2 of 4 genes (30.0% of counts) are in the vocabulary"
    assert check_gene_overlap(tok, profiles, tmp_path / "cells.h5ad", 0.5) == overlap
    with pytest.raises(BiofmError) as info:
        check_gene_overlap(tok, profiles, tmp_path / "cells.h5ad", 0.6)
    message = str(info.value)
    assert "cells.h5ad" in message and "2 of 4 genes" in message
    assert "50.0% is below the minimum gene overlap of 60%" in message
    assert "min_gene_overlap" in message


def test_text_instead_of_cells_is_refused_with_how_to_build_cells():
    tok = GeneformerTokenizer.fit(CORPUS)
    for call in (lambda: tok.encode("g1=2 g2=6"), lambda: GeneformerTokenizer.fit(["g1=2"]),
                 lambda: gene_overlap(tok, ["g1=2"])):
        with pytest.raises(BiofmError, match="CellCounts, not a str") as caught:
            call()
        assert "read_h5ad" in caught.value.fix


def test_medians_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        GeneformerTokenizer(["<pad>", "<mask>", "<cls>", "<eos>", "<unk>", "g"],
                            medians=[1, 1, 1, 1, 1, 0])


def test_symbols_against_an_ensembl_vocabulary_say_which_id_space_each_uses(tmp_path):
    ensembl = GeneformerTokenizer.fit([cell(ENSG00000198851=2, ENSG00000105369=6),
                                       cell(ENSG00000090382=1, ENSG00000105374=8)])
    with pytest.raises(BiofmError) as caught:
        check_gene_overlap(ensembl, [cell(CD3E=3, LYZ=9), cell(CD79A=2)],  # two gene arrays
                           tmp_path / "sym.h5ad", 0.5)
    message = str(caught.value)
    assert "sym.h5ad" in message and "only 0 of 3 genes" in message
    assert "(e.g. LYZ, CD3E, CD79A) look like gene symbols" in message  # most counted first
    assert "(e.g. ENSG00000090382, ENSG00000105369, ENSG00000105374) like Ensembl ids" in message


def test_cells_without_any_counts_are_not_reported_as_a_vocabulary_mismatch(tmp_path):
    with pytest.raises(BiofmError, match="no cell has any counts") as caught:
        check_gene_overlap(GeneformerTokenizer.fit(CORPUS), [], tmp_path / "zeros.h5ad", 0.5)
    assert "zeros.h5ad" in str(caught.value) and "overlap" not in str(caught.value)


# -- golden values: a small known matrix, encoded as the text-record pipeline encoded it ---------
KNOWN_GENES = [f"g{j}" for j in range(10)]
KNOWN = [[3, 0, 1, 7, 0, 2, 2, 0, 5, 0],
         [0, 4, 4, 1, 9, 0, 0, 3, 1, 0],
         [6, 1, 0, 0, 2, 2, 8, 0, 0, 0],
         [1, 1, 12, 0, 3, 0, 1, 4, 0, 6]]  # g9 only in the last cell: outside the vocabulary
KNOWN_MEDIANS = [2328.9473684210525, 1172.248803827751, 1159.090909090909, 1977.2727272727273,
                 2571.7703349282297, 1026.3157894736842, 2605.2631578947367, 1363.6363636363635,
                 1477.2727272727273]
GENEFORMER = [([2, 8, 13, 10, 5, 7, 11, 3], [2, 8, 13, 10, 3]),  # (whole, max_length=5)
              ([2, 9, 7, 6, 12, 13, 8, 3], [2, 9, 7, 6, 3]),
              ([2, 11, 5, 10, 6, 9, 3], [2, 11, 5, 10, 3]),
              ([2, 7, 12, 9, 6, 5, 11, 3], [2, 7, 12, 9, 3])]
SCGPT = [  # ((ids, bins), (ids, bins) with max_length=5); n_bins=4
    (([2, 5, 7, 8, 10, 11, 13, 3], [0, 3, 1, 4, 1, 1, 4, 0]), ([2, 5, 8, 13, 3], [0, 3, 4, 4, 0])),
    (([2, 6, 7, 8, 9, 12, 13, 3], [0, 3, 3, 1, 4, 2, 1, 0]), ([2, 6, 7, 9, 3], [0, 3, 3, 4, 0])),
    (([2, 5, 6, 9, 10, 11, 3], [0, 3, 1, 1, 1, 4, 0]), ([2, 5, 9, 11, 3], [0, 3, 1, 4, 0])),
    (([2, 5, 6, 7, 9, 11, 12, 3], [0, 1, 1, 4, 3, 1, 4, 0]), ([2, 7, 9, 12, 3], [0, 4, 3, 4, 0])),
]


def test_encodings_of_a_known_matrix_are_unchanged():
    known = cells(KNOWN, KNOWN_GENES)
    geneformer = GeneformerTokenizer.fit(known[:3])
    scgpt = ScGPTTokenizer.fit(known[:3], n_bins=4)
    assert geneformer.vocab[5:] == scgpt.vocab[5:] == KNOWN_GENES[:9]
    assert geneformer.medians[5:].tolist() == KNOWN_MEDIANS  # exactly: the same float64 steps
    for c, (ids, short), (binned, binned_short) in zip(known, GENEFORMER, SCGPT):
        assert geneformer.encode(c) == ids and geneformer.encode(c, max_length=5) == short
        for got, want in ((scgpt.encode(c), binned), (scgpt.encode(c, max_length=5), binned_short)):
            assert (got.ids.tolist(), got.values.tolist()) == want


def test_another_files_gene_order_gives_the_same_tokens():
    """Each file's gene array is resolved on its own (a tokenizer keeps only a few lookups)."""
    known = cells(KNOWN, KNOWN_GENES)
    tok = GeneformerTokenizer.fit(known)
    order = np.random.default_rng(0).permutation(len(KNOWN_GENES))
    expected = [tok.encode(c) for c in known]
    for _ in range(12):  # more files than the tokenizer keeps lookups for
        shuffled = cells(np.asarray(KNOWN)[:, order], [KNOWN_GENES[j] for j in order])
        assert [tok.encode(c) for c in shuffled] == expected
