"""Primitives shared by every backbone: rotary embeddings, attention, MLP, block.

Shapes: B batch, T tokens, d model width, h heads, hd head width (d = h * hd);
N = B * T tokens of a packed batch laid end to end, S segments.

Packed batches (`document_ids`) never build a (T, T) mask across documents:
each run of one document is a `Segments` entry and attention runs on the runs
alone, through the fastest kernel available (`packed_attention`).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from biofm.backbones import native

logger = logging.getLogger("biofm")


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU, as ESM and BERT use; the tanh approximation differs by ~1e-3.

    One fused op: ESM's written-out x * 0.5 * (1 + erf(x / √2)) keeps four
    tensors for backward."""
    return F.gelu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, as GPT-2 uses (transformers' "gelu_new")."""
    return F.gelu(x, approximate="tanh")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(1.702 x), the GELU approximation of OpenAI's CLIP (open_clip quick_gelu)."""
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": gelu, "gelu_tanh": gelu_tanh, "relu": F.relu, "quick_gelu": quick_gelu}


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half convention of ESM-2 / GPT-NeoX)."""

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        self.register_buffer("inv_freq", self._frequencies("cpu"), persistent=False)

    def _frequencies(self, device: torch.device | str) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float, device=device)
        return 1.0 / (self.theta ** (exponents / self.head_dim))

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202
        """`model.to(dtype=bf16)` moves the frequencies but keeps them in fp32: rounded
        to bf16 they would turn the angles of far positions by up to ~0.2 rad."""
        super()._apply(fn, recurse)
        self.inv_freq = self._frequencies(self.inv_freq.device)
        return self

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # positions (B, T) → cos, sin (B, T, 1, hd) in fp32, broadcast over heads
        freqs = positions[..., None].float() * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, :, None], emb.sin()[:, :, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, T, h, hd), rotated in fp32 for bf16 stability; back in x's dtype except
    on CPU, where attention runs in fp32 anyway (`cpu_attention_in_fp32`)."""
    xf = x.float()
    if not torch.compiler.is_compiling() and native.rotary_fits(xf, cos):
        # one pass instead of six (biofm's CPU kernel; under torch.compile, inductor fuses)
        return native.rotary(xf, cos, sin)
    out = xf * cos + rotate_half(xf) * sin
    return out if x.device.type == "cpu" else out.to(x.dtype)


@dataclass(frozen=True)
class Segments:
    """A packed batch cut into runs of one document, in row-major token order.

    A run of padding is a segment too, so the runs tile the N = B * T tokens
    exactly and attention never crosses a boundary. Documents must be
    contiguous within a row (as `pack_collate` lays them out).

    Build it where the batch is still on the CPU (`from_document_ids` reads
    no accelerator memory then) and move it with `to`: the sizes the kernels
    need are Python ints, so a packed forward never waits on the device.

    lengths:     tokens per segment (S Python ints, for splitting)
    documents:   per segment, True for a document and False for padding
    cu_seqlens:  (S + 1,) int32 offsets of the segments in the N tokens
    segment_of:  (B, T) long, the segment of each token
    longest:     the longest segment (padding runs included: the kernels' bound)
    longest_document: the longest document (what the context length limits)
    """

    lengths: tuple[int, ...]
    documents: tuple[bool, ...]
    cu_seqlens: torch.Tensor
    segment_of: torch.Tensor
    longest: int
    longest_document: int

    @classmethod
    def from_document_ids(cls, document_ids: torch.Tensor) -> "Segments":
        """From (B, T) document ids (-1 on padding). One read of two (S,) vectors:
        free for CPU tensors, a device sync for accelerator ones."""
        B, T = document_ids.shape
        starts = torch.ones_like(document_ids, dtype=torch.bool)  # (B, T)
        starts[:, 1:] = document_ids[:, 1:] != document_ids[:, :-1]
        segment_of = starts.flatten().cumsum(0).view(B, T) - 1
        lengths = torch.bincount(segment_of.flatten())  # (S,)
        cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
        is_document = document_ids.flatten()[cu_seqlens[:-1].long()] >= 0  # (S,)
        sizes, docs = torch.stack([lengths, is_document.long()]).tolist()
        return cls(tuple(sizes), tuple(map(bool, docs)), cu_seqlens, segment_of,
                   max(sizes), max((n for n, d in zip(sizes, docs) if d), default=0))

    def to(self, device: torch.device | str) -> "Segments":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return replace(self, cu_seqlens=move(self.cu_seqlens), segment_of=move(self.segment_of))

    def positions(self) -> torch.Tensor:
        """(B, T) position of each token within its segment."""
        B, T = self.segment_of.shape
        flat = torch.arange(B * T, device=self.segment_of.device).view(B, T)
        return flat - self.cu_seqlens.long()[self.segment_of]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) → (S, ...): per-segment sums."""
        flat = values.flatten(0, 1)
        out = flat.new_zeros((len(self.lengths), *flat.shape[1:]))
        return out.index_add_(0, self.segment_of.flatten(), flat)


# -- packed attention kernels: q, k, v (N, h, hd) → (N, h, hd) ----------------------

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Segments, bool, float],
                  torch.Tensor]


def cpu_attention_in_fp32(kernel: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run an attention kernel on CPU in fp32 when q, k, v come in bf16 / fp16 (under
    autocast), and cast the result back.

    PyTorch's CPU flash kernel is slower in bf16 than in fp32 at protein-model head
    widths (ESM-2 8M, hd 16: 1.6x slower, forward + backward), while bf16 linear layers
    are 2-3x faster on CPUs with bf16 units (AVX512-BF16, AMX): mixed precision on a
    CPU then pays only where it gains. Upcasting is also the more exact of the two."""
    @functools.wraps(kernel)
    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if q.device.type != "cpu" or q.dtype == k.dtype == v.dtype == torch.float32:
            return kernel(q, k, v, *args, **kwargs)
        dtype = v.dtype  # the projections' dtype (rotary may have left q, k in fp32)
        with torch.autocast("cpu", enabled=False):
            return kernel(q.float(), k.float(), v.float(), *args, **kwargs).to(dtype)
    return run


@cpu_attention_in_fp32
def sdpa_per_segment(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Segments,
                     causal: bool, dropout_p: float) -> torch.Tensor:
    """One unmasked SDPA call per segment: no (T, T) mask, no work across documents,
    and PyTorch's fused flash kernels (on CUDA a mask rules them out).

    On CPU this beats padding similar-length segments into blocks for one masked
    call (measured on ESM-2 8M shapes, training and inference, 8 to 64 documents):
    the gathers and their backward cost more than the calls they save."""
    out = []
    for qs, ks, vs in zip(*(t.split(segments.lengths) for t in (q, k, v))):  # (L, h, hd)
        y = F.scaled_dot_product_attention(  # on (1, h, L, hd) views
            qs[None].transpose(1, 2), ks[None].transpose(1, 2), vs[None].transpose(1, 2),
            is_causal=causal, dropout_p=dropout_p)
        out.append(y[0].transpose(0, 1))
    return torch.cat(out)


@cpu_attention_in_fp32
def native_per_segment(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Segments,
                       causal: bool, dropout_p: float) -> torch.Tensor:
    """biofm's AVX-512 kernel for 16-wide heads (`backbones.native`): the same
    per-document attention as `sdpa_per_segment` in one call, about twice as fast on
    protein-length documents (no dropout)."""
    return native.packed_attention(q, k, v, segments.cu_seqlens, causal)


def torch_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Segments,
                 causal: bool, dropout_p: float) -> torch.Tensor:
    """PyTorch's variable-length flash attention (CUDA, fp16/bf16, no dropout)."""
    from torch.nn.attention.varlen import varlen_attn
    cu, n = segments.cu_seqlens, segments.longest
    return varlen_attn(q, k, v, cu, cu, n, n, window_size=(-1, 0) if causal else (-1, -1))


def flash_attn_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Segments,
                      causal: bool, dropout_p: float) -> torch.Tensor:
    """The `flash-attn` package's variable-length kernel (CUDA, fp16/bf16)."""
    from flash_attn import flash_attn_varlen_func
    cu, n = segments.cu_seqlens, segments.longest
    return flash_attn_varlen_func(q, k, v, cu, cu, n, n, dropout_p=dropout_p, causal=causal)


def choose_kernel(q: torch.Tensor, dropout_p: float) -> tuple[str, Kernel]:
    """The fastest packed-attention kernel for these inputs, by name.

    On CUDA in fp16/bf16 a fused variable-length kernel (PyTorch's own, else
    flash-attn when installed); on a CPU with AVX-512 and 16-wide heads biofm's own
    kernel (`backbones.native`); anywhere else one SDPA call per segment.
    FlexAttention is not used: it is only fast under `torch.compile`, which
    recompiles for every new packed shape.
    """
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) \
            and fused_head_dim_problem(q.shape[-1]) is None:
        if dropout_p == 0.0 and _torch_varlen_fits():
            return "torch varlen_attn", torch_varlen
        if _installed("flash_attn"):
            return "flash-attn varlen", flash_attn_varlen
    if q.device.type == "cpu" and dropout_p == 0.0 and native.attention_fits(q.shape[-1]):
        return "biofm AVX-512 kernel per document segment", native_per_segment
    return "SDPA per document segment", sdpa_per_segment


def fused_head_dim_problem(head_dim: int) -> str | None:
    """Why the fused CUDA varlen kernels (PyTorch's, flash-attn) refuse this head
    width, or None: they take multiples of 8 up to 256."""
    if head_dim % 8 or head_dim > 256:
        return (f"head width {head_dim} (d_model / n_heads): the fused CUDA attention kernels "
                "take multiples of 8 up to 256")
    return None


def cuda_fallback_reason(q: torch.Tensor, dropout_p: float) -> str | None:
    """On CUDA, why packed attention runs the slow per-segment path, with the fix; None
    when a fused kernel runs (or off CUDA, where per-segment SDPA is the fast path)."""
    if not q.is_cuda:
        return None
    problem = fused_head_dim_problem(q.shape[-1])
    if problem:
        return f"{problem}; choose n_heads so that d_model / n_heads is one (e.g. 64)"
    if q.dtype not in (torch.float16, torch.bfloat16):
        return (f"the activations are {str(q.dtype).removeprefix('torch.')}: the fused kernels "
                "need bf16 / fp16; run with train.precision=bf16 (the default on CUDA) or under "
                "biofm.device.autocast_context")
    if dropout_p > 0 and not _installed("flash_attn"):
        return (f"attention dropout {dropout_p} without the flash-attn package: PyTorch's "
                "varlen kernel has no dropout; set backbone.dropout=0 or "
                "pip install flash-attn")
    return None


@functools.cache
def _torch_varlen_fits() -> bool:
    """PyTorch's varlen_attn is there and takes the arguments `torch_varlen` passes
    (its signature changed between releases)."""
    if not _installed("torch.nn.attention.varlen"):
        return False
    from torch.nn.attention.varlen import varlen_attn
    try:
        params = inspect.signature(varlen_attn).parameters
    except (TypeError, ValueError):
        return False
    names = list(params)
    return len(names) >= 7 and "window_size" in params and \
        names[:3] == ["query", "key", "value"]


@functools.cache
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_logged: set[tuple[str, str]] = set()


@torch.compiler.disable  # runs eagerly: traced, every new packed layout would recompile
def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segments: Segments,
                     causal: bool, dropout_p: float) -> torch.Tensor:
    """q, k, v (B, T, h, hd) → (B, T, h, hd); each segment attends only to itself."""
    B, T, h, hd = q.shape
    name, kernel = choose_kernel(q, dropout_p)
    if (name, q.device.type) not in _logged:  # once per kernel and device
        _logged.add((name, q.device.type))
        reason = cuda_fallback_reason(q, dropout_p)
        if reason:  # a user on a GPU should see that the fast path is off, and why
            logger.warning("packed attention on %s falls back to %s (slower): %s",
                           q.device.type, name, reason)
        else:
            logger.info("packed attention on %s: %s", q.device.type, name)
    q, k, v = (t.reshape(B * T, h, hd) for t in (q, k, v))  # (N, h, hd)
    return kernel(q, k, v, segments, causal, dropout_p).view(B, T, h, hd)


class KVCache:
    """Keys and values of the tokens a decoder has seen, per layer, for sampling one
    token at a time (`Transformer.decode`): each new token attends to the cache
    instead of running the whole prefix again.

    Per layer (B, capacity, h, hd) buffers, allocated on first use in the dtype
    the keys come in (bf16 under autocast); `length` tokens are filled.
    """

    def __init__(self, n_layers: int, capacity: int) -> None:
        self.layers = [LayerCache(capacity) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length


class LayerCache:
    """One layer's share of a `KVCache`."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.length = capacity, 0
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, t, h, hd); return every cached key and value (B, length, h, hd)."""
        t = k.shape[1]
        if self.length + t > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} tokens; {self.length + t} asked")
        if self.keys is None or self.values is None:
            B, _, h, hd = k.shape
            self.keys = k.new_empty(B, self.capacity, h, hd)
            self.values = v.new_empty(B, self.capacity, h, hd)
        self.keys[:, self.length: self.length + t] = k
        self.values[:, self.length: self.length + t] = v
        self.length += t
        return self.keys[:, : self.length], self.values[:, : self.length]


sdpa = cpu_attention_in_fp32(F.scaled_dot_product_attention)


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention`."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
                rotary: tuple[torch.Tensor, torch.Tensor] | None,
                segments: Segments | None = None,
                cache: LayerCache | None = None, *,
                outputs_at: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, d); `mask` (B, 1, T, T) for padded batches, `segments` for packed
        ones, or `cache` (causal decoding): x holds the T tokens after the cached ones.
        → (B, T, d), or (M, d) at the M flat token indices `outputs_at` (the output
        projection runs on those rows only)."""
        B, T, d = x.shape
        heads = lambda t: t.view(B, T, self.n_heads, self.head_dim)  # noqa: E731  (B, T, h, hd)
        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        dropout_p = self.dropout if self.training else 0.0
        if segments is not None:
            y = packed_attention(q, k, v, segments, is_causal, dropout_p)  # (B, T, h, hd)
        elif cache is not None:
            past = cache.length
            k, v = cache.extend(k, v)  # (B, past + T, h, hd)
            # the new tokens see every cached one and, among themselves, the causal triangle
            mask = None if T == 1 else torch.ones(T, past + T, dtype=torch.bool,
                                                  device=x.device).tril(diagonal=past)
            y = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                     dropout_p=dropout_p).transpose(1, 2)
        else:
            y = sdpa(  # on (B, h, T, hd) views
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                is_causal=is_causal and mask is None, dropout_p=dropout_p).transpose(1, 2)
        y = y.reshape(B, T, d)
        return self.out_proj(y if outputs_at is None else y.flatten(0, 1)[outputs_at])


class Mlp(nn.Module):
    """(…, d) → (…, d): fc1, activation (a key of `ACTIVATIONS`), fc2."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.act = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Transformer block, pre-norm (ESM-2, GPT): x + attn(norm(x)), then
    x + mlp(norm(x)); or post-norm (BERT): norm(x + attn(x)), then norm(x + mlp(x)).

    The two norms keep their names in both layouts (attn_norm belongs to the
    attention sub-layer, mlp_norm to the MLP), so checkpoints convert by name.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, eps: float, dropout: float,
                 norm: str = "pre", activation: str = "gelu") -> None:
        super().__init__()
        self.post_norm = norm == "post"
        self.attn_norm = nn.LayerNorm(d_model, eps=eps)
        self.attn = Attention(d_model, n_heads, dropout)
        self.mlp_norm = nn.LayerNorm(d_model, eps=eps)
        self.mlp = Mlp(d_model, d_ff, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool,
                rotary: tuple[torch.Tensor, torch.Tensor] | None,
                segments: Segments | None = None,
                cache: LayerCache | None = None, *,
                outputs_at: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, d) → (B, T, d); or → (M, d), the outputs at the M flat token indices
        `outputs_at` alone: every token's keys and values still enter attention, but
        the output projection, residuals and MLP run on those rows only (the last
        block of a model whose loss reads a few positions: MLM)."""
        attend = lambda h: self.attn(h, mask, is_causal, rotary, segments, cache,  # noqa: E731
                                     outputs_at=outputs_at)
        rows = (lambda t: t) if outputs_at is None else (lambda t: t.flatten(0, 1)[outputs_at])
        if self.post_norm:
            x = self.attn_norm(rows(x) + self.drop(attend(x)))
            return self.mlp_norm(x + self.drop(self.mlp(x)))
        x = rows(x) + self.drop(attend(self.attn_norm(x)))
        return x + self.drop(self.mlp(self.mlp_norm(x)))


def build_attention_mask(attention_mask: torch.Tensor, causal: bool) -> torch.Tensor | None:
    """Boolean SDPA mask (B, 1, Tq, Tk) for a padded batch, True = may attend; None
    when nothing is masked.

    Padding keys are masked; decoders add the causal triangle. Padding queries
    keep one visible key so no softmax row is empty (their outputs are ignored
    downstream). Packed batches use `Segments` instead.
    """
    B, T = attention_mask.shape
    if bool(attention_mask.all()):
        return None
    mask = attention_mask[:, None, None, :].expand(B, 1, T, T)  # (B, 1, Tq, Tk)
    if causal:
        mask = mask & torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
    eye = torch.eye(T, dtype=torch.bool, device=mask.device)
    return mask | (eye & ~attention_mask[:, None, :, None])


def pool(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
         special_ids: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, d) → (B, d). mean: over the sequence's own tokens; cls: first token."""
    if pooling == "cls":
        return hidden[:, 0]
    keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    keep = torch.where(keep.any(1, keepdim=True), keep, attention_mask.bool())
    w = keep[..., None].float()  # sums in fp32 (bf16 would round long sums)
    return ((hidden.float() * w).sum(1) / w.sum(1)).to(hidden.dtype)


def pool_documents(hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   segments: Segments, special_ids: torch.Tensor, pooling: str) -> torch.Tensor:
    """Packed (B, T, d) → (D, d), one row per document in row-major order; as `pool`
    (mean pooling sums and returns fp32)."""
    documents = torch.tensor([s for s, d in enumerate(segments.documents) if d],  # (D,) host-built
                             dtype=torch.long, device=hidden.device)
    if pooling == "cls":
        return hidden.flatten(0, 1)[segments.cu_seqlens[documents].long()]
    keep = attention_mask.bool() & ~torch.isin(input_ids, special_ids)  # (B, T)
    counts = segments.sum(keep[..., None].float())  # (S, 1)
    # a document of special tokens only averages over all of its tokens
    keep = keep | (attention_mask.bool() & (counts[segments.segment_of, 0] == 0))
    w = keep[..., None].float()  # sums in fp32: bf16 sums (CUDA's atomic adds) would round
    return (segments.sum(hidden.float() * w) / segments.sum(w).clamp(min=1))[documents]
