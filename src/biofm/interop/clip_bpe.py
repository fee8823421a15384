"""CLIP's byte-level BPE (vocab.json + merges.txt) behind biofm's `Tokenizer`, for the
text tower of open_clip directories.

The rule is open_clip's `SimpleTokenizer` ("lower" cleaning): HTML entities
unescaped, whitespace collapsed, lower case; words split by CLIP's regex; each
word's UTF-8 bytes mapped to printable symbols, its last symbol marked `</w>`,
and merged by rank. A record is `<|startoftext|> … <|endoftext|>`, truncated so
the end-of-text token stays last; the end-of-text id is the largest, which is
where the text tower pools. Padding is id 0, as open_clip pads. Not done:
`ftfy.fix_text` (mojibake repair), which open_clip applies first: plain text is
unaffected.

The files are Hugging Face's CLIPTokenizer layout (`vocab.json` token → id,
`merges.txt` one merge per line after a `#version` header), which hub open_clip
directories usually carry beside the weights.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Sequence

import regex

from biofm.errors import BiofmError
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

START, END = "<|startoftext|>", "<|endoftext|>"
_WORDS = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                       r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
CLIP_BPE_FILES = ("vocab.json", "merges.txt")


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map of the 256 bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@TOKENIZERS.register("clip-bpe")
class ClipBpeTokenizer(Tokenizer):
    """CLIP's BPE over a fixed vocabulary (ids = the vocabulary's order); `merges`
    (pairs of symbols, by priority) are saved in `config`."""

    name: ClassVar[str] = "clip-bpe"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 merges: Sequence[Sequence[str]] = (), **config: Any) -> None:
        specials = specials or {"bos": START, "eos": END, "unk": END, "mask": END,
                                "pad": vocab[0]}
        super().__init__(vocab, specials, merges=[list(m) for m in merges], **config)
        self.ranks = {tuple(m): i for i, m in enumerate(self.config["merges"])}
        self.byte_encoder = bytes_to_unicode()
        self._cache: dict[str, list[str]] = {}

    @property
    def special_ids(self) -> list[int]:
        """<|startoftext|> and <|endoftext|>; id 0 pads but is also a real symbol ("!")."""
        return sorted({self.bos_id, self.eos_id})

    def split(self, text: str) -> list[str]:
        text = " ".join(html.unescape(html.unescape(text)).split()).strip().lower()
        pieces = []
        for word in _WORDS.findall(text):
            if word in (START, END):
                pieces.append(word)
                continue
            pieces += self._bpe("".join(self.byte_encoder[b] for b in word.encode("utf-8")))
        return pieces

    def _bpe(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), float("inf")), i)
                     for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, best = min(pairs)
            if rank == float("inf"):
                break
            first, second = word[best], word[best + 1]
            merged, i = [], 0
            while i < len(word):  # every occurrence of the best pair, left to right
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def join(self, tokens: list[str]) -> str:
        """Byte symbols back to text; `</w>` ends a word (open_clip's decode)."""
        decoder = {v: k for k, v in self.byte_encoder.items()}
        data = bytearray()
        for token in tokens:
            word = token.removesuffix("</w>")
            data += bytes(decoder[c] for c in word if c in decoder)
            if word != token:
                data += b" "
        return data.decode("utf-8", errors="replace").strip()


def is_clip_bpe_dir(directory: Path) -> bool:
    return all((directory / name).is_file() for name in CLIP_BPE_FILES)


def read_clip_bpe(directory: Path) -> ClipBpeTokenizer:
    """vocab.json + merges.txt (Hugging Face's CLIPTokenizer files) → ClipBpeTokenizer."""
    vocab_path, merges_path = (directory / name for name in CLIP_BPE_FILES)
    try:
        table = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except (OSError, json.JSONDecodeError) as exc:
        raise BiofmError(f"CLIP tokenizer files are unreadable ({exc})", path=directory,
                         fix="re-copy vocab.json and merges.txt") from None
    vocab = [""] * len(table)
    for token, ident in table.items():
        if not 0 <= ident < len(vocab):
            raise BiofmError(f"vocab.json gives {token!r} the id {ident}, outside "
                             f"0..{len(vocab) - 1}", path=vocab_path, fix="re-copy vocab.json")
        vocab[ident] = token
    merges = [line.split() for line in lines if line and not line.startswith("#version")]
    for name in (START, END):
        if name not in table:
            raise BiofmError(f"vocab.json lacks {name}", path=vocab_path,
                             fix="use the CLIP tokenizer files saved with the model")
    return ClipBpeTokenizer(vocab, merges=merges)


__all__ = ["ClipBpeTokenizer", "is_clip_bpe_dir", "read_clip_bpe"]
