"""Tokenizers fitted on a text corpus: WordPiece (the text default, BERT's pipeline,
ids as `transformers.BertTokenizer` gives on the saved vocab.txt) and byte-level BPE;
both persist through tokenizer.json and pickle into worker processes."""

from __future__ import annotations

import pickle

import pytest
import transformers

from biofm.errors import BiofmError
from biofm.interop.wordpiece import BERT_SPECIALS, WordPieceTokenizer, learn_word_pieces
from biofm.modalities.text import TEXT, TextBpeTokenizer
from biofm.registry import TOKENIZERS
from biofm.tokenizer import load_tokenizer

CORPUS = ["The heart is normal in size. The lungs are clear.",
          "Heart size is mildly enlarged. Small bilateral pleural effusions.",
          "No acute cardiopulmonary abnormality. Lungs are clear bilaterally.",
          "Stable cardiomegaly; no pneumothorax, no focal consolidation.",
          "Degenerative changes of the thoracic spine. XXXX sternotomy wires."] * 4
NEW = ["Cardiomegaly and bilateral effusions.", "The lungs are CLEAR!", "Ünïcode naïve café"]


def test_wordpiece_fit_is_bert_shaped_and_matches_transformers(tmp_path):
    tok = TEXT.build_tokenizer(CORPUS)
    assert isinstance(tok, WordPieceTokenizer) and tok.config["lowercase"]
    assert tok.vocab[:5] == list(BERT_SPECIALS.values())
    assert any(t.startswith("##") for t in tok.vocab)  # word pieces were merged
    assert WordPieceTokenizer.fit(reversed(CORPUS)).vocab == tok.vocab  # deterministic
    (tmp_path / "vocab.txt").write_text("\n".join(tok.vocab) + "\n")
    hf = transformers.BertTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True)
    for text in CORPUS[:5] + NEW:
        assert tok.encode(text) == hf(text)["input_ids"], text
    ids = tok.encode("the lungs are clear")
    assert tok.decode(ids) == "the lungs are clear" and tok.unk_id not in ids


def test_wordpiece_fit_options_and_errors():
    cased = WordPieceTokenizer.fit(CORPUS, vocab_size=200, min_frequency=1, lowercase=False)
    assert len(cased) <= 200 and "T" in cased.vocab and not cased.config["lowercase"]
    with pytest.raises(BiofmError, match="empty corpus"):
        WordPieceTokenizer.fit(["", "  "])
    with pytest.raises(BiofmError, match="vocab_size 5 leaves no room"):
        WordPieceTokenizer.fit(CORPUS, vocab_size=5)


@pytest.mark.parametrize("name", ["wordpiece", "text-bpe"])
def test_fitted_tokenizers_persist_and_pickle(tmp_path, name):
    tok = TOKENIZERS.get(name).fit(CORPUS)
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert type(again) is type(tok) and again.vocab == tok.vocab
    unpickled = pickle.loads(pickle.dumps(tok))
    for text in NEW:
        assert again.encode(text) == tok.encode(text) == unpickled.encode(text)


def test_text_bpe_is_lossless_and_never_unknown():
    tok = TextBpeTokenizer.fit(CORPUS, vocab_size=400)
    assert tok.vocab[:5] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] and len(tok) <= 400
    for text in NEW + ["Two  spaces,\ttab and\nnewline"]:
        ids = tok.encode(text)
        assert tok.unk_id not in ids and (ids[0], ids[-1]) == (tok.bos_id, tok.eos_id)
        assert tok.decode(ids) == text  # case and spacing survive
    assert tok.mask_id in tok.encode("a <mask> b")  # specials are matched whole
    assert TextBpeTokenizer.fit(CORPUS, vocab_size=400).vocab == tok.vocab
    with pytest.raises(BiofmError, match="smaller than the 261 specials"):
        TextBpeTokenizer.fit(CORPUS, vocab_size=100)
    with pytest.raises(BiofmError, match="empty corpus"):
        TextBpeTokenizer.fit([" "])


def test_word_piece_learning_by_hand():
    """abab ×1, ab ×2: (a, ##b) occurs 3 times, then two pairs tie at 1 and the one
    whose text sorts first ("##a" + "##b") merges first."""
    words = {"abab": 1, "ab": 2}
    assert learn_word_pieces(words, 100, 1) == ["##a", "##b", "a", "ab", "##ab", "abab"]
    assert learn_word_pieces(words, 100, 2) == ["##a", "##b", "a", "ab"]
    assert learn_word_pieces(words, 5, 1) == ["##a", "##b", "a", "ab", "##ab"]
