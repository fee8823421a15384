"""A modality defined here, in the test file, runs pretrain → embed → finetune →
evaluate → compare through the CLI with no other code changed: the extension point
is the `Modality` and the registries, nothing generic branches on a name."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from biofm.bench.baselines import Baseline, per_input
from biofm.data.records import Record, handle_bad_record
from biofm.errors import BiofmError
from biofm.modalities.base import Modality
from biofm.registry import MODALITIES, TOKENIZERS
from biofm.tokenizer import Tokenizer

LETTERS = "wxyz"
SPECIALS = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}


class GlyphTokenizer(Tokenizer):
    """One token per letter of "wxyz"."""

    name = "glyphs"

    def __init__(self, vocab=(*SPECIALS.values(), *LETTERS), specials=None, **config) -> None:
        super().__init__(vocab, dict(specials or SPECIALS), **config)

    def split(self, text: str) -> list[str]:
        return list(text)


def read_glyphs(path, *, on_error="raise", skipped=None) -> Iterator[Record]:
    """`.glyph` files: "id<TAB>letters" per line."""
    for line, row in enumerate(Path(path).read_text().splitlines(), start=1):
        name, _, text = row.partition("\t")
        if not text or set(text) - set(LETTERS):
            handle_bad_record(BiofmError(f"bad glyph record {row!r}", path=path, record=line,
                                         fix="write id<TAB>letters from 'wxyz'"),
                              on_error, skipped, str(path), line)
            continue
        yield Record(name, text, str(path), line)


def letter_counts(texts) -> np.ndarray:
    return np.array([[t.count(c) / len(t) for c in LETTERS] for t in texts], dtype=np.float32)


def glyph_tokenizer(inputs) -> GlyphTokenizer:
    return GlyphTokenizer()


GLYPHS = Modality(name="glyph", read=read_glyphs, build_tokenizer=glyph_tokenizer,
                  suffixes=(".glyph",), csv_column="letters",
                  baselines=(Baseline("linear on letter counts", per_input(letter_counts),
                                      "linear"),))


@pytest.fixture
def glyph_modality():
    TOKENIZERS.register("glyphs")(GlyphTokenizer)
    MODALITIES.register("glyph")(GLYPHS)
    yield GLYPHS
    MODALITIES._entries.pop("glyph")
    TOKENIZERS._entries.pop("glyphs")


def _sequences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(LETTERS), size=int(rng.integers(12, 30)))) for _ in range(n)]


def test_a_modality_defined_in_a_test_runs_the_whole_cli(glyph_modality, cli, tmp_path):
    corpus = tmp_path / "corpus.glyph"
    corpus.write_text("".join(f"g{i}\t{s}\n" for i, s in enumerate(_sequences(200, 0))))
    texts = _sequences(240, 1)
    labeled = tmp_path / "labeled.csv"  # learnable: more w than z
    pd.DataFrame({"letters": texts,
                  "y": [int(t.count("w") > t.count("z")) for t in texts]}).to_csv(labeled,
                                                                                  index=False)
    run = cli("pretrain", "--modality", "glyph", "--objective", "mlm", "--input", corpus,
              "--steps", "5", "--batch-size", "8", "--set", "backbone.max_len=48",
              "--no-progress", "--output", tmp_path / "run")
    assert run.code == 0, run.err
    model = tmp_path / "run" / "final"

    run = cli("embed", "--model", model, "--input", corpus, "--output", tmp_path / "e.parquet")
    assert run.code == 0, run.err
    vectors = np.stack(pd.read_parquet(tmp_path / "e.parquet")["embedding"])
    assert vectors.shape[0] == 200 and np.isfinite(vectors).all()

    run = cli("finetune", "--model", model, "--input", labeled, "--label", "y",
              "--mode", "probe", "--output", tmp_path / "ft")
    assert run.code == 0, run.err
    run = cli("evaluate", "--model", tmp_path / "ft", "--input", labeled, "--label", "y",
              "--output", tmp_path / "m.json")
    assert run.code == 0, run.err
    assert "roc_auc" in (tmp_path / "m.json").read_text()

    run = cli("compare", "--model", model, "--input", labeled, "--label", "y", "--seeds", "1",
              "--mode", "probe")
    assert run.code == 0, run.err
    assert "linear on letter counts" in run.out  # the modality's own baseline ran


def test_reader_options_that_do_not_apply_are_errors(glyph_modality, cli, tmp_path):
    corpus = tmp_path / "corpus.glyph"
    corpus.write_text("a\twxyz\n")
    run = cli("pretrain", "--modality", "glyph", "--input", corpus, "--column", "smiles",
              "--output", tmp_path / "run")
    assert run.code == 2 and "--column does not apply to glyph data" in run.err
    assert "molecule" in run.err  # says which modalities take it
