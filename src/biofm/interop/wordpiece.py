"""BERT's WordPiece tokenizer (from a checkpoint's vocab.txt) behind biofm's `Tokenizer`.

The splitting rule is Hugging Face `tokenizers`' own BERT pipeline (BERT
normaliser: clean text, optional lowercasing and accent stripping, CJK
characters split; whitespace-and-punctuation pre-tokeniser; greedy longest-match
WordPiece with `##` continuations), so ids match `transformers.BertTokenizer`
on the same vocab.txt. The special tokens ([CLS], [SEP], [PAD], [UNK], [MASK])
are matched whole in the text, so "[MASK]" in a sentence is one token.

Saved with a biofm checkpoint like every tokenizer (`tokenizer.json`: the
vocabulary, the special tokens and the normaliser options).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

# role → token in BERT vocabularies; bos is BERT's [CLS], eos its [SEP]
BERT_SPECIALS: dict[str, str] = {"pad": "[PAD]", "unk": "[UNK]", "bos": "[CLS]",
                                 "eos": "[SEP]", "mask": "[MASK]"}


@TOKENIZERS.register("wordpiece")
class WordPieceTokenizer(Tokenizer):
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
        self._model = None  # the HF tokenizer, built on first use (keeps pickling simple)

    def _hf(self):
        if self._model is None:
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
            model.add_special_tokens(sorted(set(self.specials.values())))
            self._model = model
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def split(self, text: str) -> list[str]:
        return self._hf().encode(text, add_special_tokens=False).tokens

    def join(self, tokens: list[str]) -> str:
        """Word pieces → text: `##` pieces attach to the previous piece, words are
        separated by one space (the original spacing and case are not kept)."""
        return " ".join(tokens).replace(" ##", "")
