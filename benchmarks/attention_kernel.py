"""biofm's CPU attention kernel against PyTorch's, forward and forward + backward.

The packed attention of one ESM-2 8M layer (20 heads of width 16) over the
documents of a training step (`--documents` protein-like lengths: log-normal,
median 270, as the training benchmark) and over single documents of fixed
lengths: `biofm` is `backbones.native.packed_attention` (one call per layer),
`torch` is what biofm runs without its kernel and what a careful PyTorch user
writes: one `scaled_dot_product_attention` call per document (PyTorch's CPU flash
kernel). Both run in fp32 on the same tensors, interleaved; the largest output
and gradient difference is printed. Figures: the median and interquartile range
of the per-repeat time ratio over `--repeats` repeats of `--calls` calls.

    python benchmarks/attention_kernel.py [--json out.json]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import common
from biofm.backbones import native

HEADS, WIDTH = 20, 16


def per_document(q, k, v, lengths):
    out = []
    for qs, ks, vs in zip(*(t.split(lengths) for t in (q, k, v))):  # (L, h, hd)
        out.append(F.scaled_dot_product_attention(
            qs[None].transpose(1, 2), ks[None].transpose(1, 2), vs[None].transpose(1, 2)
        )[0].transpose(0, 1))
    return torch.cat(out)


def workloads(args: argparse.Namespace) -> dict[str, list[int]]:
    step = [len(t) + 2 for t in common.protein_texts(args.documents, args.seed)]
    return {"step": step, **{f"one_{n}": [n] for n in args.lengths}}


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    if device.type != "cpu":
        raise SystemExit("biofm's attention kernel is a CPU kernel: run with --device cpu")
    if native.library() is None:
        raise SystemExit(f"biofm's kernel is not built here: {native.unavailable_reason()}")
    g = torch.Generator().manual_seed(args.seed)
    figures: dict = {"workloads": {}}
    for name, lengths in workloads(args).items():
        n = sum(lengths)
        q, k, v = (torch.randn(n, HEADS, WIDTH, generator=g).requires_grad_() for _ in range(3))
        grad = torch.randn(n, HEADS, WIDTH, generator=g)
        cu = torch.tensor([0, *lengths]).cumsum(0).to(torch.int32)
        run = {"biofm": lambda: native.packed_attention(q, k, v, cu, False),
               "torch": lambda: per_document(q, k, v, lengths)}
        ours, theirs = run["biofm"](), run["torch"]()
        grads = [torch.autograd.grad(o, (q, k, v), grad) for o in (ours, theirs)]
        difference = max([(ours - theirs).abs().max().item()]
                         + [(a - b).abs().max().item() for a, b in zip(*grads)])
        variants = {}
        for kernel, call in run.items():
            variants[f"{kernel}_forward"] = lambda i, call=call: call()
            variants[f"{kernel}_backward"] = \
                lambda i, call=call: torch.autograd.grad(call(), (q, k, v), grad)
        timings = common.interleaved(variants, args.calls, args.repeats, device,
                                     warmup=lambda name: [variants[name](0) for _ in range(2)])
        figures["workloads"][name] = {
            "lengths": lengths,
            "ms_per_call": {v: 1e3 * common.quartiles(s)["median"] / args.calls
                            for v, s in timings.seconds.items()},
            "speedup_forward": timings.speedup("biofm_forward", "torch_forward"),
            "speedup_forward_backward": timings.speedup("biofm_backward", "torch_backward"),
            "max_abs_difference": difference,
        }
    return figures


def report(figures: dict, args: argparse.Namespace) -> None:
    load = figures["load_average"]
    print(f"packed attention of one ESM-2 8M layer ({HEADS} heads x {WIDTH}), fp32, "
          f"{args.calls} calls x {args.repeats} interleaved repeats")
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after")
    print(f"{'workload':12}{'tokens':>8}{'torch fwd':>11}{'biofm fwd':>11}{'speedup':>22}"
          f"{'torch f+b':>11}{'biofm f+b':>11}{'speedup':>22}{'max diff':>10}")
    for name, w in figures["workloads"].items():
        ms = w["ms_per_call"]
        print(f"{name:12}{sum(w['lengths']):8,}{ms['torch_forward']:9.2f}ms"
              f"{ms['biofm_forward']:9.2f}ms{common.iqr(w['speedup_forward'], '{:.2f}'):>21}x"
              f"{ms['torch_backward']:9.2f}ms{ms['biofm_backward']:9.2f}ms"
              f"{common.iqr(w['speedup_forward_backward'], '{:.2f}'):>21}x"
              f"{w['max_abs_difference']:10.1e}")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=8, help="documents of the step workload")
    parser.add_argument("--lengths", type=int, nargs="*", default=[100, 350, 1000],
                        help="single-document workloads")
    parser.add_argument("--calls", type=int, default=10, help="calls per repeat and variant")
    common.add_common_arguments(parser, precision=False)
    parser.set_defaults(probe=None)
    args = parser.parse_args(argv)
    return common.run_main(args, measure, report, probe=None)


if __name__ == "__main__":
    main()
