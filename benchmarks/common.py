"""What the benchmark scripts share: protein-like data, twin models, timing, memory, peak.

The reference is `transformers`' ESM-2 (`EsmForMaskedLM`) and biofm's model
is converted from it with `biofm.interop.esm`, so both hold the same weights.

Timing protocol (both scripts): every variant does the same work (the same
sequences, the same masked positions); a *repeat* is one pass of every
variant over that work, interleaved call by call (call i of every variant
before call i + 1 of any), so that load from other processes falls on all
variants alike. Figures are the median and interquartile range over repeats.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

AMINO = "ACDEFGHIKLMNPQRSTVWY"
# ESM-2 shapes (facebook/esm2_t6_8M_UR50D, t30_150M, t33_650M): rotary, token dropout
ESM2_COMMON = dict(vocab_size=33, max_position_embeddings=1026, token_dropout=True,
                   position_embedding_type="rotary", pad_token_id=1, mask_token_id=32,
                   layer_norm_eps=1e-5, emb_layer_norm_before=False,
                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
ESM2_SHAPES = {
    "8m": dict(hidden_size=320, num_hidden_layers=6, num_attention_heads=20, intermediate_size=1280),
    "150m": dict(hidden_size=640, num_hidden_layers=30, num_attention_heads=20,
                 intermediate_size=2560),
    "650m": dict(hidden_size=1280, num_hidden_layers=33, num_attention_heads=20,
                 intermediate_size=5120),
}
# Nominal dense bf16 tensor throughput (TFLOP/s), for GPU model FLOPs utilisation.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def protein_texts(n: int, seed: int, median: int = 270, sigma: float = 0.6,
                  max_tokens: int = 1024, min_residues: int = 20) -> list[str]:
    """Random protein strings with UniRef50-like lengths: log-normal residue counts
    (median `median`, mean ≈ median·e^(σ²/2) ≈ 325), at most `max_tokens` tokens
    with <cls>/<eos>."""
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.normal(np.log(median), sigma, n)).astype(int)
    lengths = np.clip(lengths, min_residues, max_tokens - 2)
    return ["".join(rng.choice(list(AMINO), size=int(n_res))) for n_res in lengths]


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)


def hf_config(attn: str, shape: str = "8m"):
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers.EsmConfig(**ESM2_COMMON, **ESM2_SHAPES[shape], attn_implementation=attn)


def hf_esm(attn: str, state: dict[str, torch.Tensor] | None = None,
           shape: str = "8m") -> torch.nn.Module:
    """`transformers.EsmForMaskedLM` of an ESM-2 shape with `attn` attention."""
    import transformers
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(hf_config(attn, shape))
    if state is not None:
        model.load_state_dict(state)
    return model


def hf_supports(attn: str, device: torch.device) -> str | None:
    """None when transformers' ESM runs with `attn` on `device`, else why not."""
    if attn == "flash_attention_2" and device.type != "cuda":
        return "flash_attention_2 needs CUDA"
    try:
        hf_esm(attn, shape="8m").to(device)
    except (ImportError, ValueError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return None


def biofm_from_hf(hf: torch.nn.Module):
    """biofm's twin of an HF ESM model (same weights), via a saved HF directory."""
    from biofm.interop import load_hf_esm
    from biofm.modalities.proteins.tokenizer import ESM2_VOCAB
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        (Path(tmp) / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
        return load_hf_esm(tmp)


def build_models(names: list[str], shape: str) -> dict[str, torch.nn.Module]:
    """One model per variant name, all with the same weights: "biofm*" share one
    biofm model, "hf_<impl>*" one HF model per attention implementation."""
    reference = hf_esm("sdpa", shape=shape)
    biofm = biofm_from_hf(reference)
    hf: dict[str, torch.nn.Module] = {"sdpa": reference}
    models = {}
    for name in names:
        if name.startswith("biofm"):
            models[name] = biofm
            continue
        attn = HF_ATTENTION[name]
        if attn not in hf:
            hf[attn] = hf_esm(attn, reference.state_dict(), shape)
        models[name] = hf[attn]
    return models


# variant → transformers attn_implementation
HF_ATTENTION = {"hf_best": "sdpa", "hf_grouped": "sdpa", "hf_grouped_fp32": "sdpa",
                "hf_sdpa": "sdpa",
                "hf_eager": "eager", "hf_flat": "flash_attention_2"}


def resolve_precision(name: str, device: torch.device) -> str:
    """"fp32" or "bf16"; "auto" is bf16 on CUDA and fp32 on CPU (as biofm's own
    `train.precision=auto`)."""
    return ("bf16" if device.type == "cuda" else "fp32") if name == "auto" else name


def autocast(device: torch.device, precision: str):
    """bf16 autocast for "bf16", nothing for "fp32" (a resolved precision)."""
    import contextlib
    if precision == "bf16":
        return torch.autocast(device.type, torch.bfloat16)
    return contextlib.nullcontext()


# -- timing ----------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def quartiles(values: list[float]) -> dict[str, float]:
    """Median and interquartile range (inclusive method: exact on 5 values)."""
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


@dataclass
class Timings:
    """seconds[variant][repeat]: one repeat's wall time of the variant's whole work."""

    seconds: dict[str, list[float]]
    peak_flops: list[float] = field(default_factory=list)  # one measurement per repeat

    def tokens_per_s(self, name: str, tokens: int) -> dict[str, float]:
        return quartiles([tokens / s for s in self.seconds[name]])

    def speedup(self, name: str, reference: str) -> dict[str, float]:
        """Per repeat, reference time / `name` time; median and IQR over repeats."""
        return quartiles([r / s for r, s in zip(self.seconds[reference], self.seconds[name])])

    def fastest(self, names: list[str]) -> str:
        return min(names, key=lambda n: statistics.median(self.seconds[n]))


def interleaved(variants: dict[str, Callable[[int], Any]], calls: int, repeats: int,
                device: torch.device, warmup: Callable[[str], Any] | None = None,
                peak: Callable[[], float] | None = None) -> Timings:
    """`repeats` passes of `calls` calls per variant, interleaved call by call; per
    repeat and variant the summed time. `warmup(name)` runs once per variant before
    (not timed); `peak()` (FLOP/s of a large matmul) is measured once per repeat."""
    if warmup is not None:
        for name in variants:
            warmup(name)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    peaks = []
    for _ in range(repeats):
        if peak is not None:
            peaks.append(peak())
        spent = dict.fromkeys(variants, 0.0)
        for i in range(calls):
            for name, call in variants.items():
                spent[name] += timed(lambda: call(i), device)
        for name in variants:
            seconds[name].append(spent[name])
    return Timings(seconds, peaks)


# substrings of op names (CPU: aten ops) and of kernel names (CUDA: flash / fmha
# attention kernels, cuBLAS / CUTLASS GEMMs); attention is matched first
OP_CLASSES = (("attention", ("scaled_dot_product", "scaleddotproduct", "flash", "fmha",
                             "varlen_attn", "biofm_attention")),
              ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
                          "aten::_addmm_activation", "aten::linear", "gemm", "cutlass")))


def op_class(name: str) -> str:
    """"attention", "matmul" or "other" for an op or kernel name (`OP_CLASSES`)."""
    name = name.lower()
    return next((c for c, keys in OP_CLASSES if any(k in name for k in keys)), "other")


def time_by_op_class(run: Callable[[], Any], device: torch.device) -> dict[str, float]:
    """Seconds `run()` spends in attention kernels, matmuls and everything else
    (self time of each op under `torch.profiler`, CPU ops; device time on CUDA):
    where a step's time goes, so a claim about what bounds it can be checked."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as prof:
        run()
        sync(device)
    spent = {"attention": 0.0, "matmul": 0.0, "other": 0.0}
    for event in prof.key_averages():
        us = (event.self_device_time_total if device.type == "cuda"
              else event.self_cpu_time_total)
        spent[op_class(event.key)] += us / 1e6
    spent["total"] = sum(spent.values())
    return spent


def add_profile(figures: dict, args, passes: dict[str, Callable[[], Any]],
                device: torch.device) -> None:
    """Unless --no-profile: one more pass of each of `passes` (variant → its whole work)
    under the profiler, as figures["time_by_op_class"]."""
    if not args.no_profile:
        figures["time_by_op_class"] = {n: time_by_op_class(run, device)
                                       for n, run in passes.items()}


def print_profile_and_peak(figures: dict) -> None:
    """The profiled split of each variant (when run), then the measured matmul peak."""
    for n, spent in figures.get("time_by_op_class", {}).items():
        share = lambda c: f"{c} {spent[c]:.2f} s ({spent[c] / spent['total']:.0%})"  # noqa: E731
        print(f"profiled pass of {n}: {share('matmul')}, {share('attention')}, "
              f"{share('other')}")
    peak = figures["measured_peak_flops"]
    print(f"matmul peak measured in this run: {iqr(peak, '{:.3g}')} FLOP/s; "
          f"MFU against {figures['mfu_peak_flops']:.3g} FLOP/s, "
          f"{figures['model_flops_per_token']:.3g} model FLOPs per token")


def matmul_peak_flops(device: torch.device, precision: str, seconds: float = 1.0) -> float:
    """The machine's practical peak in the benchmark's precision, measured now: a
    large matmul (n = 2048 on CPU, the best of a few; n = 8192 on CUDA) in fp32 or bf16."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    best, start = float("inf"), time.perf_counter()
    a @ b  # warm-up
    while time.perf_counter() - start < seconds or best == float("inf"):
        best = min(best, timed(lambda: a @ b, device))
    return 2 * n ** 3 / best


def nominal_peak_flops() -> float | None:
    """The GPU's data-sheet dense bf16 peak (FLOP/s), when known."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    tflops = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    return None if tflops is None else tflops * 1e12


def model_flops_per_token(n_params: int, n_layers: int, d_model: int, context: float,
                          training: bool) -> float:
    """Model FLOPs per real token: 2N + 4·L·S·d forward (matmuls with the weights,
    then QKᵀ and AV over a context of S tokens); ×3 with the backward (6N + 12·L·S·d)."""
    forward = 2 * n_params + 4 * n_layers * context * d_model
    return 3 * forward if training else forward


def context_length(lengths: list[int]) -> float:
    """Token-weighted mean sequence length: the S a token attends over."""
    return sum(n * n for n in lengths) / sum(lengths)


# -- memory ----------------------------------------------------------------------------

class PeakRSS:
    """Peak resident memory of this process above its level at `start()`.

    Call `start()` after a warm-up step, so that code pages and one-off
    buffers loaded on first use are not counted.

    On Linux the high-water mark is reset (/proc/self/clear_refs, "5") so that
    memory freed before the start (model building) does not count; elsewhere
    the `ru_maxrss` delta is used, which can only under-count.
    """

    def start(self) -> None:
        gc.collect()
        try:  # hand memory that glibc keeps after frees back to the OS first
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.base, self.linux = _status_kib("VmRSS") * 1024, True
        except OSError:
            self.base, self.linux = _maxrss_bytes(), False

    def peak(self) -> int:
        top = _status_kib("VmHWM") * 1024 if self.linux else _maxrss_bytes()
        return top - self.base


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def peak_memory(run: Callable[[], Any], device: torch.device) -> int:
    """Bytes `run()` needs above what is held before it (call after a warm-up)."""
    rss = PeakRSS()
    rss.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    run()
    return torch.cuda.max_memory_allocated() - base if device.type == "cuda" else rss.peak()


def probe_memory(script: str, args: list[str], variant: str) -> int:
    """Peak memory of one variant, measured by `script --probe variant` in a fresh process."""
    out = subprocess.run([sys.executable, script, *args, "--probe", variant], check=True,
                         capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


# -- context and output -----------------------------------------------------------------

def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {torch.get_num_threads()} torch threads of {os.cpu_count()} cores, "
            f"torch {torch.__version__}")


def load_average() -> float | None:
    """1-minute load average: above the core count, other processes shared the CPU."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def iqr(q: dict[str, float], fmt: str = "{:,.0f}") -> str:
    """'median [q1–q3]'."""
    return f"{fmt.format(q['median'])} [{fmt.format(q['q1'])}–{fmt.format(q['q3'])}]"


def add_common_arguments(parser, precision: bool = True) -> None:
    """Options every script shares (`--precision` where a model runs)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: CUDA "
                                                          "when there is a GPU)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved passes over the work (median and IQR over them)")
    parser.add_argument("--shape", choices=sorted(ESM2_SHAPES), default="8m",
                        help="ESM-2 shape of every model")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the per-variant peak-memory probes (fresh processes)")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the profiled pass of biofm and the best practice (time in "
                             "matmuls, attention kernels and the rest)")
    if precision:
        parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                            help="every variant in fp32 or under bf16 autocast (auto: bf16 "
                                 "on CUDA, fp32 on CPU); MFU is against the peak in that "
                                 "precision")
    parser.add_argument("--json", help="write the figures to this file")


def resolve_device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                        if name == "auto" else name)


def run_main(args, measure: Callable, report: Callable, probe: Callable) -> dict | None:
    """Resolve the device, measure (or run one memory probe), report, write JSON."""
    import datetime

    from biofm.bench.provenance import provenance

    device = resolve_device(args.device)
    args.device = str(device)
    args.precision = resolve_precision(getattr(args, "precision", "fp32"), device)
    set_threads(args.threads)
    if args.probe:
        probe(args, device)
        return None
    load_before = load_average()
    figures = measure(args, device)
    run = provenance()  # the commit (and whether the checkout had changes) measured
    figures.update(load_average={"before": load_before, "after": load_average()},
                   commit=run["commit"], dirty=run["dirty"], machine=machine(),
                   device=device.type,
                   dtype="bf16 autocast" if args.precision == "bf16" else "fp32",
                   date=datetime.date.today().isoformat(), args=vars(args))
    report(figures, args)
    write_json(args.json, figures)
    return figures


def print_variants(figures: dict, headline: str, extra: str, values: dict, fmt: str) -> None:
    """`headline`, the machine and load line, then a row per variant: real tokens/s
    median [IQR], real-token fraction, MFU, peak memory and the `extra` column
    (`values[variant]` formatted with `fmt`, e.g. "{:9.4f}")."""
    tps, iqr_ = figures["tokens_per_s"], figures["tokens_per_s_iqr"]
    peak_bytes = figures.get("peak_memory_bytes", {})
    mfu = figures.get("cpu_mfu") or figures.get("mfu")
    mfu_name = "CPU MFU" if "cpu_mfu" in figures else "MFU"
    print(headline)
    load = figures["load_average"]
    print(f"machine: {figures['machine']}; load average {load['before']:.1f} before, "
          f"{load['after']:.1f} after (other processes share the CPU above the core count)")
    width = len(fmt.format(0.0))
    print(f"{'':16}{'real tok/s  median [IQR]':>28}{'real tok':>10}{mfu_name:>9}"
          f"{'peak mem':>11}{extra:>{width}}")
    for n in tps:
        q = {"median": tps[n], "q1": iqr_[n][0], "q3": iqr_[n][1]}
        mem = mib(peak_bytes[n]) if n in peak_bytes else "-"
        print(f"{n:16}{iqr(q):>28}{figures['real_token_fraction_by_variant'][n]:10.0%}"
              f"{mfu[n]:9.1%}{mem:>11}{fmt.format(values[n])}")
