"""Which packed-attention kernel runs, and the reasons a GPU user is warned about
when the fused kernels are off (checked on the CPU with the tensors' attributes)."""

from types import SimpleNamespace

import pytest
import torch

from biofm.backbones import layers, native


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


def test_on_the_cpu_every_input_takes_a_per_segment_kernel():
    """biofm's own for 16-wide heads where it is built (tests/backbones/test_native.py),
    else PyTorch's SDPA per segment, in fp32 and under bf16 autocast alike."""
    own = layers.native_per_segment if native.library() else layers.sdpa_per_segment
    for dtype in (torch.float32, torch.bfloat16):
        assert layers.choose_kernel(torch.zeros(4, 2, 16, dtype=dtype), 0.0)[1] is own
        assert layers.choose_kernel(torch.zeros(4, 2, 8, dtype=dtype), 0.0)[1] \
            is layers.sdpa_per_segment


def test_on_the_cpu_bf16_attention_runs_in_fp32_and_returns_bf16():
    """Under CPU bf16 autocast the attention kernels see fp32 (PyTorch's bf16 CPU kernels
    are slower at small head widths) and hand back the projections' dtype; gradients
    reach bf16 inputs."""
    seen = []

    def kernel(q, k, v, *rest):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return layers.sdpa_per_segment(q, k, v, *rest)

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(12, 2, 16, generator=g).bfloat16().requires_grad_()
               for _ in range(3))
    segments = layers.Segments.from_document_ids(torch.tensor([[0] * 5 + [1] * 7]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layers.cpu_attention_in_fp32(kernel)(q, k, v, segments, False, 0.0)
    assert seen == [(torch.float32,) * 3 + (False,)] and out.dtype == torch.bfloat16
    exact = layers.sdpa_per_segment(q.float(), k.float(), v.float(), segments, False, 0.0)
    assert (out.float() - exact).abs().max() < 1e-2  # only the output's bf16 rounding
    out.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16 and q.grad.abs().sum() > 0
    fp32 = torch.randn(12, 2, 16)  # fp32 inputs pass straight through
    seen.clear()
    layers.cpu_attention_in_fp32(kernel)(fp32, fp32, fp32, segments, False, 0.0)
    assert seen == [(torch.float32,) * 3 + (False,)]


def test_a_bf16_model_on_the_cpu_tracks_its_fp32_self():
    """A packed and a padded forward under CPU bf16 autocast stay within bf16 rounding of
    fp32 (attention in fp32, linear layers in bf16)."""
    from tests.backbones.test_transformer import _packed
    from tests.helpers import random_proteins, tiny_model

    model = tiny_model().eval()
    batch, _ = _packed(model, model.encode(random_proteins(4, seed=3)), 64)
    for document_ids in (batch.document_ids, None):
        with torch.no_grad():
            exact = model.backbone(batch.input_ids, batch.attention_mask,
                                   document_ids).last_hidden_state
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model.backbone(batch.input_ids, batch.attention_mask,
                                     document_ids).last_hidden_state
        assert low.dtype in (torch.bfloat16, torch.float32)
        assert (low.float() - exact).abs().max() < 0.1 * exact.abs().max()


def test_a_model_cast_to_bf16_keeps_its_rotary_frequencies_in_fp32():
    """`biofm.load(..., dtype=torch.bfloat16)` casts every buffer; bf16 frequencies
    would turn the angle of position 1,000 by ~0.2 rad."""
    rotary = layers.Rotary(16)
    exact = rotary.inv_freq.clone()
    rotary.to(dtype=torch.bfloat16)
    assert rotary.inv_freq.dtype == torch.float32 and torch.equal(rotary.inv_freq, exact)
    cos, _ = rotary(torch.arange(1000)[None])
    assert cos.dtype == torch.float32


def test_pooling_sums_in_fp32():
    """Mean pooling of bf16 states (a model loaded in bf16, or CUDA autocast): sums over
    long documents are not rounded to bf16 (4,000 tokens: the bf16 sum is off by 0.75)."""
    n, d = 4000, 4
    hidden = torch.full((1, n, d), 1.0, dtype=torch.bfloat16)
    hidden[0, ::2] = 1.015625  # 1 + 2^-6: every other token
    ids, mask = torch.full((1, n), 5), torch.ones(1, n, dtype=torch.long)
    special = torch.tensor([0, 1, 2])
    segments = layers.Segments.from_document_ids(torch.zeros(1, n, dtype=torch.long))
    packed = layers.pool_documents(hidden, ids, mask, segments, special, "mean")
    assert packed.dtype == torch.float32 and torch.all(packed == 1.0078125)  # 1 + 2^-7
    padded = layers.pool(hidden, ids, mask, special, "mean")
    assert padded.dtype == torch.bfloat16 and torch.all(padded.float() == 1.0078125)
