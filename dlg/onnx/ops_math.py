"""ONNX import entries: elementwise math, activations, reductions, products and casts.

One entry per ONNX op (`OPS`). Elementwise ops with all-static inputs are folded with NumPy
(shape arithmetic: `Shape -> Gather -> Mul -> Concat -> Reshape`), so symbolic dims stay
symbolic; everything else emits dlg registry ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.functions.elementwise import clamp, div
from dlg.ir.dtypes import DType
from dlg.functions.indexing import index
from dlg.functions.linalg import einsum
from dlg.functions.sort import topk
from dlg.functions.nn import linear
from dlg.ir.ops.arith import FMOD, ISINF, ISNAN, RECIPROCAL, REMAINDER, ROUND
from dlg.ir.ops.arith import COSH, SINH
from dlg.ir.ops.elementwise import (
    ABS, ADD, ATAN, CAST, CEIL, CELU, COS, DIV, ELU, EQ, ERF, EXP, FLOOR, GE, GELU, GT, HARDSWISH,
    LE, LEAKY_RELU, LOG, LOGICAL_AND, LOGICAL_NOT, LOGICAL_OR, LT, MAXIMUM, MINIMUM, MISH, MUL, NE,
    NEG, POW, RELU, SELU, SIGMOID, SIGN, SIN, SOFTPLUS, SOFTSIGN, SQRT, SUB, TANH, WHERE,
)
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.nn import LOG_SOFTMAX, LOGSUMEXP, SOFTMAX
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.reduce import ARGMAX, ARGMIN, REDUCE_MAX, REDUCE_MEAN, REDUCE_MIN, REDUCE_PROD
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import FLATTEN, RESHAPE, TRANSPOSE
from dlg.ir.ops.sort import CUMSUM
from dlg.onnx.node import Handler, OnnxNode, elem_dtype


def scalar(n: OnnxNode, value: float, like: Any) -> Any:
    return n.F.lift(value, n.F.type_of(like).dtype)


# ---- elementwise ------------------------------------------------------------------------------
def _unary(op: OpDef, **attrs: Any) -> Handler:
    return lambda n: n.F.emit(op, n.x(0), **attrs)


def _binary(op: OpDef, fold: Callable[[Any, Any], Any]) -> Handler:
    def handler(n: OnnxNode) -> Any:
        if n.all_static():
            a, b = n.statics()
            return np.asarray(fold(a, b))
        return n.F.emit(op, n.x(0), n.x(1))
    return handler


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iuO" and b.dtype.kind in "iuO":
        return a // b  # shape arithmetic (exact); ONNX's int Div truncates, equal for dims
    return a / b


def _variadic(op: OpDef, mean: bool = False) -> Handler:
    def handler(n: OnnxNode) -> Any:
        xs = n.xs()
        out = xs[0]
        for x in xs[1:]:
            out = n.F.emit(op, out, x)
        return n.F.emit(DIV, out, scalar(n, len(xs), out)) if mean else out
    return handler


def _div(n: OnnxNode) -> Any:
    """Integer division truncates, as in C."""
    if n.all_static():
        a, b = n.statics()
        return np.asarray(_divide(a, b))
    x, y = n.x(0), n.x(1)
    return div(n.F, x, y, "trunc" if n.type(0).dtype.is_int else None)


def _pow(n: OnnxNode) -> Any:
    """The exponent takes the base's type; integer powers are computed in f64 and rounded."""
    x, y = n.x(0), n.x(1)
    dtype = n.type(0).dtype
    if dtype.is_float:
        return n.F.emit(POW, x, y if n.type(1).dtype == dtype else n.F.emit(CAST, y, dtype=dtype))
    wide = [n.F.emit(CAST, v, dtype=DType.f64) for v in (x, y)]
    return n.F.emit(CAST, n.F.emit(ROUND, n.F.emit(POW, *wide)), dtype=dtype)


def _prelu(n: OnnxNode) -> Any:
    """x where x >= 0, else slope * x; the slope broadcasts to x (any shape that does)."""
    x = n.x(0)
    return n.F.emit(WHERE, n.F.emit(LT, x, scalar(n, 0.0, x)), n.F.emit(MUL, x, n.x(1)), x)


def _tan(n: OnnxNode) -> Any:
    return n.F.emit(DIV, n.F.emit(SIN, n.x(0)), n.F.emit(COS, n.x(0)))


def _mod(n: OnnxNode) -> Any:
    return n.F.emit(FMOD if n.attr("fmod", 0) else REMAINDER, n.x(0), n.x(1))


def _cast(n: OnnxNode) -> Any:
    dtype = elem_dtype(n.attr("to"), f"node {n.name!r}'s type to cast to")
    if n.all_static():
        value = n.statics()[0]
        return value if value.dtype == object else value.astype(dtype.np)
    return n.F.emit(CAST, n.x(0), dtype=dtype)


def _cast_like(n: OnnxNode) -> Any:
    return n.F.emit(CAST, n.x(0), dtype=n.type(1).dtype)


def _where(n: OnnxNode) -> Any:
    if n.all_static():
        return np.where(*n.statics())
    return n.F.emit(WHERE, n.x(0), n.x(1), n.x(2))


def _clip(n: OnnxNode) -> Any:
    x = n.x(0)
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
    else:
        lo, hi = n.opt(1), n.opt(2)
    if lo is None and hi is None:
        return x
    return clamp(n.F, x, lo, hi)


def _isinf(n: OnnxNode) -> Any:
    x = n.x(0)
    positive, negative = n.attr("detect_positive", 1), n.attr("detect_negative", 1)
    inf = n.F.emit(ISINF, x)
    if positive and negative:
        return inf
    side = n.F.emit(GT if positive else LT, x, scalar(n, 0.0, x))
    return n.F.emit(LOGICAL_AND, inf, side) if positive or negative else n.F.emit(
        LOGICAL_AND, inf, n.F.emit(LOGICAL_NOT, inf))


# ---- activations with ONNX's parameters ----------------------------------------------------------
def _selu(n: OnnxNode) -> Any:
    alpha, gamma = n.attr("alpha", 1.6732632423543772), n.attr("gamma", 1.0507009873554805)
    x = n.x(0)
    if np.isclose(alpha, 1.6732632) and np.isclose(gamma, 1.050701):
        return n.F.emit(SELU, x)
    return n.F.emit(MUL, n.F.emit(ELU, x, alpha=float(alpha)), scalar(n, gamma, x))


def _hard_sigmoid(n: OnnxNode) -> Any:
    x = n.x(0)
    y = n.F.emit(ADD, n.F.emit(MUL, x, scalar(n, n.attr("alpha", 0.2), x)),
                 scalar(n, n.attr("beta", 0.5), x))
    return clamp(n.F, y, 0.0, 1.0)


def _thresholded_relu(n: OnnxNode) -> Any:
    x = n.x(0)
    return n.F.emit(WHERE, n.F.emit(GT, x, scalar(n, n.attr("alpha", 1.0), x)), x,
                    scalar(n, 0.0, x))


def _shrink(n: OnnxNode) -> Any:
    x = n.x(0)
    lambd, bias = n.attr("lambd", 0.5), n.attr("bias", 0.0)
    low = n.F.emit(LT, x, scalar(n, -lambd, x))
    high = n.F.emit(GT, x, scalar(n, lambd, x))
    return n.F.emit(WHERE, low, n.F.emit(ADD, x, scalar(n, bias, x)),
                    n.F.emit(WHERE, high, n.F.emit(SUB, x, scalar(n, bias, x)),
                             scalar(n, 0.0, x)))


def _softmax(op: OpDef) -> Handler:
    """Opset 13 normalises along `axis`; before, the input was read as 2-d [a, b] with `axis`
    (default 1) splitting it, and normalised along the second."""
    def handler(n: OnnxNode) -> Any:
        x, t = n.x(0), n.type(0)
        if n.opset >= 13:
            return n.F.emit(op, x, axis=n.attr("axis", -1) % max(t.rank, 1))
        axis = n.attr("axis", 1) % max(t.rank, 1)
        flat = n.F.emit(FLATTEN, x, start_axis=axis, end_axis=-1) if axis < t.rank - 1 else x
        flat = n.F.emit(FLATTEN, flat, start_axis=0, end_axis=axis - 1) if axis > 1 else flat
        y = n.F.emit(op, flat, axis=-1 if axis else 0)
        return n.F.emit(RESHAPE, y, shape=t.shape)
    return handler


# ---- reductions -------------------------------------------------------------------------------
def _axes(n: OnnxNode, attribute_until: int) -> tuple[int, ...] | None:
    """Reduce axes: an attribute before opset `attribute_until`, then an optional input; None
    is every axis (or none, with noop_with_empty_axes)."""
    if n.opset < attribute_until:
        axes = n.attr("axes")
    else:
        axes = n.ints(1, "axes") if n.has(1) else None
    return tuple(int(a) for a in axes) if axes is not None and len(axes) else None


def _reduce(op: OpDef, square: bool = False, absolute: bool = False,
            after: OpDef | None = None, since: int = 18) -> Handler:
    """A reduction (of |x| or x*x, then `after`); bools (ReduceMax/Min) go through i32."""
    def handler(n: OnnxNode) -> Any:
        x = n.x(0)
        axes = _axes(n, since)
        if axes is None and n.attr("noop_with_empty_axes", 0):
            return x
        boolean = n.type(0).dtype == DType.bool
        if boolean:
            x = n.F.emit(CAST, x, dtype=DType.i32)
        if absolute:
            x = n.F.emit(ABS, x)
        if square:
            x = n.F.emit(MUL, x, x)
        y = n.F.emit(op, x, axes=axes, keepdims=bool(n.attr("keepdims", 1)))
        y = n.F.emit(after, y) if after is not None else y
        return n.F.emit(CAST, y, dtype=DType.bool) if boolean else y
    return handler


def _arg(op: OpDef) -> Handler:
    """The first extremum's index, or with select_last_index the last: the first of the
    reversed axis, counted back from its end."""
    def handler(n: OnnxNode) -> Any:
        x, t = n.x(0), n.type(0)
        axis, keepdims = n.attr("axis", 0) % t.rank, bool(n.attr("keepdims", 1))
        if not n.attr("select_last_index", 0):
            return n.F.emit(op, x, axis=axis, keepdims=keepdims)
        items = [slice(None)] * t.rank
        items[axis] = slice(None, None, -1)
        first = n.F.emit(op, index(n.F, x, items), axis=axis, keepdims=keepdims)
        return n.F.emit(SUB, n.F.lift(t.shape[axis] - 1, DType.i64), first)
    return handler


def _hardmax(n: OnnxNode) -> Any:
    """1 at the first maximum along `axis` (opset 13; before, of the 2-d view), else 0."""
    x, t = n.x(0), n.type(0)
    axis = n.attr("axis", -1 if n.opset >= 13 else 1) % t.rank
    if n.opset < 13 and axis != t.rank - 1:
        raise n.error("opset < 13 Hardmax over a 2-d view is supported on the last axis only")
    at = n.F.emit(ARGMAX, x, axis=axis, keepdims=True)
    positions = n.F.lift(np.arange(t.shape[axis]).reshape(
        [-1 if a == axis else 1 for a in range(t.rank)]), DType.i64)
    return n.F.emit(CAST, n.F.emit(EQ, at, positions), dtype=t.dtype)


def _cumsum(n: OnnxNode) -> Any:
    """Inclusive or (exclusive=1) without the element itself, forward or reversed."""
    x = n.x(0)
    axis = int(n.static(1, "axis").reshape(-1)[0]) % n.type(0).rank
    y = n.F.emit(CUMSUM, x, axis=axis, reverse=bool(n.attr("reverse", 0)))
    return n.F.emit(SUB, y, x) if n.attr("exclusive", 0) else y


def _topk(n: OnnxNode) -> Any:
    if n.opset < 10:
        k = n.attr("k")
    else:
        k = int(n.static(1, "k").reshape(-1)[0])
    values, indices = topk(n.F, n.x(0), k, n.attr("axis", -1), bool(n.attr("largest", 1)))
    return values, indices


def _lp_normalization(n: OnnxNode) -> Any:
    """x / its L1 or L2 norm along `axis` (a zero norm gives 0, ONNX's reference)."""
    x, p = n.x(0), n.attr("p", 2)
    axis = n.attr("axis", -1) % n.type(0).rank
    size = n.F.emit(ABS, x) if p == 1 else n.F.emit(MUL, x, x)
    norm = n.F.emit(REDUCE_SUM, size, axes=(axis,), keepdims=True)
    norm = norm if p == 1 else n.F.emit(SQRT, norm)
    zero = n.F.emit(EQ, norm, scalar(n, 0.0, norm))
    safe = n.F.emit(WHERE, zero, scalar(n, 1.0, norm), norm)
    return n.F.emit(WHERE, zero, scalar(n, 0.0, x), n.F.emit(DIV, x, safe))


def _mean_variance_normalization(n: OnnxNode) -> Any:
    """(x - mean) / sqrt(var + 1e-9) over `axes` (default N, H, W)."""
    x = n.x(0)
    axes = tuple(a % n.type(0).rank for a in n.attr("axes", [0, 2, 3]))
    mean = n.F.emit(REDUCE_MEAN, x, axes=axes, keepdims=True)
    centered = n.F.emit(SUB, x, mean)
    var = n.F.emit(REDUCE_MEAN, n.F.emit(MUL, centered, centered), axes=axes, keepdims=True)
    return n.F.emit(DIV, centered, n.F.emit(SQRT, n.F.emit(ADD, var, scalar(n, 1e-9, var))))


# ---- products ---------------------------------------------------------------------------------
def _gemm(n: OnnxNode) -> Any:
    """alpha * A' B' + beta * C, A' and B' transposed by transA/transB; PyTorch's Linear
    (transB, a vector C) is dlg's `linear`."""
    a, b = n.x(0), n.x(1)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if n.attr("transB", 0) and not n.attr("transA", 0) and alpha == beta == 1.0 and (
            not n.has(2) or n.type(2).rank == 1):
        return linear(n.F, a, b, n.opt(2))
    if n.attr("transA", 0):
        a = n.F.emit(TRANSPOSE, a, perm=(1, 0))
    if n.attr("transB", 0):
        b = n.F.emit(TRANSPOSE, b, perm=(1, 0))
    y = n.F.emit(MATMUL, a, b)
    if alpha != 1.0:
        y = n.F.emit(MUL, y, scalar(n, alpha, y))
    if n.has(2) and beta != 0.0:
        c = n.x(2)
        if beta != 1.0:
            c = n.F.emit(MUL, c, scalar(n, beta, c))
        y = n.F.emit(ADD, y, c)
    return y


def _einsum(n: OnnxNode) -> Any:
    return einsum(n.F, n.attr("equation"), *n.xs())


OPS: dict[str, Handler] = {
    "Abs": _unary(ABS), "Neg": _unary(NEG), "Exp": _unary(EXP), "Log": _unary(LOG),
    "Sqrt": _unary(SQRT), "Reciprocal": _unary(RECIPROCAL), "Floor": _unary(FLOOR),
    "Ceil": _unary(CEIL), "Sin": _unary(SIN), "Cos": _unary(COS), "Sinh": _unary(SINH),
    "Cosh": _unary(COSH), "Tan": _tan, "Tanh": _unary(TANH), "Sigmoid": _unary(SIGMOID),
    "Relu": _unary(RELU), "Atan": _unary(ATAN),
    "Erf": _unary(ERF), "Sign": _unary(SIGN), "Round": _unary(ROUND), "Not": _unary(LOGICAL_NOT),
    "IsNaN": _unary(ISNAN), "IsInf": _isinf, "Softplus": _unary(SOFTPLUS),
    "Softsign": _unary(SOFTSIGN), "Mish": _unary(MISH), "HardSwish": _unary(HARDSWISH),
    "LeakyRelu": lambda n: n.F.emit(LEAKY_RELU, n.x(0), negative_slope=n.attr("alpha", 0.01)),
    "Elu": lambda n: n.F.emit(ELU, n.x(0), alpha=n.attr("alpha", 1.0)),
    "Celu": lambda n: n.F.emit(CELU, n.x(0), alpha=n.attr("alpha", 1.0)),
    "Gelu": lambda n: n.F.emit(GELU, n.x(0), approximate=n.attr("approximate", "none")),
    "Swish": lambda n: n.F.emit(MUL, n.x(0), n.F.emit(SIGMOID, n.F.emit(
        MUL, n.x(0), scalar(n, n.attr("alpha", 1.0), n.x(0))))),
    "Hardmax": _hardmax, "CumSum": _cumsum, "TopK": _topk, "LpNormalization": _lp_normalization,
    "MeanVarianceNormalization": _mean_variance_normalization,
    "Selu": _selu, "HardSigmoid": _hard_sigmoid, "ThresholdedRelu": _thresholded_relu,
    "Shrink": _shrink, "PRelu": _prelu,
    "Softmax": _softmax(SOFTMAX), "LogSoftmax": _softmax(LOG_SOFTMAX),
    "Add": _binary(ADD, np.add), "Sub": _binary(SUB, np.subtract),
    "Mul": _binary(MUL, np.multiply), "Div": _div, "Pow": _pow,
    "Equal": _binary(EQ, np.equal), "Less": _binary(LT, np.less),
    "LessOrEqual": _binary(LE, np.less_equal), "Greater": _binary(GT, np.greater),
    "GreaterOrEqual": _binary(GE, np.greater_equal), "And": _binary(LOGICAL_AND, np.logical_and),
    "Or": _binary(LOGICAL_OR, np.logical_or), "Xor": _binary(NE, np.not_equal), "Mod": _mod,
    "Max": _variadic(MAXIMUM), "Min": _variadic(MINIMUM), "Sum": _variadic(ADD),
    "Mean": _variadic(ADD, mean=True), "Where": _where, "Clip": _clip,
    "Cast": _cast, "CastLike": _cast_like,
    "ReduceSum": _reduce(REDUCE_SUM, since=13), "ReduceMean": _reduce(REDUCE_MEAN),
    "ReduceMax": _reduce(REDUCE_MAX), "ReduceMin": _reduce(REDUCE_MIN),
    "ReduceProd": _reduce(REDUCE_PROD), "ReduceL1": _reduce(REDUCE_SUM, absolute=True),
    "ReduceL2": _reduce(REDUCE_SUM, square=True, after=SQRT),
    "ReduceSumSquare": _reduce(REDUCE_SUM, square=True),
    "ReduceLogSum": _reduce(REDUCE_SUM, after=LOG), "ReduceLogSumExp": _reduce(LOGSUMEXP),
    "ArgMax": _arg(ARGMAX), "ArgMin": _arg(ARGMIN),
    "MatMul": lambda n: n.F.emit(MATMUL, n.x(0), n.x(1)), "Gemm": _gemm, "Einsum": _einsum,
}
