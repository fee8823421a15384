"""Packed attention on a GPU (`pytest -m cuda`; skipped without one): the fused
variable-length kernels against per-segment attention in bf16, forward and backward."""

import pytest
import torch

from biofm.backbones import layers
from biofm.data.collate import pack_collate, pad_collate
from tests.helpers import random_proteins, tiny_model

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

KERNELS = [("torch varlen_attn", "torch_varlen", "torch.nn.attention.varlen"),
           ("flash-attn varlen", "flash_attn_varlen", "flash_attn")]
LENGTHS = [1, 7, 130, 257, 64, 300, 2, 129]  # a padding run at the end of the row too


def _segments(lengths: list[int], pad: int = 0) -> layers.Segments:
    docs = torch.cat([torch.full((n,), d) for d, n in enumerate(lengths)]
                     + [torch.full((pad,), -1)])[None]
    return layers.Segments.from_document_ids(docs).to("cuda")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("head_dim", [16, 64])  # ESM-2 8M's and 150M / 650M's
@pytest.mark.parametrize("name,kernel,module", KERNELS)
def test_fused_kernels_match_per_segment_attention_in_bf16(name, kernel, module, head_dim, causal):
    if not layers._installed(module):
        pytest.skip(f"{module} is not installed")
    segments = _segments(LENGTHS, pad=11)
    n = sum(segments.lengths)
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(n, 8, head_dim, device="cuda", generator=g) for _ in range(3))
    weights = torch.randn(n, 8, head_dim, device="cuda", generator=g)
    results = []
    for fn, dtype in ((layers.sdpa_per_segment, torch.float32),
                      (getattr(layers, kernel), torch.bfloat16)):
        qs, ks, vs = (t.to(dtype).requires_grad_() for t in (q, k, v))
        out = fn(qs, ks, vs, segments, causal, 0.0)
        (out.float() * weights).sum().backward()
        results.append([out.float(), qs.grad.float(), ks.grad.float(), vs.grad.float()])
    for what, ref, got in zip(("out", "dq", "dk", "dv"), *results):
        scale = ref.abs().max()
        torch.testing.assert_close(got / scale, ref / scale, atol=2e-2, rtol=0,
                                   msg=f"{name} {what}")


def test_the_cuda_kernel_choice_in_bf16():
    q = torch.zeros(4, 2, 16, device="cuda", dtype=torch.bfloat16)
    name, _ = layers.choose_kernel(q, 0.0)
    assert name in ("torch varlen_attn", "flash-attn varlen")
    assert layers.choose_kernel(q.float(), 0.0)[1] is layers.sdpa_per_segment


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_packed_bf16_model_matches_padded_forward_and_backward(kind):
    """A packed batch through the whole model under bf16 autocast: the loss and the
    gradients of the padded batch (same tokens, same labels)."""
    torch.manual_seed(0)
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm", token_dropout=True).cuda()
    seqs = model.encode(random_proteins(12, seed=3))
    padded = model.objective.prepare(pad_collate(seqs, 1), torch.Generator().manual_seed(0))
    if kind == "encoder":  # the same masked tokens, packed
        ids = [r[m].tolist() for r, m in zip(padded.input_ids, padded.attention_mask)]
        labels = [r[m].tolist() for r, m in zip(padded.labels, padded.attention_mask)]
        packed = pack_collate(ids, 1, 200).with_(labels=pack_collate(labels, -100, 200).input_ids)
    else:
        packed = model.objective.prepare(pack_collate(seqs, 1, 200))
    grads = []
    for batch in (padded, packed):
        model.zero_grad()
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(batch.to("cuda")).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                      if p.grad is not None}))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=2e-2, rtol=2e-2)
    for name, ref in grads[0][1].items():
        scale = ref.abs().max().clamp(min=1e-6)
        torch.testing.assert_close(grads[1][1][name] / scale, ref / scale, atol=5e-2, rtol=0,
                                   msg=name)


def test_a_cuda_fallback_is_a_warning_that_says_why(caplog):
    segments = _segments([3, 5])
    q = torch.zeros(8, 2, 16, device="cuda")  # fp32: no fused kernel
    layers._logged.clear()
    with caplog.at_level("INFO", logger="biofm"):
        layers.packed_attention(q[None], q[None], q[None], segments, False, 0.0)
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert warned and "bf16" in warned[0].getMessage()
    q12 = torch.zeros(8, 2, 12, device="cuda", dtype=torch.bfloat16)  # a width they refuse
    assert layers.choose_kernel(q12, 0.0)[1] is layers.sdpa_per_segment
