"""Text tokenizers learnt on the user's corpus with Hugging Face `tokenizers`.

- "wordpiece" (`biofm.interop.wordpiece.WordPieceTokenizer.fit`): BERT's
  pipeline (uncased by default), the default for the text modality, so a model
  pretrained here has the same kind of vocabulary as BioBERT / PubMedBERT /
  ClinicalBERT checkpoints and exports to BERT layout.
- "text-bpe" (`TextBpeTokenizer.fit`): byte-level BPE as in GPT-2 / RoBERTa:
  every byte is in the base alphabet, so no text is ever `<unk>`, case and
  spacing survive `decode`. The merges are saved in `config["merges"]`.

`fit_wordpiece` is the modality's `build_tokenizer`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Iterable, Sequence

from biofm.errors import BiofmError
from biofm.interop.bpe import byte_level_bpe
from biofm.interop.wordpiece import WordPieceTokenizer
from biofm.registry import TOKENIZERS
from biofm.tokenizer import RustTokenizer

# role → token, RoBERTa's names; <s> doubles as the CLS token for encoders
BPE_SPECIALS: dict[str, str] = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>",
                                "mask": "<mask>"}


def fit_wordpiece(texts: Sequence[str]) -> WordPieceTokenizer:
    """The text modality's default tokenizer: uncased WordPiece fitted on `texts`
    (at most 8,000 tokens; pieces seen once are not merged). A named function, not
    a lambda, so the modality pickles into worker processes."""
    return WordPieceTokenizer.fit(texts)


@TOKENIZERS.register("text-bpe")
class TextBpeTokenizer(RustTokenizer):
    """Byte-level BPE over a learnt vocabulary (ids = the vocabulary's order).

    `fit(texts, vocab_size=8000)` learns it; the vocabulary holds the specials,
    the 256 byte symbols (GPT-2's printable mapping: "Ġ" is a space) and the
    merges. Special tokens written in the text ("<mask>") are matched whole.
    """

    name: ClassVar[str] = "text-bpe"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 merges: Sequence[Sequence[str]] = (), **config: Any) -> None:
        super().__init__(vocab, dict(BPE_SPECIALS if specials is None else specials),
                         merges=[list(m) for m in merges], **config)

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2,
            **config: Any) -> "TextBpeTokenizer":
        """Learn merges on `texts` until `vocab_size` tokens (specials and the 256 bytes
        included) or no pair occurs `min_frequency` times."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import BPE
        from tokenizers.pre_tokenizers import ByteLevel
        from tokenizers.trainers import BpeTrainer

        base = len(BPE_SPECIALS) + len(ByteLevel.alphabet())
        if vocab_size < base:
            raise BiofmError(f"vocab_size {vocab_size} is smaller than the {base} specials and "
                             "byte symbols", fix="use vocab_size >= 1000")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise BiofmError("cannot fit the text-bpe tokenizer on an empty corpus",
                             fix="pass at least one non-empty text")
        model = HFTokenizer(BPE())
        model.pre_tokenizer = ByteLevel(add_prefix_space=True)
        model.train_from_iterator(texts, BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency,
            special_tokens=list(BPE_SPECIALS.values()), initial_alphabet=ByteLevel.alphabet(),
            show_progress=False))
        vocab = sorted(model.get_vocab().items(), key=lambda item: item[1])
        merges = json.loads(model.to_str())["model"]["merges"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in merges]
        return cls([tok for tok, _ in vocab], merges=merges, **config)

    def _build(self) -> Any:
        return byte_level_bpe(self.token_to_id, self.config["merges"], add_prefix_space=True)

    def join(self, tokens: list[str]) -> str:
        """Byte symbols → text (the prefix space `split` added is dropped)."""
        return self._hf().decoder.decode(tokens).removeprefix(" ")


__all__ = ["BPE_SPECIALS", "TextBpeTokenizer", "fit_wordpiece"]
