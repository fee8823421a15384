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

from biofm.data.collate import ValuedSequence
from biofm.errors import BiofmError
from biofm.objectives.instance_norm import (MIN_VISIBLE, denormalise, instance_stats,
                                            model_inputs, normalise, recent_visible)
from biofm.registry import TOKENIZERS
from biofm.tokenizer import Tokenizer

PATCH_VOCAB: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>", "<patch>")
PATCH_SPECIALS: dict[str, str] = {"pad": "<pad>", "unk": "<unk>", "bos": "<bos>",
                                  "eos": "<eos>", "mask": "<mask>"}
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


__all__ = ["MIN_VISIBLE", "PATCH_SPECIALS", "PATCH_VOCAB", "PatchTokenizer",
           "denormalise", "instance_stats", "model_inputs", "normalise", "patchify",
           "recent_visible", "unpatchify"]
