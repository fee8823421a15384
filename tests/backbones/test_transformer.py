"""The shared suite every registered backbone × objective pair runs."""

import contextlib
import logging
import typing

import numpy as np
import pytest
import torch

from biofm.backbones import count_parameters, layers
from biofm.backbones.layers import build_attention_mask
from biofm.backbones.vision import ImagePatchTokenizer
from biofm.config import BackboneConfig
from biofm.data.collate import ValuedSequence, pack_collate, pack_rows, pad_collate
from biofm.model import FoundationModel
from biofm.objectives import Objective
from biofm.outputs import Batch
from biofm.registry import BACKBONES, OBJECTIVES
from tests.helpers import random_proteins, tiny_model, tiny_vit_config

# every registered objective on the backbone kind it needs: a new one is covered on registration
PAIRS = [(b, o) for b in BACKBONES.names() for o in OBJECTIVES.names()
         if OBJECTIVES.get(o).backbone_kind == b]

# The second input an objective reads (its `values`, a BackboneConfig.values kind):
# the backbone's value_size and random values per sequence of n tokens.
BINS, PATCH_LEN = 10, 4  # bins: the last one is the mask bin; patches: raw steps per patch
VALUE_INPUTS = {
    "none": ({}, None),
    "bins": ({"values": "bins", "value_size": BINS},
             lambda rng, n: rng.integers(0, BINS - 1, n)),
    # raw patches (NaN = missing); the objective feeds the backbone [normalised, visible]
    "patches": ({"values": "patches", "value_size": 2 * PATCH_LEN},
                lambda rng, n: np.where(rng.random((n, PATCH_LEN)) < 0.1, np.nan,
                                        rng.gamma(2.0, 10.0, (n, PATCH_LEN))).astype(np.float32)),
}


def test_every_value_kind_and_backbone_is_covered():
    kinds = typing.get_args(BackboneConfig.model_fields["values"].annotation)
    assert set(VALUE_INPUTS) == set(kinds)
    assert {b for b, _ in PAIRS} == set(BACKBONES.names())
    assert {o for _, o in PAIRS} == set(OBJECTIVES.names())


def _model(kind: str, objective: str) -> FoundationModel:
    if OBJECTIVES.get(objective).images:  # a ViT on 16 x 16 one-channel images
        config = tiny_vit_config().replace(objective={"name": objective})
        return FoundationModel(config, ImagePatchTokenizer.for_backbone(config.backbone))
    return tiny_model(kind, objective, **VALUE_INPUTS[OBJECTIVES.get(objective).values][0])


def _batch(model: FoundationModel, n: int = 3, seed: int = 0) -> Batch:
    """n random proteins as ids, with the values the objective reads, masked / labelled."""
    if model.objective.images:
        gen = torch.Generator().manual_seed(seed)
        images = torch.randn(n, 1, 16, 16, generator=gen)
        return model.objective.prepare(model.tokenizer.batch(images), gen)
    make = VALUE_INPUTS[model.objective.values][1]
    seqs = model.encode(random_proteins(n, seed=seed))
    if make is not None:
        rng = np.random.default_rng(seed)
        seqs = [ValuedSequence(np.asarray(s), make(rng, len(s))) for s in seqs]
    batch = pad_collate(seqs, model.tokenizer.pad_id)
    return model.objective.prepare(batch, torch.Generator().manual_seed(seed))


def _tied(model: FoundationModel) -> set[str]:
    """Objective parameters that share the token embedding's storage."""
    ptr = model.backbone.embed_tokens.weight.data_ptr()
    return {n for n, p in model.objective.named_parameters() if p.data_ptr() == ptr}


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_shapes_backward_and_dtype(kind, objective):
    model = _model(kind, objective)
    batch = _batch(model)
    out = model(batch)
    B, T = batch.input_ids.shape
    d = model.config.backbone.d_model
    per_position = model.objective.logits(torch.zeros(1, 1, d)).shape[2:]  # e.g. (V,), (P, Q)
    # one row of logits per position (B, T, ...) or per predicted token (N, ...); image
    # objectives: one per patch of the image (B, N, ...), whichever patches the encoder saw
    n_patches = getattr(model.tokenizer, "n_patches", T)
    assert out.logits.shape in ((B, T, *per_position), (out.num_predicted, *per_position),
                                (B, n_patches, *per_position))
    assert out.num_predicted > 0
    assert out.loss.dtype == torch.float32 and out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_save_load_round_trip(kind, objective, tmp_path):
    model = _model(kind, objective).eval()
    model.save(tmp_path / "m")
    loaded = FoundationModel.load(tmp_path / "m").eval()
    assert loaded.config == model.config
    batch = _batch(model, seed=1)
    with torch.no_grad():
        a, b = model(batch), loaded(batch)
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=0)
    torch.testing.assert_close(b.loss, a.loss, rtol=0, atol=0)
    # an objective that ties its output projection to the embedding is still tied after loading
    ties = type(model.objective).tie_weights is not Objective.tie_weights
    assert _tied(loaded) == _tied(model) and bool(_tied(model)) == ties


@pytest.mark.parametrize("kind,objective", PAIRS)
def test_deterministic_given_seed(kind, objective):
    torch.manual_seed(0)
    a = _model(kind, objective)
    torch.manual_seed(0)
    b = _model(kind, objective)
    out_a, out_b = a(_batch(a, seed=2)), b(_batch(b, seed=2))  # masking from the generator
    torch.testing.assert_close(out_b.logits, out_a.logits, rtol=0, atol=0)
    torch.testing.assert_close(out_b.loss, out_a.loss, rtol=0, atol=0)
    if a.objective.values == "none":
        seqs = random_proteins(2)
        torch.testing.assert_close(a.embed(seqs), b.embed(seqs), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
@pytest.mark.parametrize("position", ["rope", "learned"])
def test_padding_does_not_change_outputs(kind, position):
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm", position=position).eval()
    seqs = random_proteins(3, seed=2)
    together = model.hidden_states(seqs).last_hidden_state
    for i, s in enumerate(seqs):
        alone = model.hidden_states([s]).last_hidden_state[0]
        torch.testing.assert_close(together[i, : alone.shape[0]], alone, atol=1e-5, rtol=1e-5)


def _packed(model: FoundationModel, seqs: list[list[int]], row_tokens: int):
    """`seqs` packed, and each sequence's (row, start) in the packed batch."""
    batch = pack_collate(seqs, model.tokenizer.pad_id, row_tokens)
    where, order = {}, [i for row in pack_rows([len(s) for s in seqs], row_tokens) for i in row]
    for i, (r, start) in zip(order, _document_starts(batch.document_ids)):
        where[i] = (r, start)
    return batch, where


def _document_starts(document_ids: torch.Tensor) -> list[tuple[int, int]]:
    starts = []
    for r, row in enumerate(document_ids.tolist()):
        starts += [(r, t) for t, d in enumerate(row) if d >= 0 and (t == 0 or row[t - 1] != d)]
    return starts


def assert_packed_matches_alone(model: FoundationModel, seqs: list[list[int]],
                                row_tokens: int) -> None:
    """Each document of a packed batch gets the hidden states it gets run alone."""
    batch, where = _packed(model, seqs, row_tokens)
    with torch.no_grad():
        out = model.backbone(batch.input_ids, batch.attention_mask,
                             batch.document_ids).last_hidden_state
        for i, s in enumerate(seqs):
            alone = model.backbone(torch.tensor([s])).last_hidden_state[0]
            r, start = where[i]
            torch.testing.assert_close(out[r, start: start + len(s)], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
@pytest.mark.parametrize("position", ["rope", "learned"])
@pytest.mark.parametrize("row_tokens", [64, 1000])  # several padded rows; one long row
def test_packed_documents_match_separate_runs(kind, position, row_tokens):
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm", position=position,
                       token_dropout=kind == "encoder").eval()
    seqs = model.encode(random_proteins(7, seed=3))
    seqs[1][3:6] = [model.tokenizer.mask_id] * 3  # token dropout scales per document
    assert_packed_matches_alone(model, seqs, row_tokens)


@pytest.mark.parametrize("kind,checkpointing", [("encoder", False), ("decoder", False),
                                                 ("encoder", True)])
def test_packed_gradients_match_padded_gradients(kind, checkpointing):
    """The same loss over the same tokens gives the same parameter gradients."""
    model = tiny_model(kind, "mlm" if kind == "encoder" else "clm", token_dropout=True,
                       gradient_checkpointing=checkpointing)
    model.train()
    seqs = model.encode(random_proteins(6, seed=7))
    packed, where = _packed(model, seqs, 64)
    padded = pad_collate(seqs, model.tokenizer.pad_id)
    weights = torch.randn(len(seqs), padded.input_ids.shape[1], model.config.backbone.d_model,
                          generator=torch.Generator().manual_seed(0))

    def grads(batch: Batch, per_token) -> dict[str, torch.Tensor]:
        model.zero_grad()
        hidden = model.backbone(batch.input_ids, batch.attention_mask,
                                batch.document_ids).last_hidden_state
        sum(per_token(hidden, i).mul(weights[i, : len(s)]).sum()
            for i, s in enumerate(seqs)).backward()
        return {n: p.grad.clone() for n, p in model.backbone.named_parameters()}

    a = grads(padded, lambda h, i: h[i, : len(seqs[i])])
    b = grads(packed, lambda h, i: h[where[i][0], where[i][1]: where[i][1] + len(seqs[i])])
    for name in a:  # fp32 summation order differs: compare relative to the largest entry
        scale = a[name].abs().max().clamp(min=1e-12)
        torch.testing.assert_close(b[name] / scale, a[name] / scale, atol=1e-5, rtol=0,
                                   msg=name)


def test_packed_attention_kernels_agree_and_the_choice_is_logged(caplog, monkeypatch):
    """The varlen path (CUDA only) runs here on a CPU reference kernel with the same
    (N, h, hd) + cu_seqlens contract, so its plumbing is tested without a GPU."""
    def reference_varlen(q, k, v, segments, causal, dropout_p):  # per segment, via cu_seqlens
        cu = segments.cu_seqlens.tolist()
        return torch.cat([torch.nn.functional.scaled_dot_product_attention(
            q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1),
            is_causal=causal).transpose(0, 1) for a, b in zip(cu[:-1], cu[1:])])

    model = tiny_model("decoder", "clm").eval()
    batch, _ = _packed(model, model.encode(random_proteins(5, seed=8)), 64)
    run = lambda: model.backbone(batch.input_ids, batch.attention_mask,  # noqa: E731
                                 batch.document_ids).last_hidden_state
    with caplog.at_level(logging.INFO, logger="biofm"), torch.no_grad():
        layers._logged.clear()
        expected = run()
        monkeypatch.setattr(layers, "choose_kernel", lambda q, p: ("reference", reference_varlen))
        torch.testing.assert_close(run(), expected, atol=1e-5, rtol=1e-5)
    assert layers.choose_kernel(torch.zeros(4, 2, 16), 0.0)[0] in caplog.text  # the CPU's own
    assert "reference" in caplog.text


def test_kernel_choice_on_cpu_is_per_segment_sdpa():
    q = torch.zeros(4, 2, 8)
    assert layers.choose_kernel(q, 0.0)[1] is layers.sdpa_per_segment
    assert layers.choose_kernel(q.bfloat16(), 0.0)[1] is layers.sdpa_per_segment


def test_segments_of_a_packed_batch():
    docs = torch.tensor([[0, 0, 0, 1, 1, -1], [0, 0, 0, 0, 0, 0]])
    seg = layers.Segments.from_document_ids(docs)
    assert seg.lengths == (3, 2, 1, 6) and seg.longest == 6 and seg.longest_document == 6
    assert seg.documents == (True, True, False, True)
    assert seg.cu_seqlens.tolist() == [0, 3, 5, 6, 12]
    assert seg.positions().tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 4, 5]]
    assert seg.sum(torch.ones(2, 6, 1)).flatten().tolist() == [3, 2, 1, 6]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pool_documents_matches_pool(pooling):
    model = tiny_model().eval()
    tok = model.tokenizer
    seqs = model.encode(random_proteins(5, seed=9)) + [[tok.bos_id, tok.eos_id]]  # special only
    special = torch.tensor(tok.special_ids)
    padded = pad_collate(seqs, model.tokenizer.pad_id)
    packed, where = _packed(model, seqs, 64)
    with torch.no_grad():
        h = model.backbone(padded.input_ids, padded.attention_mask).last_hidden_state
        expected = layers.pool(h, padded.input_ids, padded.attention_mask, special, pooling)
        h = model.backbone(packed.input_ids, packed.attention_mask,
                           packed.document_ids).last_hidden_state
        seg = layers.Segments.from_document_ids(packed.document_ids)
        got = layers.pool_documents(h, packed.input_ids, packed.attention_mask, seg,
                                    special, pooling)
    order = sorted(range(len(seqs)), key=lambda i: where[i])  # documents in row-major order
    torch.testing.assert_close(got, expected[order], atol=1e-5, rtol=1e-5)


def test_causal_decoder_does_not_see_the_future():
    model = tiny_model("decoder", "clm").eval()
    ids = torch.tensor([model.encode(["ACDEFGHIK"])[0]])
    with torch.no_grad():
        full = model.backbone(ids).last_hidden_state
        changed = ids.clone()
        changed[0, -2] = 5
        other = model.backbone(changed).last_hidden_state
    torch.testing.assert_close(full[0, :-2], other[0, :-2])
    assert not torch.allclose(full[0, -2], other[0, -2])


def test_mask_keeps_one_key_for_padding_queries():
    mask = build_attention_mask(torch.tensor([[True, True, False]]), causal=False)
    assert mask.shape == (1, 1, 3, 3)
    assert mask[0, 0].any(-1).all()
    assert not mask[0, 0, 0, 2]


def test_parameter_count_of_esm2_8m_shape():
    cfg = BackboneConfig(size="esm2-8m", vocab_size=33, max_len=1026)
    from biofm.backbones import build_backbone
    # ESM-2 8M has 7.5M parameters in its backbone (embeddings + 6 layers + final norm)
    assert 7.4e6 < count_parameters(build_backbone(cfg)) < 7.6e6


def test_too_long_input_is_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_len"):
        model.backbone(torch.zeros(1, 65, dtype=torch.long))


def test_compiled_blocks_do_not_recompile_for_each_packed_layout():
    """Packed attention runs outside the compiled graph, so new document lengths
    cost no recompilation once shapes are dynamic (the trainer's compile switch)."""
    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    torch.compiler.reset()
    model = tiny_model().eval()
    for block in model.backbone.layers:
        block.compile(backend=counting_backend)
    with torch.no_grad():
        for n in range(3, 8):
            if n == 5:  # after a static and a dynamic compile
                settled = len(compiles)
            batch = pack_collate(model.encode(random_proteins(n, seed=n)), 1, 1000)
            model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids)
    torch.compiler.reset()
    assert len(compiles) == settled


@pytest.mark.parametrize("values, shape, dtype", [("bins", (2, 5), torch.long),
                                                  ("patches", (2, 5, 4), torch.float32)])
def test_values_are_embedded_beside_the_ids(values, shape, dtype):
    config = BackboneConfig(size="tiny", vocab_size=8, max_len=16, values=values, value_size=4)
    backbone = BACKBONES.get("encoder")(config)
    ids = torch.ones(2, 5, dtype=torch.long)
    first = torch.randint(0, 4, shape).to(dtype)
    second = first.clone()
    second[1] = (second[1] + 1) % 4
    out1 = backbone(ids, values=first).last_hidden_state
    out2 = backbone(ids, values=second).last_hidden_state
    torch.testing.assert_close(out1[0], out2[0])  # rows are independent
    assert not torch.allclose(out1[1], out2[1])  # the values reach the output
    with pytest.raises(ValueError, match="values='.*' beside the token ids"):
        backbone(ids)
    with pytest.raises(ValueError, match="needs value_size"):
        BackboneConfig(size="tiny", values=values)


# -- BERT layout: post-norm blocks, embedding LayerNorm, token types ----------------

BERT_LAYOUT = dict(position="learned", norm="post", embed_norm=True, type_vocab_size=2)


def _bert_like(**more) -> FoundationModel:
    model = tiny_model("encoder", "mlm", **BERT_LAYOUT, **more).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial norms and token types (init leaves them at 1, 0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def test_post_norm_layout_has_bert_modules_and_no_final_norm():
    model = _bert_like()
    names = set(model.backbone.state_dict())
    assert {"embed_norm.weight", "embed_token_types.weight", "embed_positions.weight"} <= names
    assert not any(n.startswith("final_norm") for n in names)
    pre = tiny_model("encoder", "mlm")
    assert "final_norm.weight" in pre.backbone.state_dict()
    assert not any(n.startswith(("embed_norm", "embed_token_types"))
                   for n in pre.backbone.state_dict())


def test_post_norm_block_normalises_after_the_residual():
    model = _bert_like()
    block = model.backbone.layers[0]
    x = torch.randn(2, 5, model.config.backbone.d_model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = block.attn_norm(x + block.attn(x, None, False, None))
        expected = block.mlp_norm(h + block.mlp(h))
        torch.testing.assert_close(block(x, None, False, None), expected)
        # no final LayerNorm: the output is the last block's, normalised by its mlp_norm
        norm = model.backbone.layers[-1].mlp_norm
        norm.weight.fill_(1.0), norm.bias.zero_()
        out = model.backbone(torch.tensor(model.encode(["MKTAYIAK"]))).last_hidden_state
        torch.testing.assert_close(out.mean(-1), torch.zeros(out.shape[:2]), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(out.shape[:2]),
                                   atol=1e-3, rtol=0)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_post_norm_padding_does_not_change_outputs(activation):
    model = _bert_like(activation=activation)
    seqs = random_proteins(3, seed=2)
    together = model.hidden_states(seqs).last_hidden_state
    for i, s in enumerate(seqs):
        alone = model.hidden_states([s]).last_hidden_state[0]
        torch.testing.assert_close(together[i, : alone.shape[0]], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("row_tokens", [64, 1000])
def test_post_norm_packed_documents_match_separate_runs(row_tokens):
    model = _bert_like()
    seqs = model.encode(random_proteins(7, seed=3))
    assert_packed_matches_alone(model, seqs, row_tokens)
    padded = model.embed(random_proteins(5, seed=4), packing=False)
    packed = model.embed(random_proteins(5, seed=4), packing=True)
    torch.testing.assert_close(torch.from_numpy(packed), torch.from_numpy(padded),
                               atol=1e-5, rtol=0)


def test_post_norm_save_load_round_trip_and_backward(tmp_path):
    model = _bert_like(activation="relu")
    model.save(tmp_path / "m")
    loaded = FoundationModel.load(tmp_path / "m").eval()
    assert loaded.config.backbone.norm == "post" and loaded.config.backbone.activation == "relu"
    seqs = random_proteins(2, seed=1)
    torch.testing.assert_close(loaded.hidden_states(seqs).last_hidden_state,
                               model.hidden_states(seqs).last_hidden_state, atol=0, rtol=0)
    batch = pad_collate(model.encode(seqs), model.tokenizer.pad_id)
    batch = model.objective.prepare(batch, torch.Generator().manual_seed(0))
    model.train()(batch).loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)


def test_odd_head_width_is_only_refused_for_rope():
    learned = BackboneConfig(size=None, d_model=36, n_layers=1, n_heads=4, d_ff=8,
                             position="learned", norm="post")
    assert learned.head_dim == 9
    with pytest.raises(ValueError, match="RoPE rotates pairs"):
        BackboneConfig(size=None, d_model=36, n_layers=1, n_heads=4, d_ff=8, position="rope")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        BackboneConfig(size=None, d_model=30, n_layers=1, n_heads=4, d_ff=8, position="learned")


def test_segments_built_on_the_cpu_drive_the_forward_without_document_ids():
    """`segments=` built beforehand (as a collator does) gives the same outputs as
    deriving them from document_ids inside the forward."""
    model = tiny_model().eval()
    batch, _ = _packed(model, model.encode(random_proteins(6, seed=1)), 64)
    segments = layers.Segments.from_document_ids(batch.document_ids)
    with torch.no_grad():
        a = model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids)
        b = model.backbone(batch.input_ids, batch.attention_mask, segments=segments.to("cpu"))
    torch.testing.assert_close(b.last_hidden_state, a.last_hidden_state, rtol=0, atol=0)


def test_padding_runs_do_not_count_against_the_context():
    """A packed row padded far beyond max_len is fine: only documents are limited."""
    model = tiny_model().eval()  # max_len 64
    batch = pack_collate([[0, 5, 6, 2], [0] + [5] * 62 + [2]], 1, 200)
    wide = batch.with_(**{f: torch.nn.functional.pad(getattr(batch, f), (0, 100), value=v)
                          for f, v in (("input_ids", 1), ("attention_mask", False),
                                       ("document_ids", -1))})
    model.backbone(wide.input_ids, wide.attention_mask, wide.document_ids)
    too_long = pack_collate([[0] + [5] * 70 + [2]], 1, 200)
    with pytest.raises(ValueError, match="72 tokens"):
        model.backbone(too_long.input_ids, too_long.attention_mask, too_long.document_ids)


class _NoValueReads(torch.overrides.TorchFunctionMode):
    READS = {torch.Tensor.tolist, torch.Tensor.item, torch.Tensor.__bool__,
             torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            raise AssertionError(f"host read: {func.__name__}")
        return func(*args, **(kwargs or {}))


class _NoDataDependentOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        if func in (aten._local_scalar_dense.default, aten.nonzero.default,
                    aten.masked_select.default):
            raise AssertionError(f"host read: {func}")
        if func in (aten.index.Tensor, aten.index_put_.default, aten.index_put.default):
            indices = args[1] if len(args) > 1 else []
            if any(t is not None and t.dtype == torch.bool for t in indices):
                raise AssertionError(f"host read: boolean-mask indexing ({func})")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def no_host_reads():
    """Fails on what makes a GPU wait: reading a value back (item, int, bool,
    tolist), nonzero, and boolean-mask indexing (its size depends on the data)."""
    with _NoValueReads(), _NoDataDependentOps():
        yield


def test_a_packed_forward_and_backward_read_nothing_back_given_cpu_segments():
    model = tiny_model(token_dropout=True)
    batch, _ = _packed(model, model.encode(random_proteins(6, seed=2)), 64)
    segments = layers.Segments.from_document_ids(batch.document_ids)  # on the CPU, beforehand
    with no_host_reads():
        hidden = model.backbone(batch.input_ids, batch.attention_mask, segments=segments)
        hidden.last_hidden_state.square().mean().backward()
    with pytest.raises(AssertionError, match="host read"), no_host_reads():
        model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids)


@pytest.mark.parametrize("layout", ["esm", "bert"])
@pytest.mark.parametrize("packed", [False, True])
def test_an_mlm_step_computes_the_last_block_at_the_masked_positions_only(layout, packed):
    """`outputs_at`: the last block's output at the masked tokens alone gives the loss
    and every gradient of the full forward (every token's keys and values still enter
    its attention); gradient checkpointing takes the same path."""
    torch.manual_seed(0)
    model = tiny_model("encoder", "mlm", **(BERT_LAYOUT if layout == "bert" else {}))
    seqs = model.encode(random_proteins(6, seed=5))
    batch = _packed(model, seqs, 64)[0] if packed else pad_collate(seqs, model.tokenizer.pad_id)
    batch = model.objective.prepare(batch, torch.Generator().manual_seed(1))
    at = model.objective.output_positions(batch)
    assert at is not None and 0 < len(at) < batch.input_ids.numel()

    def step(full: bool, checkpointing: bool = False):
        model.zero_grad()
        model.backbone.gradient_checkpointing = checkpointing
        if full:  # the whole last layer, then the masked rows
            hidden = model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids)
            out = model.objective(hidden, batch)
        else:
            out = model(batch)
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                   if p.grad is not None}

    (loss, grads), (full_loss, full_grads) = step(False), step(True)
    torch.testing.assert_close(loss, full_loss, atol=1e-6, rtol=1e-6)
    assert grads.keys() == full_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], full_grads[name], atol=1e-6, rtol=1e-5, msg=name)
    model.train()
    torch.testing.assert_close(step(False, checkpointing=True)[0], full_loss, atol=1e-6, rtol=1e-6)
    hidden = model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids,
                            outputs_at=at)
    whole = model.backbone(batch.input_ids, batch.attention_mask, batch.document_ids)
    assert hidden.last_hidden_state.shape == (len(at), model.backbone.d_model)
    torch.testing.assert_close(hidden.last_hidden_state,
                               whole.last_hidden_state.flatten(0, 1)[at], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="output_hidden_states needs every position"):
        model.backbone(batch.input_ids, outputs_at=at, output_hidden_states=True)
