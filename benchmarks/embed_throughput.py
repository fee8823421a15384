"""Embedding inference throughput: biofm `embed` vs transformers' ESM-2 (padded).

ESM-2 8M's architecture with the same weights in every model, the same
protein-like sequences (variable length, UniRef50-like) in batches of
`--batch-size`, mean pooling over each sequence's residues (special tokens
excluded) in all variants:

  biofm          `model.embed(texts)`: the batch packed into one row with
                 per-document attention (the default)
  biofm_padded   `model.embed(texts, packing=False)`: padded to the longest
  hf_sdpa/eager  what an HF user writes: the batch padded to the longest,
                 `EsmModel` forward (attn_implementation "sdpa" / "eager"),
                 masked mean

All variants tokenize with biofm's ESM-2 tokenizer inside the timed call.
Prints real tokens/s, ratios, peak memory and the largest difference between
biofm's vectors and HF's. On CUDA all run under bf16 autocast.

    python benchmarks/embed_throughput.py [--batches 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json

import numpy as np
import torch

import common
from biofm.data.collate import pad_collate

VARIANTS = ("biofm", "biofm_padded", "hf_sdpa", "hf_eager")


def embed_fn(name: str, model, batches: list[list[str]], device: torch.device, twin):
    """A closure embedding batch i with one variant → (n, d) numpy; `twin` is the
    biofm model whose tokenizer gives the HF variants their token ids."""
    model.to(device).eval()
    if name.startswith("biofm"):
        def run(i: int) -> np.ndarray:
            with autocast(device):
                return model.embed(batches[i], batch_size=len(batches[i]),
                                   packing=name == "biofm")
        return run
    special = torch.tensor(twin.tokenizer.special_ids, device=device)

    @torch.no_grad()
    def run_hf(i: int) -> np.ndarray:
        b = pad_collate(twin.encode(batches[i]), twin.tokenizer.pad_id).to(device)
        with autocast(device):
            hidden = model.esm(input_ids=b.input_ids,
                               attention_mask=b.attention_mask).last_hidden_state
        keep = (b.attention_mask & ~torch.isin(b.input_ids, special))[..., None].float()
        return ((hidden.float() * keep).sum(1) / keep.sum(1)).cpu().numpy()
    return run_hf


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", torch.bfloat16)
    return contextlib.nullcontext()


def make_batches(n: int, batch_size: int, seed: int) -> list[list[str]]:
    return [common.protein_texts(batch_size, seed=seed + i) for i in range(n)]


def probe(args: argparse.Namespace, device: torch.device) -> None:
    """Child process: peak memory of one variant embedding the first measured batch,
    after a warm-up batch, as JSON on stdout."""
    model = common.build_variant("biofm" if args.probe.startswith("biofm") else args.probe)
    twin = model if args.probe.startswith("biofm") else common.biofm_from_hf(model)
    batches = [common.protein_texts(args.batch_size, seed=args.seed + 10_000),  # warm-up
               common.protein_texts(args.batch_size, seed=args.seed + args.warmup)]  # measured
    run = embed_fn(args.probe, model, batches, device, twin)
    run(0)
    rss = common.PeakRSS()
    rss.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    run(1)
    peak = torch.cuda.max_memory_allocated() - base if device.type == "cuda" else rss.peak()
    print(json.dumps({"peak_bytes": peak}))


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    biofm, hf_sdpa, hf_eager = common.twin_models()
    models = dict(zip(VARIANTS, (biofm, biofm, hf_sdpa, hf_eager)))
    batches = make_batches(args.warmup + args.batches, args.batch_size, args.seed)
    runs = {n: embed_fn(n, m, batches, device, biofm) for n, m in models.items()}
    timings = common.interleaved(runs, args.batches, args.warmup, device, args.repeats)
    lengths = [[len(s) for s in biofm.encode(b)] for b in batches[args.warmup:]]
    real = [sum(x) for x in lengths]
    padded = [max(x) * len(x) for x in lengths]
    difference = float(np.abs(runs["biofm"](0) - runs["hf_sdpa"](0)).max())
    peak = {n: common.probe_memory(__file__, child_args(args), n) for n in VARIANTS}
    return {
        "tokens_per_s": {n: timings.tokens_per_s(n, real) for n in VARIANTS},
        "speedup_vs_hf_sdpa": timings.speedup("biofm", "hf_sdpa"),
        "speedup_vs_hf_eager": timings.speedup("biofm", "hf_eager"),
        "speedup_packed_vs_padded": timings.speedup("biofm", "biofm_padded"),
        "real_token_fraction": 1.0,  # one packed row per batch, no padding
        "hf_real_token_fraction": sum(real) / sum(padded),
        "peak_memory_bytes": peak,
        "peak_memory_ratio_vs_hf_sdpa": peak["biofm"] / peak["hf_sdpa"],
        "max_abs_difference_vs_hf": difference,
        "real_tokens_per_batch": sum(real) / len(real),
    }


def child_args(args: argparse.Namespace) -> list[str]:
    return ["--batch-size", str(args.batch_size),
            "--seed", str(args.seed), "--device", args.device, "--threads", str(args.threads)]


def report(figures: dict, args: argparse.Namespace) -> None:
    tps, peak = figures["tokens_per_s"], figures["peak_memory_bytes"]
    print(f"ESM-2 8M shape, mean-pooled embeddings, batches of {args.batch_size} sequences "
          f"(~{figures['real_tokens_per_batch']:,.0f} real tokens), median over {args.batches} "
          f"batches (fastest of {args.repeats} runs each) after {args.warmup} warm-up")
    load = figures["load_average"]
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after (other processes share the CPU above the core count)")
    print(f"{'':14}{'real tok/s':>12}{'peak mem':>12}")
    for n in VARIANTS:
        print(f"{n:14}{tps[n]:12,.0f}{common.mib(peak[n]):>12}")
    print(f"speedup vs HF sdpa  {figures['speedup_vs_hf_sdpa']:.2f}x   "
          f"vs HF eager  {figures['speedup_vs_hf_eager']:.2f}x   "
          f"packed vs biofm padded  {figures['speedup_packed_vs_padded']:.2f}x")
    print(f"real tokens per batch: biofm {figures['real_token_fraction']:.1%}   "
          f"HF padded {figures['hf_real_token_fraction']:.1%}")
    print(f"peak memory biofm / HF sdpa: {figures['peak_memory_ratio_vs_hf_sdpa']:.2f}   "
          f"max |biofm - HF| {figures['max_abs_difference_vs_hf']:.1e}")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="measured batches")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each batch per variant; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="sequences per batch (default 8 on CPU, 64 on CUDA)")
    common.add_common_arguments(parser)
    parser.add_argument("--probe", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe)


if __name__ == "__main__":
    main()
