"""CLIP-style image × text models: two towers, two projections, symmetric InfoNCE.

    clip = ClipModel.from_towers(vit, text_model, embed_dim=64)   # FoundationModels
    out = clip(images, texts)                 # ContrastiveOutput (loss, logits, temperature)
    probs = zero_shot_classify(clip, images, {"hippocampus": ["a slice of the hippocampus"]})
    recall = retrieval_recall(clip, images, texts, ks=(1, 5))

The image tower is a ViT (`biofm.backbones.vision`, pooled by [CLS]); the text
tower is any biofm text encoder (the text modality's, pooled by [CLS] or the
mean) or a CLIP causal text transformer (pooled at its end-of-text token, the
largest id: open_clip's "argmax"). Each tower's pooled state is projected
linearly (no bias, as CLIP) to `embed_dim`; the loss is
`biofm.objectives.contrastive.SymmetricInfoNCE` with its learnable temperature
(CLIP's logit_scale is its `log_scale`). Training goes through the one
optimizer step (`train_clip` → `biofm.train.trainer.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biofm.backbones.vision import vit_features
from biofm.data.collate import pad_collate
from biofm.errors import BiofmError
from biofm.model import FoundationModel, evaluating
from biofm.objectives.contrastive import (
    ContrastiveOutput,
    SymmetricInfoNCE,
    recall_at_k,
)
from biofm.tokenizer import Tokenizer
from biofm.train.trainer import FitConfig, Loss, Trainer, fit

TextPooling = Literal["cls", "mean", "eot"]


class ClipModel(nn.Module):
    """An image tower (ViT FoundationModel) and a text tower (backbone + tokenizer),
    projected to one space and trained with symmetric InfoNCE. Poolings: image "cls"
    (CLIP) or "mean" (of the patches); text "cls", "mean" or "eot" (CLIP's text).

    text_tokenizer None: the text tower takes token ids only (`encode_text_ids`);
    an open_clip directory without vocab.json + merges.txt gives no CLIP BPE
    (see `biofm.interop.open_clip`).
    """

    def __init__(self, image: FoundationModel, text_backbone: nn.Module,
                 text_tokenizer: Tokenizer | None, *, embed_dim: int,
                 text_pooling: TextPooling = "cls", image_pooling: str = "cls",
                 temperature: float = 0.07) -> None:
        super().__init__()
        if text_pooling not in ("cls", "mean", "eot"):
            raise BiofmError(f"unknown text pooling {text_pooling!r}", fix="use cls, mean or eot")
        self.image = image
        self.text = text_backbone
        self.text_tokenizer = text_tokenizer
        self.text_pooling = text_pooling
        self.image_pooling = image_pooling
        self.image_proj = nn.Linear(image.config.backbone.d_model, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_backbone.config.d_model, embed_dim, bias=False)
        self.contrastive = SymmetricInfoNCE(temperature)

    @classmethod
    def from_towers(cls, image: FoundationModel, text: FoundationModel, *, embed_dim: int,
                    text_pooling: TextPooling = "mean", image_pooling: str = "mean",
                    temperature: float = 0.07) -> "ClipModel":
        """Two biofm models (e.g. an MAE-pretrained ViT, an MLM-pretrained text encoder).
        Mean pooling by default: on the synthetic test pairs, tiny towers pooled by
        [CLS] stayed at chance after 40 steps, the means reached 100% zero-shot."""
        return cls(image, text.backbone, text.tokenizer, embed_dim=embed_dim,
                   text_pooling=text_pooling, image_pooling=image_pooling,
                   temperature=temperature)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- towers -----------------------------------------------------------------------
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) → (B, embed_dim), not normalised."""
        return self.image_proj(vit_features(self.image, images,
                                            pooling=self.image_pooling).pooled)

    def encode_text_ids(self, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids (+ padding mask) → (B, embed_dim), not normalised."""
        input_ids = input_ids.to(self.device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        attention_mask = attention_mask.to(self.device).bool()
        if self.text_pooling == "eot":  # CLIP: the end-of-text token has the largest id
            last = input_ids.argmax(dim=1)  # (B,)
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            attention_mask = attention_mask & (positions[None] <= last[:, None])
        hidden = self.text(input_ids, attention_mask).last_hidden_state  # (B, T, d)
        if self.text_pooling == "eot":
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        elif self.text_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            w = attention_mask[..., None].to(hidden.dtype)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp(min=1)
        return self.text_proj(pooled)

    def text_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts → padded (ids, mask) with the text tower's tokenizer."""
        if self.text_tokenizer is None:
            raise BiofmError("this CLIP model's text tower has no tokenizer (an open_clip "
                             "directory without CLIP's vocab.json and merges.txt)",
                             fix="pass token ids to encode_text_ids (e.g. from open_clip's "
                                 "tokenizer), or pair the image tower with a biofm text model")
        max_len = getattr(getattr(self.text, "config", None), "max_len", None)
        ids = [self.text_tokenizer.encode(t, max_length=max_len) for t in texts]
        batch = pad_collate(ids, self.text_tokenizer.pad_id)
        return batch.input_ids, batch.attention_mask

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode_text_ids(*self.text_batch(texts))

    def forward(self, images: torch.Tensor, texts: Sequence[str] | tuple[torch.Tensor, ...]
                ) -> ContrastiveOutput:
        """Row i of `images` pairs with text i: the symmetric InfoNCE over the batch.
        Given as strings, equal texts are all positives of each other's images (many
        crops of one region share its name), not in-batch negatives."""
        image = self.encode_images(images.to(self.device))
        if isinstance(texts, tuple):
            return self.contrastive(image, self.encode_text_ids(*texts))
        same = torch.tensor([[a == b for b in texts] for a in texts], device=image.device)
        return self.contrastive(image, self.encode_texts(texts), same)


def train_clip(clip: ClipModel, images: torch.Tensor, texts: Sequence[str], config: FitConfig,
               *, batch_size: int = 32, seed: int = 0,
               device: torch.device | str = "cpu") -> list[float]:
    """Contrastive training on (image i, text i) pairs through the one optimizer step
    (`biofm.train.trainer`); batches drawn without replacement per epoch from `seed`.
    Returns the loss of every step."""
    if len(images) != len(texts) or len(texts) < 2:
        raise BiofmError(f"{len(images)} images and {len(texts)} texts: contrastive training "
                         "needs at least two pairs, one text per image",
                         fix="pair each image with its text")
    device = torch.device(device)
    clip.to(device).train()
    rng = np.random.default_rng(seed)
    order: list[int] = []

    def next_batch() -> tuple[torch.Tensor, list[str]]:
        nonlocal order
        if len(order) < batch_size:
            order = order + rng.permutation(len(texts)).tolist()
        chosen, order = order[:batch_size], order[batch_size:]
        return images[chosen], [texts[i] for i in chosen]

    losses: list[float] = []
    trainer = Trainer(clip, config, device)
    fit(trainer, next_batch, lambda batch: Loss(clip(*batch).loss),
        lambda out: losses.append(float(out.loss)) and False)
    clip.eval()
    return losses


# -- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def _embed_all(fn: Callable, items: Sequence, batch_size: int) -> torch.Tensor:
    return torch.cat([F.normalize(fn(items[i: i + batch_size]).float(), dim=-1)
                      for i in range(0, len(items), batch_size)])


@dataclass
class ZeroShot:
    """classes: names in column order; probs (N, K) softmax over the scaled cosines;
    predicted (N,) indices into `classes`."""

    classes: list[str]
    probs: np.ndarray
    predicted: np.ndarray


def zero_shot_classify(clip: ClipModel, images: torch.Tensor,
                       prompts: Mapping[str, Sequence[str]], *,
                       batch_size: int = 64) -> ZeroShot:
    """Classify images by their nearest class prompt embedding: each class's
    prompts are embedded, normalised and averaged (CLIP's prompt ensembling)."""
    if not prompts or any(not p for p in prompts.values()):
        raise BiofmError("zero-shot classification needs at least one prompt per class",
                         fix="give e.g. {'hippocampus': ['a brain slice through the "
                             "hippocampus']}")
    with evaluating(clip):
        image = _embed_all(lambda x: clip.encode_images(torch.as_tensor(x)), images, batch_size)
        classes = []
        for name, texts in prompts.items():
            emb = _embed_all(clip.encode_texts, list(texts), batch_size).mean(0)
            classes.append(F.normalize(emb, dim=-1))
        scale = 1.0 / clip.contrastive.temperature.detach()
        logits = scale * image @ torch.stack(classes).T  # (N, K)
    probs = logits.softmax(-1).cpu().numpy()
    return ZeroShot(list(prompts), probs, probs.argmax(1))


def retrieval_recall(clip: ClipModel, images: torch.Tensor, texts: Sequence[str], *,
                     ks: tuple[int, ...] = (1, 5, 10), batch_size: int = 64,
                     positives: torch.Tensor | None = None) -> dict[str, float]:
    """Image → text and text → image recall@k (positives: (N_images, N_texts) bool,
    default image i ↔ text i), keys "image_to_text_recall@k", "text_to_image_recall@k"."""
    with evaluating(clip):
        image = _embed_all(lambda x: clip.encode_images(torch.as_tensor(x)), images, batch_size)
        text = _embed_all(clip.encode_texts, list(texts), batch_size)
    if positives is None:
        if len(image) != len(text):
            raise BiofmError(f"{len(image)} images but {len(texts)} texts",
                             fix="pair one text per image, or pass positives")
        positives = torch.eye(len(image), dtype=torch.bool)
    positives = positives.to(image.device)
    out = {f"image_to_text_{k}": v for k, v in recall_at_k(image, text, positives, ks).items()}
    out.update({f"text_to_image_{k}": v
                for k, v in recall_at_k(text, image, positives.T, ks).items()})
    return out


__all__ = ["ClipModel", "ZeroShot", "retrieval_recall", "train_clip", "zero_shot_classify"]
