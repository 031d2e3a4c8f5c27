"""scaled_dot_product_attention with PyTorch's semantics, composed of matmul, softmax, where and
dropout (so its gradients and compiled form are theirs): softmax(q k^T * scale + mask) v.

A boolean attn_mask marks the positions that MAY be attended (the opposite of
MultiheadAttention's masks, as in torch); a float mask is added to the scores. is_causal is
the lower-triangular mask, aligned at the top left as torch aligns it. Dropout applies whenever
dropout_p > 0 (torch's function has no training flag: callers pass 0 in eval).
"""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions.args import describe, is_number, tensor
from dlg.functions.front import Front
from dlg.functions.masking import tril
from dlg.functions.nn import dropout
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL, WHERE
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.nn import SOFTMAX
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, TRANSPOSE, UNSQUEEZE
from dlg.ir.ops.source import FULL
from dlg.ir.types import TensorType


def scaled_dot_product_attention(F: Front, query: Any, key: Any, value: Any,
                                 attn_mask: Any = None, dropout_p: Any = 0.0,
                                 is_causal: bool = False, scale: Any = None,
                                 enable_gqa: bool = False) -> Any:
    """query [..., L, E], key [..., S, E], value [..., S, Ev] -> [..., L, Ev]."""
    q, k, v = (F.type_of(tensor(F, t, f"scaled_dot_product_attention's {what}"))
               for t, what in ((query, "query"), (key, "key"), (value, "value")))
    if min(q.rank, k.rank, v.rank) < 2 or q.shape[-1] != k.shape[-1] \
            or k.shape[-2] != v.shape[-2]:
        raise DlgShapeError(f"scaled_dot_product_attention: expects query [..., L, E], key "
                            f"[..., S, E] and value [..., S, Ev], got {q}, {k} and {v}")
    if is_causal and attn_mask is not None:
        raise DlgTypeError("scaled_dot_product_attention: give attn_mask or is_causal=True, "
                           "not both")
    for name, number in (("dropout_p", dropout_p), ("scale", scale)):
        if number is not None and not is_number(number):
            raise DlgTypeError(f"scaled_dot_product_attention: {name} must be a number, got "
                               f"{describe(F, number)}")
    if enable_gqa:
        key, value = (_repeat_heads(F, t, q) for t in (key, value))
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    perm = (*range(k.rank - 2), k.rank - 1, k.rank - 2)
    scores = F.emit(MATMUL, F.emit(MUL, query, F.lift(scale, q.dtype)),
                    F.emit(TRANSPOSE, key, perm=perm))  # [..., L, S]
    if is_causal:
        attn_mask = tril(F, F.emit(FULL, shape=(q.shape[-2], k.shape[-2]), value=1.0,
                                   dtype=DType.bool))
    if attn_mask is not None:
        scores = _masked(F, scores, tensor(F, attn_mask, "scaled_dot_product_attention: "
                                                         "attn_mask"))
    weights = F.emit(SOFTMAX, scores, axis=-1)
    if dropout_p:
        weights = dropout(F, weights, dropout_p, training=True)
    return F.emit(MATMUL, weights, value)


def _masked(F: Front, scores: Any, mask: Any) -> Any:
    """Scores where a bool mask allows them (-inf elsewhere), or plus a float mask."""
    t = F.type_of(scores)
    if F.type_of(mask).dtype == DType.bool:
        return F.emit(WHERE, mask, scores, F.lift(float("-inf"), t.dtype))
    return F.emit(ADD, scores, mask)


def _repeat_heads(F: Front, x: Any, q: TensorType) -> Any:
    """Key or value heads (axis -3) each repeated for the query heads that share it."""
    t = F.type_of(x)
    if t.rank < 3 or q.rank < 3 or not all(isinstance(d, int) for d in (q.shape[-3],
                                                                       t.shape[-3])) \
            or q.shape[-3] % t.shape[-3]:
        raise DlgShapeError(f"scaled_dot_product_attention: enable_gqa needs the query heads "
                            f"(axis -3) to be a multiple of the key and value heads, got "
                            f"query {q} and {t}")
    groups, lead, (heads, length, dim) = q.shape[-3] // t.shape[-3], t.shape[:-3], t.shape[-3:]
    x = F.emit(UNSQUEEZE, x, axes=(t.rank - 2,))
    x = F.emit(BROADCAST_TO, x, shape=(*lead, heads, groups, length, dim))
    return F.emit(RESHAPE, x, shape=(*lead, heads * groups, length, dim))
