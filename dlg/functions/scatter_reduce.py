"""scatter_reduce (torch.scatter_reduce): src's elements combined into x at the positions an index
names along an axis, by "sum", "prod", "mean", "amax" or "amin", x's own value among them unless
include_self=False. Positions that no index names keep x's value.

0-d operands are read as 1-element vectors. A composite: sum and mean are scatter_add_along (the
count of the writes, scattered the same way, gives mean's divisor, the positions written and,
eagerly, the index's range check). prod, amax and amin have no scatter op, so every index is
compared with every position of the axis (the index's size times the axis's length) and the src
values that name a position are reduced, with x's own value as one more candidate; so gradients
are the reductions' (amax/amin share a tie's evenly among x and src, as torch).
index_reduce (torch.index_reduce) is scatter_reduce with its 1-d index spread over source.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import tensor
from dlg.functions.front import Front
from dlg.functions.gather import as_vector, leading_part, shaped_like
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import FLOOR_DIVIDE
from dlg.ir.ops.common import INDEX_INTS, normalize_axis
from dlg.ir.ops.elementwise import (
    ADD,
    CAST,
    DIV,
    EQ,
    GT,
    MAXIMUM,
    SUB,
    WHERE,
)
from dlg.ir.ops.gather import SCATTER_ADD_ALONG
from dlg.ir.ops.reduce import REDUCE_MAX, REDUCE_MIN, REDUCE_PROD
from dlg.ir.ops.shape import (
    BROADCAST_TO,
    CONCAT,
    PAD,
    RESHAPE,
    SLICE,
    SQUEEZE,
    TRANSPOSE,
    UNSQUEEZE,
)
from dlg.ir.ops.sort import CUMSUM
from dlg.ir.ops.source import FULL

_DENSE = {"prod": REDUCE_PROD, "amax": REDUCE_MAX, "amin": REDUCE_MIN}
REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def scatter_reduce(F: Front, x: Any, axis: Any, index: Any, src: Any, reduce: Any,
                   include_self: Any = True) -> Any:
    """x with src[i] combined into x[i with i[axis] = index[i]] by `reduce`."""
    t = F.type_of(tensor(F, x, "scatter_reduce's argument"))
    i = F.type_of(tensor(F, index, "scatter_reduce: index"))
    s = F.type_of(tensor(F, src, "scatter_reduce: src"))
    reduce = args.choice(F, reduce, REDUCTIONS, "scatter_reduce: reduce")
    if not isinstance(include_self, bool):
        raise DlgTypeError(f"scatter_reduce: include_self must be true or false, got "
                           f"{args.describe(F, include_self)}")
    if i.dtype not in INDEX_INTS:
        raise DlgTypeError(f"scatter_reduce: index must be an int64 (or int32) tensor, got {i}")
    if s.dtype != t.dtype:
        raise DlgTypeError(f"scatter_reduce: src {s} must have x's dtype {t.dtype}")
    if not t.rank == i.rank == s.rank:
        raise DlgShapeError(f"scatter_reduce: x {t}, index {i} and src {s} must have one rank")
    if t.rank == 0:  # as 1-element vectors
        x, index, src = (as_vector(F, v) for v in (x, index, src))
        return shaped_like(F, scatter_reduce(F, x, axis, index, src, reduce, include_self), ())
    a = normalize_axis("scatter_reduce", args.axis(F, axis, "scatter_reduce: dim"), t.rank)
    src = leading_part(F, src, index, "scatter_reduce")
    zeros = F.emit(FULL, shape=t.shape, value=0.0, dtype=t.dtype)
    count = F.emit(SCATTER_ADD_ALONG, zeros, index,
                   F.emit(FULL, shape=i.shape, value=1.0, dtype=t.dtype), axis=a)
    written = F.emit(GT, count, F.lift(0, t.dtype))
    if reduce in ("sum", "mean"):
        total = F.emit(SCATTER_ADD_ALONG, x if include_self else zeros, index, src, axis=a)
        if reduce == "sum":
            return total if include_self else F.emit(WHERE, written, total, x)
        one = F.lift(1, t.dtype)
        divisor = F.emit(ADD, count, one) if include_self else F.emit(MAXIMUM, count, one)
        mean = F.emit(DIV if t.dtype.is_float else FLOOR_DIVIDE, total, divisor)
        return F.emit(WHERE, written, mean, x)
    reduced = _dense(F, reduce, x, include_self, index, src, a)
    return F.emit(WHERE, written, reduced, x)


def index_reduce(F: Front, x: Any, axis: Any, index: Any, source: Any, reduce: Any,
                 include_self: bool = True) -> Any:
    """x with source's slices along `axis` combined into the positions a 1-d index names, by
    "prod", "mean", "amax" or "amin" (torch.index_reduce; index_add is its sum)."""
    t = F.type_of(tensor(F, x, "index_reduce's argument"))
    i = F.type_of(tensor(F, index, "index_reduce: index"))
    s = F.type_of(tensor(F, source, "index_reduce: source"))
    reduce = args.choice(F, reduce, REDUCTIONS[1:], "index_reduce: reduce")
    if i.rank != 1 or s.rank != max(t.rank, 1):
        raise DlgShapeError(f"index_reduce: index {i} must be 1-d and source {s} of x's rank "
                            f"{t}")
    if t.rank == 0:  # as 1-element vectors
        return shaped_like(F, index_reduce(F, as_vector(F, x), 0, index, source, reduce,
                                           include_self), ())
    a = normalize_axis("index_reduce", args.axis(F, axis, "index_reduce: dim"), t.rank)
    if s.shape[a] != i.shape[0] or s.shape[:a] + s.shape[a + 1:] != t.shape[:a] + t.shape[a + 1:]:
        raise DlgShapeError(f"index_reduce: source {s} must have index {i}'s length on axis "
                            f"{a} and x {t}'s sizes elsewhere")
    spread = tuple(i.shape[0] if k == a else 1 for k in range(t.rank))
    index = F.emit(BROADCAST_TO, F.emit(RESHAPE, index, shape=spread), shape=s.shape)
    return scatter_reduce(F, x, a, index, source, reduce, include_self)


def _dense(F: Front, reduce: str, x: Any, include_self: bool, index: Any, src: Any, a: int
           ) -> Any:
    """For every position p of x's axis `a`, src's values whose index is p (and x's own value
    with include_self) reduced together over the index's axis `a` (the identity where there are
    none), padded to x's shape."""
    t, i = F.type_of(x), F.type_of(index)
    rank, length = t.rank, t.shape[a]
    perm = list(range(rank + 1))
    perm[a], perm[rank] = rank, a  # swaps axis a with the positions' axis, last
    ones = F.emit(FULL, shape=(length,), value=1.0, dtype=DType.i64)
    positions = F.emit(SUB, F.emit(CUMSUM, ones, axis=0), F.lift(1, DType.i64))
    wide = index if i.dtype == DType.i64 else F.emit(CAST, index, dtype=DType.i64)
    hits = F.emit(EQ, F.emit(UNSQUEEZE, wide, axes=(rank,)), positions)
    values = F.emit(WHERE, hits, F.emit(UNSQUEEZE, src, axes=(rank,)),
                    F.lift(_identity(reduce, t.dtype), t.dtype))
    if include_self:  # one more candidate on axis a, so ties share the gradient as in torch
        cut = [k for k in range(rank) if k != a and t.shape[k] != i.shape[k]]
        own = x if not cut else F.emit(
            SLICE, x, axes=tuple(cut), starts=(0,) * len(cut),
            stops=tuple(i.shape[k] for k in cut), steps=(1,) * len(cut))
        own = F.emit(TRANSPOSE, F.emit(UNSQUEEZE, own, axes=(rank,)), perm=tuple(perm))
        values = F.emit(CONCAT, values, own, axis=a)
    reduced = F.emit(_DENSE[reduce], values, axes=(a,), keepdims=True)
    out = F.emit(SQUEEZE, F.emit(TRANSPOSE, reduced, perm=tuple(perm)), axes=(rank,))
    shape = i.shape[:a] + (length,) + i.shape[a + 1:]
    if shape == t.shape:
        return out
    # the index covers x's leading part off the axis: the rest is never written (x stays)
    pads = tuple((0, n - m) for n, m in zip(t.shape, shape))
    return F.emit(PAD, out, pads=pads, value=0.0)


def _identity(reduce: str, dtype: DType) -> Any:
    """The value that changes nothing in the reduction."""
    if reduce == "prod":
        return 1
    if dtype.is_float:
        return -np.inf if reduce == "amax" else np.inf
    info = np.iinfo(dtype.np)
    return int(info.min if reduce == "amax" else info.max)
