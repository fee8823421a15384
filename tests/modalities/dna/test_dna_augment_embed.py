"""Reverse-complement augmentation, strand-averaged and sliding-window embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.modalities.dna import (DnaCharTokenizer, RandomReverseComplement, embed_dna,
                                  reverse_complement)
from biofm.modalities.dna.embed import window_starts
from biofm.registry import TOKENIZERS
from tests.helpers import tiny_model


def random_dna(n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), size=n))


def dna_model(tokenizer=None, max_len: int = 32) -> FoundationModel:
    torch.manual_seed(0)
    config = PretrainConfig.from_dict({"data": {"modality": "dna", "input": "ecoli-k12"},
                                       "backbone": {"size": "tiny", "max_len": max_len}})
    return FoundationModel(config, tokenizer or DnaCharTokenizer()).eval()


# -- reverse complement ------------------------------------------------------------------
def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    assert reverse_complement("acgu") == "acgt"  # case kept; U pairs with A
    seq = random_dna(50, 0)
    assert reverse_complement(reverse_complement(seq)) == seq


def test_iupac_complements():
    pairs = dict(zip("ACGTRYKMSWBDHVN", "TGCAYRMKSWVHDBN"))
    assert all(reverse_complement(a) == b for a, b in pairs.items())


def test_random_reverse_complement_on_texts():
    seq = random_dna(20, 1)
    assert RandomReverseComplement(p=0.0)(seq) == seq
    assert RandomReverseComplement(p=1.0)(seq) == reverse_complement(seq)
    flips = RandomReverseComplement(p=0.5, seed=3)
    outs = [flips(seq) for _ in range(200)]
    assert 60 < sum(o != seq for o in outs) < 140
    again = RandomReverseComplement(p=0.5, seed=3)
    assert [again(seq) for _ in range(200)] == outs


def test_batch_flips_are_a_function_of_seed_and_step():
    tok = TOKENIZERS.get("dna-kmer3")()
    seqs = [tok.encode(random_dna(30, i)) for i in range(64)]
    aug = RandomReverseComplement(p=0.5, seed=7, tokenizer=tok)
    first = aug.batch(seqs, step=5)
    assert first == RandomReverseComplement(p=0.5, seed=7, tokenizer=tok).batch(seqs, step=5)
    assert first != aug.batch(seqs, step=6)
    flipped = [a != b for a, b in zip(first, seqs)]
    assert 16 < sum(flipped) < 48
    for out, ids, flip in zip(first, seqs, flipped):
        expected = reverse_complement(tok.decode(ids)) if flip else tok.decode(ids)
        assert tok.decode(out) == expected and len(out) == len(ids)
    # keyed by dataset index: any slice of the batch flips the same sequences
    keyed = aug.batch(seqs, step=5, indices=range(100, 164))
    assert aug.batch(seqs[10:20], step=5, indices=range(110, 120)) == keyed[10:20]
    assert 16 < sum(a != b for a, b in zip(keyed, seqs)) < 48


def test_batch_crops_re_encoded_sequences_to_the_context():
    tok = TOKENIZERS.get("dna-nt6")()
    ids = tok.encode("A" * 60, max_length=8)  # 6 six-mers; its complement may tokenise longer
    out = RandomReverseComplement(p=1.0, tokenizer=tok, max_length=8).batch([ids], step=0)[0]
    assert len(out) <= 8 and out[0] == tok.bos_id and out[-1] == tok.eos_id


def test_augment_errors():
    with pytest.raises(BiofmError, match="probability"):
        RandomReverseComplement(p=1.5)
    with pytest.raises(BiofmError, match="needs the tokenizer"):
        RandomReverseComplement().batch([[1, 2]], step=0)


# -- embeddings ----------------------------------------------------------------------------
@pytest.mark.parametrize("length, window, stride, expected", [
    (8, 10, 10, [(0, 8, 8)]),
    (25, 10, 10, [(0, 10, 10), (10, 20, 10), (15, 25, 5)]),
    (30, 10, 10, [(0, 10, 10), (10, 20, 10), (20, 30, 10)]),
    (20, 10, 5, [(0, 10, 10), (5, 15, 5), (10, 20, 5)]),
])
def test_window_starts(length, window, stride, expected):
    assert window_starts(length, window, stride) == expected
    assert sum(w for _, _, w in expected) == length  # every base counted once


def test_strand_averaged_embeddings_do_not_depend_on_the_strand():
    model = dna_model()
    seqs = [random_dna(20, 2), random_dna(75, 3)]  # one fits the context, one needs windows
    forward = embed_dna(model, seqs)
    backward = embed_dna(model, [reverse_complement(s) for s in seqs])
    np.testing.assert_allclose(forward, backward, atol=1e-5)
    single = embed_dna(model, seqs, strand_average=False)
    assert not np.allclose(single, embed_dna(model, [reverse_complement(s) for s in seqs],
                                             strand_average=False), atol=1e-5)


def test_sliding_window_is_the_base_weighted_mean_of_windows():
    model = dna_model()  # max_len 32: 30 bases per window for single-base tokens
    seq = random_dna(75, 4)
    got = embed_dna(model, [seq], strand_average=False)[0]
    parts = model.embed([seq[0:30], seq[30:60], seq[45:75]])
    np.testing.assert_allclose(got, (30 * parts[0] + 30 * parts[1] + 15 * parts[2]) / 75,
                               atol=1e-5)
    short = random_dna(12, 5)
    np.testing.assert_allclose(embed_dna(model, [short], strand_average=False)[0],
                               model.embed([short])[0], atol=1e-6)
    overlapping = embed_dna(model, [seq], window=20, stride=10, strand_average=False)
    assert overlapping.shape == (1, model.config.backbone.d_model)


def test_kmer_model_windows_fit_the_context():
    model = dna_model(TOKENIZERS.get("dna-kmer6")(), max_len=16)  # 14 tokens = 19 bases
    seq = random_dna(100, 6)
    got = embed_dna(model, [seq], strand_average=False, pooling="cls")
    starts = window_starts(100, 19, 19)
    parts = model.embed([seq[a:b] for a, b, _ in starts], pooling="cls")
    weights = np.array([w for _, _, w in starts], dtype=float) / 100
    np.testing.assert_allclose(got[0], weights @ parts, atol=1e-5)


def test_embedding_errors_name_the_sequence():
    model = dna_model()
    with pytest.raises(BiofmError, match="sequence 2 has 0 bases"):
        embed_dna(model, ["ACGT", "  "])
    with pytest.raises(BiofmError, match="'chr9' has 3 bases") as err:
        embed_dna(dna_model(TOKENIZERS.get("dna-kmer6")()), ["ACG"], ids=["'chr9'"])
    assert "at least 6" in str(err.value)
    with pytest.raises(BiofmError, match="stride 40 must be between 1 and the window"):
        embed_dna(model, ["ACGT"], window=20, stride=40)
    with pytest.raises(BiofmError, match="not a DNA tokenizer"):
        embed_dna(tiny_model(), ["ACGT"])


def test_progress_counts_sequences_not_windows():
    class Counter:
        total = 0.0

        def advance(self, n: float) -> None:
            self.total += n

    counter = Counter()
    seqs = [random_dna(200, seed=1), random_dna(45, seed=2), random_dna(90, seed=3)]
    embed_dna(dna_model(), seqs, progress=counter)  # windows of 30 bases, both strands
    assert counter.total == pytest.approx(len(seqs))
