"""A modality = reader(s) + default tokenizer. Registered in `MODALITIES`.

Adding a modality means one new package under `biofm/modalities/` that
registers a `Modality`, its tokenizers, corpora and tasks; no backbone or
objective code changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from biofm.data.records import OnError, Record, SkipLog
from biofm.tokenizer import Tokenizer

Reader = Callable[..., Iterator[Record]]


@dataclass(frozen=True)
class Modality:
    """How to read a modality's files and which tokenizer it uses by default.

    `read(path, on_error=..., skipped=..., **options)` streams `Record`s.
    `build_tokenizer(texts)` returns the default tokenizer, fitted on `texts`
    when its vocabulary depends on the corpus (SMILES), fixed otherwise (ESM-2).
    `suffixes` lets `biofm embed` recognise the modality of an input file.
    """

    name: str
    read: Reader
    build_tokenizer: Callable[[Sequence[str]], Tokenizer]
    suffixes: tuple[str, ...]

    def matches(self, path: str | Path) -> bool:
        name = Path(path).name.lower()
        if name.endswith(".gz"):
            name = name[:-3]
        return any(name.endswith(s) for s in self.suffixes)


def read_records(modality: Modality, path: str | Path, *, on_error: OnError = "raise",
                 skipped: SkipLog | None = None, **options) -> list[Record]:
    return list(modality.read(path, on_error=on_error, skipped=skipped, **options))
