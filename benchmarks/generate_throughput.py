"""Sampling speed: `biofm generate` with its key/value cache against re-running the prefix.

A causal decoder of ESM-2 8M's width and depth (6 layers, width 320, 20
heads; rotary; random weights) samples `--samples` sequences of
`--new-tokens` tokens each (`--batch-size` at a time) with `biofm.generate.sample`,
once with the key/value cache (every new token runs through the decoder once)
and once without (the whole prefix runs again for every token). The weights
are set so that <eos> is never drawn, so every sample is the full length. Both
ways draw the same tokens for the same seed (checked). Figures are the median
and interquartile range over `--repeats` interleaved runs.

    python benchmarks/generate_throughput.py [--new-tokens 100] [--json out.json]
"""

from __future__ import annotations

import argparse

import torch

import common
from biofm.config import PretrainConfig
from biofm.generate import sample
from biofm.model import FoundationModel
from biofm.modalities.proteins import EsmTokenizer


def decoder(shape: str) -> FoundationModel:
    """A random causal LM whose samples never end early: the final norm's bias puts
    a constant +10 in feature 0 and <eos>'s (tied) output row reads it with -10."""
    s = common.ESM2_SHAPES[shape]
    config = PretrainConfig.from_dict({
        "backbone": {"kind": "decoder", "size": None, "d_model": s["hidden_size"],
                     "n_layers": s["num_hidden_layers"], "n_heads": s["num_attention_heads"],
                     "d_ff": s["intermediate_size"], "max_len": 1026},
        "objective": {"name": "clm"}})
    torch.manual_seed(0)
    model = FoundationModel(config, EsmTokenizer())
    with torch.no_grad():
        model.backbone.final_norm.bias[0] = 10.0
        eos = model.backbone.embed_tokens.weight[model.tokenizer.eos_id]
        eos.zero_()
        eos[0] = -10.0
    return model.eval()


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    model = decoder(args.shape).to(device)
    settings = dict(max_new_tokens=args.new_tokens, batch_size=args.batch_size, seed=args.seed,
                    temperature=1.0, top_p=0.95)

    def run(cache: bool) -> list[str]:
        with common.autocast(device, args.precision):
            return sample(model, args.samples, cache=cache, **settings)

    cached, uncached = run(True), run(False)  # also the warm-up
    tokens = sum(len(s) for s in cached)
    timings = common.interleaved({"cache": lambda i: run(True), "no_cache": lambda i: run(False)},
                                 1, args.repeats, device)
    return {
        "tokens_per_s": {n: timings.tokens_per_s(n, tokens)["median"] for n in timings.seconds},
        "tokens_per_s_iqr": {n: [timings.tokens_per_s(n, tokens)[q] for q in ("q1", "q3")]
                             for n in timings.seconds},
        "speedup_cache": timings.speedup("cache", "no_cache"),
        "same_samples": cached == uncached,
        "sample_length": tokens / len(cached),
        "samples": len(cached),
    }


def report(figures: dict, args: argparse.Namespace) -> None:
    tps, iqr = figures["tokens_per_s"], figures["tokens_per_s_iqr"]
    print(f"causal decoder of ESM-2 {args.shape} shape: {figures['samples']} samples of "
          f"{figures['sample_length']:.0f} residues, {args.batch_size} at a time, "
          f"{args.repeats} interleaved repeats")
    load = figures["load_average"]
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after")
    for n in tps:
        q = {"median": tps[n], "q1": iqr[n][0], "q3": iqr[n][1]}
        print(f"{n:10} {common.iqr(q)} sampled tokens/s")
    print(f"key/value cache speedup: {common.iqr(figures['speedup_cache'], '{:.1f}')}x   "
          f"same tokens with and without: {figures['same_samples']}")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples drawn together (biofm generate's default is 64)")
    parser.add_argument("--new-tokens", type=int, default=100)
    common.add_common_arguments(parser)
    parser.set_defaults(probe=None)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe=None)


if __name__ == "__main__":
    main()
