"""Clinical and biomedical text: notes, reports, abstracts (the clinical-BERT family).

Importing this package registers the "text" modality, the "text-bpe" tokenizer
(the "wordpiece" one lives in `biofm.interop.wordpiece`, shared with BERT
checkpoints), the corpus "iu-xray-reports" and the tasks "iu-xray-abnormal" and
"iu-xray-findings" (multi-label MeSH headings).

    biofm pretrain --modality text --input notes.csv --column text
    biofm embed --model MINILM_DIR --input notes.csv --column text --output e.parquet

Inputs: a CSV / TSV with a text column (`--column`, default "text"), a .txt file
(one document per line) or a directory of .txt files (one document per file);
see `reader`. Labeled CSVs split "random" (stratified) or "group" (identical
texts, case and spacing ignored, kept in one split). The classical baseline is
TF-IDF + logistic regression, fitted on the training split only. BERT-layout
checkpoints (BERT, BioBERT, PubMedBERT, ClinicalBERT, MiniLM) load from a local
directory with a WordPiece vocab.txt and are "text" models.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from biofm.bench.baselines import Baseline
from biofm.errors import BiofmError
from biofm.modalities.base import Log, Modality
from biofm.modalities.text import iu_xray  # noqa: F401  (registers the corpus and tasks)
from biofm.modalities.text.features import tfidf_features
from biofm.modalities.text.iu_xray import normalised
from biofm.modalities.text.reader import read_text
from biofm.modalities.text.tokenizers import TextBpeTokenizer, fit_wordpiece
from biofm.registry import MODALITIES

if TYPE_CHECKING:
    from biofm.model import FoundationModel

UNK_WARN = 0.02  # share of <unk> tokens above which inputs are said not to fit the vocabulary


@dataclass(frozen=True)
class TextModality(Modality):
    """Empty notes are errors naming file, line and column; "group" splits keep
    duplicate texts together; inputs mostly unknown to the vocabulary are reported."""

    def parse_input(self, value: str, path: Path, line: int, column: str) -> Any:
        text = value.strip()
        if not text:
            raise BiofmError(f"empty note in column {column!r}", path=path, record=line,
                             fix="fill or remove that row (rows with no value at all are left "
                                 "out and counted)")
        return text

    def split_index(self, strategy: str, inputs: Sequence[Any], labels: np.ndarray, kind: str,
                    seed: int):
        if strategy == "group":
            from biofm.data.splits import group_split

            groups: dict[str, list[int]] = defaultdict(list)
            for i, text in enumerate(inputs):
                groups[normalised(text)].append(i)
            return group_split(sorted(groups.values(), key=lambda g: g[0]), seed=seed)
        return super().split_index(strategy, inputs, labels, kind, seed)

    def check_inputs(self, model: "FoundationModel", inputs: Sequence[Any], where: str | Path,
                     log: Log) -> None:
        """Say so when many tokens are <unk>: a vocabulary from other text (or another
        alphabet) makes the model see little of these inputs."""
        tokenizer = model.tokenizer
        sample = [t for t in inputs[:500] if isinstance(t, str)]
        ids = [i for text in sample for i in tokenizer.encode(text, add_special_tokens=False)]
        if not ids:
            return
        share = sum(i == tokenizer.unk_id for i in ids) / len(ids)
        if share > UNK_WARN:
            log(f"{where}: {share:.1%} of the tokens of the first {len(sample)} texts are "
                f"unknown to the model's {tokenizer.name} vocabulary ({len(tokenizer):,} "
                "tokens); a model pretrained on similar text would see more of them")


TEXT = MODALITIES.register("text")(TextModality(
    name="text", read=read_text, build_tokenizer=fit_wordpiece,
    suffixes=(".txt", ".csv", ".tsv"), options=("column",), csv_column="text",
    split_strategies=("random", "group"),
    baselines=(Baseline("TF-IDF + logistic regression", tfidf_features, "linear-raw",
                        kinds=("classification", "regression", "multilabel")),),
))

__all__ = ["TEXT", "TextBpeTokenizer", "TextModality", "fit_wordpiece", "read_text"]
