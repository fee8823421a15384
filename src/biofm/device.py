"""Where tensors run and in what precision: one place for every caller.

    device = resolve_device("auto")          # cuda when there is a GPU, else cpu
    with autocast_context(device, "auto"):   # bf16 on CUDA, fp32 elsewhere
        out = model(batch.to(device))
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast_context", "resolve_device"]


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """"auto" is CUDA when there is a GPU; under torchrun each rank takes GPU LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for "bf16", and for "auto" on CUDA; otherwise plain fp32."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
