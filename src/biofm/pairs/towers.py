"""A tower: one pretrained model reading one side of a pair, with windows for long inputs.

    tower = Tower(load_pretrained("runs/protein/final"))
    encoded = tower.encode_items(sequences)      # per item: its windows of token ids
    states = tower(encoded)                      # tokens (n, L, d), mask (n, L), pooled (n, d)

Inputs longer than the model's context (a 900-residue kinase, a 128-token tiny
protein model) are cut into consecutive, non-overlapping windows of
`max_len - specials` tokens; each window gets the special tokens of a normal input
and runs through the backbone on its own. The item's token states are its windows'
body tokens joined end to end (cross-attention sees the whole input) and its pooled
state is their mean: every residue counts once. Inputs are first cut to `max_tokens`
tokens (default 1,024) to bound the cost; `long_inputs="truncate"` keeps the first
window only, as `FoundationModel.encode` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.model import FoundationModel
from biofm.registry import MODALITIES

LongInputs = Literal["window", "truncate"]
UNKNOWN_SHARE = 0.5  # a learned vocabulary (SMILES) tolerates rare unknown tokens, not more


@dataclass
class TowerStates:
    """One tower's output for n items."""

    tokens: torch.Tensor  # (n, L, d) body-token states, windows joined, zero-padded
    mask: torch.Tensor  # (n, L) bool, True on tokens
    pooled: torch.Tensor  # (n, d) mean of the body tokens

    def take(self, rows: torch.Tensor) -> "TowerStates":
        """The states of items `rows` (B,), trimmed to their longest input."""
        mask = self.mask[rows]
        width = max(int(mask.sum(1).max()), 1) if len(rows) else 1
        return TowerStates(self.tokens[rows, :width], mask[:, :width], self.pooled[rows])

    def to(self, device: torch.device) -> "TowerStates":
        return TowerStates(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


class Tower(nn.Module):
    """A FoundationModel as one side of a pair model (see the module docstring)."""

    def __init__(self, base: FoundationModel, *, max_tokens: int = 1024,
                 long_inputs: LongInputs = "window") -> None:
        super().__init__()
        if base.config.backbone.values != "none":
            raise BiofmError(f"a {base.config.data.modality} model reads a second input beside "
                             "its tokens; pair towers read sequences or SMILES",
                             fix="use a protein, molecule or DNA model as a tower")
        if long_inputs not in ("window", "truncate"):
            raise BiofmError(f"unknown long_inputs {long_inputs!r}", fix="use window or truncate")
        self.base = base
        self.max_tokens, self.long_inputs = max_tokens, long_inputs
        self.register_buffer("special_ids", torch.tensor(base.tokenizer.special_ids),
                             persistent=False)

    @property
    def modality(self) -> str:
        return self.base.config.data.modality

    @property
    def d_model(self) -> int:
        return self.base.config.backbone.d_model

    @property
    def window(self) -> int:
        """Body tokens per window: the context minus <cls> (and <eos>)."""
        tokenizer = self.base.tokenizer
        return self.base.config.backbone.max_len - 1 - int(tokenizer.adds_eos)

    # -- inputs -------------------------------------------------------------------
    def parse(self, value: str, path: Path, line: int, column: str) -> object:
        """One CSV cell → the input this tower encodes; invalid for its modality (RDKit
        for SMILES) or mostly unknown to its tokenizer (any unknown character for a
        fixed alphabet such as ESM-2's) is a BiofmError naming the line and column."""
        value = MODALITIES.get(self.modality).parse_input(value, path, line, column)
        fix = (f"fix or remove that row, or pass --on-error skip; if the whole column is "
               f"not {self.modality} data, pair it with a {self.modality} model's column")
        try:
            ids = self.base.tokenizer.encode(str(value), add_special_tokens=False)
        except BiofmError as exc:
            raise BiofmError(f"{column!r} value {str(value)[:40]!r} cannot be tokenized for "
                             f"the {self.modality} tower ({exc})", path=path, record=line,
                             fix=fix) from None
        unknown = sum(i == self.base.tokenizer.unk_id for i in ids)
        learned = hasattr(type(self.base.tokenizer), "fit")
        if not ids or (unknown and not learned) or unknown > UNKNOWN_SHARE * len(ids):
            what = "is empty" if not ids else (f"has {unknown} of {len(ids)} characters / tokens "
                                                "unknown to the tower's vocabulary")
            raise BiofmError(f"{column!r} value {str(value)[:40]!r} {what}: not a valid "
                             f"{self.modality} input", path=path, record=line, fix=fix)
        return value

    def encode_items(self, items: Sequence) -> list[list[list[int]]]:
        """Per item, its windows of token ids (each with the tokenizer's special tokens)."""
        tokenizer = self.base.tokenizer
        head, tail = [tokenizer.bos_id], [tokenizer.eos_id] if tokenizer.adds_eos else []
        out = []
        for item in items:
            body = tokenizer.encode(str(item), add_special_tokens=False)[: self.max_tokens]
            if self.long_inputs == "truncate":
                body = body[: self.window]
            chunks = [body[i: i + self.window] for i in range(0, len(body), self.window)]
            out.append([head + chunk + tail for chunk in chunks or [[]]])
        return out

    def length_report(self, encoded: Sequence[list[list[int]]], items: Sequence) -> str | None:
        """What happened to inputs longer than the context (None: nothing)."""
        windowed = sum(len(w) > 1 for w in encoded)
        lengths = [len(self.base.tokenizer.encode(str(x), add_special_tokens=False))
                   for x in items]
        cut = sum(n > self.max_tokens for n in lengths)
        over = sum(n > self.window for n in lengths)
        if not over:
            return None
        if self.long_inputs == "truncate":
            return (f"{self.modality} tower: {over} of {len(items)} inputs are longer than its "
                    f"context ({self.window} tokens): their first {self.window} tokens are kept")
        return (f"{self.modality} tower: {windowed} of {len(items)} inputs are longer than its "
                f"context ({self.window} tokens) and are read in windows of {self.window}"
                + (f"; {cut} longer than {self.max_tokens} tokens are cut to their first "
                   f"{self.max_tokens}" if cut else ""))

    # -- forward ------------------------------------------------------------------
    def forward(self, encoded: Sequence[list[list[int]]]) -> TowerStates:
        """States of the items whose windows are `encoded` (see `encode_items`)."""
        device = self.special_ids.device
        flat = [w for windows in encoded for w in windows]
        batch = pad_collate(flat, self.base.tokenizer.pad_id).to(device)
        hidden = self.base.backbone(batch.input_ids, batch.attention_mask).last_hidden_state
        body = batch.attention_mask & ~torch.isin(batch.input_ids, self.special_ids)  # (W, T)
        # windows of an item are consecutive rows: its body tokens are one slice
        counts = [int(c) for c in _per_item(body.sum(1), [len(w) for w in encoded])]
        tokens = pad_sequence(list(torch.split(hidden[body], counts)), batch_first=True)
        lengths = torch.tensor(counts, device=device)
        width = tokens.shape[1]
        mask = torch.arange(width, device=device)[None, :] < lengths[:, None]  # (n, L)
        pooled = tokens.sum(1) / lengths.clamp(min=1)[:, None].to(tokens.dtype)
        return TowerStates(tokens, mask, pooled)


def _per_item(per_window: torch.Tensor, windows: list[int]) -> torch.Tensor:
    """Sum consecutive window counts into item counts."""
    item = torch.repeat_interleave(torch.arange(len(windows)), torch.tensor(windows))
    return torch.zeros(len(windows), dtype=per_window.dtype).index_add_(0, item,
                                                                         per_window.cpu())


__all__ = ["LongInputs", "Tower", "TowerStates"]
