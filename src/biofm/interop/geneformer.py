"""Geneformer checkpoint directories → biofm.

A Geneformer directory is a Hugging Face BERT directory (config.json with
model_type "bert", model.safetensors or pytorch_model.bin, post-norm, ReLU MLP,
absolute positions) plus two pickled tables from its tokenizer:

    token_dictionary.pkl        gene (Ensembl id) → token id; "<pad>": 0, "<mask>": 1
                                (V2 dictionaries add "<cls>", "<eos>")
    gene_median_dictionary.pkl  gene (Ensembl id) → non-zero median of its
                                normalised expression over the pretraining corpus

`load_geneformer` builds biofm's "geneformer" rank-value tokenizer from the
two tables (token ids kept as they are) and the model through the BERT loader,
as modality "singlecell"; `embed`, `finetune` and continued pretraining then work
on .h5ad files whose var holds Ensembl ids (or symbols plus a gene_ids column).
The pickles are read with an unpickler that admits plain containers, strings
and numbers only.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from biofm.errors import BiofmError
from biofm.interop.bert import is_hf_bert_dir, load_bert_model
from biofm.model import FoundationModel
from biofm.modalities.singlecell.tokenizers import GeneformerTokenizer

TOKEN_DICTIONARY = "token_dictionary.pkl"
GENE_MEDIANS = "gene_median_dictionary.pkl"
ROLES = {"<pad>": "pad", "<mask>": "mask", "<cls>": "bos", "<eos>": "eos"}
_SAFE_GLOBALS = {("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                 ("numpy._core.multiarray", "scalar"), ("builtins", "float"), ("builtins", "int")}


class _TableUnpickler(pickle.Unpickler):
    """Dicts of str → number only: no arbitrary code from a downloaded pickle."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a gene table")


def read_table(path: Path) -> dict[str, Any]:
    """A pickled gene → value dict, read safely; a clear error otherwise."""
    if not path.is_file():
        raise BiofmError(f"{path.name} is missing", path=path.parent,
                         fix=f"a Geneformer directory holds {TOKEN_DICTIONARY} and {GENE_MEDIANS} "
                             "beside the BERT files; copy them from the checkpoint's tokenizer")
    try:
        table = _TableUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise BiofmError(f"not a readable gene table ({exc})", path=path,
                         fix="use the pickle shipped with the Geneformer checkpoint") from None
    if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
        raise BiofmError("expected a dict keyed by gene id", path=path,
                         fix="use the pickle shipped with the Geneformer checkpoint")
    return table


def _number(table: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """table[key] as `kind` (int or float); a clear error for anything else."""
    value = table[key]
    try:
        if isinstance(value, (str, bytes, bool)):
            raise TypeError(type(value).__name__)
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise BiofmError(f"{key!r} maps to {value!r}, not a number", path=path,
                         fix="use the pickle shipped with the Geneformer checkpoint") from None


def is_geneformer_dir(path: str | Path) -> bool:
    directory = Path(path)
    return is_hf_bert_dir(directory) and (directory / TOKEN_DICTIONARY).is_file()


def geneformer_tokenizer(directory: str | Path) -> GeneformerTokenizer:
    """The rank-value tokenizer of a Geneformer directory, with its ids and medians."""
    directory = Path(directory)
    tokens = read_table(directory / TOKEN_DICTIONARY)
    medians = read_table(directory / GENE_MEDIANS)
    ids = sorted(_number(tokens, t, int, directory / TOKEN_DICTIONARY) for t in tokens)
    if ids != list(range(len(tokens))):
        raise BiofmError("token ids are not 0 .. n-1", path=directory / TOKEN_DICTIONARY,
                         fix="use the token dictionary shipped with the checkpoint")
    vocab = [""] * len(tokens)
    for token, i in tokens.items():
        vocab[int(i)] = token
    specials = {ROLES[t]: t for t in vocab if t in ROLES}
    if "pad" not in specials or "mask" not in specials:
        raise BiofmError("the token dictionary has no <pad> or <mask>",
                         path=directory / TOKEN_DICTIONARY,
                         fix="use the token dictionary shipped with the checkpoint")
    genes = [t for t in vocab if t not in ROLES]
    missing = [g for g in genes if g not in medians]
    if missing:
        raise BiofmError(f"{len(missing)} genes of the token dictionary have no median "
                         f"(e.g. {missing[0]})", path=directory / GENE_MEDIANS,
                         fix="use the gene median dictionary of the same checkpoint")
    bad = [g for g in genes if not _number(medians, g, float, directory / GENE_MEDIANS) > 0]
    if bad:
        raise BiofmError(f"gene {bad[0]} has a median of {medians[bad[0]]}; medians must be > 0",
                         path=directory / GENE_MEDIANS,
                         fix="use the gene median dictionary of the same checkpoint")
    return GeneformerTokenizer(vocab, specials,
                               medians=[1.0 if t in ROLES else float(medians[t]) for t in vocab])


def load_geneformer(directory: str | Path) -> FoundationModel:
    """A Geneformer directory → FoundationModel (modality "singlecell")."""
    directory = Path(directory)
    if not is_hf_bert_dir(directory):
        raise BiofmError("not an HF BERT directory (config.json with model_type 'bert')",
                         path=directory, fix="pass a Geneformer checkpoint directory")
    return load_bert_model(directory, geneformer_tokenizer(directory), modality="singlecell")
