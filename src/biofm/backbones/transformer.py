"""The one transformer core, as a bidirectional encoder or a causal decoder.

Layout follows ESM-2 (pre-norm blocks, rotary positions, a final LayerNorm,
optional ESM token dropout) so that `biofm.interop.esm` converts weights with a
plain name map. Config switches give BERT's layout on the same modules
(`biofm.interop.bert`): learned absolute positions, token-type embeddings, an
embedding LayerNorm, post-norm blocks and no final LayerNorm. Input: token ids
(B, T) and a padding mask; output: hidden states (B, T, d). No labels and no
loss here: objectives own those.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from biofm.backbones.layers import Block, KVCache, Rotary, Segments, build_attention_mask
from biofm.backbones.vision import sincos_positions
from biofm.config import BackboneConfig
from biofm.outputs import BackboneOutput
from biofm.registry import BACKBONES

# ESM-2 was trained with 15% masking of which 80% became <mask>; its token
# dropout rescales embeddings by the observed mask fraction relative to this.
ESM_MASK_RATIO_TRAIN = 0.15 * 0.8


class Transformer(nn.Module):
    """Embeddings → pre-norm blocks → final LayerNorm (ESM-2, GPT), or
    embeddings → embedding LayerNorm → post-norm blocks (BERT)."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.causal = config.kind == "decoder"
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model,
                                         padding_idx=config.pad_id)
        self.embed_positions = (nn.Embedding(config.max_len, config.d_model)
                                if config.position in ("learned", "sincos") else None)
        self.embed_values = _value_embedding(config)
        self.embed_token_types = (nn.Embedding(config.type_vocab_size, config.d_model)
                                  if config.type_vocab_size else None)
        self.embed_norm = (nn.LayerNorm(config.d_model, eps=config.norm_eps)
                           if config.embed_norm else None)
        self.embed_drop = nn.Dropout(config.dropout)
        self.rotary = Rotary(config.head_dim, config.rope_theta) if config.position == "rope" else None
        self.layers = nn.ModuleList(
            Block(config.d_model, config.n_heads, config.d_ff, config.norm_eps, config.dropout,
                  config.norm, config.activation)
            for _ in range(config.n_layers))
        # post-norm blocks end in a LayerNorm already
        self.final_norm = (nn.LayerNorm(config.d_model, eps=config.norm_eps)
                           if config.norm == "pre" else nn.Identity())
        self.gradient_checkpointing = config.gradient_checkpointing
        self.apply(_init_weights)
        if config.position == "sincos":  # a fixed table over the ViT's patch grid (MAE)
            assert self.embed_positions is not None
            with torch.no_grad():
                self.embed_positions.weight.copy_(sincos_positions(config.grid, config.d_model))
            self.embed_positions.weight.requires_grad_(False)

    @property
    def d_model(self) -> int:
        return self.config.d_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                document_ids: torch.Tensor | None = None, *,
                values: torch.Tensor | None = None, segments: Segments | None = None,
                positions: torch.Tensor | None = None,
                output_hidden_states: bool = False,
                outputs_at: torch.Tensor | None = None) -> BackboneOutput:
        """input_ids, attention_mask (B, T). document_ids (B, T) marks packed rows:
        each document a contiguous run, -1 on padding; attention stays within a
        document and positions restart at its start. segments: the same layout
        built on the CPU beforehand (`Segments.from_document_ids(...).to(device)`),
        so the forward reads nothing back from the device. values: the second
        input when `config.values` is not "none" ((B, T) bins or (B, T, P)
        patches), embedded and added to the token embedding. positions (B, T): each
        token's position when it is not its index (MAE runs the visible patches of
        a grid; each must be < max_len); padded batches only. outputs_at (M,): flat
        indices into the B * T tokens of the only outputs wanted (the positions an MLM
        loss reads): the last block computes its output there alone and
        last_hidden_state is (M, d), ~10% less work for an ESM-2 MLM step."""
        if outputs_at is not None and output_hidden_states:
            raise ValueError("outputs_at gives the last layer's states at some positions; "
                             "output_hidden_states needs every position")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        if segments is None and document_ids is not None:
            segments = Segments.from_document_ids(document_ids)
        if positions is not None:
            if segments is not None:
                raise ValueError("explicit positions are for padded batches, not packed ones")
            longest = input_ids.shape[1]
        elif segments is None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            positions = positions.expand_as(input_ids)  # (B, T)
            longest = input_ids.shape[1]
        else:  # packed rows: attention within each document's run, positions restart
            positions = segments.positions() * attention_mask  # (B, T), padding at 0
            longest = segments.longest_document
        if longest > self.config.max_len:  # per document when packed
            raise ValueError(f"input has {longest} tokens, the backbone's max_len is "
                             f"{self.config.max_len}")

        x = self._embed(input_ids, attention_mask, positions, segments, values)
        mask = build_attention_mask(attention_mask, self.causal) if segments is None else None
        rotary = self.rotary(positions) if self.rotary is not None else None
        hidden = [x] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            at = outputs_at if i == len(self.layers) - 1 else None
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, mask, self.causal, rotary, segments,
                               outputs_at=at, use_reentrant=False)
            else:
                x = layer(x, mask, self.causal, rotary, segments, outputs_at=at)
            if hidden is not None:
                hidden.append(x)
        if self.config.final_norm == "tokens":  # "pooled": applied after pooling (ViT fc_norm)
            x = self.final_norm(x)
        if hidden is not None:
            hidden[-1] = x  # as in transformers: the last entry is after the final norm
        return BackboneOutput(last_hidden_state=x,
                              hidden_states=tuple(hidden) if hidden is not None else None,
                              outputs_at=outputs_at)

    def _embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               positions: torch.Tensor, segments: Segments | None,
               values: torch.Tensor | None) -> torch.Tensor:
        """Token (+ value, position, type) embeddings (B, T, d), zero on padding."""
        x = self.embed_tokens(input_ids)  # (B, T, d)
        if self.embed_values is not None:
            if values is None:
                raise ValueError(f"this backbone takes values={self.config.values!r} beside "
                                 "the token ids; the batch has none")
            if values.is_floating_point():  # patches: into the projection's dtype
                values = values.to(self.embed_values.weight.dtype)
            x = x + self.embed_values(values).to(x.dtype)
        if self.config.token_dropout:
            x = self._esm_token_dropout(x, input_ids, attention_mask, segments)
        if self.embed_positions is not None:
            x = x + self.embed_positions(positions)
        if self.embed_token_types is not None:  # every token is of type 0 (one segment)
            x = x + self.embed_token_types.weight[0]
        if self.embed_norm is not None:
            x = self.embed_drop(self.embed_norm(x))
        x = x * attention_mask[..., None].to(x.dtype)
        return x

    def new_cache(self, capacity: int) -> KVCache:
        """An empty key/value cache for `decode`, room for `capacity` tokens per row."""
        return KVCache(len(self.layers), capacity)

    def decode(self, input_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Causal decoding: input_ids (B, t) continue the `cache.length` tokens the
        cache holds (no padding); returns their hidden states (B, t, d), as the last
        t positions of a forward over the whole sequence (to float rounding).

        ESM token dropout, when on, rescales by the new tokens' <mask> share
        (samplers never emit <mask>, so it is the constant a full forward uses)."""
        if not self.causal:
            raise ValueError("decode needs a decoder (kind='decoder')")
        B, t = input_ids.shape
        past = cache.length
        if past + t > self.config.max_len:
            raise ValueError(f"input has {past + t} tokens, the backbone's max_len is "
                             f"{self.config.max_len}")
        positions = torch.arange(past, past + t, device=input_ids.device).expand(B, t)
        attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        x = self._embed(input_ids, attention_mask, positions, None, None)
        rotary = self.rotary(positions) if self.rotary is not None else None
        for layer, layer_cache in zip(self.layers, cache.layers):
            x = layer(x, None, True, rotary, None, layer_cache)
        return self.final_norm(x) if self.config.final_norm == "tokens" else x

    def _esm_token_dropout(self, x: torch.Tensor, input_ids: torch.Tensor,
                           attention_mask: torch.Tensor,
                           segments: Segments | None) -> torch.Tensor:
        is_mask = input_ids == self.config.mask_id  # (B, T)
        x = x.masked_fill(is_mask[..., None], 0.0)
        if segments is None:  # observed mask fraction per sequence (B, 1, 1)
            observed = is_mask.sum(-1).float() / attention_mask.sum(-1).clamp(min=1)
            observed = observed[:, None, None]
        else:  # per packed document (B, T, 1)
            per_segment = segments.sum(is_mask[..., None].float()) / segments.sum(
                attention_mask[..., None].float()).clamp(min=1)  # (S, 1)
            observed = per_segment[segments.segment_of]
        return (x * (1 - ESM_MASK_RATIO_TRAIN) / (1 - observed)).to(x.dtype)


def _value_embedding(config: BackboneConfig) -> nn.Module | None:
    """The embedding of `Batch.values`: a table of bins or a patch projection."""
    if config.values == "bins":
        return nn.Embedding(config.value_size, config.d_model)
    if config.values == "patches":
        return nn.Linear(config.value_size, config.d_model)
    return None


def _init_weights(module: nn.Module) -> None:
    """BERT/ESM initialisation: N(0, 0.02) weights, zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@BACKBONES.register("encoder")
def encoder(config: BackboneConfig) -> Transformer:
    """Bidirectional encoder (ESM-2 / BERT / ChemBERTa style)."""
    return Transformer(config.replace(kind="encoder"))


@BACKBONES.register("decoder")
def decoder(config: BackboneConfig) -> Transformer:
    """Causal decoder (MolGPT / ProtGPT2 style)."""
    return Transformer(config.replace(kind="decoder"))


def build_backbone(config: BackboneConfig) -> Transformer:
    return BACKBONES.get(config.kind)(config)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Unique parameters (tied weights counted once)."""
    seen = {id(p): p for p in module.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in seen.values())
