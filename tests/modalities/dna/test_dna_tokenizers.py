"""Every DNA tokenizer: round trip, reverse complement, saving with a checkpoint;
k-mer alignment and the Nucleotide Transformer / BPE rules."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from biofm.errors import BiofmError
from biofm.modalities.dna import (DnaBpeTokenizer, DnaCharTokenizer, reverse_complement,
                                  reverse_complement_ids)
from biofm.registry import TOKENIZERS
from biofm.tokenizer import load_tokenizer

DNA_TOKENIZERS = [n for n in TOKENIZERS.names() if n.startswith("dna-")]
EXACT_RC = {"dna-char", "dna-kmer3", "dna-kmer4", "dna-kmer5", "dna-kmer6"}


def random_dna(n: int, seed: int, alphabet: str = "ACGT") -> str:
    return "".join(np.random.default_rng(seed).choice(list(alphabet), size=n))


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    # a repetitive corpus so that BPE learns long tokens
    motif = "TGTGATCTAGATCACA"
    return [random_dna(60, s) + motif + random_dna(40, s + 100) + motif for s in range(40)]


@pytest.fixture(scope="module")
def tokenizers(corpus) -> dict:
    return {name: (TOKENIZERS.get(name).fit(corpus, vocab_size=64) if name == "dna-bpe"
                   else TOKENIZERS.get(name)()) for name in DNA_TOKENIZERS}


def test_all_published_schemes_are_registered():
    assert DNA_TOKENIZERS == ["dna-bpe", "dna-char", "dna-kmer3", "dna-kmer4", "dna-kmer5",
                              "dna-kmer6", "dna-nt6"]


@pytest.mark.parametrize("name", DNA_TOKENIZERS)
def test_round_trip(tokenizers, corpus, name):
    tok = tokenizers[name]
    texts = [corpus[0], random_dna(57, 1), "acgtuACGTAC", "ACGTAC"]
    if not name.startswith("dna-kmer"):  # a base only ever inside N-holding k-mers is lost
        texts += [random_dna(57, 1, "ACGTN"), "acgtnNNNNacgtRYu"]
    for text in texts:
        ids = tok.encode(text)
        assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids) == text.upper().replace("U", "T").replace("R", "N").replace("Y", "N")


@pytest.mark.parametrize("name", DNA_TOKENIZERS)
def test_reverse_complement(tokenizers, corpus, name):
    tok = tokenizers[name]
    for text in (corpus[3], random_dna(41, 2, "ACGTN")):
        ids = tok.encode(text)
        flipped = reverse_complement_ids(tok, ids)
        assert tok.decode(flipped) == reverse_complement(tok.decode(ids))
        assert flipped[0] == tok.bos_id and flipped[-1] == tok.eos_id
        if name in EXACT_RC:  # exact on ids: reverse the tokens and complement each
            assert flipped == tok.encode(reverse_complement(text))
            assert reverse_complement_ids(tok, flipped) == ids


@pytest.mark.parametrize("name", DNA_TOKENIZERS)
def test_vocabulary_is_saved_and_rebuilt(tokenizers, corpus, tmp_path, name):
    tok = tokenizers[name]
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok) and again.vocab == tok.vocab
    assert again.encode(corpus[5]) == tok.encode(corpus[5])
    clone = pickle.loads(pickle.dumps(tok))  # modalities and tokenizers go to worker processes
    assert clone.encode(corpus[6]) == tok.encode(corpus[6])


@pytest.mark.parametrize("name", DNA_TOKENIZERS)
def test_token_spans_and_context_bases(tokenizers, corpus, name):
    tok = tokenizers[name]
    text = random_dna(100, 3, "ACGTN")
    pieces = tok.split(text)
    spans = tok.token_spans(text)
    assert len(spans) == len(pieces)
    assert all(text[a:b] == piece for (a, b), piece in zip(spans, pieces) if piece != "<unk>")
    n = 20
    fitting = random_dna(tok.context_bases(n), 4)
    assert len(tok.encode(fitting, add_special_tokens=False)) <= n


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_kmers_overlap_with_stride_one(k):
    tok = TOKENIZERS.get(f"dna-kmer{k}")()
    assert tok.vocab_size == 5 + 4 ** k
    text = random_dna(30, k)
    pieces = tok.split(text)
    assert len(pieces) == len(text) - k + 1
    # token i covers bases i … i + k - 1
    assert pieces == [text[i:i + k] for i in range(len(text) - k + 1)]
    assert tok.token_spans(text) == [(i, i + k) for i in range(len(text) - k + 1)]
    assert tok.min_bases == k and tok.context_bases(10) == 10 + k - 1
    assert tok.encode("A" * (k - 1), add_special_tokens=False) == []


def test_dnabert_example_and_n_kmers_are_unknown():
    tok = TOKENIZERS.get("dna-kmer3")()
    assert tok.split("ATGGCT") == ["ATG", "TGG", "GGC", "GCT"]
    ids = tok.encode("ACGNACG", add_special_tokens=False)
    assert ids[0] == tok.token_to_id["ACG"] and ids[1:4] == [tok.unk_id] * 3
    assert tok.decode(ids) == "ACGNACG"  # bases under unknown k-mers come back from neighbours


def test_nucleotide_transformer_six_mers_with_single_base_fallback():
    tok = TOKENIZERS.get("dna-nt6")()
    assert tok.vocab_size == 5 + 4096 + 5
    assert tok.split("ACGTACGGNTTTTTTAAC") == ["ACGTAC", "G", "G", "N", "TTTTTT", "A", "A", "C"]
    assert tok.split("acgNacgtac") == ["A", "C", "G", "N", "ACGTAC"]
    assert tok.token_spans("ACGTACGG") == [(0, 6), (6, 7), (7, 8)]


def test_char_tokenizer_policy():
    tok = DnaCharTokenizer()
    assert tok.vocab[:5] == ["<pad>", "<unk>", "<cls>", "<eos>", "<mask>"] and tok.pad_id == 0
    ids = tok.encode("acgtRX", add_special_tokens=False)
    assert [tok.vocab[i] for i in ids] == ["A", "C", "G", "T", "N", "<unk>"]
    assert tok.decode(ids) == "ACGTNN"


def test_bpe_learns_merges_deterministically_and_respects_vocab_size(corpus):
    first = DnaBpeTokenizer.fit(corpus, vocab_size=64)
    second = DnaBpeTokenizer.fit(list(corpus), vocab_size=64)
    assert first.vocab == second.vocab and first.config["merges"] == second.config["merges"]
    assert 10 < first.vocab_size <= 64 and first.vocab[:5] == list(first.specials.values())
    assert len(first.encode(corpus[0])) < len(corpus[0]) / 2  # merges shorten the sequence
    assert any("GTGATCTAGATCACA" in t for t in first.vocab)  # the repeated motif: one token
    unfitted = DnaBpeTokenizer()
    assert unfitted.split("ACGT") == ["A", "C", "G", "T"]


def test_bpe_bad_fits():
    with pytest.raises(BiofmError, match="empty corpus"):
        DnaBpeTokenizer.fit(["", "  "])
    with pytest.raises(BiofmError, match="vocab_size 5 is smaller"):
        DnaBpeTokenizer.fit(["ACGT"], vocab_size=5)


def test_checkpoint_saves_the_bpe_vocabulary(corpus, tmp_path):
    from biofm.config import PretrainConfig
    from biofm.model import FoundationModel

    tok = DnaBpeTokenizer.fit(corpus, vocab_size=48)
    config = PretrainConfig.from_dict({"data": {"modality": "dna", "input": "ecoli-k12"},
                                       "backbone": {"size": "tiny", "max_len": 32}})
    model = FoundationModel(config, tok)
    loaded = FoundationModel.load(model.save(tmp_path / "ckpt"))
    assert isinstance(loaded.tokenizer, DnaBpeTokenizer)
    assert loaded.tokenizer.config["merges"] == tok.config["merges"]
    np.testing.assert_allclose(loaded.embed(corpus[:2]), model.embed(corpus[:2]), atol=1e-6)
