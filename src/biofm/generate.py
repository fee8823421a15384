"""Autoregressive sampling from a causal-LM model (temperature, top-k, top-p, seed).

Each new token runs through the decoder once, attending to the keys and
values cached for the tokens before it (`Transformer.decode`), instead of the
whole prefix running again for every token.
"""

from __future__ import annotations

import torch

from biofm.errors import BiofmError
from biofm.model import FoundationModel, evaluating


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and the top-p nucleus to -inf. logits (B, V)."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        # drop a token when the tokens before it already reach top_p (keep at least one)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    return logits


@torch.no_grad()
def sample(model: FoundationModel, num: int, *, max_new_tokens: int = 128,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
           batch_size: int = 64, cache: bool = True) -> list[str]:
    """Sample `num` sequences starting from <bos>; each stops at <eos> or the length limit.

    Runs in eval mode (no dropout); the model's own mode is restored afterwards.
    cache: reuse each step's keys and values (False runs the whole prefix again
    for every token: the same draws, to float rounding, and much slower).
    """
    if model.config.backbone.kind != "decoder":
        raise BiofmError("generation needs a causal-LM (decoder) model",
                         fix="pretrain with --objective clm (backbone.kind=decoder)")
    if temperature <= 0:
        raise BiofmError("temperature must be positive", fix="use e.g. --temperature 1.0")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    tok = model.tokenizer
    limit = min(max_new_tokens + 1, model.config.backbone.max_len)
    # never emit special or placeholder tokens (<cls>, <pad>, <mask>, ESM's <null_1>)
    banned = torch.tensor([i for i, t in enumerate(tok.vocab) if i != tok.eos_id and
                           (i in tok.special_ids or (t.startswith("<") and t.endswith(">")))],
                          dtype=torch.long, device=model.device)
    out: list[str] = []
    with evaluating(model):
        while len(out) < num:
            out += _sample_batch(model, min(batch_size, num - len(out)), limit, temperature,
                                 top_k, top_p, banned, generator, cache)
    return out


def _sample_batch(model: FoundationModel, n: int, limit: int, temperature: float, top_k: int,
                  top_p: float, banned: torch.Tensor, generator: torch.Generator,
                  use_cache: bool) -> list[str]:
    """`n` sequences sampled together, each up to `limit` tokens including <bos>."""
    tok, backbone = model.tokenizer, model.backbone
    ids = torch.full((n, 1), tok.bos_id, dtype=torch.long, device=model.device)
    done = torch.zeros(n, dtype=torch.bool, device=model.device)
    cache = backbone.new_cache(limit) if use_cache else None
    last = backbone.decode(ids, cache)[:, -1] if cache is not None else None  # (n, d)
    for step in range(limit - 1):
        if cache is None:
            last = backbone(ids).last_hidden_state[:, -1]
        logits = model.objective.logits(last).float() / temperature  # (n, V)
        logits[:, banned] = float("-inf")
        probs = torch.softmax(filter_logits(logits, top_k, top_p), dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad_id), nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == tok.eos_id
        if bool(done.all()) or step == limit - 2:
            break
        if cache is not None:  # finished rows keep decoding padding: their output is unused
            last = backbone.decode(nxt[:, None], cache)[:, -1]
    out = []
    for row in ids.tolist():
        body = row[1:]
        if tok.eos_id in body:
            body = body[: body.index(tok.eos_id)]
        out.append(tok.decode(body))
    return out
