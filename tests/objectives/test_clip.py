"""CLIP-style image × text: symmetric InfoNCE training, zero-shot, retrieval (synthetic pairs).

The images are generated (a bright square whose place encodes the class, plus noise)
and the texts are class descriptions: a test of the machinery, not a result.
"""

import numpy as np
import pytest
import torch

from biofm.backbones.vision import build_vit
from biofm.config import PretrainConfig
from biofm.errors import BiofmError
from biofm.modalities.text import fit_wordpiece
from biofm.model import FoundationModel
from biofm.objectives.clip import (
    ClipModel,
    retrieval_recall,
    train_clip,
    zero_shot_classify,
)
from biofm.train.trainer import FitConfig
from tests.helpers import tiny_vit_config

CLASSES = {"top left": "hippocampus",
           "top right": "cerebellum",
           "bottom left": "thalamus",
           "bottom right": "putamen"}


def _pairs(n, seed):
    """(images (n, 1, 16, 16), class index (n,)): the square's corner is the class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.normal(0, 0.3, (n, 1, 16, 16)).astype(np.float32)
    for image, label in zip(images, labels):
        r, c = divmod(int(label), 2)
        image[0, 8 * r: 8 * r + 8, 8 * c: 8 * c + 8] += 2.0
    return torch.from_numpy(images), labels


def _clip():
    torch.manual_seed(0)
    image = build_vit(tiny_vit_config(), seed=0)
    tokenizer = fit_wordpiece(list(CLASSES.values()) * 3)
    text_config = PretrainConfig.from_dict({"data": {"modality": "text"},
                                            "backbone": {"size": "tiny", "max_len": 32}})
    text = FoundationModel(text_config, tokenizer)
    return ClipModel.from_towers(image, text, embed_dim=32)


def test_loss_is_symmetric_infonce_with_a_learnable_temperature():
    clip = _clip()
    images, labels = _pairs(4, 0)
    texts = [list(CLASSES.values())[i] for i in labels]
    out = clip(images, texts)
    assert out.logits.shape == (4, 4) and torch.isfinite(out.loss)
    out.loss.backward()
    assert clip.contrastive.log_scale.grad is not None  # the temperature learns
    assert clip.image.backbone.embed_values.weight.grad is not None
    assert clip.text.embed_tokens.weight.grad is not None


def test_training_makes_zero_shot_and_retrieval_beat_chance():
    clip = _clip()
    images, labels = _pairs(96, 1)
    texts = [list(CLASSES.values())[i] for i in labels]
    losses = train_clip(clip, images, texts, FitConfig(lr=3e-3, max_steps=40, warmup_steps=4),
                        batch_size=16, seed=0)
    assert len(losses) == 40 and np.mean(losses[-5:]) < np.mean(losses[:5])
    test_images, test_labels = _pairs(40, 2)
    result = zero_shot_classify(clip, test_images, {k: [v] for k, v in CLASSES.items()})
    assert result.classes == list(CLASSES) and result.probs.shape == (40, 4)
    np.testing.assert_allclose(result.probs.sum(1), 1.0, atol=1e-5)
    assert (result.predicted == test_labels).mean() > 0.5  # chance: 0.25
    prompts = list(CLASSES.values())
    positives = torch.from_numpy(test_labels[:, None] == np.arange(4)[None])
    recall = retrieval_recall(clip, test_images, prompts, ks=(1,), positives=positives)
    assert recall["image_to_text_recall@1"] > 0.5
    assert set(recall) == {"image_to_text_recall@1", "text_to_image_recall@1"}


def test_bad_pairs_and_prompts_are_clear_errors():
    clip = _clip()
    images, _ = _pairs(3, 0)
    with pytest.raises(BiofmError, match="3 images and 2 texts"):
        train_clip(clip, images, ["a", "b"], FitConfig(lr=1e-3, max_steps=1))
    with pytest.raises(BiofmError, match="one prompt per class"):
        zero_shot_classify(clip, images, {"top left": []})
    with pytest.raises(BiofmError, match="3 images but 2 texts"):
        retrieval_recall(clip, images, ["a", "b"])
