"""SMILES and SELFIES tokenizers with vocabularies fitted on a corpus.

`SmilesTokenizer` cuts SMILES with the regex of Schwaller et al. (2019,
Molecular Transformer), the split used by ChemBERTa and MolGPT: one token per
bracket atom (`[nH]`, `[C@@H]`, `[O-]`), two-letter halogens, aromatic atoms,
bonds, branches and ring closures. The split is checked to be lossless, so
`decode(encode(s)) == s` for every SMILES whose tokens are in the vocabulary.

`SelfiesTokenizer` encodes SMILES to SELFIES (Krenn et al. 2020), whose
every token sequence decodes to a valid molecule, which is the point for
generative models. `selfies` is an optional extra, imported when the SELFIES
tokenizer is first used, so `import biofm` works without it.
"""

from __future__ import annotations

import re
from collections import Counter
from types import ModuleType
from typing import Any, ClassVar, Iterable, Sequence, TypeVar

from biofm.errors import BiofmError
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

# Schwaller et al. 2019, plus OpenSMILES `%(nnn)` ring closures (RDKit writes them
# past ring number 99). `Br?`/`Cl?` come before the one-letter atoms they extend.
SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$"
    r"|%\([0-9]+\)|%[0-9]{2}|[0-9])"
)

# role → token; `<bos>` doubles as the CLS token for encoders. Order fixes ids:
# <pad>=0 so zero-initialised buffers are padding.
SPECIALS: dict[str, str] = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>", "eos": "<eos>",
                            "mask": "<mask>"}

T = TypeVar("T", bound="FittedVocabTokenizer")


class FittedVocabTokenizer(Tokenizer):
    """A tokenizer whose vocabulary is the specials + the tokens seen in a corpus.

    Token order is by descending frequency, ties alphabetical, so fitting the
    same corpus always gives the same ids whatever the input order.
    """

    @classmethod
    def fit(cls: type[T], texts: Iterable[str], min_frequency: int = 1, **config: Any) -> T:
        """Build the vocabulary from `texts`; tokens rarer than `min_frequency` map to <unk>."""
        if min_frequency < 1:
            raise BiofmError(f"min_frequency must be >= 1, got {min_frequency}",
                             fix="use min_frequency=1 to keep every token seen")
        counts: Counter[str] = Counter()
        n_texts = 0
        probe = cls(list(SPECIALS.values()), SPECIALS, **config)
        for text in texts:
            counts.update(probe.split(text))
            n_texts += 1
        if n_texts == 0:
            raise BiofmError(f"cannot fit the {cls.name} tokenizer on an empty corpus",
                             fix="pass at least one molecule")
        specials = set(SPECIALS.values())
        kept = [tok for tok, c in counts.items() if c >= min_frequency and tok not in specials]
        kept.sort(key=lambda tok: (-counts[tok], tok))
        return cls([*SPECIALS.values(), *kept], SPECIALS, **config)


@TOKENIZERS.register("smiles-regex")
class SmilesTokenizer(FittedVocabTokenizer):
    """Regex SMILES tokenizer (ChemBERTa / MolGPT style)."""

    name: ClassVar[str] = "smiles-regex"

    def split(self, text: str) -> list[str]:
        """SMILES → tokens; raises if some character is not covered by the regex."""
        tokens: list[str] = []
        pos = 0
        for match in SMILES_REGEX.finditer(text):
            if match.start() != pos:
                _uncovered(text, pos)
            tokens.append(match.group())
            pos = match.end()
        if pos != len(text):
            _uncovered(text, pos)
        return tokens


def _uncovered(text: str, pos: int) -> None:
    raise BiofmError(f"SMILES {text!r} has a character the SMILES tokenizer cannot split: "
                     f"{text[pos]!r} at position {pos}", record=text,
                     fix="check it is valid SMILES (whitespace, or an element outside brackets "
                         "such as Si, must be written [Si]); reading files with biofm "
                         "canonicalises SMILES, which avoids this")


@TOKENIZERS.register("selfies")
class SelfiesTokenizer(FittedVocabTokenizer):
    """SMILES in, SELFIES tokens inside, SMILES out.

    `split` takes SMILES (like every molecule tokenizer, so readers and tasks
    stay the same) and returns SELFIES symbols; `join` decodes symbols back to
    SMILES. The round trip is exact up to canonicalisation, not character for
    character.
    """

    name: ClassVar[str] = "selfies"

    def split(self, text: str) -> list[str]:
        sf = _selfies()
        try:
            encoded = sf.encoder(text, strict=True)
        except sf.EncoderError as exc:
            raise BiofmError(f"SMILES {text!r} cannot be encoded as SELFIES ({_first_line(exc)})",
                             record=text,
                             fix="use the smiles-regex tokenizer for this corpus, or remove "
                                 "molecules that break SELFIES valence rules") from exc
        return list(sf.split_selfies(encoded))

    def join(self, tokens: Sequence[str]) -> str:
        """SELFIES symbols → SMILES; "" for symbols SELFIES cannot read.

        Sampled sequences may contain stray symbols; "" makes them count as
        invalid molecules in `generation_metrics` instead of crashing sampling.
        """
        sf = _selfies()
        try:
            return sf.decoder("".join(tokens)) or ""
        except sf.DecoderError:
            return ""


def _selfies() -> ModuleType:
    """The `selfies` module (an optional extra); a BiofmError naming the extra if absent."""
    try:
        import selfies
    except ImportError as exc:
        raise BiofmError("the selfies tokenizer needs the optional `selfies` package, which is "
                         "not installed", fix="install the extra: pip install 'biofm[selfies]'") from exc
    return selfies


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
