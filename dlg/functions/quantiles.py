"""Quantiles, the mode and covariance with torch's names: quantile, nanquantile, mode, cov and
corrcoef, as composites of sort, gather and the reductions.

quantile sorts along the axis (NaN last) and reads the two neighbours of rank q * (n - 1) with
a gather, then interpolates as torch does (lerp for 'linear'); nanquantile counts only the
numbers of each row, quantile gives NaN for a row holding one. mode compares every pair of
positions along the axis (quadratic in its length, as cummax) and picks the smallest of the
most frequent values at its last position, as torch's CPU kernel; its value is gathered there,
so the gradient goes to that one element. cov centres each variable on its (weighted) mean and
multiplies the matrix by its transpose; corrcoef divides by the standard deviations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import choice, describe, is_int, is_number, tensor
from dlg.functions.arrange import axis_of, known_size
from dlg.functions.elementwise import apply, clamp
from dlg.functions.front import Front
from dlg.functions.gather import gather
from dlg.functions.pointwise import lerp
from dlg.functions.shape import movedim, reshape
from dlg.functions.sort import Sorted, sort
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import ISNAN, ROUND
from dlg.ir.ops.elementwise import (
    CAST,
    CEIL,
    DIV,
    EQ,
    FLOOR,
    LOGICAL_NOT,
    MAXIMUM,
    MUL,
    SQRT,
    SUB,
    WHERE,
)
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.reduce import REDUCE_ANY, REDUCE_MAX, REDUCE_MIN, REDUCE_SUM
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, TRANSPOSE, UNSQUEEZE

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name: str, skip_nan: bool) -> Any:
    def fn(F: Front, x: Any, q: Any, axis: Any = None, keepdims: bool = False,
           interpolation: str = "linear") -> Any:
        x = tensor(F, x, f"{name}'s input")
        t = F.type_of(x)
        if not t.dtype.is_float:
            raise DlgTypeError(f"{name}: input must be a float tensor, got {t}")
        choice(F, interpolation, _INTERPOLATIONS, f"{name}: interpolation")
        qs, scalar = _probabilities(F, name, q, t.dtype)
        rank = t.rank
        if axis is None:
            rows, a = reshape(F, x, -1), 0
        else:
            a = axis_of(F, t, axis, name)
            rows = movedim(F, x, a, -1) if rank else reshape(F, x, 1)
        out = _read(F, sort(F, rows, -1).values, qs, skip_nan, interpolation)
        if not skip_nan:  # a row holding NaN gives NaN
            nan = F.emit(REDUCE_ANY, F.emit(ISNAN, rows), axes=(-1,), keepdims=True)
            out = F.emit(WHERE, nan, F.lift(math.nan, t.dtype), out)
        out = movedim(F, out, -1, 0)  # (k, the kept dims...)
        if keepdims:
            at = tuple(range(1, rank + 1)) if axis is None else (a + 1,)
            out = F.emit(UNSQUEEZE, out, axes=at) if rank else out
        return reshape(F, out, *F.type_of(out).shape[1:]) if scalar else out
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The q-quantiles along `axis` (of all elements when none)"
                  f"{', NaN skipped' if skip_nan else ''}; q a number or a 1-d tensor (its "
                  "values make a new first dim).")
    return fn


def _probabilities(F: Front, name: str, q: Any, dtype: DType) -> tuple[Any, bool]:
    """q as a 1-d tensor of x's dtype, and whether it was a scalar."""
    if is_number(q):
        if not 0 <= q <= 1:
            raise DlgValueError(f"{name}: q must be in the range [0, 1] but got {q}")
        return F.lift([float(q)], dtype), True
    if not F.is_tensor(q):
        raise DlgTypeError(f"{name}: q must be a number or a tensor, got {describe(F, q)}")
    tq = F.type_of(q)
    if tq.dtype != dtype or tq.rank > 1:
        raise DlgTypeError(f"{name}: q must be a 0-d or 1-d tensor of the input's dtype "
                           f"({dtype}), got {tq}")
    return (F.emit(RESHAPE, q, shape=(1,)) if tq.rank == 0 else q), tq.rank == 0


def _read(F: Front, ordered: Any, qs: Any, skip_nan: bool, interpolation: str) -> Any:
    """The quantiles of each sorted row (last axis), [..., k]."""
    t = F.type_of(ordered)
    n = known_size(t, t.rank - 1, "quantile")
    if skip_nan:
        numbers = F.emit(CAST, F.emit(LOGICAL_NOT, F.emit(ISNAN, ordered)), dtype=t.dtype)
        last = apply(F, SUB, [F.emit(REDUCE_SUM, numbers, axes=(-1,), keepdims=True), 1.0], {})
    else:
        last = F.lift(float(n - 1), t.dtype)
    rank = apply(F, MAXIMUM, [F.emit(MUL, qs, last), 0.0], {})  # [..., k]; an empty row: 0
    shape = (*t.shape[:-1], F.type_of(qs).shape[0])
    if F.type_of(rank).shape != shape:
        rank = F.emit(BROADCAST_TO, rank, shape=shape)
    if interpolation == "nearest":
        rank = F.emit(ROUND, rank)
    below, above = F.emit(FLOOR, rank), F.emit(CEIL, rank)
    low, high = (gather(F, ordered, -1, F.emit(CAST, r, dtype=DType.i64))
                 for r in (below, above))
    if interpolation in ("lower", "nearest"):
        return low
    if interpolation == "higher":
        return high
    weight = F.emit(SUB, rank, below) if interpolation == "linear" else F.emit(
        BROADCAST_TO, F.lift(0.5, t.dtype), shape=shape)
    return lerp(F, low, high, weight)


quantile = _quantile("quantile", False)
nanquantile = _quantile("nanquantile", True)


def mode(F: Front, x: Any, axis: Any = -1, keepdims: bool = False) -> Sorted:
    """The most frequent value along `axis` (the smallest of equally frequent ones) and its
    last position, as torch's (values, indices)."""
    x = tensor(F, x, "mode's input")
    t = F.type_of(x)
    a = axis_of(F, t, axis, "mode") if t.rank else 0
    rows = movedim(F, x, a, -1) if t.rank else reshape(F, x, 1)
    n = known_size(F.type_of(rows), F.type_of(rows).rank - 1, "mode")
    keys = rows if t.dtype != DType.bool else F.emit(CAST, rows, dtype=DType.i32)
    kt = F.type_of(keys)
    same = F.emit(EQ, F.emit(UNSQUEEZE, keys, axes=(kt.rank,)),
                  F.emit(UNSQUEEZE, keys, axes=(kt.rank - 1,)))
    counts = F.emit(REDUCE_SUM, F.emit(CAST, same, dtype=DType.i64), axes=(-1,), keepdims=False)
    most = F.emit(EQ, counts, F.emit(REDUCE_MAX, counts, axes=(-1,), keepdims=True))
    top = np.inf if kt.dtype.is_float else np.iinfo(kt.dtype.np).max
    value = F.emit(REDUCE_MIN, F.emit(WHERE, most, keys, F.lift(top, kt.dtype)), axes=(-1,),
                   keepdims=True)
    positions = F.lift(list(range(n)), DType.i64)
    at = F.emit(WHERE, F.emit(EQ, keys, value), positions, F.lift(-1, DType.i64))
    index = F.emit(REDUCE_MAX, at, axes=(-1,), keepdims=True)
    values = gather(F, rows, -1, index)
    if keepdims and t.rank:
        values, index = (movedim(F, v, -1, a) for v in (values, index))
    else:
        values, index = (reshape(F, v, *F.type_of(v).shape[:-1]) for v in (values, index))
    return Sorted(values, index)


# ---- covariance --------------------------------------------------------------------------------
def cov(F: Front, x: Any, correction: Any = 1, fweights: Any = None, aweights: Any = None) -> Any:
    """The covariance matrix of the variables in x's rows (observations in its columns; one
    variable gives a 0-d result), frequency and observation weights as torch's."""
    x = tensor(F, x, "cov's input")
    t = F.type_of(x)
    if t.rank > 2:
        raise DlgShapeError(f"cov: expects a tensor of at most 2 dims, got {t}")
    if not is_int(correction):
        raise DlgTypeError(f"cov: correction must be an int, got {describe(F, correction)}")
    if not t.dtype.is_float:
        x = F.emit(CAST, x, dtype=DType.f32)
    dtype = F.type_of(x).dtype
    rows = reshape(F, x, 1, -1) if t.rank < 2 else x
    n = known_size(F.type_of(rows), 1, "cov")
    weights = None
    for w, what in ((fweights, "fweights"), (aweights, "aweights")):
        if w is None:
            continue
        w = tensor(F, w, f"cov's {what}")
        if F.type_of(w).shape not in ((n,), ()):
            raise DlgShapeError(f"cov: {what} must be 1-d with {n} observations, got "
                                f"{F.type_of(w)}")
        if what == "fweights" and F.type_of(w).dtype.is_float:
            raise DlgTypeError("cov: fweights must be integers")
        w = F.emit(CAST, w, dtype=dtype)
        weights = w if weights is None else F.emit(MUL, weights, w)
    if weights is None:
        total = F.lift(float(n), dtype)
        mean = F.emit(DIV, F.emit(REDUCE_SUM, rows, axes=(1,), keepdims=True), total)
        factor = apply(F, SUB, [total, float(correction)], {})
    else:
        total = F.emit(REDUCE_SUM, weights, axes=(0,), keepdims=False)
        mean = F.emit(DIV, F.emit(REDUCE_SUM, F.emit(MUL, rows, weights), axes=(1,),
                                  keepdims=True), total)
        if correction == 0:
            factor = total
        elif aweights is None:
            factor = apply(F, SUB, [total, float(correction)], {})
        else:
            aw = F.emit(CAST, tensor(F, aweights, "cov's aweights"), dtype=dtype)
            spread = apply(F, MUL, [F.emit(REDUCE_SUM, F.emit(MUL, weights, aw), axes=(0,),
                                           keepdims=False), float(correction)], {})
            factor = F.emit(SUB, total, F.emit(DIV, spread, total))
    factor = apply(F, MAXIMUM, [factor, 0.0], {})  # torch: a negative count becomes 0
    centred = F.emit(SUB, rows, mean)
    weighted = centred if weights is None else F.emit(MUL, centred, weights)
    product = F.emit(MATMUL, centred, F.emit(TRANSPOSE, weighted, perm=(1, 0)))
    out = F.emit(DIV, product, factor)
    return reshape(F, out) if F.type_of(out).shape == (1, 1) else out  # one variable: 0-d


def corrcoef(F: Front, x: Any) -> Any:
    """Pearson's correlation coefficients of the variables in x's rows, clipped to [-1, 1]."""
    c = cov(F, x)
    if F.type_of(c).rank == 0:
        return F.emit(DIV, c, c)
    n = F.type_of(c).shape[0]
    eye = F.lift(np.eye(n, dtype=bool).tolist(), DType.bool)
    diagonal = F.emit(REDUCE_SUM, F.emit(WHERE, eye, c, F.lift(0.0, F.type_of(c).dtype)),
                      axes=(1,), keepdims=True)
    spread = F.emit(SQRT, diagonal)
    out = F.emit(DIV, F.emit(DIV, c, spread), F.emit(TRANSPOSE, spread, perm=(1, 0)))
    return clamp(F, out, -1.0, 1.0)
