"""BERT's WordPiece tokenizer (from a checkpoint's vocab.txt) behind biofm's `Tokenizer`.

The splitting rule is Hugging Face `tokenizers`' own BERT pipeline (BERT
normaliser: clean text, optional lowercasing and accent stripping, CJK
characters split; whitespace-and-punctuation pre-tokeniser; greedy longest-match
WordPiece with `##` continuations), so ids match `transformers.BertTokenizer`
on the same vocab.txt. The special tokens ([CLS], [SEP], [PAD], [UNK], [MASK])
are matched whole in the text, so "[MASK]" in a sentence is one token.

Saved with a biofm checkpoint like every tokenizer (`tokenizer.json`: the
vocabulary, the special tokens and the normaliser options). `fit(texts)` learns a
vocabulary from a corpus (`learn_word_pieces`: WordPiece's merges, deterministic),
so a model pretrained from scratch on the user's text gets a BERT-style vocabulary.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from biofm.errors import BiofmError
from biofm.registry import TOKENIZERS
from biofm.tokenizer import RustTokenizer

# role → token in BERT vocabularies; bos is BERT's [CLS], eos its [SEP]
BERT_SPECIALS: dict[str, str] = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]",
                                 "eos": "[SEP]", "mask": "[MASK]"}


@TOKENIZERS.register("wordpiece")
class WordPieceTokenizer(RustTokenizer):
    """WordPiece over a fixed vocabulary (ids = the vocabulary's order).

    Options (saved in `config`): lowercase (BERT "uncased"), strip_accents
    (None: follow lowercase, as BERT does), chinese_chars (split CJK
    characters), max_chars_per_word (longer words become [UNK]).
    """

    name: ClassVar[str] = "wordpiece"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 lowercase: bool = True, strip_accents: bool | None = None,
                 chinese_chars: bool = True, max_chars_per_word: int = 100,
                 **config: Any) -> None:
        super().__init__(vocab, dict(BERT_SPECIALS if specials is None else specials),
                         lowercase=lowercase, strip_accents=strip_accents,
                         chinese_chars=chinese_chars, max_chars_per_word=max_chars_per_word,
                         **config)

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
            lowercase: bool = True, **config: Any) -> "WordPieceTokenizer":
        """Learn a vocabulary on `texts`: BERT's specials, every character seen (word
        initial, and "##"-continuing), then word pieces merged until `vocab_size` tokens
        or no pair occurs `min_frequency` times (a small corpus stops early: ~3,300
        tokens on the 3,955 IU X-ray reports). Words are cut by the same normaliser and
        pre-tokeniser that `split` uses; the same corpus always gives the same vocabulary."""
        specials = list(BERT_SPECIALS.values())
        if vocab_size <= len(specials):
            raise BiofmError(f"vocab_size {vocab_size} leaves no room beside BERT's "
                             f"{len(specials)} special tokens", fix="use vocab_size >= 1000")
        probe = cls(specials, lowercase=lowercase, **config)  # the normaliser and pre-tokeniser
        normaliser, pre_tokeniser = probe._hf().normalizer, probe._hf().pre_tokenizer
        longest = probe.config["max_chars_per_word"]  # longer words are [UNK] whole
        words: Counter[str] = Counter()
        for text in texts:
            words.update(w for w, _ in pre_tokeniser.pre_tokenize_str(
                normaliser.normalize_str(text)) if len(w) <= longest)
        if not words:
            raise BiofmError("cannot fit the wordpiece tokenizer on an empty corpus",
                             fix="pass at least one non-empty text")
        pieces = learn_word_pieces(words, vocab_size - len(specials), min_frequency)
        return cls([*specials, *pieces], lowercase=lowercase, **config)

    def _build(self) -> Any:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import WordPiece
        from tokenizers.normalizers import BertNormalizer
        from tokenizers.pre_tokenizers import BertPreTokenizer

        model = HFTokenizer(WordPiece(
            vocab=dict(self.token_to_id), unk_token=self.specials["unk"],
            max_input_chars_per_word=self.config["max_chars_per_word"]))
        model.normalizer = BertNormalizer(
            clean_text=True, handle_chinese_chars=self.config["chinese_chars"],
            strip_accents=self.config["strip_accents"], lowercase=self.config["lowercase"])
        model.pre_tokenizer = BertPreTokenizer()
        return model

    def join(self, tokens: list[str]) -> str:
        """Word pieces → text: `##` pieces attach to the previous piece, words are
        separated by one space (the original spacing and case are not kept)."""
        return " ".join(tokens).replace(" ##", "")


def learn_word_pieces(words: Mapping[str, int], budget: int, min_frequency: int) -> list[str]:
    """WordPiece's vocabulary learning (as `tokenizers`' WordPieceTrainer: byte-pair
    merges over words whose non-initial symbols carry "##"): the alphabet, then merged
    pieces, most frequent pair first, ties broken by the pieces' text, until `budget`
    tokens or the best pair occurs fewer than `min_frequency` times.

    Deterministic by construction: `tokenizers`' trainer numbers the "##" symbols in
    hash order and breaks ties by those numbers, so its vocabulary varies run to run.
    """
    spelled = [[w[0], *(f"##{c}" for c in w[1:])] for w in words]
    counts = list(words.values())
    vocab = sorted({s for w in spelled for s in w})
    known = set(vocab)
    pairs: Counter[tuple[str, str]] = Counter()
    holders: dict[tuple[str, str], set[int]] = defaultdict(set)  # pair → words holding it
    for i, (w, n) in enumerate(zip(spelled, counts)):
        for pair in zip(w, w[1:]):
            pairs[pair] += n
            holders[pair].add(i)
    heap = [(-n, a, b) for (a, b), n in pairs.items()]
    heapq.heapify(heap)
    while heap and len(vocab) < budget:
        n, a, b = heapq.heappop(heap)
        if pairs.get((a, b)) != -n:
            continue  # a stale entry: the pair's count changed since it was pushed
        if -n < min_frequency:
            break
        piece = a + b[2:]  # b continues a: drop its "##"
        if piece not in known:
            known.add(piece)
            vocab.append(piece)
        changed = set()
        for i in holders.pop((a, b)):
            w, count = spelled[i], counts[i]
            for pair in zip(w, w[1:]):
                pairs[pair] -= count
                changed.add(pair)
            spelled[i] = w = _merge(w, a, b, piece)
            for pair in zip(w, w[1:]):
                pairs[pair] += count
                holders[pair].add(i)
                changed.add(pair)
        for pair in changed:
            if pairs[pair] > 0:
                heapq.heappush(heap, (-pairs[pair], *pair))
            else:
                pairs.pop(pair)
                holders.pop(pair, None)
    return vocab


def _merge(word: list[str], a: str, b: str, piece: str) -> list[str]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
            out.append(piece)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out
