"""A lean forward of the ``scope-bert`` trunk (a transformers ``BertModel``) for training on CPU.

It reads the same parameters as the ``BertModel`` it is given (the HF module stays the object that
is saved, loaded and optimised; its ``state_dict`` is untouched) and computes the same function with
fewer and cheaper ops (issue 12 §4):

* with [CLS] pooling the last layer is evaluated for the [CLS] row only (the other rows of the last
  layer reach nothing the model returns, in the forward or the backward pass): the query, the
  attention output, the feed-forward block and both LayerNorms run on one row per sample instead of
  ~31, and the keys and values of the tokens are never formed: per head the scores are
  ``(W_k^T q).h_j`` and the context ``W_v (sum_j p_j h_j) + b_v sum_j p_j`` (:func:`_cls_attention`);
* the query/key/value projections are one matmul over the concatenated weights (``[3H, H]``), and
  the attention is ``baddbmm`` (scale and padding mask folded in) -> ``softmax`` -> dropout -> ``bmm``
  with one reshaping copy for q, k and v together; no per-layer mask rebuilding, no cache/head-mask
  plumbing, no module-call overhead;
* dropout draws **the same masks in the same order and shapes** as ``BertModel``'s forward does
  (embeddings; per layer: attention probabilities ``[B, heads, L, L]``, attention output
  ``[B, L, H]``, feed-forward output ``[B, L, H]``), so a fixed seed gives the same masks and leaves
  the global generator where the HF forward leaves it. Where torch's CPU ``bernoulli_`` is the
  plain per-element draw of one uniform double (checked once per process, see :func:`_uniform_masks`)
  all masks of a step come from one ``torch.rand(float64)`` call and a comparison (the identical
  masks, cheaper than a ``bernoulli_`` call per mask); otherwise every mask is drawn with ``bernoulli_``
  on a tensor of the HF shape, exactly as ``torch.nn.functional.dropout`` does on CPU.

Results equal the HF forward up to float rounding (matmul blocking, the attention scale applied
once instead of as two square roots): ``tests/test_fast_forward.py`` checks outputs and gradients in
train and eval mode, float32 and float64, and the trainer's trajectory.

The lean forward is used where it is known to give the HF forward's results: see
:func:`unsupported` (a BERT variant it does not implement) and
:meth:`cloudphys.encoders.bert.ScopeBertEncoder.use_fast_forward` (CPU, no autocast, ...). On CUDA the
HF forward's dropout masks come from other kernels (fused ``native_dropout`` and the SDPA kernels'
own Philox streams), which this module does not reproduce, so it is not used there by default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["autocast_enabled", "bert_cls_state", "bert_hidden_states", "unsupported"]


def unsupported(bert: nn.Module) -> str | None:
    """Why the lean forward does not implement ``bert`` (``None``: it does)."""
    cfg = getattr(bert, "config", None)
    if cfg is None or not hasattr(bert, "embeddings") or not hasattr(bert, "encoder"):
        return "not a transformers BertModel"
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return "decoder / cross-attention"
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position_embedding_type {cfg.position_embedding_type!r}"
    if getattr(cfg, "hidden_act", None) != "gelu":
        return f"hidden_act {getattr(cfg, 'hidden_act', None)!r}"
    if getattr(cfg, "chunk_size_feed_forward", 0):
        return "chunked feed-forward"
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return f"attention implementation {getattr(cfg, '_attn_implementation', None)!r}"
    if getattr(cfg, "output_attentions", False) or getattr(cfg, "output_hidden_states", False):
        return "attentions / hidden states of every layer requested"
    if any(getattr(m, "gradient_checkpointing", False) for m in (bert, *bert.encoder.layer)):
        return "gradient checkpointing"
    if _hooked(bert):
        return "module hooks (the lean forward calls no submodule, so they would not run)"
    return None


def autocast_enabled(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)`` (torch < 2.4: the per-device functions)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:
        return bool(torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled())


def _hooked(bert: nn.Module) -> bool:
    """Whether a forward/backward hook is registered on ``bert``, a submodule, or globally."""
    from torch.nn.modules import module as _module

    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(_module, "_global" + n, None) for n in names):
        return True
    return any(getattr(m, n, None) for m in bert.modules() for n in names)


@functools.lru_cache(maxsize=None)
def _uniform_masks(device_type: str) -> bool:
    """Whether ``bernoulli_(q)`` on this device draws, element by element in memory order, one
    uniform double ``u`` from the generator and keeps ``u < q`` -- what ``torch.rand(float64) < q``
    does. Checked on private generators (masks and the generator state after), never assumed: on
    Intel CPUs torch may use MKL's Bernoulli stream, which draws differently."""
    if device_type != "cpu":
        return False
    for n, q in ((1, 0.9), (37, 0.9), (4099, 0.73)):
        g1, g2 = torch.Generator().manual_seed(1234), torch.Generator().manual_seed(1234)
        a = torch.empty(n, dtype=torch.float32).bernoulli_(q, generator=g1)
        b = torch.rand(n, dtype=torch.float64, generator=g2) < q
        if not torch.equal(a.bool(), b) or not torch.equal(g1.get_state(), g2.get_state()):
            return False
    return True


class _Masks:
    """The dropout masks of one forward, in the HF forward's order: :meth:`noise` gives the next one
    as the noise ``keep / (1 - p)`` (``0`` or ``1 / (1 - p)``) that torch's CPU dropout multiplies
    by (``bernoulli_(1 - p)`` then ``div_(1 - p)``)."""

    def __init__(self, shapes: list[tuple[int, ...]], dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self._uniform: Iterator[Tensor] | None = None
        if shapes and _uniform_masks(device.type):
            sizes = [int(torch.Size(s).numel()) for s in shapes]
            u = torch.rand(sum(sizes), dtype=torch.float64, device=device)
            self._uniform = iter([c.view(s) for c, s in zip(u.split(sizes), shapes)])

    def noise(self, shape: tuple[int, ...], p: float, part: tuple[slice | int, ...] | None = None) -> Tensor:
        """The next mask (``shape``, drop probability ``p``) as dropout noise; ``part``: only
        ``mask[part]`` is returned (the whole mask is still drawn)."""
        keep = 1 - p
        if self._uniform is not None:
            u = next(self._uniform)
            if part is not None:
                u = u[part]
            noise = (u < keep).to(self.dtype)
        else:
            noise = torch.empty(shape, dtype=self.dtype, device=self.device).bernoulli_(keep)
            if part is not None:
                noise = noise[part]
        return noise.div_(keep)


_CLS_ROW = (slice(None), 0)  # [B, L, H] -> the [CLS] rows [B, H]
_CLS_QUERY = (slice(None), slice(None), slice(0, 1))  # [B, heads, L, L] -> the [CLS] query row [B, heads, 1, L]


def _p(module: nn.Module, p: float | None = None) -> float:
    """The drop probability a module applies now (0 in eval mode)."""
    if not module.training:
        return 0.0
    return float(module.p if p is None else p)


def _embeddings(bert: nn.Module, input_ids: Tensor) -> Tensor:
    emb = bert.embeddings
    L = input_ids.shape[1]
    words = F.embedding(input_ids, emb.word_embeddings.weight, emb.word_embeddings.padding_idx)
    # token_type_ids default to the all-zero buffer: row 0 of the token-type table at every position
    tt = emb.token_type_embeddings.weight[0]
    x = (words + tt) + emb.position_embeddings.weight[:L]
    return F.layer_norm(x, x.shape[-1:], emb.LayerNorm.weight, emb.LayerNorm.bias, emb.LayerNorm.eps)


def _mask_shapes(bert: nn.Module, B: int, L: int) -> list[tuple[int, ...]]:
    """Shapes of the masks the HF forward draws, in its order (only dropouts that are active)."""
    H = bert.config.hidden_size
    shapes: list[tuple[int, ...]] = []
    if _p(bert.embeddings.dropout):
        shapes.append((B, L, H))
    for layer in bert.encoder.layer:
        sa = layer.attention.self
        if _p(sa, sa.dropout.p):
            shapes.append((B, sa.num_attention_heads, L, L))
        if _p(layer.attention.output.dropout):
            shapes.append((B, L, H))
        if _p(layer.output.dropout):
            shapes.append((B, L, H))
    return shapes


def _cls_attention(sa: nn.Module, h: Tensor, key_mask: Tensor, masks: _Masks) -> Tensor:
    """Self-attention output ``[B, H]`` of the [CLS] query only, without the keys and values of every
    token: ``q.(W_k h_j + b_k) = (W_k^T q).h_j + q.b_k`` and ``sum_j p_j (W_v h_j + b_v) =
    W_v (sum_j p_j h_j) + b_v sum_j p_j`` per head (the same function up to rounding, O(B H^2)
    instead of O(B L H^2); the constant ``q.b_k`` is kept so ``b_k`` stays in the graph, with the
    gradient 0 up to rounding it has in the HF forward)."""
    B, L, H = h.shape
    nh, d = sa.num_attention_heads, sa.attention_head_size
    scale = getattr(sa, "scaling", d**-0.5)  # transformers 4.x divides by sqrt(d) instead
    q = F.linear(h[:, 0], sa.query.weight, sa.query.bias).view(B, nh, d)
    r = torch.bmm(q.transpose(0, 1), sa.key.weight.view(nh, d, H)).transpose(0, 1)  # [B, heads, H]
    const = (q * sa.key.bias.view(nh, d)).sum(-1, keepdim=True)  # [B, heads, 1]
    scores = torch.baddbmm(key_mask + const * scale, r, h.transpose(1, 2), alpha=scale)  # [B, heads, L]
    probs = torch.softmax(scores, dim=-1)
    p = _p(sa, sa.dropout.p)
    if p:
        probs = probs * masks.noise((B, nh, L, L), p, _CLS_QUERY).view(B, nh, L)
    pooled = torch.bmm(probs, h)  # [B, heads, H]
    ctx = torch.bmm(pooled.transpose(0, 1), sa.value.weight.view(nh, d, H).transpose(1, 2)).transpose(0, 1)
    ctx = ctx + sa.value.bias.view(nh, d) * probs.sum(-1, keepdim=True)  # [B, heads, d]
    return ctx.reshape(B, H)


def _layer(layer: nn.Module, h: Tensor, key_mask: Tensor, masks: _Masks, cls_only: bool) -> Tensor:
    """One BertLayer on ``h`` ``[B, L, H]``; ``cls_only``: only the [CLS] row, ``[B, H]``.
    ``key_mask``: the additive padding mask ``[B, 1, L]``."""
    sa = layer.attention.self
    B, L, H = h.shape
    nh, d = sa.num_attention_heads, sa.attention_head_size
    if cls_only:
        ctx = _cls_attention(sa, h, key_mask, masks)
    else:
        # q, k, v: one matmul over the concatenated weights, one copy into [3, B*heads, L, d]
        qkv = F.linear(h, torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]),
                       torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]))
        q, k, v = qkv.view(B, L, 3, nh, d).permute(2, 0, 3, 1, 4).reshape(3, B * nh, L, d).unbind(0)
        scale = getattr(sa, "scaling", d**-0.5)  # transformers 4.x divides by sqrt(d) instead
        add = key_mask.repeat_interleave(nh, dim=0)  # [B*heads, 1, L]
        scores = torch.baddbmm(add, q, k.transpose(1, 2), alpha=scale)  # [B*heads, L, L]
        probs = torch.softmax(scores, dim=-1)
        p = _p(sa, sa.dropout.p)
        if p:
            probs = probs * masks.noise((B, nh, L, L), p).view(probs.shape)
        ctx = torch.bmm(probs, v).view(B, nh, L, d).transpose(1, 2).reshape(B, L, H)
    resid = h[:, 0] if cls_only else h
    rows = _CLS_ROW if cls_only else None

    so = layer.attention.output
    a = F.linear(ctx, so.dense.weight, so.dense.bias)
    p = _p(so.dropout)
    if p:
        a = a * masks.noise((B, L, H), p, rows)
    a = F.layer_norm(a + resid, (H,), so.LayerNorm.weight, so.LayerNorm.bias, so.LayerNorm.eps)

    inter, out = layer.intermediate, layer.output
    f = F.gelu(F.linear(a, inter.dense.weight, inter.dense.bias))
    f = F.linear(f, out.dense.weight, out.dense.bias)
    p = _p(out.dropout)
    if p:
        f = f * masks.noise((B, L, H), p, rows)
    return F.layer_norm(f + a, (H,), out.LayerNorm.weight, out.LayerNorm.bias, out.LayerNorm.eps)


def _run(bert: nn.Module, input_ids: Tensor, attention_mask: Tensor | None, cls_only: bool) -> Tensor:
    B, L = input_ids.shape
    x = _embeddings(bert, input_ids)
    masks = _Masks(_mask_shapes(bert, B, L), x.dtype, x.device)
    p = _p(bert.embeddings.dropout)
    if p:
        x = x * masks.noise((B, L, x.shape[-1]), p)
    layers = list(bert.encoder.layer)
    # additive key mask [B, 1, L]: 0 for tokens, the dtype's lowest value for padding (the softmax
    # gives padding keys exactly 0, as SDPA's -inf does; every row has a real key)
    add = torch.zeros((B, 1, L), dtype=x.dtype, device=x.device)
    if attention_mask is not None:
        add.masked_fill_(attention_mask.view(B, 1, L) == 0, torch.finfo(x.dtype).min)
    for i, layer in enumerate(layers):
        x = _layer(layer, x, add, masks, cls_only=cls_only and i == len(layers) - 1)
    return x


def bert_hidden_states(bert: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """``BertModel(input_ids, attention_mask).last_hidden_state`` (``[B, L, H]``) by the lean forward."""
    return _run(bert, input_ids, attention_mask, cls_only=False)


def bert_cls_state(bert: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """``BertModel(input_ids, attention_mask).last_hidden_state[:, 0]`` (``[B, H]``): the last layer
    evaluated for the [CLS] row only (the same masks are drawn)."""
    return _run(bert, input_ids, attention_mask, cls_only=True)
