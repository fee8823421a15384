"""What the benchmark scripts share: protein-like data, twin models, timing, memory.

The reference is `transformers`' ESM-2 (`EsmForMaskedLM`) and biofm's model
is converted from it with `biofm.interop.esm`, so both hold the same weights.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

AMINO = "ACDEFGHIKLMNPQRSTVWY"
# ESM-2 8M (facebook/esm2_t6_8M_UR50D): 6 layers, width 320, 20 heads, rotary, token dropout
ESM2_8M = dict(vocab_size=33, hidden_size=320, num_hidden_layers=6, num_attention_heads=20,
               intermediate_size=1280, max_position_embeddings=1026, token_dropout=True,
               position_embedding_type="rotary", pad_token_id=1, mask_token_id=32,
               layer_norm_eps=1e-5, emb_layer_norm_before=False,
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# Peak dense bf16 tensor throughput (TFLOP/s) for model FLOPs utilisation.
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


def hf_esm(attn: str, state: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """`transformers.EsmForMaskedLM` of ESM-2 8M's shape with `attn` attention."""
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(0)
    model = transformers.EsmForMaskedLM(transformers.EsmConfig(**ESM2_8M,
                                                               attn_implementation=attn))
    if state is not None:
        model.load_state_dict(state)
    return model


def biofm_from_hf(hf: torch.nn.Module):
    """biofm's twin of an HF ESM model (same weights), via a saved HF directory."""
    from biofm.interop import load_hf_esm
    from biofm.modalities.proteins.tokenizer import ESM2_VOCAB
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        (Path(tmp) / "vocab.txt").write_text("\n".join(ESM2_VOCAB) + "\n")
        return load_hf_esm(tmp)


def twin_models() -> tuple[Any, torch.nn.Module, torch.nn.Module]:
    """(biofm model, HF sdpa, HF eager), all with the same weights."""
    sdpa = hf_esm("sdpa")
    eager = hf_esm("eager", sdpa.state_dict())
    return biofm_from_hf(sdpa), sdpa, eager


def build_variant(name: str) -> torch.nn.Module:
    """One model alone (for a memory probe); weights as in `twin_models`."""
    if name == "biofm":
        return biofm_from_hf(hf_esm("sdpa"))
    return hf_esm(name.removeprefix("hf_"))


# -- timing and memory ---------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


@dataclass
class Timings:
    """Per-variant seconds of each measured step (same data, interleaved)."""

    seconds: dict[str, list[float]]

    def tokens_per_s(self, name: str, tokens: list[int]) -> float:
        return statistics.median(n / s for n, s in zip(tokens, self.seconds[name]))

    def speedup(self, name: str, reference: str) -> float:
        """Median over steps of the per-step time ratio reference / name."""
        return statistics.median(r / s for r, s in zip(self.seconds[reference], self.seconds[name]))


def interleaved(variants: dict[str, Callable[[int], Any]], steps: int, warmup: int,
                device: torch.device, repeats: int = 1) -> Timings:
    """Run step i of every variant before step i + 1 of any, so that load from other
    processes on a shared machine hits all variants alike; each step runs `repeats`
    times (also interleaved) and keeps its fastest, and the first `warmup` are dropped."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + steps):
        best = {name: float("inf") for name in variants}
        for _ in range(repeats):
            for name, step in variants.items():
                best[name] = min(best[name], timed(lambda: step(i), device))
        if i >= warmup:
            for name in variants:
                seconds[name].append(best[name])
    return Timings(seconds)


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


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def probe_memory(script: str, args: list[str], variant: str) -> int:
    """Peak memory of one variant, measured by `script --probe variant` in a fresh process."""
    out = subprocess.run([sys.executable, script, *args, "--probe", variant], check=True,
                         capture_output=True, text=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


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


def peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, indent=2) + "\n")


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def add_common_arguments(parser) -> None:
    """Options both scripts share."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="write the figures to this file")


def run_main(args, measure: Callable, report: Callable, probe: Callable) -> dict | None:
    """Resolve the device, measure (or run one memory probe), report, write JSON."""
    import datetime

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    args.device = device.type
    args.batch_size = args.batch_size or (64 if device.type == "cuda" else 8)
    set_threads(args.threads)
    if args.probe:
        probe(args, device)
        return None
    load_before = load_average()
    figures = measure(args, device)
    figures.update(load_average={"before": load_before, "after": load_average()},
                   machine=machine(), device=device.type,
                   dtype="bf16 autocast" if device.type == "cuda" else "fp32",
                   date=datetime.date.today().isoformat(), args=vars(args))
    report(figures, args)
    write_json(args.json, figures)
    return figures
