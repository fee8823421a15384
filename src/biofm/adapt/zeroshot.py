"""Zero-shot mutation effects by masked marginals (ESM-1v, Meier et al. 2021).

For a substitution wt→mut at position i, mask position i in the wild-type
sequence and read the MLM head's log-probabilities there:

    score = log p(mut | x_{-i}) − log p(wt | x_{-i})

Negative scores predict a deleterious change. A multi-mutant ("A23G:K40R") scores
the sum of its single-site scores (the additive model of the paper). One forward
pass per unique mutated position, batched, on the wild-type context only.

Sequences longer than the model's `max_len` (special tokens included) are scored
in a window of `max_len − 2` residues centred on the mutated position (clamped
to the sequence ends), each window wrapped in <cls> … <eos> as in pretraining.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch

from biofm.errors import BiofmError
from biofm.model import FoundationModel, evaluating

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_SUBSTITUTION = re.compile(r"^([A-Za-z])([1-9][0-9]*)([A-Za-z])$")


@dataclass(frozen=True)
class Substitution:
    wt: str
    position: int  # 1-based, as in variant notation
    mut: str

    def __str__(self) -> str:
        return f"{self.wt}{self.position}{self.mut}"


def parse_variant(variant: str, sequence: str | None = None) -> list[Substitution]:
    """"A23G" or "A23G:K40R" → substitutions (1-based positions).

    With `sequence`, each position must exist and hold the stated wild type,
    which catches off-by-one numbering and the wrong reference sequence.
    """
    parts = variant.strip().split(":") if variant.strip() else []
    if not parts:
        raise BiofmError("empty variant",
                         fix="write variants like A23G, or A23G:K40R for multi-mutants")
    subs = []
    for part in parts:
        m = _SUBSTITUTION.match(part.strip())
        if m is None:
            raise BiofmError(f"variant {variant!r}: {part.strip()!r} is not a substitution",
                             fix="write <wild type><1-based position><mutant>, e.g. A23G; "
                                 "join multi-mutants with ':' (A23G:K40R)")
        subs.append(Substitution(m[1].upper(), int(m[2]), m[3].upper()))
    positions = [s.position for s in subs]
    if len(set(positions)) != len(positions):
        raise BiofmError(f"variant {variant!r} mutates one position twice",
                         fix="list each position once")
    if sequence is not None:
        seq = _clean(sequence)
        for s in subs:
            if s.position > len(seq):
                raise BiofmError(f"variant {variant!r}: position {s.position} is beyond the "
                                 f"sequence ({len(seq)} residues)",
                                 fix="positions are 1-based on the wild-type sequence you passed")
            if seq[s.position - 1] != s.wt:
                raise BiofmError(f"variant {variant!r}: residue {s.position} of the sequence is "
                                 f"{seq[s.position - 1]}, not {s.wt}",
                                 fix="check the numbering (1-based) and the reference sequence")
    return subs


def score_variants(model: FoundationModel, sequence: str, variants: Sequence[str],
                   batch_size: int = 16) -> list[float]:
    """Masked-marginal score of each variant (sum over its substitutions), in nats."""
    seq = _clean(sequence)
    parsed = [parse_variant(v, seq) for v in variants]
    vocab = model.tokenizer.token_to_id
    special = set(model.tokenizer.special_ids)
    for variant, subs in zip(variants, parsed):
        for s in subs:
            if vocab.get(s.mut) is None or vocab[s.mut] in special:
                raise BiofmError(f"variant {variant!r}: mutant residue {s.mut!r} is not in the "
                                 "model's vocabulary", fix="use one-letter amino-acid codes")
    positions = sorted({s.position for subs in parsed for s in subs})
    ids = _residue_ids(model, seq)
    log_probs = dict(zip(positions, _masked_log_probs(model, ids, positions, batch_size)))

    def site(s: Substitution) -> torch.Tensor:
        logp = log_probs[s.position]  # (V,) with residue s.position masked
        return logp[vocab[s.mut]] - logp[ids[s.position - 1]]

    return [float(sum(site(s) for s in subs)) for subs in parsed]


def score_all_substitutions(model: FoundationModel, sequence: str,
                            batch_size: int = 16) -> pd.DataFrame:
    """Every single substitution to the 20 standard amino acids: one row per (position, mut).

    Columns: variant ("A23G"), position (1-based), wt, mut, score. Rows where
    mut == wt score 0 and are kept so the table is a full L × 20 grid.
    """
    seq = _clean(sequence)
    ids = _residue_ids(model, seq)
    positions = list(range(1, len(seq) + 1))
    log_probs = _masked_log_probs(model, ids, positions, batch_size)  # (L, V)
    vocab = model.tokenizer.token_to_id
    mut_ids = torch.tensor([vocab[a] for a in STANDARD_AMINO_ACIDS])
    wt_ids = torch.tensor(ids)
    scores = log_probs[:, mut_ids] - log_probs[torch.arange(len(seq)), wt_ids][:, None]  # (L, 20)
    rows = [(f"{seq[p - 1]}{p}{a}", p, seq[p - 1], a, float(scores[p - 1, j]))
            for p in positions for j, a in enumerate(STANDARD_AMINO_ACIDS)]
    return pd.DataFrame(rows, columns=["variant", "position", "wt", "mut", "score"])


# -- internals ---------------------------------------------------------------------

def _clean(sequence: str) -> str:
    """Uppercase, whitespace and a final stop codon removed, as the protein tokenizer does."""
    seq = "".join(sequence.split()).upper().removesuffix("*")
    if not seq:
        raise BiofmError("the wild-type sequence is empty", fix="pass the protein sequence")
    return seq


def _residue_ids(model: FoundationModel, seq: str) -> list[int]:
    """Token ids of the residues; the tokenizer must map one residue to one token."""
    if model.config.objective.name != "mlm":
        raise BiofmError(f"masked-marginal scoring needs an MLM model, this one was trained with "
                         f"{model.config.objective.name!r}",
                         fix="use a model pretrained with objective mlm (e.g. an ESM-2 checkpoint)")
    ids = model.tokenizer.encode(seq, add_special_tokens=False)
    if len(ids) != len(seq):
        raise BiofmError(f"the {model.tokenizer.name!r} tokenizer turns {len(seq)} residues into "
                         f"{len(ids)} tokens",
                         fix="zero-shot scoring needs a one-token-per-residue tokenizer "
                             "such as esm2")
    return ids


def _window_start(length: int, index: int, width: int) -> int:
    """First residue of a `width` window centred on 0-based `index`, clamped to the sequence."""
    if length <= width:
        return 0
    return min(max(index - width // 2, 0), length - width)


@torch.no_grad()
def _masked_log_probs(model: FoundationModel, ids: list[int], positions: list[int],
                      batch_size: int) -> torch.Tensor:
    """Log-softmax over the vocabulary at each (1-based) position, masked in turn: (P, V)."""
    tok = model.tokenizer
    width = model.config.backbone.max_len - 2
    rows, targets = [], []
    for p in positions:
        start = _window_start(len(ids), p - 1, width)
        window = list(ids[start:start + width])
        window[p - 1 - start] = tok.mask_id
        rows.append([tok.bos_id, *window, tok.eos_id])
        targets.append(p - start)  # +1 for the leading <cls>
    inputs = torch.tensor(rows)  # (P, T): every row has the same length, no padding
    where = torch.tensor(targets)
    out = []
    with evaluating(model):
        for i in range(0, len(rows), batch_size):
            batch = inputs[i:i + batch_size].to(model.device)
            mask = torch.ones_like(batch, dtype=torch.bool)
            hidden = model.backbone(batch, mask).last_hidden_state  # (b, T, d)
            picked = hidden[torch.arange(len(batch)), where[i:i + batch_size].to(model.device)]
            out.append(torch.log_softmax(model.objective.logits(picked).float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0, tok.vocab_size)
