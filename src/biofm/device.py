"""Where tensors run and in what precision: one place for every caller.

    device = resolve_device("auto")          # cuda when there is a GPU, else cpu
    with autocast_context(device, "auto"):   # bf16 on CUDA, fp32 elsewhere
        out = model(batch.to(device))
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import statistics
import time
from collections.abc import Iterator

import torch

from biofm.errors import BiofmError

logger = logging.getLogger("biofm")

__all__ = ["autocast_context", "chosen_small_model_threads", "resolve_device",
           "small_model_threads"]


def resolve_device(name: str | torch.device, local_rank: int | None = None) -> torch.device:
    """"auto" is CUDA when there is a GPU; under torchrun each rank takes GPU LOCAL_RANK.

    A device that is not there (cuda without a GPU, cuda:3 on a 2-GPU machine), a
    name torch does not know, or a GPU index under torchrun (every rank would take
    that one GPU) is a `BiofmError` naming the choices. `local_rank` given or
    WORLD_SIZE > 1 in the environment: this process is one of several ranks.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BiofmError(f"unknown device {name!r}",
                         fix="use --device auto, cpu, cuda or cuda:N") from None
    several_ranks = local_rank is not None or int(os.environ.get("WORLD_SIZE", "1")) > 1
    if device.type == "cuda" and device.index is not None and several_ranks:
        raise BiofmError(f"device {name!r} under torchrun would put every rank on GPU "
                         f"{device.index}",
                         fix="use --device cuda (or auto): each rank takes GPU LOCAL_RANK; "
                             "choose the GPUs with CUDA_VISIBLE_DEVICES")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BiofmError(f"device {name!r} asked for, but this machine has no CUDA GPU",
                             fix="use --device cpu (or auto, which picks the GPU when there is "
                                 "one)")
        if device.index is not None and device.index >= count:
            raise BiofmError(f"device {name!r} asked for, but there are {count} GPU(s)",
                             fix=f"use cuda:0 … cuda:{count - 1}")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for "bf16", and for "auto" on CUDA; otherwise plain fp32.

    On a CPU, "bf16" pays where the CPU has bf16 units (AVX512-BF16 or AMX: ESM-2 8M
    trains ~1.4x faster than in fp32, `benchmarks/README.md`); attention still runs in
    fp32 there (`backbones.layers.cpu_attention_in_fp32`). Without those units bf16 is
    emulated and slower than fp32: a warning says so, once."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    if device.type == "cpu" and not cpu_has_bf16_units():
        _warn_emulated_bf16()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@functools.cache  # once per process
def _warn_emulated_bf16() -> None:
    logger.warning("precision bf16 on a CPU without bf16 units (AVX512-BF16, AMX): "
                   "PyTorch emulates bf16 here, which is slower than fp32; use "
                   "precision=fp32 (train.precision=fp32) on this machine")


@functools.cache  # the hardware does not change; autocast_context runs every step
def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), as PyTorch's
    oneDNN kernels see it."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


SMALL_MODEL_THREADS_ENV = "BIOFM_SMALL_MODEL_THREADS"
_chosen: dict[tuple[int, int], int] = {}  # (width, threads before) → the count the probe chose


@contextlib.contextmanager
def small_model_threads(width: int = 128) -> Iterator[int]:
    """Intra-op threads for models too small to split well (yields the count chosen).

    On a CPU, one thread or the current count, whichever runs a probe of the
    model's size (`width`-wide matmuls over 512 rows) faster: on an idle 2-core
    machine two threads run the tiny demo models ~1.5x faster, on a busy one their
    OpenMP workers spin-wait and one thread is up to ~10x faster. The probe runs
    once per process and width, so every later block uses the same count (results
    of a run are deterministic for a thread count, not across counts);
    `BIOFM_SMALL_MODEL_THREADS=N` skips it and uses N. `chosen_small_model_threads()`
    says what was used. Restored on exit. On CUDA nothing changes.
    """
    before = torch.get_num_threads()
    if torch.cuda.is_available():
        yield before
        return
    try:
        count = _small_model_count(width, before)
        torch.set_num_threads(count)
        yield count
    finally:
        torch.set_num_threads(before)


def _small_model_count(width: int, before: int) -> int:
    pinned = os.environ.get(SMALL_MODEL_THREADS_ENV, "").strip()
    if pinned:
        if not pinned.isdigit() or int(pinned) < 1:
            raise BiofmError(f"{SMALL_MODEL_THREADS_ENV}={pinned!r} is not a thread count",
                             fix=f"set {SMALL_MODEL_THREADS_ENV} to a whole number >= 1, or "
                                 "unset it to let a probe choose")
        return int(pinned)
    if before == 1:
        return 1
    if (width, before) not in _chosen:
        seconds = _probe_seconds((before, 1), width)
        _chosen[(width, before)] = min(seconds, key=seconds.__getitem__)
    return _chosen[(width, before)]


def chosen_small_model_threads() -> dict[str, int | str]:
    """What `small_model_threads` used in this process, for provenance: {"width W of
    N threads": count} per probe, or {"pinned": N} under BIOFM_SMALL_MODEL_THREADS."""
    pinned = os.environ.get(SMALL_MODEL_THREADS_ENV, "").strip()
    if pinned:
        return {"pinned": pinned}
    return {f"width {w} of {n} threads": c for (w, n), c in sorted(_chosen.items())}


def _probe_seconds(counts: tuple[int, ...], width: int, rounds: int = 7) -> dict[int, float]:
    """{threads: median time of ten (512, width) x (width, width) matmuls + GELU},
    the thread counts interleaved round by round (load falls on all alike)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(512, width, generator=generator)
    w = torch.randn(width, width, generator=generator)
    times: dict[int, list[float]] = {n: [] for n in counts}
    for round_ in range(rounds + 1):
        for n in counts:
            torch.set_num_threads(n)
            start = time.perf_counter()
            for _ in range(10):
                torch.nn.functional.gelu(x @ w)
            if round_:  # the first round warms up
                times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}
