"""biofm's own CPU attention kernel (`cpu_attention.c`), compiled on first use.

At ESM-2 8M's head width (16) PyTorch's CPU flash-attention kernel runs at about a
quarter of the machine's matmul peak, and attention is a third of a training step
on a CPU. `cpu_attention.c` computes packed per-document attention for 16-wide
heads with AVX-512 (forward and backward, about twice PyTorch's speed on
protein-length documents; `benchmarks/`). It is compiled once per machine with the
system C compiler into the cache directory (`$BIOFM_CACHE_DIR`, else
`$XDG_CACHE_HOME/biofm`, else `~/.cache/biofm`) and called through ctypes; the
GIL is released while it runs and it uses PyTorch's OpenMP thread pool.

Where it cannot run (no AVX-512, no C compiler, another head width, attention
dropout) biofm uses PyTorch's kernel, which computes the same thing;
`BIOFM_CPU_KERNELS=0` turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from biofm.io import atomic_path

logger = logging.getLogger("biofm")

SOURCE = Path(__file__).with_name("cpu_attention.c")
HEAD_DIM = 16
FLAGS = ("-O3", "-std=gnu11", "-shared", "-fPIC", "-fopenmp",
         "-mavx512f", "-mavx512dq", "-mfma")


def cache_dir() -> Path:
    if os.environ.get("BIOFM_CACHE_DIR"):
        return Path(os.environ["BIOFM_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "biofm"
    return Path.home() / ".cache" / "biofm"


def unavailable_reason() -> str | None:
    """Why the kernel cannot be built here, or None."""
    if os.environ.get("BIOFM_CPU_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        return "BIOFM_CPU_KERNELS=0"
    if not sys.platform.startswith("linux"):
        return f"built on Linux only (this is {sys.platform})"
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return f"the CPU runs PyTorch at {torch.backends.cpu.get_cpu_capability()}, not AVX512"
    if not _compiler():
        return "no C compiler (set CC, or install gcc)"
    return None


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


class _CompileError(RuntimeError):
    pass


def _build(compiler: str) -> Path:
    """The compiled library for this source, compiler and flags (built when missing)."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + version.encode())
    name = f"cpu_attention-{key.hexdigest()[:16]}.so"
    for folder in (cache_dir() / "kernels", Path(tempfile.gettempdir()) / f"biofm-{os.getuid()}"):
        target = folder / name
        if target.exists():
            return target
        try:
            with atomic_path(target) as tmp:
                done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(tmp)],
                                      capture_output=True, text=True, timeout=300)
                if done.returncode:
                    last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
                    raise _CompileError(f"{compiler}: {last[0]}")
            return target
        except (_CompileError, subprocess.TimeoutExpired):
            raise
        except Exception as exc:  # an unwritable cache: try the next folder
            logger.debug("cannot write %s: %s", target, exc)
    raise RuntimeError("no writable cache directory")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, or None (then PyTorch's kernel runs; `-v` says why)."""
    why = unavailable_reason()
    if why is None:
        try:
            lib = ctypes.CDLL(str(_build(_compiler())))
        except Exception as exc:  # noqa: BLE001 (any failure: PyTorch's kernel runs instead)
            why = f"building it failed: {exc}"
    if why is not None:
        logger.info("biofm's AVX-512 attention kernel is off (%s): PyTorch's CPU kernel runs", why)
        return None
    ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.biofm_attention_forward.argtypes = [ptr] * 6 + [i32, i32, i32, f32, i32]
    lib.biofm_attention_backward.argtypes = [ptr] * 10 + [i32, i32, i32, f32, i32]
    lib.biofm_attention_forward.restype = lib.biofm_attention_backward.restype = None
    lib.biofm_rotary_forward.argtypes = lib.biofm_rotary_backward.argtypes = \
        [ptr] * 4 + [ctypes.c_long, i32, i32]
    lib.biofm_rotary_forward.restype = lib.biofm_rotary_backward.restype = None
    lib.biofm_check_offsets.argtypes = [ptr, i32, ctypes.c_long]
    lib.biofm_check_offsets.restype = i32
    return lib


def attention_fits(head_dim: int) -> bool:
    """The kernel takes this head width and is built on this machine."""
    return head_dim == HEAD_DIM and library() is not None


def _ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


class _PackedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, causal):  # noqa: ANN001, ANN205
        q, k, v = (t.contiguous() for t in (q, k, v))
        N, H, _ = q.shape
        out = torch.empty_like(q)
        lse = torch.empty(N, H, dtype=torch.float32)
        with torch.profiler.record_function("biofm_attention_forward"):  # named in profiles
            library().biofm_attention_forward(
                _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), _ptr(cu_seqlens),
                cu_seqlens.numel() - 1, H, int(causal), HEAD_DIM ** -0.5,
                torch.get_num_threads())
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens)
        ctx.causal = causal
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
        grad = grad.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        with torch.profiler.record_function("biofm_attention_backward"):
            library().biofm_attention_backward(
                _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(grad), _ptr(lse), _ptr(dq),
                _ptr(dk), _ptr(dv), _ptr(cu_seqlens), cu_seqlens.numel() - 1, q.shape[1],
                int(ctx.causal), HEAD_DIM ** -0.5, torch.get_num_threads())
        return dq, dk, dv, None, None


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     cu_seqlens: torch.Tensor, causal: bool) -> torch.Tensor:
    """q, k, v (N, h, 16) fp32 on the CPU → (N, h, 16): softmax(q kᵀ / 4) v within each
    segment of `cu_seqlens` ((S + 1,) int32 offsets), causal or not; differentiable."""
    if q.dtype != torch.float32 or q.device.type != "cpu" or q.shape[-1] != HEAD_DIM:
        raise ValueError(f"the AVX-512 attention kernel takes fp32 CPU tensors with "
                         f"{HEAD_DIM}-wide heads, got {q.dtype} on {q.device}, width {q.shape[-1]}")
    if not (k.shape == v.shape == q.shape and k.dtype == v.dtype == q.dtype):
        raise ValueError(f"q, k, v differ: {q.shape} {q.dtype}, {k.shape} {k.dtype}, "
                         f"{v.shape} {v.dtype}")
    cu = cu_seqlens.to(device="cpu", dtype=torch.int32).contiguous()
    if cu.numel() < 1 or library().biofm_check_offsets(_ptr(cu), cu.numel() - 1, q.shape[0]):
        raise ValueError(f"cu_seqlens must rise from 0 to the {q.shape[0]} rows of q, "
                         f"got {cu.tolist()}")
    return _PackedAttention.apply(q, k, v, cu, causal)


class _Rotary(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin):  # noqa: ANN001, ANN205
        out = torch.empty_like(x)
        library().biofm_rotary_forward(_ptr(x), _ptr(cos), _ptr(sin), _ptr(out), cos.shape[0],
                                       x.shape[-2], torch.get_num_threads())
        ctx.save_for_backward(cos, sin)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        cos, sin = ctx.saved_tensors
        grad = grad.contiguous()
        dx = torch.empty_like(grad)
        library().biofm_rotary_backward(_ptr(grad), _ptr(cos), _ptr(sin), _ptr(dx), cos.shape[0],
                                        grad.shape[-2], torch.get_num_threads())
        return dx, None, None


def rotary_fits(x: torch.Tensor, cos: torch.Tensor) -> bool:
    """`rotary` takes these: fp32 CPU (B, T, h, 16) with (B or 1, T, 1, 16) tables."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and x.shape[-1] == HEAD_DIM and cos.dtype == torch.float32 and cos.dim() == 4
            and cos.shape[1:] == (x.shape[1], 1, HEAD_DIM) and cos.shape[0] in (1, x.shape[0])
            and library() is not None)


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, T, h, 16) fp32 → x * cos + rotate_half(x) * sin (ESM-2 / GPT-NeoX), with
    cos, sin (B or 1, T, 1, 16); in one pass, differentiable in x."""
    B, T = x.shape[:2]
    table = lambda t: t.expand(B, T, 1, HEAD_DIM).reshape(B * T, HEAD_DIM).contiguous()  # noqa: E731
    return _Rotary.apply(x.contiguous(), table(cos), table(sin))
