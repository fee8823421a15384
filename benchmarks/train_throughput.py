"""MLM training throughput: biofm (packed) vs transformers' EsmForMaskedLM (padded).

ESM-2 8M's architecture, the same weights in all three models, the same
protein-like sequences and the same masked positions every step:

  hf_sdpa, hf_eager  a normal HF batch: the step's sequences in random order,
                     padded to the longest (attn_implementation "sdpa" / "eager")
  biofm              the same sequences packed into one row (or rows of
                     --row-tokens) with per-document attention

Prints real (non-pad) tokens/s of each, the ratios, the fraction of real tokens
per batch, peak memory, and the loss of each model (they match: same work).
On CUDA it runs in bf16 autocast and prints model FLOPs utilisation.

    python benchmarks/train_throughput.py [--steps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import dataclass

import torch

import common
from biofm.backbones import count_parameters
from biofm.data.collate import pack_collate, pad_collate
from biofm.outputs import Batch

VARIANTS = ("biofm", "hf_sdpa", "hf_eager")


@dataclass
class Step:
    """One step's data: the HF batch (padded) and biofm's (the same tokens, packed)."""

    padded: Batch
    packed: Batch
    real_tokens: int
    context: float  # token-weighted mean sequence length, for attention FLOPs


def make_steps(model, n_steps: int, batch_size: int, row_tokens: int, seed: int) -> list[Step]:
    steps = []
    for i in range(n_steps):
        seqs = model.encode(common.protein_texts(batch_size, seed=seed + i))
        padded = model.objective.prepare(pad_collate(seqs, model.tokenizer.pad_id),
                                         torch.Generator().manual_seed(seed + i))
        packed = pack_like(padded, row_tokens, model.tokenizer.pad_id)
        steps.append(Step(padded, packed, sum(map(len, seqs)),
                          sum(len(s) ** 2 for s in seqs) / sum(map(len, seqs))))
    return steps


def pack_like(padded: Batch, row_tokens: int, pad_id: int) -> Batch:
    """The padded batch's sequences (masked inputs and labels) packed; 0 = one row."""
    seqs = [ids[m].tolist() for ids, m in zip(padded.input_ids, padded.attention_mask)]
    labels = [lab[m].tolist() for lab, m in zip(padded.labels, padded.attention_mask)]
    row = row_tokens or sum(map(len, seqs))
    packed = pack_collate(seqs, pad_id, row)
    return packed.with_(labels=pack_collate(labels, -100, row).input_ids)


def step_fn(name: str, model, steps: list[Step], device: torch.device):
    """A closure running training step i (forward, backward, AdamW) of one variant."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses: list[float] = []

    def run(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            if name == "biofm":
                loss = model(steps[i].packed.to(device)).loss
            else:
                b = steps[i].padded.to(device)
                loss = model(input_ids=b.input_ids, attention_mask=b.attention_mask,
                             labels=b.labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    return run, losses


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", torch.bfloat16)
    return contextlib.nullcontext()


def probe(args: argparse.Namespace, device: torch.device) -> None:
    """Child process: peak memory of one variant's training step on step 0's batch,
    after a small warm-up step (code loaded, AdamW state allocated), as JSON on stdout."""
    model = common.build_variant(args.probe)
    twin = model if args.probe == "biofm" else common.biofm_from_hf(model)
    steps = make_steps(twin, 1, args.batch_size, args.row_tokens, args.seed)
    steps += make_steps(twin, 1, 2, args.row_tokens, args.seed + 10_000)  # the warm-up
    run, _ = step_fn(args.probe, model, steps, device)
    run(1)
    rss = common.PeakRSS()
    rss.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    run(0)
    peak = torch.cuda.max_memory_allocated() - base if device.type == "cuda" else rss.peak()
    print(json.dumps({"peak_bytes": peak}))


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    biofm, hf_sdpa, hf_eager = common.twin_models()
    models = dict(zip(VARIANTS, (biofm, hf_sdpa, hf_eager)))
    steps = make_steps(biofm, args.warmup + args.steps, args.batch_size, args.row_tokens,
                       args.seed)
    runs = {name: step_fn(name, m, steps, device) for name, m in models.items()}
    timings = common.interleaved({n: r[0] for n, r in runs.items()}, args.steps, args.warmup,
                                 device)
    measured = steps[args.warmup:]
    tokens = [s.real_tokens for s in measured]
    n_params = count_parameters(biofm)
    peak = {name: common.probe_memory(__file__, child_args(args), name) for name in VARIANTS}
    figures = {
        "tokens_per_s": {n: timings.tokens_per_s(n, tokens) for n in VARIANTS},
        "speedup_vs_hf_sdpa": timings.speedup("biofm", "hf_sdpa"),
        "speedup_vs_hf_eager": timings.speedup("biofm", "hf_eager"),
        "real_token_fraction": fraction(s.packed for s in measured),
        "hf_real_token_fraction": fraction(s.padded for s in measured),
        "peak_memory_bytes": peak,
        "peak_memory_ratio_vs_hf_sdpa": peak["biofm"] / peak["hf_sdpa"],
        "first_step_loss": {n: runs[n][1][0] for n in VARIANTS},
        "parameters": n_params,
        "real_tokens_per_step": sum(tokens) / len(tokens),
    }
    if device.type == "cuda":
        figures["mfu"] = mfu(figures["tokens_per_s"], measured, n_params, biofm.config.backbone)
    return figures


def fraction(batches) -> float:
    real = total = 0
    for b in batches:
        real += int(b.attention_mask.sum())
        total += b.attention_mask.numel()
    return real / total


def mfu(tps: dict[str, float], steps: list[Step], n_params: int, cfg) -> dict[str, float | None]:
    """Model FLOPs utilisation: (6N + 12·L·S·d) FLOPs per real token, S = context length."""
    context = sum(s.context * s.real_tokens for s in steps) / sum(s.real_tokens for s in steps)
    per_token = 6 * n_params + 12 * cfg.n_layers * context * cfg.d_model
    peak = common.peak_tflops()
    return {n: (v * per_token / (peak * 1e12) if peak else None) for n, v in tps.items()}


def child_args(args: argparse.Namespace) -> list[str]:
    return ["--batch-size", str(args.batch_size), "--row-tokens", str(args.row_tokens),
            "--seed", str(args.seed), "--device", args.device, "--threads", str(args.threads)]


def report(figures: dict, args: argparse.Namespace) -> None:
    tps, peak = figures["tokens_per_s"], figures["peak_memory_bytes"]
    print(f"ESM-2 8M shape ({figures['parameters']:,} parameters), MLM training, "
          f"{args.batch_size} sequences/step (~{figures['real_tokens_per_step']:,.0f} real "
          f"tokens), median of {args.steps} steps after {args.warmup} warm-up")
    load = figures["load_average"]
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after (other processes share the CPU above the core count)")
    print(f"{'':10}{'real tok/s':>12}{'peak mem':>12}{'first loss':>12}")
    for n in VARIANTS:
        loss = figures["first_step_loss"][n]
        print(f"{n:10}{tps[n]:12,.0f}{common.mib(peak[n]):>12}{loss:12.5f}")
    print(f"speedup vs HF sdpa  {figures['speedup_vs_hf_sdpa']:.2f}x   "
          f"vs HF eager  {figures['speedup_vs_hf_eager']:.2f}x")
    print(f"real tokens per batch: biofm {figures['real_token_fraction']:.1%}   "
          f"HF padded {figures['hf_real_token_fraction']:.1%}")
    print(f"peak memory biofm / HF sdpa: {figures['peak_memory_ratio_vs_hf_sdpa']:.2f}")
    if "mfu" in figures:
        print("MFU: " + "  ".join(f"{n} {v:.1%}" if v is not None else f"{n} n/a"
                                  for n, v in figures["mfu"].items()))


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="measured steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="sequences per step (default 8 on CPU, 64 on CUDA)")
    parser.add_argument("--row-tokens", type=int, default=0,
                        help="biofm row length (default: one row holding the whole step)")
    common.add_common_arguments(parser)
    parser.add_argument("--probe", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe)


if __name__ == "__main__":
    main()
