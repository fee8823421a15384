"""Embedding throughput: `biofm embed` against transformers' ESM-2 done the best-practice way.

The same weights in every model (ESM-2 8M's shape by default, `--shape`), one
input of `--sequences` protein-like sequences (UniRef50-like lengths) embedded
whole, mean pooling over each sequence's residues (special tokens excluded):

  biofm          `model.embed(texts)` as `biofm embed` calls it: its own length
                 sorting, `--biofm-batch-size` sequences per batch (the CLI's
                 default, 64) packed into one row with per-document attention
  biofm_padded   biofm's model on exactly hf_best's padded batches
                 (`embed(batch, packing=False)` per batch): the implementation
                 alone, at equal padding
  hf_best        best practice with transformers: the whole input sorted by
                 length, batches under a token budget (`--token-budget`, 4,096
                 padded tokens as fair-esm's extract.py), `EsmModel` (sdpa),
                 masked mean
  hf_sdpa        naive: batches of `--naive-batch-size` in input order, padded
                 to the longest (secondary row)
  hf_eager       as hf_sdpa with eager attention (only with --eager)

Every variant tokenizes inside the timed call. Figures are the median and
interquartile range over `--repeats` interleaved passes over the whole input;
biofm's vectors must equal hf_best's to 1e-4 (printed). On CUDA all run
under bf16 autocast.

    python benchmarks/embed_throughput.py [--sequences 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import common
from biofm.backbones import count_parameters
from biofm.data.collate import pad_collate

# largest |biofm - hf_best| of an embedding entry: equal outputs in fp32; under bf16
# autocast the two round differently (reported against a looser bound)
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}


def token_budget_batches(lengths: list[int], budget: int) -> list[np.ndarray]:
    """Indices sorted by length, cut so that each batch's padded size (count x
    longest) stays within `budget` tokens (a longer sequence alone)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, current = [], []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > budget:
            batches.append(np.array(current))
            current = []
        current.append(i)
    return batches + ([np.array(current)] if current else [])


def in_order_batches(n: int, batch_size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def embed_fn(name: str, model, texts: list[str], device: torch.device, twin, args):
    """A closure embedding the whole input with one variant → (n, d) numpy; `twin`
    is the biofm model whose tokenizer gives the HF variants their token ids."""
    model.to(device).eval()
    if name == "biofm":
        def run() -> np.ndarray:
            with common.autocast(device, args.precision):
                return model.embed(texts, batch_size=args.biofm_batch_size)
        return run
    if name == "biofm_padded":
        def run_padded() -> np.ndarray:
            lengths = [len(s) for s in model.encode(texts)]
            out = np.zeros((len(texts), model.config.backbone.d_model), dtype=np.float32)
            with common.autocast(device, args.precision):
                for index in token_budget_batches(lengths, args.token_budget):
                    out[index] = model.embed([texts[i] for i in index], batch_size=len(index),
                                             packing=False)
            return out
        return run_padded
    special = torch.tensor(twin.tokenizer.special_ids, device=device)

    @torch.inference_mode()
    def run_hf() -> np.ndarray:
        ids = twin.encode(texts)
        lengths = [len(s) for s in ids]
        batches = (token_budget_batches(lengths, args.token_budget) if name == "hf_best"
                   else in_order_batches(len(ids), args.naive_batch_size))
        out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
        for index in batches:
            b = pad_collate([ids[i] for i in index], twin.tokenizer.pad_id).to(device)
            with common.autocast(device, args.precision):
                hidden = model.esm(input_ids=b.input_ids,
                                   attention_mask=b.attention_mask).last_hidden_state
            keep = (b.attention_mask & ~torch.isin(b.input_ids, special))[..., None].float()
            out[index] = ((hidden.float() * keep).sum(1) / keep.sum(1)).cpu().numpy()
        return out
    return run_hf


def real_fractions(lengths: list[int], args) -> dict[str, float]:
    """Real tokens / all positions of each variant's batches, as each builds them."""
    def padded(batches) -> float:
        return sum(lengths) / sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return {"biofm": 1.0,  # each batch is one packed row of exactly its tokens
            "biofm_padded": padded(token_budget_batches(lengths, args.token_budget)),
            "hf_best": padded(token_budget_batches(lengths, args.token_budget)),
            "hf_sdpa": padded(in_order_batches(len(lengths), args.naive_batch_size)),
            "hf_eager": padded(in_order_batches(len(lengths), args.naive_batch_size))}


def variant_names(args) -> list[str]:
    return ["biofm", "biofm_padded", "hf_best", "hf_sdpa"] + (["hf_eager"] if args.eager else [])


def probe(args: argparse.Namespace, device: torch.device) -> None:
    """Child process: peak memory of one variant embedding the whole input after a
    warm-up pass, as JSON on stdout."""
    model = common.build_models([args.probe], args.shape)[args.probe]
    twin = model if args.probe.startswith("biofm") else common.biofm_from_hf(model)
    texts = common.protein_texts(args.sequences, seed=args.seed)
    run = embed_fn(args.probe, model, texts, device, twin, args)
    run()
    print(json.dumps({"peak_bytes": common.peak_memory(run, device)}))


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    names = variant_names(args)
    models = common.build_models(names, args.shape)
    biofm = models["biofm"]
    texts = common.protein_texts(args.sequences, seed=args.seed)
    runs = {n: embed_fn(n, models[n], texts, device, biofm, args) for n in names}
    vectors = {n: runs[n]() for n in names}  # also the warm-up
    timings = common.interleaved({n: (lambda i, f=f: f()) for n, f in runs.items()}, 1,
                                 args.repeats, device,
                                 peak=lambda: common.matmul_peak_flops(device, args.precision))
    lengths = [len(s) for s in biofm.encode(texts)]
    tokens = sum(lengths)
    cfg = biofm.config.backbone
    n_params = count_parameters(biofm.backbone)
    per_token = common.model_flops_per_token(n_params, cfg.n_layers, cfg.d_model,
                                             common.context_length(lengths), training=False)
    tps = {n: timings.tokens_per_s(n, tokens) for n in names}
    mfu_peak = (common.nominal_peak_flops() or max(timings.peak_flops)) \
        if device.type == "cuda" else max(timings.peak_flops)
    difference = {n: float(np.abs(vectors[n] - vectors["hf_best"]).max()) for n in names}
    fractions = real_fractions(lengths, args)
    figures = {
        "tokens_per_s": {n: q["median"] for n, q in tps.items()},
        "tokens_per_s_iqr": {n: [q["q1"], q["q3"]] for n, q in tps.items()},
        "speedup_vs_hf_best": timings.speedup("biofm", "hf_best"),
        "speedup_implementation_only": timings.speedup("biofm_padded", "hf_best"),
        "speedup_packing": timings.speedup("biofm", "biofm_padded"),
        "speedup_vs_hf_sdpa": timings.speedup("biofm", "hf_sdpa"),
        "max_abs_difference_vs_hf_best": difference,
        "equal_outputs": difference["biofm"] <= TOLERANCE[args.precision],
        "equal_outputs_tolerance": TOLERANCE[args.precision],
        "real_token_fraction": fractions["biofm"],
        "real_token_fraction_by_variant": {n: fractions[n] for n in names},
        "mfu_peak_flops": mfu_peak,
        "measured_peak_flops": common.quartiles(timings.peak_flops),
        "model_flops_per_token": per_token,
        "parameters": n_params,
        "real_tokens": tokens,
        "sequences": len(texts),
    }
    mfu = {n: q["median"] * per_token / mfu_peak for n, q in tps.items()}
    figures["mfu" if device.type == "cuda" else "cpu_mfu"] = mfu
    if "hf_eager" in names:
        figures["speedup_vs_hf_eager"] = timings.speedup("biofm", "hf_eager")
    if not args.no_memory:
        peak = {n: common.probe_memory(__file__, child_args(args), n) for n in names}
        figures["peak_memory_bytes"] = peak
        figures["peak_memory_ratio_vs_hf_best"] = peak["biofm"] / peak["hf_best"]
    common.add_profile(figures, args, {n: runs[n] for n in ("biofm", "hf_best")}, device)
    return figures


def child_args(args: argparse.Namespace) -> list[str]:
    return ["--sequences", str(args.sequences), "--biofm-batch-size", str(args.biofm_batch_size),
            "--token-budget", str(args.token_budget), "--naive-batch-size",
            str(args.naive_batch_size), "--seed", str(args.seed), "--device", args.device,
            "--threads", str(args.threads), "--shape", args.shape, "--precision", args.precision]


def report(figures: dict, args: argparse.Namespace) -> None:
    common.print_variants(
        figures, f"ESM-2 {args.shape} shape ({figures['parameters']:,} backbone parameters), "
                 f"mean-pooled embeddings of {figures['sequences']} sequences "
                 f"({figures['real_tokens']:,} real tokens), {args.repeats} interleaved repeats",
        "max |x - hf_best|", figures["max_abs_difference_vs_hf_best"], "{:19.1e}")
    x = lambda key: common.iqr(figures[key], "{:.2f}") + "x"  # noqa: E731
    print(f"speedup vs HF best practice: {x('speedup_vs_hf_best')}   implementation only "
          f"(same padded batches): {x('speedup_implementation_only')}   packing: "
          f"{x('speedup_packing')}   vs naive HF sdpa: {x('speedup_vs_hf_sdpa')}")
    print(f"equal outputs (max |biofm - hf_best| <= {figures['equal_outputs_tolerance']:g}): "
          f"{figures['equal_outputs']}")
    common.print_profile_and_peak(figures)


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=128, help="sequences in the input")
    parser.add_argument("--biofm-batch-size", type=int, default=64,
                        help="sequences per batch of biofm's embed (biofm embed's default)")
    parser.add_argument("--token-budget", type=int, default=4096,
                        help="padded tokens per hf_best batch (fair-esm extract.py's default)")
    parser.add_argument("--naive-batch-size", type=int, default=8,
                        help="sequences per naive HF batch")
    parser.add_argument("--eager", action="store_true", help="also run HF eager attention")
    common.add_common_arguments(parser)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe)


if __name__ == "__main__":
    main()
