"""Which packed-attention kernel runs, and the reasons a GPU user is warned about
when the fused kernels are off (checked on the CPU with the tensors' attributes)."""

from types import SimpleNamespace

import pytest
import torch

from biofm.backbones import layers


def _on_cuda(head_dim: int, dtype: torch.dtype) -> SimpleNamespace:
    """The attributes `cuda_fallback_reason` reads of a (N, h, hd) CUDA tensor."""
    return SimpleNamespace(is_cuda=True, dtype=dtype, shape=(10, 4, head_dim))


@pytest.mark.parametrize("head_dim,problem", [(16, False), (64, False), (256, False),
                                               (12, True), (320, True)])
def test_head_widths_the_fused_kernels_refuse(head_dim, problem):
    message = layers.fused_head_dim_problem(head_dim)
    assert (message is not None) == problem
    if problem:
        assert f"head width {head_dim}" in message and "multiples of 8 up to 256" in message


def test_fallback_reasons_name_the_cause_and_the_fix():
    assert layers.cuda_fallback_reason(torch.zeros(4, 2, 16), 0.0) is None  # CPU: the fast path
    assert layers.cuda_fallback_reason(_on_cuda(64, torch.bfloat16), 0.0) is None
    fp32 = layers.cuda_fallback_reason(_on_cuda(64, torch.float32), 0.0)
    assert "float32" in fp32 and "train.precision=bf16" in fp32
    width = layers.cuda_fallback_reason(_on_cuda(12, torch.bfloat16), 0.0)
    assert "head width 12" in width and "n_heads" in width
    dropout = layers.cuda_fallback_reason(_on_cuda(64, torch.bfloat16), 0.1)
    if layers._installed("flash_attn"):
        assert dropout is None
    else:
        assert "dropout 0.1" in dropout and "backbone.dropout=0" in dropout


def test_the_installed_varlen_kernel_signature_is_checked():
    assert layers._torch_varlen_fits() == layers._installed("torch.nn.attention.varlen")


def test_on_the_cpu_every_input_takes_per_segment_sdpa():
    for dtype in (torch.float32, torch.bfloat16):
        assert layers.choose_kernel(torch.zeros(4, 2, 16, dtype=dtype), 0.0)[1] \
            is layers.sdpa_per_segment
