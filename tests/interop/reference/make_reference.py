"""Run in the reference venv (`make ref-venv`: timm and open_clip beside their own torch).

    .venv-ref/bin/python tests/interop/reference/make_reference.py timm OUT '{"model_args"…}'
    .venv-ref/bin/python tests/interop/reference/make_reference.py open_clip OUT '{…}'

Builds a tiny random model with the reference library (every parameter perturbed, so
norms and biases are not at their initial values), saves it in the library's own
directory layout under OUT/model, and writes OUT/reference.npz: the fixed inputs
and the library's outputs on them. The biofm side (main venv) loads OUT/model
and compares. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch


def _perturb(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


def make_timm(out: Path, spec: dict) -> None:
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(spec["architecture"], pretrained=False, **spec["model_args"])
    _perturb(model, 1)
    model.eval()
    save_for_hf(model, str(out / "model"), model_args=spec["model_args"],
                safe_serialization=spec.get("safe_serialization", True))
    cfg = model.pretrained_cfg
    size = cfg["input_size"] if "img_size" not in spec["model_args"] else None
    chans = spec["model_args"].get("in_chans", 3)
    img = spec["model_args"].get("img_size", size[1] if size else 224)
    images = torch.randn(2, chans, img, img, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        tokens = model.forward_features(images)
        pooled = model.forward_head(tokens, pre_logits=True)
    np.savez(out / "reference.npz", images=images.numpy(), tokens=tokens.numpy(),
             pooled=pooled.numpy())


def make_open_clip(out: Path, spec: dict) -> None:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**spec["model_cfg"])
    _perturb(model, 1)
    model.eval()
    directory = out / "model"
    directory.mkdir(parents=True)
    (directory / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": spec["model_cfg"],
         "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                            "std": [0.26862954, 0.26130258, 0.27577711]}}))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if spec.get("bin"):
        torch.save(state, directory / "open_clip_pytorch_model.bin")
    else:
        save_file(state, str(directory / "open_clip_model.safetensors"))
    vision, text = spec["model_cfg"]["vision_cfg"], spec["model_cfg"]["text_cfg"]
    gen = torch.Generator().manual_seed(2)
    images = torch.randn(2, 3, vision["image_size"], vision["image_size"], generator=gen)
    # token ids as the CLIP tokenizer lays them out: <start> … <end> (the largest id) then 0s
    vocab, context = text["vocab_size"], text["context_length"]
    ids = torch.zeros(3, context, dtype=torch.long)
    for row, n in enumerate((5, 9, context - 2)):
        ids[row, 0] = vocab - 2
        ids[row, 1: 1 + n] = torch.randint(1, vocab - 2, (n,), generator=gen)
        ids[row, 1 + n] = vocab - 1
    extra = {}
    if spec.get("texts"):  # CLIP's own tokenizer, its files in Hugging Face's layout
        tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=text["context_length"])
        names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
        vocab = {names.get(k, k): v for k, v in tokenizer.encoder.items()}
        (directory / "vocab.json").write_text(json.dumps(vocab))
        merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
        (directory / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        ids = tokenizer(spec["texts"])
        extra["text_ids"] = ids.numpy()
    with torch.no_grad():
        image_features = model.encode_image(images)
        text_features = model.encode_text(ids)
        logit_scale = model.logit_scale.exp()
    np.savez(out / "reference.npz", images=images.numpy(), ids=ids.numpy(),
             image_features=image_features.numpy(), text_features=text_features.numpy(),
             logit_scale=logit_scale.numpy(), **extra)


if __name__ == "__main__":
    kind, out, spec = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    {"timm": make_timm, "open_clip": make_open_clip}[kind](out, spec)
