"""biofm's AVX-512 attention kernel (`backbones.native`): the same attention as
PyTorch's per segment, forward and backward, causal or not, at every tail length;
results independent of the thread count; built once into the cache directory;
PyTorch's kernel wherever it cannot run."""

import logging

import pytest
import torch
import torch.nn.functional as F

from biofm.backbones import layers, native
from tests.helpers import random_proteins, tiny_model

built = pytest.mark.skipif(native.library() is None,
                           reason=f"the kernel is not built here: {native.unavailable_reason()}")


def _reference(q, k, v, lengths, causal):
    """Per-segment SDPA in float64, (N, h, hd)."""
    out = []
    for qs, ks, vs in zip(*(t.split(lengths) for t in (q, k, v))):
        out.append(F.scaled_dot_product_attention(
            qs.transpose(0, 1), ks.transpose(0, 1), vs.transpose(0, 1),
            is_causal=causal).transpose(0, 1))
    return torch.cat(out)


def _inputs(lengths, heads=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    q, k, v, grad = (torch.randn(n, heads, 16, generator=g, dtype=torch.float64) * 2
                     for _ in range(4))
    cu = torch.tensor([0, *lengths]).cumsum(0).to(torch.int32)
    return q, k, v, grad, cu


@built
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lengths", [[1], [7], [8], [9], [16], [17], [130],
                                     [5, 33, 1, 64, 250, 17]])
def test_matches_per_segment_attention_forward_and_backward(lengths, causal):
    q, k, v, grad, cu = _inputs(lengths)
    exact = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = _reference(*exact, lengths, causal)
    expected.backward(grad)
    ours = [t.float().requires_grad_() for t in (q, k, v)]
    out = native.packed_attention(*ours, cu, causal)
    out.backward(grad.float())
    assert out.dtype == torch.float32 and out.shape == q.shape
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=0)
    for mine, theirs, name in zip(ours, exact, "qkv"):
        torch.testing.assert_close(mine.grad.double(), theirs.grad, atol=5e-5, rtol=0,
                                   msg=f"d{name}")


@built
def test_results_do_not_depend_on_the_thread_count():
    q, k, v, grad, cu = (t.float() if t.is_floating_point() else t
                         for t in _inputs([40, 3, 97, 12], heads=5, seed=1))
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]
            out = native.packed_attention(*leaves, cu, False)
            out.backward(grad)
            runs.append([out.detach(), *(t.grad for t in leaves)])
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], run))


@built
def test_a_tiny_model_trains_the_same_with_either_kernel(monkeypatch):
    """Packed MLM loss and gradients of a model with 16-wide heads: biofm's kernel
    against PyTorch's per-segment SDPA."""
    from tests.backbones.test_transformer import _packed

    model = tiny_model("encoder", "mlm")
    assert model.backbone.layers[0].attn.head_dim == 16
    batch, _ = _packed(model, model.encode(random_proteins(6, seed=3)), 64)

    def step():
        model.zero_grad()
        hidden = model.backbone(batch.input_ids, batch.attention_mask,
                                batch.document_ids).last_hidden_state
        hidden.pow(2).mean().backward()
        return hidden.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    assert layers.choose_kernel(torch.zeros(4, 2, 16), 0.0)[1] is layers.native_per_segment
    ours = step()
    monkeypatch.setattr(layers, "choose_kernel",
                        lambda q, p: ("SDPA per document segment", layers.sdpa_per_segment))
    theirs = step()
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-5, rtol=1e-5)
    for a, b in zip(ours[1], theirs[1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@built
def test_kernel_choice_on_the_cpu():
    assert layers.choose_kernel(torch.zeros(4, 2, 16), 0.0)[1] is layers.native_per_segment
    assert layers.choose_kernel(torch.zeros(4, 2, 16).bfloat16(), 0.0)[1] \
        is layers.native_per_segment  # run in fp32 (`cpu_attention_in_fp32`)
    assert layers.choose_kernel(torch.zeros(4, 2, 16), 0.1)[1] is layers.sdpa_per_segment
    assert layers.choose_kernel(torch.zeros(4, 2, 32), 0.0)[1] is layers.sdpa_per_segment


@built
def test_under_cpu_bf16_autocast_it_sees_fp32_and_returns_bf16():
    q, k, v, _, cu = _inputs([12, 5], heads=2)
    segments = layers.Segments.from_document_ids(torch.tensor([[0] * 12 + [1] * 5]))
    leaves = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layers.native_per_segment(*leaves, segments, False, 0.0)
    assert out.dtype == torch.bfloat16
    exact = _reference(*(t.double() for t in leaves), [12, 5], False)
    assert (out.double() - exact).abs().max() < 2e-2  # the output's bf16 rounding
    out.float().sum().backward()
    assert all(t.grad is not None and t.grad.dtype == torch.bfloat16 for t in leaves)


@built
def test_wrong_inputs_are_refused():
    q = torch.zeros(5, 2, 16)
    cu = torch.tensor([0, 5], dtype=torch.int32)
    with pytest.raises(ValueError, match="fp32 CPU tensors with 16-wide heads"):
        native.packed_attention(q.double(), q.double(), q.double(), cu, False)
    with pytest.raises(ValueError, match="fp32 CPU tensors with 16-wide heads"):
        native.packed_attention(torch.zeros(5, 2, 8), torch.zeros(5, 2, 8), torch.zeros(5, 2, 8),
                                cu, False)
    for cu in ([0, 4], [0, 3, 2, 5], [1, 5]):
        with pytest.raises(ValueError, match="cu_seqlens must rise from 0 to the 5 rows"):
            native.packed_attention(q, q, q, torch.tensor(cu, dtype=torch.int32), False)
    with pytest.raises(ValueError, match="q, k, v differ"):
        native.packed_attention(q, q[:4], q, cu, False)


@built
def test_built_once_into_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOFM_CACHE_DIR", str(tmp_path))
    compiler = native._compiler()
    first = native._build(compiler)
    assert first.parent == tmp_path / "kernels" and first.suffix == ".so"
    stamp = first.stat().st_mtime_ns
    assert native._build(compiler) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "kernels").iterdir()] == [first.name]  # no temp left


def test_a_failed_build_is_an_error_the_loader_turns_into_pytorch(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BIOFM_CACHE_DIR", str(tmp_path))
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cc: fatal error: no AVX-512 here' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(native._CompileError, match="no AVX-512 here"):
        native._build(str(broken))
    assert not list((tmp_path / "kernels").iterdir())  # nothing half-written
    monkeypatch.setenv("CC", str(broken))
    native.library.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="biofm"):
            assert native.library() is None
        assert "PyTorch's CPU kernel runs" in caplog.text
        assert layers.choose_kernel(torch.zeros(4, 2, 16), 0.0)[1] is layers.sdpa_per_segment
    finally:
        native.library.cache_clear()


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("BIOFM_CPU_KERNELS", "0")
    assert native.unavailable_reason() == "BIOFM_CPU_KERNELS=0"
    native.library.cache_clear()
    try:
        assert native.library() is None and not native.attention_fits(16)
    finally:
        native.library.cache_clear()


@built
@pytest.mark.parametrize("batch", [1, 3])
def test_rotary_matches_rotate_half(batch):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(batch, 37, 5, 16, generator=g, requires_grad=True)
    grad = torch.randn(batch, 37, 5, 16, generator=g)
    cos, sin = layers.Rotary(16)(torch.arange(37).expand(batch, 37))
    assert native.rotary_fits(x, cos) and native.rotary_fits(x, cos[:1])
    for tables in ((cos, sin), (cos[:1], sin[:1])):  # per row, or one broadcast over rows
        expected = x * tables[0] + layers.rotate_half(x) * tables[1]
        (dx_expected,) = torch.autograd.grad(expected, x, grad)
        out = native.rotary(x, *tables)
        (dx,) = torch.autograd.grad(out, x, grad)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(dx, dx_expected, atol=1e-6, rtol=1e-6)
    assert not native.rotary_fits(x.double(), cos) and not native.rotary_fits(x[..., :8], cos)
