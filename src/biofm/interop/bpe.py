"""GPT-2's byte-level BPE (vocab.json + merges.txt, or tokenizer.json) behind biofm's `Tokenizer`.

The splitting rule is Hugging Face `tokenizers`' own GPT-2 pipeline (ByteLevel
pre-tokeniser with GPT-2's regex, BPE over the merges, ByteLevel decoder), so ids
match `transformers.GPT2TokenizerFast` on the same files. Special tokens are
matched whole in the text, so "<|endoftext|>" in a record is one token.

Special tokens, by role (from special_tokens_map.json / tokenizer_config.json
when the directory names them, else GPT-2's own):
    bos, eos, unk   <|endoftext|>   (as GPT-2: byte-level BPE never needs <unk>)
    pad             the pad_token when named, else <|endoftext|> (GPT-2 has none)
    mask            the mask_token when named, else <|endoftext|> (unused by a causal LM)
`encode` writes a record as `<|endoftext|> text <|endoftext|>`.

Saved with a biofm checkpoint like every tokenizer (`tokenizer.json`: the
vocabulary, the special tokens, `config["merges"]` and the pre-tokeniser options).
`config["whitespace"]` says what `decode` does with whitespace: "keep" (the text
as sampled), "strip" (the ends) or "remove" (all: ProtGPT2 writes its sequences as
FASTA-style lines of 60 residues).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Sequence

from biofm.errors import BiofmError
from biofm.interop.hf import read_json
from biofm.registry import TOKENIZERS
from biofm.tokenizer import RustTokenizer

ENDOFTEXT = "<|endoftext|>"
# role → the tokenizer-file key that names it
ROLE_KEYS = {"bos": "bos_token", "eos": "eos_token", "unk": "unk_token", "pad": "pad_token",
             "mask": "mask_token"}
Whitespace = Literal["keep", "strip", "remove"]
BPE_FILES = "vocab.json and merges.txt, or tokenizer.json"


def byte_level_bpe(token_to_id: dict[str, int], merges: Sequence[Sequence[str]], *,
                   add_prefix_space: bool, use_regex: bool = True) -> Any:
    """A `tokenizers` byte-level BPE (GPT-2's byte symbols: "Ġ" is a space) over a fixed
    vocabulary and merge list, with the byte-level decoder."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.decoders import ByteLevel as ByteLevelDecoder
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import ByteLevel

    model = HFTokenizer(BPE(vocab=dict(token_to_id), merges=[tuple(m) for m in merges]))
    model.pre_tokenizer = ByteLevel(add_prefix_space=add_prefix_space, use_regex=use_regex)
    model.decoder = ByteLevelDecoder()
    return model


@TOKENIZERS.register("byte-bpe")
class ByteBpeTokenizer(RustTokenizer):
    """Byte-level BPE over a fixed vocabulary (ids = the vocabulary's order).

    Options (saved in `config`): merges (pairs of symbols, in priority order),
    add_prefix_space (GPT-2: False), use_regex (GPT-2's split regex: True),
    whitespace (what `decode` does with it, see the module docstring).
    """

    name: ClassVar[str] = "byte-bpe"

    def __init__(self, vocab: Sequence[str], specials: dict[str, str] | None = None, *,
                 merges: Sequence[Sequence[str]] = (), add_prefix_space: bool = False,
                 use_regex: bool = True, whitespace: Whitespace = "keep",
                 **config: Any) -> None:
        if whitespace not in ("keep", "strip", "remove"):
            raise ValueError(f"whitespace must be keep, strip or remove, not {whitespace!r}")
        specials = specials if specials is not None else dict.fromkeys(ROLE_KEYS, ENDOFTEXT)
        super().__init__(vocab, specials, merges=[list(m) for m in merges],
                         add_prefix_space=add_prefix_space, use_regex=use_regex,
                         whitespace=whitespace, **config)

    def _build(self) -> Any:
        return byte_level_bpe(self.token_to_id, self.config["merges"],
                              add_prefix_space=self.config["add_prefix_space"],
                              use_regex=self.config["use_regex"])

    def join(self, tokens: list[str]) -> str:
        """Byte symbols → text ("Ġ" is a space, "Ċ" a newline), then the whitespace rule."""
        text = self._hf().decoder.decode(tokens)
        if self.config["whitespace"] == "remove":
            return "".join(text.split())
        return text.strip() if self.config["whitespace"] == "strip" else text

    def with_options(self, **options: Any) -> "ByteBpeTokenizer":
        """A copy with some config options changed (e.g. whitespace)."""
        return type(self)(self.vocab, self.specials, **{**self.config, **options})

    def texts(self) -> list[str]:
        """Each ordinary (non-special) token as the text it stands for."""
        decoder = self._hf().decoder
        special = set(self.specials.values())
        return [decoder.decode([t]) for t in self.vocab if t not in special]


# -- reading a Hugging Face directory -------------------------------------------------

@dataclass
class BpeFiles:
    """What a GPT-2 tokenizer directory holds, read but not yet checked against a model."""

    vocab: list[str]
    merges: list[list[str]]
    specials: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


def read_bpe_files(directory: str | Path) -> BpeFiles:
    """tokenizer.json (preferred, as transformers does) or vocab.json + merges.txt,
    with the special tokens named in special_tokens_map.json / tokenizer_config.json."""
    directory = Path(directory)
    if (directory / "tokenizer.json").is_file():
        files = _read_tokenizer_json(directory / "tokenizer.json")
    elif (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        files = _read_vocab_and_merges(directory)
    else:
        have = [n for n in ("vocab.json", "merges.txt") if (directory / n).is_file()]
        found = f" (found only {', '.join(have)})" if have else ""
        raise BiofmError(f"the GPT-2 tokenizer files are missing{found}", path=directory,
                         fix=f"an HF GPT-2 directory (model_type 'gpt2') holds {BPE_FILES}; "
                             "copy them with the weights")
    named = _named_specials(directory)
    known = set(files.vocab)
    odd = sorted({t for t in named.values() if t not in known})
    if odd:
        raise BiofmError(f"special tokens {', '.join(odd)} are not in the vocabulary",
                         path=files.source,
                         fix="the tokenizer files must come from the same checkpoint")
    fallback = named.get("eos") or named.get("bos") or ENDOFTEXT
    if fallback not in known:
        raise BiofmError(f"the vocabulary has no {ENDOFTEXT} and the directory names no "
                         "eos_token", path=files.source,
                         fix="add special_tokens_map.json naming the eos_token")
    files.specials = {role: named.get(role, fallback) for role in ROLE_KEYS}
    return files


def _read_vocab_and_merges(directory: Path) -> BpeFiles:
    table = read_json(directory / "vocab.json")
    added = directory / "added_tokens.json"
    if added.is_file():
        table = {**table, **read_json(added)}
    vocab = _vocab_in_id_order(table, directory / "vocab.json")
    merges = []
    lines = (directory / "merges.txt").read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#version"):
            continue
        pair = line.split()
        if len(pair) != 2:
            raise BiofmError(f"line {number} is not a pair of symbols: {line!r}",
                             path=directory / "merges.txt", fix="re-copy merges.txt")
        merges.append(pair)
    options = _tokenizer_config(directory)
    return BpeFiles(vocab, merges, {},
                    {"add_prefix_space": bool(options.get("add_prefix_space", False))},
                    directory / "vocab.json")


def _read_tokenizer_json(path: Path) -> BpeFiles:
    data = read_json(path)
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    problems = [(model.get("type") != "BPE", f"its model is {model.get('type')!r}, not BPE"),
                (pre.get("type") != "ByteLevel",
                 f"its pre_tokenizer is {pre.get('type')!r}, not ByteLevel"),
                (data.get("normalizer") is not None, "it has a normalizer")]
    for bad, why in problems:
        if bad:
            raise BiofmError(f"not a GPT-2 byte-level BPE tokenizer: {why}", path=path,
                             fix="biofm reads GPT-2-style tokenizers (byte-level BPE, no "
                                 "normalizer)")
    table = dict(model.get("vocab") or {})
    for token in data.get("added_tokens") or []:
        table[token["content"]] = token["id"]
    merges = [m.split(" ") if isinstance(m, str) else list(m) for m in model.get("merges") or []]
    options = {"add_prefix_space": bool(pre.get("add_prefix_space", False)),
               "use_regex": bool(pre.get("use_regex", True))}
    return BpeFiles(_vocab_in_id_order(table, path), merges, {}, options, path)


def _vocab_in_id_order(table: dict[str, Any], path: Path) -> list[str]:
    """{token: id} → tokens by id; the ids must be 0 … n-1."""
    by_id = sorted(table.items(), key=lambda item: item[1])
    ids = [i for _, i in by_id]
    if ids != list(range(len(ids))):
        gap = next(n for n, i in enumerate(ids) if i != n)
        raise BiofmError(f"the vocabulary's ids are not 0 … {len(ids) - 1} (id {gap} is "
                         "missing or repeated)", path=path, fix="re-copy the tokenizer files")
    return [token for token, _ in by_id]


def _tokenizer_config(directory: Path) -> dict[str, Any]:
    path = directory / "tokenizer_config.json"
    return read_json(path) if path.is_file() else {}


def _named_specials(directory: Path) -> dict[str, str]:
    """role → token for the roles the directory names (a value may be a string or
    an AddedToken dict with "content"); special_tokens_map.json wins."""
    named: dict[str, str] = {}
    files = [directory / "tokenizer_config.json", directory / "special_tokens_map.json"]
    for data in (read_json(p) for p in files if p.is_file()):
        for role, key in ROLE_KEYS.items():
            value = data.get(key)
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str) and value:
                named[role] = value
    return named


def write_bpe_files(tokenizer: ByteBpeTokenizer, directory: Path, max_len: int) -> None:
    """vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json, as
    `transformers.GPT2TokenizerFast` reads them."""
    from biofm.io import atomic_path, atomic_write_text

    specials = {ROLE_KEYS[role]: token for role, token in tokenizer.specials.items()}
    merges = "".join(f"{a} {b}\n" for a, b in tokenizer.config["merges"])
    atomic_write_text(directory / "vocab.json", json.dumps(tokenizer.token_to_id))  # \u escapes
    with atomic_path(directory / "merges.txt") as tmp:  # byte symbols such as "Ġ": UTF-8
        tmp.write_text("#version: 0.2\n" + merges, encoding="utf-8")
    atomic_write_text(directory / "special_tokens_map.json", json.dumps(specials, indent=2))
    atomic_write_text(directory / "tokenizer_config.json", json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "model_max_length": max_len,
         "add_prefix_space": tokenizer.config["add_prefix_space"], **specials}, indent=2))


__all__ = ["BPE_FILES", "BpeFiles", "ByteBpeTokenizer", "ENDOFTEXT", "read_bpe_files",
           "write_bpe_files"]
