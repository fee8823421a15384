"""MLM training throughput: biofm against transformers' ESM-2 done the best-practice way.

The same weights in every model (ESM-2 8M's shape by default, `--shape`), the
same protein-like sequences and the same masked positions. The sequences
of a step come from transformers' own length grouping
(`get_length_grouped_indices`, what `Trainer(group_by_length=True)` uses:
mega-batches of 50 batches sorted by length); `--steps` of those batches are
drawn at random and every variant trains on them:

  biofm         each step's sequences packed into one row, per-document attention
  biofm_padded  the same batches padded to their longest (implementation alone)
  hf_grouped    EsmForMaskedLM (sdpa) on the same padded batches: best practice
  hf_flat       EsmForMaskedLM (flash_attention_2) on `DataCollatorWithFlattening`
                batches: padding-free, where the installed transformers runs it
                (CUDA with flash-attn); reported as unsupported otherwise
  hf_grouped_fp32  hf_grouped without autocast (only with --precision bf16 on CPU,
                where PyTorch's bf16 attention kernels are slow: a careful user
                of transformers picks whichever precision is faster)
  hf_sdpa       naive: the same sequences in random batches, padded (secondary)
  hf_eager      as hf_sdpa with eager attention (only with --eager)

`speedup_vs_hf_best` is over the fastest of hf_grouped, hf_grouped_fp32 and hf_flat;
`speedup_implementation_only` is hf_grouped over biofm_padded (equal padding);
`speedup_packing` is biofm_padded over biofm. Each figure is the median and
interquartile range over `--repeats` interleaved passes. Every variant runs in
`--precision`: bf16 autocast on CUDA, fp32 on CPU unless `--precision bf16` (a CPU
with bf16 units: AVX512-BF16, AMX).

    python benchmarks/train_throughput.py [--steps 6] [--repeats 5] [--precision bf16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import torch

import common
from biofm.backbones import count_parameters
from biofm.data.collate import pack_collate, pad_collate
from biofm.outputs import Batch

HF_BEST = ("hf_grouped", "hf_grouped_fp32", "hf_flat")


@dataclass
class Workload:
    """The sequences every variant trains on, masked once, and how each batches them."""

    inputs: list[list[int]]  # masked token ids per sequence
    labels: list[list[int]]  # -100 where no loss
    grouped: list[list[int]]  # per step, indices into inputs (length-grouped batches)
    naive: list[list[int]]  # the same sequences in random batches

    @property
    def real_tokens(self) -> int:
        return sum(map(len, self.inputs))


def make_workload(model, steps: int, batch_size: int, seed: int) -> Workload:
    """`steps` length-grouped batches drawn from one mega-batch pool of 50 batches."""
    from transformers.trainer_pt_utils import get_length_grouped_indices

    pool = model.encode(common.protein_texts(50 * batch_size, seed=seed))
    order = get_length_grouped_indices([len(s) for s in pool], batch_size, mega_batch_mult=50,
                                       generator=torch.Generator().manual_seed(seed))
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    chosen = [batches[j] for j in sorted(rng.choice(len(batches), steps, replace=False))]
    sequences = [pool[i] for batch in chosen for i in batch]
    inputs, labels = [], []
    for j, seq in enumerate(sequences):  # masking drawn per sequence: any batching sees it
        one = model.objective.prepare(pad_collate([seq], model.tokenizer.pad_id),
                                      torch.Generator().manual_seed(seed * 100_003 + j))
        inputs.append(one.input_ids[0].tolist())
        labels.append(one.labels[0].tolist())
    grouped = [list(range(k * batch_size, (k + 1) * batch_size)) for k in range(steps)]
    naive = rng.permutation(len(sequences)).reshape(steps, batch_size).tolist()
    return Workload(inputs, labels, grouped, naive)


def packed(work: Workload, batch: list[int], pad_id: int) -> Batch:
    seqs, labels = [work.inputs[i] for i in batch], [work.labels[i] for i in batch]
    row = sum(map(len, seqs))  # one row per step, as biofm's trainer packs by default
    out = pack_collate(seqs, pad_id, row)
    return out.with_(labels=pack_collate(labels, -100, row).input_ids)


def padded(work: Workload, batch: list[int], pad_id: int) -> Batch:
    out = pad_collate([work.inputs[i] for i in batch], pad_id)
    return out.with_(labels=pad_collate([work.labels[i] for i in batch], -100).input_ids)


def flattened(work: Workload, batch: list[int]) -> dict[str, torch.Tensor]:
    """transformers' padding-free batch: one row, position_ids and cu_seq_lens."""
    from transformers import DataCollatorWithFlattening

    collate = DataCollatorWithFlattening(return_flash_attn_kwargs=True)
    return collate([{"input_ids": work.inputs[i], "labels": work.labels[i]} for i in batch])


def batches_for(name: str, work: Workload, pad_id: int) -> list:
    """Each variant's step inputs, collated before timing (no variant times its collator)."""
    if name == "biofm":
        return [packed(work, b, pad_id) for b in work.grouped]
    if name == "hf_flat":
        return [flattened(work, b) for b in work.grouped]
    steps = work.naive if name in ("hf_sdpa", "hf_eager") else work.grouped
    return [padded(work, b, pad_id) for b in steps]


def forward(name: str, model, batch, device: torch.device) -> tuple[torch.Tensor, int]:
    """(loss, predicted tokens) of one step's batch."""
    if name.startswith("biofm"):
        out = model(batch.to(device))
        return out.loss, out.num_predicted
    if name == "hf_flat":
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        return model(**inputs).loss, int((batch["labels"] != -100).sum())
    b = batch.to(device)
    out = model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels)
    return out.loss, int((b.labels != -100).sum())


def variant_precision(name: str, args: argparse.Namespace) -> str:
    return "fp32" if name.endswith("_fp32") else args.precision


def step_fn(name: str, model, batches: list, device: torch.device, precision: str):
    """A closure running training step i (forward, backward, AdamW) of one variant."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        with common.autocast(device, precision):
            loss, _ = forward(name, model, batches[i], device)
        loss.backward()
        optimizer.step()

    return run


@torch.no_grad()
def loss_check(name: str, model, batches: list, device: torch.device, precision: str) -> float:
    """Token-weighted MLM loss over all steps with the starting weights: the same
    number for every variant shows they do the same work."""
    total = count = 0.0
    for batch in batches:
        with common.autocast(device, precision):
            loss, n = forward(name, model, batch, device)
        total += float(loss) * n
        count += n
    return total / count


def variant_names(args: argparse.Namespace, device: torch.device) -> tuple[list[str], dict]:
    names = ["biofm", "biofm_padded", "hf_grouped", "hf_flat", "hf_sdpa"]
    if args.precision == "bf16" and device.type == "cpu":
        names.insert(3, "hf_grouped_fp32")
    if args.eager:
        names.append("hf_eager")
    unsupported = {}
    why = common.hf_supports("flash_attention_2", device)
    if why:
        unsupported["hf_flat"] = why
        names.remove("hf_flat")
    return names, unsupported


def probe(args: argparse.Namespace, device: torch.device) -> None:
    """Child process: peak memory of one variant's training step on its first batch,
    after a warm-up step (code loaded, AdamW state allocated), as JSON on stdout."""
    model = common.build_models([args.probe], args.shape)[args.probe].to(device).train()
    twin = model if args.probe.startswith("biofm") else common.biofm_from_hf(model)
    work = make_workload(twin, args.steps, args.batch_size, args.seed)
    run = step_fn(args.probe, model, batches_for(args.probe, work, twin.tokenizer.pad_id), device,
                  variant_precision(args.probe, args))
    run(0)
    print(json.dumps({"peak_bytes": common.peak_memory(lambda: run(0), device)}))


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    names, unsupported = variant_names(args, device)
    models = common.build_models(names, args.shape)
    biofm = models["biofm"]
    if args.compile:
        for block in biofm.backbone.layers:
            block.compile()
    for m in set(models.values()):
        m.to(device).train()
    work = make_workload(biofm, args.steps, args.batch_size, args.seed)
    pad_id = biofm.tokenizer.pad_id
    batches = {n: batches_for(n, work, pad_id) for n in names}
    precision = {n: variant_precision(n, args) for n in names}
    losses = {n: loss_check(n, models[n], batches[n], device, precision[n]) for n in names}
    runs = {n: step_fn(n, models[n], batches[n], device, precision[n]) for n in names}
    # two warm-up steps of other shapes: kernels loaded, AdamW state allocated, and
    # under --compile both the static and the dynamic-shape graphs built
    warm = make_workload(biofm, 2, min(args.batch_size, 4), args.seed + 10_000)
    warm_batches = {n: batches_for(n, warm, pad_id) for n in names}

    def warmup(name: str) -> None:
        run = step_fn(name, models[name], warm_batches[name], device, precision[name])
        run(0)
        run(1)

    timings = common.interleaved(runs, args.steps, args.repeats, device, warmup=warmup,
                                 peak=lambda: common.matmul_peak_flops(device, args.precision))
    figures = summarise(args, device, names, unsupported, work, batches, losses, timings, biofm)
    common.add_profile(figures, args, {
        n: lambda n=n: [runs[n](i) for i in range(args.steps)]
        for n in ("biofm", figures["hf_best_variant"])}, device)
    return figures


def summarise(args, device, names, unsupported, work, batches, losses, timings, biofm) -> dict:
    tokens = work.real_tokens
    best = timings.fastest([n for n in HF_BEST if n in names])
    n_params = count_parameters(biofm)
    cfg = biofm.config.backbone
    per_token = common.model_flops_per_token(n_params, cfg.n_layers, cfg.d_model,
                                             common.context_length(list(map(len, work.inputs))),
                                             training=True)
    tps = {n: timings.tokens_per_s(n, tokens) for n in names}
    peak = common.quartiles(timings.peak_flops)
    mfu_peak = (common.nominal_peak_flops() or max(timings.peak_flops)) if device.type == "cuda" \
        else max(timings.peak_flops)
    figures = {
        "tokens_per_s": {n: q["median"] for n, q in tps.items()},
        "tokens_per_s_iqr": {n: [q["q1"], q["q3"]] for n, q in tps.items()},
        "hf_best_variant": best,
        "speedup_vs_hf_best": timings.speedup("biofm", best),
        "speedup_implementation_only": timings.speedup("biofm_padded", "hf_grouped"),
        "speedup_packing": timings.speedup("biofm", "biofm_padded"),
        "speedup_vs_hf_sdpa": timings.speedup("biofm", "hf_sdpa"),
        "real_token_fraction": real_fraction(batches["biofm"]),
        "real_token_fraction_by_variant": {n: real_fraction(batches[n]) for n in names},
        "mfu_peak_flops": mfu_peak,
        "measured_peak_flops": peak,
        "model_flops_per_token": per_token,
        "loss_check": losses,
        "unsupported": unsupported,
        "parameters": n_params,
        "real_tokens_per_repeat": tokens,
        "real_tokens_per_step": tokens / args.steps,
    }
    mfu = {n: q["median"] * per_token / mfu_peak for n, q in tps.items()}
    figures["mfu" if device.type == "cuda" else "cpu_mfu"] = mfu
    if "hf_eager" in names:
        figures["speedup_vs_hf_eager"] = timings.speedup("biofm", "hf_eager")
    if not args.no_memory:
        peak_bytes = {n: common.probe_memory(__file__, child_args(args), n) for n in names}
        figures["peak_memory_bytes"] = peak_bytes
        figures["peak_memory_ratio_vs_hf_best"] = peak_bytes["biofm"] / peak_bytes[best]
    return figures


def real_fraction(batches: list) -> float:
    """Real tokens / all positions, counted on the batches as built."""
    real = total = 0
    for b in batches:
        if isinstance(b, dict):  # flattened: one row, no padding
            real += int(b["input_ids"].numel())
            total += int(b["input_ids"].numel())
        else:
            real += int(b.attention_mask.sum())
            total += b.attention_mask.numel()
    return real / total


def child_args(args: argparse.Namespace) -> list[str]:
    return ["--steps", str(args.steps), "--batch-size", str(args.batch_size),
            "--seed", str(args.seed), "--device", args.device, "--threads", str(args.threads),
            "--shape", args.shape, "--precision", args.precision]


def report(figures: dict, args: argparse.Namespace) -> None:
    common.print_variants(
        figures, f"ESM-2 {args.shape} shape ({figures['parameters']:,} parameters), MLM "
                 f"training, {args.batch_size} sequences/step "
                 f"(~{figures['real_tokens_per_step']:,.0f} real tokens), {args.steps} "
                 f"length-grouped steps x {args.repeats} interleaved repeats",
        "loss", figures["loss_check"], "{:9.4f}")
    for n, why in figures["unsupported"].items():
        print(f"{n:16}not run: {why}")
    x = lambda key: common.iqr(figures[key], "{:.2f}") + "x"  # noqa: E731
    print(f"speedup vs HF best practice ({figures['hf_best_variant']}): "
          f"{x('speedup_vs_hf_best')}   implementation only (both padded): "
          f"{x('speedup_implementation_only')}   packing: {x('speedup_packing')}   "
          f"vs naive HF sdpa: {x('speedup_vs_hf_sdpa')}")
    common.print_profile_and_peak(figures)


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="length-grouped steps per repeat")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="sequences per step (default 8 on CPU, 64 on CUDA)")
    parser.add_argument("--eager", action="store_true", help="also run HF eager attention")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile biofm's transformer blocks (as train.compile)")
    common.add_common_arguments(parser)
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (64 if common.resolve_device(args.device).type == "cuda"
                                          else 8)
    return common.run_main(args, measure, report, probe)


if __name__ == "__main__":
    main()
