"""Series → patches, and per-series instance normalisation (PatchTST / TimesFM style).

A window of a series is cut into non-overlapping patches of `patch_len` steps,
aligned on its *last* value (so the last patch ends at the forecast origin; a
length that is not a multiple of `patch_len` is left-padded with NaN = missing).
The `PatchTokenizer` turns it into one `<patch>` token per patch plus the raw
patch values; the backbone runs with `values: patches`.

Normalisation is not done by the tokenizer but when a batch is prepared (by
the objective, or by the forecaster), because only the objective knows which
values the model may see: statistics come from *visible* values only (observed,
not masked, not in the future; for masked-patch, the last `objective.norm_window` of them,
so the scale is the recent one), and the backbone input per patch is

    [ (x - loc) / scale  (0 where not visible) ,  visible flag ]   (2 * patch_len,)

so `backbone.value_size = 2 * patch_len` and the model can tell a missing or
masked value from a value equal to the mean. Outputs are un-normalised with
the same `loc` / `scale`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

PATCH_VOCAB: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<patch>")
PATCH_SPECIALS: dict[str, str] = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>",
                                  "eos": "<eos>", "mask": "<mask>"}
SCALE_TOLERANCE = 1e-6  # below this a standard deviation counts as zero (constant series)
MIN_VISIBLE = 2  # values a row needs before its targets are trained on
# masked-patch presets normalise with the last 16 visible values (objective.norm_window):
# with the whole context (64 steps) a spring forecast of an ILI series was scaled by the
# winter peak still in its context and its intervals were far too wide. ts-patch-tiny,
# flu-boston (held out), last 6 origins, 3 pretraining seeds: zero-shot rel. WIS 1.43 -> 1.16
# (50% coverage 0.84 -> 0.89), full fine-tune 0.89 -> 0.95 (8 and 32 were worse).


@TOKENIZERS.register("ts-patch")
class PatchTokenizer(Tokenizer):
    """One `<patch>` token per `patch_len` steps; the values travel beside the ids.

    The vocabulary only holds the specials and `<patch>`: the information is in
    the values (`ValuedSequence.values`, (n_patches, patch_len) float32, NaN =
    missing), which the backbone projects linearly and adds to the token embedding.
    """

    name = "ts-patch"

    def __init__(self, vocab: Sequence[str] = PATCH_VOCAB,
                 specials: dict[str, str] | None = None, *, patch_len: int = 8,
                 **config: Any) -> None:
        if patch_len < 1:
            raise BiofmError(f"patch_len must be at least 1, got {patch_len}",
                             fix="set backbone.value_size = 2 * patch_len with patch_len >= 1")
        super().__init__(vocab, specials or PATCH_SPECIALS, patch_len=patch_len, **config)
        self.patch_len = patch_len

    @property
    def patch_id(self) -> int:
        return self.token_to_id["<patch>"]

    def split(self, text: str) -> list[str]:
        raise BiofmError("a time-series model takes numbers, not text",
                         fix="encode series with PatchTokenizer.encode_series, or forecast "
                             "with biofm.modalities.timeseries.PatchForecaster")

    def n_patches(self, n_values: int) -> int:
        return -(-n_values // self.patch_len)

    def encode_series(self, values: np.ndarray, n_patches: int | None = None) -> ValuedSequence:
        """(n,) float values → `n_patches` patches ending at the last value.

        Left-pads with NaN (missing) up to `n_patches * patch_len` values, or
        keeps only the last `n_patches` patches when the series is longer.
        ids: (n_patches,) all `<patch>`; values: (n_patches, patch_len) float32.
        """
        patches = patchify(values, self.patch_len, n_patches)
        ids = np.full(len(patches), self.patch_id, dtype=np.int64)
        return ValuedSequence(ids, patches)


def patchify(values: np.ndarray, patch_len: int, n_patches: int | None = None) -> np.ndarray:
    """(n,) → (n_patches, patch_len) float32, aligned on the last value, NaN-left-padded."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if n_patches is None:
        n_patches = -(-len(values) // patch_len)
    total = n_patches * patch_len
    out = np.full(total, np.nan, dtype=np.float64)
    kept = values[-total:] if total else values[:0]
    out[total - len(kept):] = kept
    return out.reshape(n_patches, patch_len).astype(np.float32)


def unpatchify(patches: np.ndarray) -> np.ndarray:
    """(n_patches, patch_len, ...) → (n_patches * patch_len, ...): the inverse of `patchify`."""
    return patches.reshape(-1, *patches.shape[2:])


def recent_visible(visible: torch.Tensor, recent: int) -> torch.Tensor:
    """(B, T, P) bool: only the last `recent` visible values of each row (in time order)."""
    flat = visible.reshape(visible.shape[0], -1)
    after = flat.flip(-1).long().cumsum(-1).flip(-1)  # visible values at or after each step
    return (flat & (after <= recent)).reshape(visible.shape)


def instance_stats(values: torch.Tensor, visible: torch.Tensor, *, cumulative: bool = False,
                   recent: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of the visible values of each row.

    values (B, T, P) float (NaN allowed where not visible), visible (B, T, P) bool.
    Returns loc, scale and the number of visible values counted, each (B, 1, 1);
    with `cumulative` (causal models) (B, T, 1): the statistics of patches 0..t,
    so that position t never sees a later value. A row with no visible values
    gets loc 0, scale 1; a constant row (std below 1e-6) gets scale 1 (TimesFM).
    `recent` (not with `cumulative`): use only the last `recent` visible values of
    each row (the masked-patch objective and forecaster use `objective.norm_window`).
    """
    if recent is not None and not cumulative:
        visible = recent_visible(visible, recent)
    v = torch.where(visible, values, torch.zeros_like(values)).double()
    count, total, squares = (x.sum(-1, keepdim=True) for x in (visible.double(), v, v * v))
    if cumulative:
        count, total, squares = (x.cumsum(1) for x in (count, total, squares))  # (B, T, 1)
    else:
        count, total, squares = (x.sum(1, keepdim=True) for x in (count, total, squares))
    loc = total / count.clamp(min=1)
    var = (squares / count.clamp(min=1) - loc * loc).clamp(min=0)
    scale = var.sqrt()
    scale = torch.where(scale < SCALE_TOLERANCE, torch.ones_like(scale), scale)
    return loc.float(), scale.float(), count.float()


def model_inputs(values: torch.Tensor, visible: torch.Tensor, loc: torch.Tensor,
                 scale: torch.Tensor) -> torch.Tensor:
    """The backbone's value input (B, T, 2P): normalised visible values (0 elsewhere)
    concatenated with the visible flags."""
    normed = (values - loc) / scale
    normed = torch.where(visible, normed, torch.zeros_like(normed))
    return torch.cat([normed, visible.to(normed.dtype)], dim=-1)


def normalise(values: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(x - loc) / scale, NaN stays NaN."""
    return (values - loc) / scale


def denormalise(normed: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalise`; loc / scale broadcast over any trailing quantile axis."""
    return normed * scale + loc


__all__ = ["MIN_VISIBLE", "PATCH_SPECIALS", "PATCH_VOCAB", "PatchTokenizer",
           "denormalise", "instance_stats", "model_inputs", "normalise", "patchify",
           "recent_visible", "unpatchify"]
