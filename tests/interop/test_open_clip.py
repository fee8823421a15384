"""open_clip directories → biofm ClipModel: parity with open_clip on tiny random models,
the image tower through `load_pretrained`, and clear errors."""

import json

import numpy as np
import pytest
import torch

from biofm.backbones.vision import vit_features
from biofm.errors import BiofmError
from biofm.interop import load_pretrained
from biofm.interop.open_clip import load_open_clip
from tests.interop.reference_models import make_reference

VISION = {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 16}
TEXT = {"context_length": 16, "vocab_size": 100, "width": 48, "heads": 4, "layers": 2}
PLAIN = {"model_cfg": {"embed_dim": 24, "vision_cfg": VISION, "text_cfg": TEXT}}
# QuickGELU (OpenAI CLIP), LayerScale in both towers, weights as a .bin
QUICK_LAYERSCALE = {"bin": True, "model_cfg": {
    "embed_dim": 16, "quick_gelu": True, "vision_cfg": {**VISION, "ls_init_value": 0.1},
    "text_cfg": {**TEXT, "ls_init_value": 0.1}}}


@pytest.mark.parametrize("spec", [PLAIN, QUICK_LAYERSCALE], ids=["plain", "quickgelu-ls"])
def test_parity_with_open_clip(tmp_path, spec, cli):
    directory, ref = make_reference("open_clip", spec, tmp_path)
    clip = load_open_clip(directory)
    with torch.no_grad():
        image = clip.encode_images(torch.from_numpy(ref["images"]))
        text = clip.encode_text_ids(torch.from_numpy(ref["ids"]))
    torch.testing.assert_close(image, torch.from_numpy(ref["image_features"]), rtol=0, atol=1e-4)
    torch.testing.assert_close(text, torch.from_numpy(ref["text_features"]), rtol=0, atol=1e-4)
    torch.testing.assert_close(1 / clip.contrastive.temperature,
                               torch.tensor(float(ref["logit_scale"])), rtol=1e-6, atol=0)
    # the image tower alone, as `biofm embed` loads it: [CLS] before the projection
    tower = load_pretrained(directory)
    with torch.no_grad():
        pooled = vit_features(tower, torch.from_numpy(ref["images"])).pooled
        torch.testing.assert_close(clip.image_proj(pooled), image, rtol=0, atol=1e-5)
    # and `biofm embed` reads the directory: one row per image of a folder
    from PIL import Image as PILImage

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    PILImage.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    run = cli("embed", "--model", directory, "--input", folder, "--pooling", "cls",
              "--output", tmp_path / "e.npy")
    assert run.code == 0, run.err
    assert np.load(tmp_path / "e.npy").shape == (1, VISION["width"])


def _config(tmp_path, model_cfg):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    return tmp_path


def test_timm_image_tower_biomedclip_layout(tmp_path):
    """BiomedCLIP's image tower: a timm ViT trunk (at timm's defaults) + a linear projection."""
    spec = {"model_cfg": {"embed_dim": 16, "text_cfg": TEXT, "vision_cfg": {
        "timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
        "timm_pool": "", "timm_proj": "linear", "image_size": 224}}}
    directory, ref = make_reference("open_clip", spec, tmp_path)
    clip = load_open_clip(directory)
    images = torch.from_numpy(ref["images"])
    with torch.no_grad():
        image = clip.encode_images(images)
        text = clip.encode_text_ids(torch.from_numpy(ref["ids"]))
    torch.testing.assert_close(image, torch.from_numpy(ref["image_features"]), rtol=0, atol=1e-4)
    torch.testing.assert_close(text, torch.from_numpy(ref["text_features"]), rtol=0, atol=1e-4)
    # with a Hugging Face text tower (BiomedCLIP's PubMedBERT) the CLIP model is refused,
    # naming it, while the image tower still loads for `biofm embed`
    config = json.loads((directory / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"] = {"hf_model_name": "microsoft/BiomedNLP-PubMedBERT"}
    (directory / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(BiofmError, match="Hugging Face text tower.*PubMedBERT"):
        load_open_clip(directory)
    tower = load_pretrained(directory)
    with torch.no_grad():
        pooled = vit_features(tower, images).pooled
        torch.testing.assert_close(clip.image_proj(pooled), image, rtol=0, atol=1e-5)


@pytest.mark.parametrize("vision,phrase", [
    ({"timm_model_name": "swin_tiny_patch4_window7_224", "timm_pool": ""},
     "unknown timm architecture"),
    ({"timm_model_name": "vit_base_patch16_224", "timm_pool": "avg"}, "pooled by 'avg'"),
    ({"timm_model_name": "vit_base_patch16_224", "timm_pool": "", "timm_proj": "mlp"},
     "timm_proj='mlp'"),
    ({**VISION, "attentional_pool": True}, "attentional pooling")])
def test_unsupported_image_towers_are_named(tmp_path, vision, phrase):
    with pytest.raises(BiofmError, match=phrase):
        load_open_clip(_config(tmp_path, {"embed_dim": 8, "vision_cfg": vision,
                                          "text_cfg": TEXT}))


def test_missing_or_truncated_weights_are_clear_errors(tmp_path):
    directory = _config(tmp_path, PLAIN["model_cfg"])
    with pytest.raises(BiofmError, match="no open_clip weights file"):
        load_open_clip(directory)
    (directory / "open_clip_model.safetensors").write_bytes(b"\x10\x00\x00\x00not a header")
    with pytest.raises(BiofmError, match="open_clip_model.safetensors.*truncated"):
        load_open_clip(directory)


def test_text_tower_without_tokenizer_says_how_to_give_ids(tmp_path):
    from biofm.backbones import build_backbone
    from biofm.backbones.vision import build_vit
    from biofm.interop.open_clip import open_clip_text_backbone
    from biofm.objectives.clip import ClipModel
    from tests.helpers import tiny_vit_config

    text = build_backbone(open_clip_text_backbone(TEXT, "gelu"))
    clip = ClipModel(build_vit(tiny_vit_config(), seed=0), text, None, embed_dim=8,
                     text_pooling="eot")
    with pytest.raises(BiofmError, match="encode_text_ids"):
        clip.encode_texts(["a brain slice"])


def test_clip_bpe_tokenizer_matches_open_clip_and_zero_shot_uses_it(tmp_path):
    from biofm.objectives.clip import zero_shot_classify

    texts = ["A T1-weighted MRI of the hippocampus.", "axial slice, cerebellum (left)",
             "&amp; 12 lesions!!", "über-large   ventricles's"]
    spec = {"texts": texts, "model_cfg": {"embed_dim": 16, "vision_cfg": VISION,
                                           "text_cfg": {**TEXT, "vocab_size": 49408}}}
    directory, ref = make_reference("open_clip", spec, tmp_path)
    clip = load_open_clip(directory)
    tokenizer = clip.text_tokenizer
    context = TEXT["context_length"]
    ours = np.zeros((len(texts), context), dtype=np.int64)
    for row, text in enumerate(texts):
        ids = tokenizer.encode(text, max_length=context)
        ours[row, : len(ids)] = ids
    np.testing.assert_array_equal(ours, ref["text_ids"])
    with torch.no_grad():
        features = clip.encode_texts(texts)
    torch.testing.assert_close(features, torch.from_numpy(ref["text_features"]), rtol=0,
                               atol=1e-4)
    assert tokenizer.decode(tokenizer.encode("the hippocampus")) == "the hippocampus"
    shot = zero_shot_classify(clip, torch.from_numpy(ref["images"]),
                              {"a": ["a hippocampus"], "b": ["a cerebellum"]})
    assert shot.probs.shape == (2, 2)
