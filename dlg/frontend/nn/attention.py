"""MultiheadAttention with torch.nn's parameters (in_proj_weight/in_proj_bias packing the query,
key and value projections, or q/k/v_proj_weight where kdim or vdim differ; out_proj; bias_k and
bias_v with add_bias_kv), options and masks, written over dlg's tensor ops."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.nn.layers import NonDynamicallyQuantizableLinear
from dlg.frontend.nn.module import Module, Parameter, init_parameter
from dlg.frontend.tensor import Tensor, call


class MultiheadAttention(Module):
    """softmax(q k^T / sqrt(head_dim) + masks) v per head, then out_proj. Inputs are
    [L, N, E] ([N, L, E] with batch_first) or unbatched [L, E]; returns (output, weights),
    the weights averaged over heads unless average_attn_weights=False, None without
    need_weights. Boolean masks mark the positions that may NOT be attended (as torch);
    float masks are added to the scores."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False):
        super().__init__()
        if embed_dim % num_heads:
            raise DlgValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads "
                                f"({num_heads})", engine.caller_span())
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        if self._qkv_same_embed_dim:
            self.in_proj_weight = init_parameter("xavier_uniform", (3 * embed_dim, embed_dim))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:  # keys and values of other widths (cross-attention): one weight each, as torch
            self.q_proj_weight = init_parameter("xavier_uniform", (embed_dim, embed_dim))
            self.k_proj_weight = init_parameter("xavier_uniform", (embed_dim, self.kdim))
            self.v_proj_weight = init_parameter("xavier_uniform", (embed_dim, self.vdim))
            self.in_proj_weight = None
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, np.float32)) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.numpy_view()[:] = 0
        if add_bias_kv:  # a learned key and value appended to every sequence
            self.bias_k = init_parameter("xavier_normal", (1, 1, embed_dim))
            self.bias_v = init_parameter("xavier_normal", (1, 1, embed_dim))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple[Any, Any]:
        if is_causal and attn_mask is None:
            raise DlgValueError("MultiheadAttention: is_causal is a hint that attn_mask is "
                                "causal; give the attn_mask", engine.caller_span())
        batched = query.ndim == 3
        q, k, v = (self._batch_first(t, batched) for t in (query, key, value))
        n, length, e = q.shape
        if e != self.embed_dim:
            raise DlgShapeError(f"MultiheadAttention: query's last axis is {e}, expected "
                                f"embed_dim {self.embed_dim}", engine.caller_span())
        q, k, v = (self._project(t, i) for i, t in enumerate((q, k, v)))
        extra = 0  # key positions appended to every sequence, attended whatever the masks say
        if self.bias_k is not None:
            k = call("cat", [k, self.bias_k.expand(n, 1, e)], 1)
            v = call("cat", [v, self.bias_v.expand(n, 1, e)], 1)
            extra += 1
        q, k, v = (self._heads(t) for t in (q, k, v))
        if self.add_zero_attn:
            zeros = call("zeros", (n, self.num_heads, 1, self.head_dim), dtype=k.dtype)
            k, v = call("cat", [k, zeros], 2), call("cat", [v, zeros], 2)
            extra += 1
        scores = (q * (1 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)  # [N, H, L, S]
        if key_padding_mask is not None:
            mask = _padded(_tensor(key_padding_mask), extra)
            scores = _masked(scores, mask.reshape(n, 1, 1, mask.shape[-1]))
        if attn_mask is not None:
            mask = _padded(_tensor(attn_mask), extra)
            scores = _masked(scores, mask if mask.ndim == 2 else mask.reshape(*scores.shape))
        weights = F.dropout(call("softmax", scores, -1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(n, length, e)
        out = self.out_proj(out)
        out = out.squeeze(0) if not batched else out if self.batch_first else out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights if batched else weights.squeeze(0)

    def _batch_first(self, x: Tensor, batched: bool) -> Tensor:
        """[N, L, E] whatever the layout."""
        if not batched:
            return x.unsqueeze(0)
        return x if self.batch_first else x.transpose(0, 1)

    def _project(self, x: Tensor, i: int) -> Tensor:
        """The query (i=0), key (1) or value (2) projection: rows i*E:(i+1)*E of in_proj (or
        q_proj_weight, k_proj_weight, v_proj_weight where keys or values have other widths)."""
        rows = slice(i * self.embed_dim, (i + 1) * self.embed_dim)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[rows]
        weight = (self.in_proj_weight[rows] if self._qkv_same_embed_dim else
                  (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i])
        return F.linear(x, weight, bias)

    def _heads(self, x: Tensor) -> Tensor:
        """[N, L, E] -> [N, H, L, head_dim]."""
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor.of(np.asarray(x))


def _padded(mask: Tensor, extra: int) -> Tensor:
    """A mask over the keys with `extra` key positions appended, none of them masked."""
    if not extra:
        return mask
    pad = call("zeros", (*mask.shape[:-1], extra), dtype=mask.dtype)
    return call("cat", [mask, pad], -1)


def _masked(scores: Tensor, mask: Tensor) -> Tensor:
    """Scores with a boolean mask's True positions at -inf, or a float mask added."""
    if mask.dtype.is_float:
        return scores + mask
    return F.where(mask, float("-inf"), scores)
