"""`FoundationModel` = tokenizer + backbone + objective, and its checkpoint directory.

A checkpoint directory is self-describing and loadable alone:

    config.yaml         PretrainConfig (backbone shape filled in)
    model.safetensors   weights (tied output projection stored once)
    tokenizer.json      the vocabulary and rule
    biofm.json          format marker and version
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from biofm.backbones import build_backbone, count_parameters
from biofm.backbones.layers import Segments, pool, pool_documents
from biofm.config import PretrainConfig
from biofm.data.collate import length_batches, pack_collate, pack_rows, pad_collate
from biofm.errors import BiofmError
from biofm.io import atomic_path, atomic_write_text
from biofm.objectives import build_objective
from biofm.outputs import BackboneOutput, Batch, ObjectiveOutput
from biofm.tokenizer import Tokenizer, load_tokenizer

FORMAT = {"format": "biofm-checkpoint", "version": 1}
CPU_EMBED_TOKENS = 4096  # tokens per embedding forward on a CPU (cache-sized)
Pooling = Literal["mean", "cls"]


class FoundationModel(nn.Module):
    """A pretrainable model: `forward(batch)` returns the objective's loss and logits."""

    def __init__(self, config: PretrainConfig, tokenizer: Tokenizer) -> None:
        super().__init__()
        backbone_cfg = config.backbone.replace(
            vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id, mask_id=tokenizer.mask_id,
            **_value_fields(tokenizer))
        self.config = config.replace(backbone=backbone_cfg.model_dump(mode="json"))
        self.tokenizer = tokenizer
        self.backbone = build_backbone(self.config.backbone)
        self.objective = build_objective(self.config.objective, self.config.backbone,
                                         tokenizer.special_ids)
        self.objective.tie_weights(self.backbone.embed_tokens)

    def forward(self, batch: Batch) -> ObjectiveOutput:
        hidden = self.backbone(batch.input_ids, batch.attention_mask, batch.document_ids,
                               values=batch.values, positions=batch.positions,
                               outputs_at=self.objective.output_positions(batch))
        return self.objective(hidden, batch)

    def num_parameters(self) -> int:
        return count_parameters(self)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- inference --------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(t, max_length=self.config.backbone.max_len) for t in texts]

    @torch.no_grad()
    def hidden_states(self, texts: Sequence[str]) -> BackboneOutput:
        """The backbone's output on `texts` (padded batch), in eval mode (no dropout)."""
        batch = pad_collate(self.encode(texts), self.tokenizer.pad_id).to(self.device)
        with evaluating(self):
            return self.backbone(batch.input_ids, batch.attention_mask, values=batch.values)

    @torch.no_grad()
    def embed(self, texts: Sequence[str], *, pooling: Pooling = "mean", batch_size: int = 64,
              packing: bool = True, max_tokens: int | None = None,
              progress: Iterable | None = None) -> np.ndarray:
        """Per-sequence embeddings (N, d) in float32.

        mean: average over the sequence's own tokens (special tokens excluded);
        cls: the hidden state of the leading <bos>/<cls> token.
        Sequences are sorted by length and run `batch_size` at a time, and at
        most `max_tokens` tokens at a time (default: 4,096 on a CPU, where
        larger batches spill the caches and run ~1.3x slower; no limit on an
        accelerator). packing: each batch's sequences lie end to end in one row
        with attention per document (no padding, no (T, T) mask; faster, same
        vectors to ~1e-6); False pads each batch to its longest sequence.
        """
        if pooling not in ("mean", "cls"):
            raise BiofmError(f"unknown pooling {pooling!r}", fix="use 'mean' or 'cls'")
        ids = self.encode(texts)
        out = np.zeros((len(texts), self.config.backbone.d_model), dtype=np.float32)
        embed_batch = self._embed_packed if packing else self._embed_padded
        if max_tokens is None and self.device.type == "cpu":
            max_tokens = CPU_EMBED_TOKENS
        with evaluating(self):
            for index in length_batches([len(s) for s in ids], batch_size, max_tokens):
                out[index] = embed_batch([ids[i] for i in index], pooling).float().cpu().numpy()
                if progress is not None:
                    progress.advance(len(index))  # type: ignore[attr-defined]
        return out

    def _embed_padded(self, seqs: list[list[int]], pooling: Pooling) -> torch.Tensor:
        batch = pad_collate(seqs, self.tokenizer.pad_id).to(self.device)
        hidden = self.backbone(batch.input_ids, batch.attention_mask,
                               values=batch.values).last_hidden_state
        special = torch.tensor(self.tokenizer.special_ids, device=hidden.device)
        return pool(hidden, batch.input_ids, batch.attention_mask, special, pooling)  # (n, d)

    def _embed_packed(self, seqs: list[list[int]], pooling: Pooling) -> torch.Tensor:
        row_tokens = sum(len(s) for s in seqs)  # one row: positions restart per document
        batch = pack_collate(seqs, self.tokenizer.pad_id, row_tokens)
        assert batch.document_ids is not None
        # the layout is read on the CPU, so the forward never waits on the device
        segments = Segments.from_document_ids(batch.document_ids).to(self.device)
        batch = batch.to(self.device)
        hidden = self.backbone(batch.input_ids, batch.attention_mask, values=batch.values,
                               segments=segments).last_hidden_state  # (1, N, d)
        special = torch.tensor(self.tokenizer.special_ids, device=hidden.device)
        pooled = pool_documents(hidden, batch.input_ids, batch.attention_mask, segments,
                                special, pooling)
        # documents come in pack order; put them back in the order of `seqs`
        packed_order = [i for row in pack_rows([len(s) for s in seqs], row_tokens) for i in row]
        out = torch.empty_like(pooled)
        out[torch.tensor(packed_order, device=out.device)] = pooled
        return out  # (n, d)

    # -- persistence --------------------------------------------------------------
    def save(self, directory: str | Path,
             weights: dict[str, torch.Tensor] | None = None) -> Path:
        """Write a self-describing checkpoint directory (each file atomically).

        `weights` replaces this module's own state dict (FSDP2 passes the full
        weights gathered from the shards).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config.save(directory / "config.yaml")
        self.tokenizer.save(directory)
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(weights if weights is not None else weights_for_saving(self), str(tmp),
                      metadata={"format": "pt"})
        atomic_write_text(directory / "biofm.json", json.dumps(FORMAT))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, map_location: str = "cpu") -> "FoundationModel":
        """The model saved in `directory`, in eval mode (training code calls `.train()`)."""
        directory = Path(directory)
        _check_checkpoint_dir(directory)
        config = PretrainConfig.load(directory / "config.yaml")
        model = cls(config, load_tokenizer(directory))
        state = read_safetensors(directory / "model.safetensors", device=map_location)
        load_weights(model, state, directory / "model.safetensors")
        return model.eval()


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode (no dropout) inside the block; afterwards every submodule
    is back in its own mode (a frozen part may have been in eval while the rest trained)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _value_fields(tokenizer: Tokenizer) -> dict:
    """A tokenizer that yields expression bins (scGPT) sets the backbone's value input."""
    size = getattr(tokenizer, "value_bins", None)
    return {} if size is None else {"values": "bins", "value_size": int(size)}


def weights_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with shared (tied) tensors stored once, contiguous."""
    seen: set[int] = set()
    out = {}
    for name, tensor in model.state_dict().items():
        key = tensor.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor.detach().contiguous().cpu()
    return out


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise BiofmError(f"weights file is unreadable or truncated ({exc})", path=path,
                         fix="re-copy the checkpoint, or resume training from an earlier one") from None


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Strict load that allows tied weights to be absent; clear error on mismatch."""
    expected = model.state_dict()
    tied = {n for n in expected if n not in state and _is_tied(model, n)}
    missing = sorted(set(expected) - set(state) - tied)
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in state if n in expected and state[n].shape != expected[n].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what}: {', '.join(names[:4])}{' …' if len(names) > 4 else ''}"
                           for what, names in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong)) if names)
        raise BiofmError(f"weights do not match the architecture in config.yaml ({detail})",
                         path=source,
                         fix="the checkpoint comes from a different architecture or size; "
                             "load it with the config it was saved with")
    model.load_state_dict(state, strict=False)


def _is_tied(model: nn.Module, name: str) -> bool:
    params = dict(model.named_parameters(remove_duplicate=False))
    if name not in params:
        return False
    return sum(p is params[name] for p in params.values()) > 1


def _check_checkpoint_dir(directory: Path) -> None:
    if not directory.exists():
        raise BiofmError("checkpoint directory does not exist", path=directory,
                         fix="check the path (pretrain writes DIR/final)")
    if not directory.is_dir():
        raise BiofmError("expected a checkpoint directory, got a file", path=directory,
                         fix="pass the directory that holds model.safetensors")
    for name in ("config.yaml", "model.safetensors", "tokenizer.json"):
        if not (directory / name).is_file():
            raise BiofmError(f"{name} is missing from the checkpoint directory", path=directory,
                             fix="pass a directory written by biofm, or an HF ESM-2 directory")
