"""The tokenizer contract shared by every modality.

A tokenizer turns one record's text into a list of ints and back; nothing else.
Vocabularies are explicit lists, so ids are stable and saved with checkpoints
as `tokenizer.json`: {"type": <registry name>, "vocab": [...], "config": {...}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

from biofm.errors import BiofmError
from biofm.io import atomic_write_text
from biofm.registry import TOKENIZERS

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Vocabulary + splitting rule. Subclasses implement `split` and register.

    Special tokens are named by role: `bos` (also the CLS token), `eos`, `pad`,
    `unk`, `mask`. `encode` adds `bos ... eos` by default (`bos ...` alone when
    the tokenizer's config has `add_eos: false`).
    """

    name: ClassVar[str] = "base"
    special_roles: ClassVar[tuple[str, ...]] = ("bos", "eos", "pad", "unk", "mask")

    def __init__(self, vocab: Sequence[str], specials: dict[str, str], **config: Any) -> None:
        self.vocab = list(vocab)
        self.token_to_id = {tok: i for i, tok in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            raise ValueError("tokenizer vocabulary has duplicate tokens")
        missing = [tok for tok in specials.values() if tok not in self.token_to_id]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary")
        self.specials = dict(specials)
        self.config = dict(config)

    # -- ids of special tokens ------------------------------------------------
    def _id(self, role: str) -> int:
        return self.token_to_id[self.specials[role]]

    @property
    def bos_id(self) -> int:
        return self._id("bos")

    @property
    def eos_id(self) -> int:
        return self._id("eos")

    @property
    def pad_id(self) -> int:
        return self._id("pad")

    @property
    def unk_id(self) -> int:
        return self._id("unk")

    @property
    def mask_id(self) -> int:
        return self._id("mask")

    @property
    def special_ids(self) -> list[int]:
        """Ids that objectives never mask or predict (all special roles)."""
        return sorted({self.token_to_id[t] for t in self.specials.values()})

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    # -- the rule ---------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """Cut one record into vocabulary tokens (unknown pieces stay as they are)."""
        raise NotImplementedError

    def encode(self, text: str, *, add_special_tokens: bool = True,
               max_length: int | None = None) -> list[int]:
        """Text → ids. `max_length` counts special tokens and truncates the body."""
        ids = [self.token_to_id.get(tok, self.unk_id) for tok in self.split(text)]
        if add_special_tokens:
            tail = [self.eos_id] if self.adds_eos else []
            if max_length is not None:
                ids = ids[: max(max_length - 1 - len(tail), 0)]
            return [self.bos_id, *ids, *tail]
        return ids if max_length is None else ids[:max_length]

    @property
    def adds_eos(self) -> bool:
        """Whether `encode` ends with <eos> (config "add_eos"; off for checkpoints
        trained with a leading <cls> only, e.g. the Nucleotide Transformer)."""
        return bool(self.config.get("add_eos", True))

    def encode_batch(self, texts: Iterable[str], **kwargs: Any) -> list[list[int]]:
        return [self.encode(t, **kwargs) for t in texts]

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        skip = set(self.special_ids) if skip_special_tokens else set()
        return self.join([self.vocab[i] for i in ids if i not in skip])

    def join(self, tokens: list[str]) -> str:
        """Inverse of `split` on vocabulary tokens (concatenation by default)."""
        return "".join(tokens)

    # -- persistence ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"type": self.name, "vocab": self.vocab, "specials": self.specials,
                "config": self.config}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TOKENIZER_FILE
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Tokenizer":
        return cls(data["vocab"], data["specials"], **data.get("config", {}))


class RustTokenizer(Tokenizer):
    """A tokenizer whose `split` is a Hugging Face `tokenizers` (Rust) pipeline, built
    from the vocabulary and config on first use (`_build`) with the special tokens
    matched whole, and dropped when pickled (worker processes rebuild it)."""

    _model: Any = None

    def _build(self) -> Any:
        """The `tokenizers.Tokenizer` for this vocabulary and config."""
        raise NotImplementedError

    def _hf(self) -> Any:
        if self._model is None:
            model = self._build()
            model.add_special_tokens(sorted(set(self.specials.values())))
            self._model = model
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def split(self, text: str) -> list[str]:
        return self._hf().encode(text, add_special_tokens=False).tokens


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Rebuild the tokenizer saved in a checkpoint directory."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise BiofmError("no tokenizer.json in this checkpoint directory", path=directory,
                         fix="pass a directory written by biofm (or an HF ESM-2 directory)")
    try:
        data = json.loads(path.read_text())
        cls = TOKENIZERS.get(data["type"])
    except (json.JSONDecodeError, KeyError) as exc:
        raise BiofmError(f"tokenizer file is unreadable ({exc})", path=path,
                         fix="re-save the checkpoint") from exc
    return cls.from_dict(data)
