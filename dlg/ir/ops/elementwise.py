"""Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, where, cast.

References keep the input dtype (float32 stays float32). Binary ops require equal dtypes: the
elaborator gives Python literals the dtype of the tensor they meet (like JAX's weak types).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    INTS,
    NUMERIC,
    broadcast_shapes,
    normalize_axis,
    require_dtype,
    same_dtype,
    scalar,
    select,
    zeros_like,
)
from dlg.ir.ops.complexes import COMPLEX, INEXACT, conj
from dlg.ir.ops.opdef import Attr, OpDef, Trait, defop, zero_vjp
from dlg.ir.types import TensorType

_erf = np.vectorize(math.erf, otypes=[np.float64])

# trait sets shared by several ops (ARITHMETIC: cheap enough for fusion to recompute)
_ARITH = frozenset({Trait.ARITHMETIC})
_COMMUTATIVE = frozenset({Trait.COMMUTATIVE})
_COMMUTATIVE_ARITH = _ARITH | _COMMUTATIVE
_COMPARE = frozenset({Trait.COMPARISON, Trait.ARITHMETIC})


def _unary_infer(name: str, allowed: tuple[DType, ...]) -> Callable[..., TensorType]:
    def infer(x: TensorType, **attrs: object) -> TensorType:
        require_dtype(name, x, allowed)
        return x
    return infer


def _keep_dtype(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def ref(x: np.ndarray, **attrs: object) -> np.ndarray:
        out = fn(x, **attrs)
        if out.__class__ is np.ndarray and out.dtype == x.dtype:  # most calls: nothing to do
            return out
        return np.asarray(out).astype(x.dtype, copy=False)
    return ref


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)  # no overflow for large |x|


def unary(name: str, fn: Callable[..., np.ndarray], allowed: tuple[DType, ...] = FLOATS,
          attrs: dict[str, Attr] | None = None, doc: str = "",
          vjp: Callable[..., Any] | None = None, traits: frozenset[Trait] = frozenset()) -> OpDef:
    return defop(name, ("x",), _unary_infer(name, allowed), attrs=attrs, ref=_keep_dtype(fn),
                 vjp=vjp, traits={Trait.UNARY, Trait.ELEMENTWISE, *traits}, doc=doc)


def _chain(dy_dx: Callable[..., Any]) -> Callable[..., Any]:
    """The VJP of a unary op from its derivative, built as IR from (b, x, out, attrs)."""
    def vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
        return (b.mul(g, dy_dx(b, n.inputs[0], n.out, **n.attrs)),)
    return vjp


def _relu_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """PyTorch's choice: the gradient at 0 is 0."""
    x = n.inputs[0]
    return (b.where(b.gt(x, scalar(b, 0, x)), g, zeros_like(b, g)),)


NEG = unary("neg", np.negative, NUMERIC + COMPLEX, vjp=lambda b, n, g: (b.neg(g),),
            traits=_ARITH)


def _abs_infer(x: TensorType) -> TensorType:
    require_dtype("abs", x, NUMERIC + COMPLEX)
    return x.with_dtype(x.dtype.real)


def _abs_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """g sign(x); for complex x, g x/|x| (0 at 0), as PyTorch."""
    x = n.inputs[0]
    if not b.type_of(x).dtype.is_complex:
        return (b.mul(g, b.sign(x)),)
    dtype = b.type_of(x).dtype
    unit = b.div(x, b.cast(n.out, dtype=dtype))
    unit = b.where(b.eq(n.out, scalar(b, 0, n.out)), zeros_like(b, x), unit)
    return (b.mul(b.cast(g, dtype=dtype), unit),)


ABS = defop("abs", ("x",), _abs_infer, ref=lambda x: np.asarray(np.abs(x)), vjp=_abs_vjp,
            traits={Trait.UNARY, Trait.ELEMENTWISE},
            doc="|x|; complex x gives its (real) modulus. The gradient at 0 is 0 (sign(0)), as "
                "in PyTorch.")
EXP = unary("exp", np.exp, INEXACT, vjp=_chain(lambda b, x, out: conj(b, out)))
LOG = unary("log", np.log, INEXACT, vjp=lambda b, n, g: (b.div(g, conj(b, n.inputs[0])),))
SQRT = unary("sqrt", np.sqrt, INEXACT,
             vjp=lambda b, n, g: (b.div(g, conj(b, b.mul(n.out, scalar(b, 2.0, n.out)))),))
RSQRT = unary("rsqrt", lambda x: 1 / np.sqrt(x), doc="1/sqrt(x): one op for layer/batch norm.",
              vjp=_chain(lambda b, x, out: b.mul(scalar(b, -0.5, x), b.div(out, x))))
TANH = unary("tanh", np.tanh,
             vjp=_chain(lambda b, x, out: b.sub(scalar(b, 1.0, x), b.mul(out, out))))
SIGMOID = unary("sigmoid", _sigmoid, doc="A primitive so it is evaluated without overflow.",
                vjp=_chain(lambda b, x, out: b.mul(out, b.sub(scalar(b, 1.0, x), out))))
RELU = unary("relu", lambda x: np.maximum(x, 0), NUMERIC, vjp=_relu_vjp)
ERF = unary("erf", lambda x: _erf(x), doc="The error function (GELU and its gradient).",
            vjp=_chain(lambda b, x, out: b.mul(scalar(b, 2 / math.sqrt(math.pi), x),
                                               b.exp(b.neg(b.mul(x, x))))))


def _gelu_decompose(b: Any, x: Any, approximate: str) -> Any:
    """0.5 x (1 + erf(x / sqrt 2)), or PyTorch's tanh approximation."""
    one = scalar(b, 1.0, x)
    if approximate == "tanh":
        cube = b.mul(x, b.mul(x, x))
        inner = b.mul(scalar(b, math.sqrt(2 / math.pi), x),
                      b.add(x, b.mul(scalar(b, 0.044715, x), cube)))
        gate = b.add(one, b.tanh(inner))
    else:
        gate = b.add(one, b.erf(b.mul(x, scalar(b, 1 / math.sqrt(2), x))))
    return b.mul(b.mul(scalar(b, 0.5, x), x), gate)


GELU = defop("gelu", ("x",), _unary_infer("gelu", FLOATS), decompose=_gelu_decompose,
             attrs={"approximate": Attr("str", "none", ("none", "tanh"))},
             traits={Trait.UNARY, Trait.ELEMENTWISE},
             doc="A composite over erf (or tanh), so its gradient and its compiled form come "
                 "from those primitives.")
LEAKY_RELU = defop(
    "leaky_relu", ("x",), _unary_infer("leaky_relu", FLOATS),
    decompose=lambda b, x, negative_slope: b.where(
        b.gt(x, scalar(b, 0.0, x)), x, b.mul(x, scalar(b, negative_slope, x))),
    attrs={"negative_slope": Attr("float", 0.01)}, traits={Trait.UNARY, Trait.ELEMENTWISE},
    doc="where(x > 0, x, slope * x): its gradient at 0 is the slope, as in PyTorch.")
LOG1P = unary("log1p", np.log1p, doc="log(1 + x), exact for tiny x (where 1 + x rounds to 1).",
              vjp=lambda b, n, g: (b.div(g, b.add(scalar(b, 1.0, n.inputs[0]), n.inputs[0])),))
HARDTANH = defop(
    "hardtanh", ("x",), _unary_infer("hardtanh", FLOATS),
    decompose=lambda b, x, min_val, max_val: b.where(
        b.le(x, scalar(b, min_val, x)), scalar(b, min_val, x),
        b.where(b.ge(x, scalar(b, max_val, x)), scalar(b, max_val, x), x)),
    attrs={"min_val": Attr("float", -1.0), "max_val": Attr("float", 1.0)},
    traits={Trait.UNARY, Trait.ELEMENTWISE},
    doc="x clamped to [min_val, max_val]; as in PyTorch, no gradient at or beyond the bounds.")
SIN = unary("sin", np.sin, vjp=_chain(lambda b, x, out: b.cos(x)))
COS = unary("cos", np.cos, vjp=_chain(lambda b, x, out: b.neg(b.sin(x))))
ATAN = unary("atan", np.arctan, doc="The arc tangent: a primitive, as no composite of the "
             "others gives it exactly (atan2 is a composite over it).",
             vjp=_chain(lambda b, x, out: b.div(scalar(b, 1.0, x),
                                                b.add(scalar(b, 1.0, x), b.mul(x, x)))))
FLOOR = unary("floor", np.floor, vjp=zero_vjp)
CEIL = unary("ceil", np.ceil, vjp=zero_vjp)
SIGN = unary("sign", lambda x: np.where(x == x, np.sign(x), 0), NUMERIC, vjp=zero_vjp,
             doc="-1, 0 or 1; +-0 and NaN give +0, as in PyTorch (NumPy's sign of NaN is NaN).")
LOGICAL_NOT = unary("logical_not", np.logical_not, (DType.bool,), vjp=zero_vjp)


def _binary_infer(name: str, allowed: tuple[DType, ...], result: DType | None
                  ) -> Callable[..., TensorType]:
    def infer(x: TensorType, y: TensorType) -> TensorType:
        dtype = same_dtype(name, x, y)
        require_dtype(name, x, allowed, "inputs")
        return TensorType(result or dtype, broadcast_shapes(name, x.shape, y.shape))
    return infer


def binary(name: str, fn: Callable[..., np.ndarray], allowed: tuple[DType, ...] = NUMERIC,
           result: DType | None = None, traits: frozenset[Trait] = frozenset(),
           vjp: Callable[..., Any] | None = zero_vjp) -> OpDef:
    def ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.asarray(fn(x, y))
        return out.astype(result.np if result else x.dtype, copy=False)
    return defop(name, ("x", "y"), _binary_infer(name, allowed, result), ref=ref, vjp=vjp,
                 traits={Trait.BINARY, Trait.ELEMENTWISE, *traits})


# Binary VJPs return cotangents in the broadcast shape; the autodiff pass sums them back.
def _div_vjp(b: Any, n: Any, g: Any) -> tuple[Any, Any]:
    x, y = n.inputs
    y = conj(b, y)
    return b.div(g, y), b.neg(b.div(b.mul(g, conj(b, n.out)), y))


def _pow_vjp(b: Any, n: Any, g: Any) -> tuple[Any, Any]:
    """PyTorch's choices: no base gradient where the exponent is 0; no exponent gradient where
    the base is 0 and the exponent (its real part) >= 0 (where log(0) would make it nan);
    complex factors conjugated."""
    x, y = n.inputs
    zero = zeros_like(b, n.out)
    dx = b.mul(g, conj(b, b.mul(y, b.pow(x, b.sub(y, scalar(b, 1.0, y))))))
    dx = b.where(b.eq(y, scalar(b, 0.0, y)), zero, dx)
    dy = b.mul(g, conj(b, b.mul(n.out, b.log(x))))
    y_real = b.real(y) if b.type_of(y).dtype.is_complex else y
    at_zero = b.logical_and(b.eq(x, scalar(b, 0.0, x)), b.ge(y_real, scalar(b, 0.0, y_real)))
    return dx, b.where(at_zero, zero, dy)


def _extremum_vjp(wins: str) -> Callable[..., Any]:
    """maximum/minimum: the gradient goes to the larger (smaller) input; ties split it in half,
    as PyTorch does."""
    def vjp(b: Any, n: Any, g: Any) -> tuple[Any, Any]:
        x, y = n.inputs
        zero = zeros_like(b, n.out)
        half = b.mul(g, scalar(b, 0.5, g))
        tie = b.eq(x, y)
        x_wins = getattr(b, wins)(x, y)
        dx = b.where(tie, half, b.where(x_wins, g, zero))
        dy = b.where(tie, half, b.where(x_wins, zero, g))
        return dx, dy
    return vjp


ADD = binary("add", np.add, NUMERIC + COMPLEX, traits=_COMMUTATIVE_ARITH,
             vjp=lambda b, n, g: (g, g))
SUB = binary("sub", np.subtract, NUMERIC + COMPLEX, traits=_ARITH,
             vjp=lambda b, n, g: (g, b.neg(g)))
MUL = binary("mul", np.multiply, NUMERIC + COMPLEX, traits=_COMMUTATIVE_ARITH,
             vjp=lambda b, n, g: (b.mul(g, conj(b, n.inputs[1])),
                                  b.mul(g, conj(b, n.inputs[0]))))
DIV = binary("div", np.divide, INEXACT, vjp=_div_vjp)
POW = binary("pow", np.power, INEXACT, vjp=_pow_vjp)
MAXIMUM = binary("maximum", np.maximum, traits=_COMMUTATIVE_ARITH, vjp=_extremum_vjp("gt"))
MINIMUM = binary("minimum", np.minimum, traits=_COMMUTATIVE_ARITH, vjp=_extremum_vjp("lt"))
ANY = NUMERIC + (DType.bool,)
EQ = binary("eq", np.equal, ANY + COMPLEX, DType.bool, _COMPARE | {Trait.COMMUTATIVE})
NE = binary("ne", np.not_equal, ANY + COMPLEX, DType.bool, _COMPARE | {Trait.COMMUTATIVE})
LT = binary("lt", np.less, NUMERIC, DType.bool, _COMPARE)
LE = binary("le", np.less_equal, NUMERIC, DType.bool, _COMPARE)
GT = binary("gt", np.greater, NUMERIC, DType.bool, _COMPARE)
GE = binary("ge", np.greater_equal, NUMERIC, DType.bool, _COMPARE)
LOGICAL_AND = binary("logical_and", np.logical_and, (DType.bool,), traits=_COMMUTATIVE)
LOGICAL_OR = binary("logical_or", np.logical_or, (DType.bool,), traits=_COMMUTATIVE)


# ---- bitwise: integers (and bools, where they are the logical ops), no gradient ----------------
def _shift_ref(left: bool) -> Callable[..., np.ndarray]:
    """PyTorch's shifts: a count outside 0..bits-1 shifts everything out (0 to the left; the sign
    to the right, an arithmetic shift; uint8 has none: 0), where C leaves it undefined."""
    def ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        bits = x.dtype.itemsize * 8
        outside = (y < 0) | (y >= bits)
        if left or x.dtype.kind == "u":
            shift = np.left_shift if left else np.right_shift
            return np.where(outside, 0, shift(x, np.where(outside, 0, y))).astype(x.dtype)
        return np.right_shift(x, np.where(outside, bits - 1, y))
    return ref


_INTEGRAL = INTS + (DType.bool,)
BITWISE_AND = binary("bitwise_and", np.bitwise_and, _INTEGRAL, traits=_COMMUTATIVE_ARITH)
BITWISE_OR = binary("bitwise_or", np.bitwise_or, _INTEGRAL, traits=_COMMUTATIVE_ARITH)
BITWISE_XOR = binary("bitwise_xor", np.bitwise_xor, _INTEGRAL, traits=_COMMUTATIVE_ARITH)
BITWISE_NOT = unary("bitwise_not", np.invert, _INTEGRAL, vjp=zero_vjp, traits=_ARITH)
BITWISE_LEFT_SHIFT = binary("bitwise_left_shift", _shift_ref(True), INTS, traits=_ARITH)
BITWISE_RIGHT_SHIFT = binary("bitwise_right_shift", _shift_ref(False), INTS, traits=_ARITH)


def _where_infer(cond: TensorType, x: TensorType, y: TensorType) -> TensorType:
    require_dtype("where", cond, (DType.bool,), "condition")
    dtype = same_dtype("where", x, y)
    return TensorType(dtype, broadcast_shapes("where", cond.shape, x.shape, y.shape))


def _where_vjp(b: Any, n: Any, g: Any) -> tuple[None, Any, Any]:
    cond = n.inputs[0]
    zero = zeros_like(b, n.out)
    return None, b.where(cond, g, zero), b.where(cond, zero, g)


WHERE = defop("where", ("cond", "x", "y"), _where_infer,
              ref=lambda c, x, y: select(c, x, y).astype(x.dtype, copy=False),
              vjp=_where_vjp, traits={Trait.ELEMENTWISE, Trait.ARITHMETIC})


def _cast_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """Float (or complex) to float casts pass the gradient back in the source dtype (a complex
    cotangent of a real source keeps its real part, torch's rule); others have none."""
    source = b.type_of(n.inputs[0]).dtype
    return (b.cast(g, dtype=source) if source.is_inexact and b.type_of(g).dtype.is_inexact
            else None,)


def _cast_ref(x: np.ndarray, dtype: DType) -> np.ndarray:
    """x.astype; complex to real keeps the real part (torch's cast, without NumPy's warning)."""
    if x.dtype.kind == "c" and not dtype.is_complex:
        x = x.real
    if x.dtype.kind == "f" and dtype.is_int and dtype.itemsize < 4:
        # torch's float -> uint8/int8/int16: truncated to int64 (uint8) or int32, then wrapped
        # (-1.5 -> 255; NaN, infinities and values past the wide int, its minimum on x86, -> 0)
        with np.errstate(invalid="ignore"):
            return x.astype(np.int64 if dtype.is_unsigned else np.int32).astype(dtype.np)
    return x.astype(dtype.np)


CAST = defop("cast", ("x",), lambda x, dtype: x.with_dtype(dtype), attrs={"dtype": Attr("dtype")},
             ref=_cast_ref, vjp=_cast_vjp,
              traits={Trait.UNARY, Trait.ELEMENTWISE, Trait.ARITHMETIC})


# ---- activations: composites over the primitives above, with PyTorch's gradients at the kinks --
def _activation(name: str, decompose: Callable[..., Any], doc: str,
                attrs: dict[str, Attr] | None = None) -> OpDef:
    return defop(name, ("x",), _unary_infer(name, FLOATS), decompose=decompose, attrs=attrs,
                 traits={Trait.UNARY, Trait.ELEMENTWISE}, doc=doc)


def _negative_part(b: Any, x: Any) -> Any:
    """where(x > 0, 0, x): the exp branches of elu/celu read this, so the branch where() drops
    never overflows into a 0 * inf gradient."""
    return b.where(b.gt(x, scalar(b, 0.0, x)), zeros_like(b, x), x)


def _elu(b: Any, x: Any, alpha: float, input_scale: float = 1.0) -> Any:
    """where(x > 0, x, alpha (exp(x * input_scale) - 1)); the gradient at 0 is the negative
    branch's, as in PyTorch."""
    e = b.exp(b.mul(_negative_part(b, x), scalar(b, input_scale, x)))
    negative = b.mul(scalar(b, alpha, x), b.sub(e, scalar(b, 1.0, x)))
    return b.where(b.gt(x, scalar(b, 0.0, x)), x, negative)


def _softplus(b: Any, x: Any, beta: float, threshold: float) -> Any:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's linear
    branch); the exp reads 0 there, so it never overflows."""
    bx = b.mul(x, scalar(b, beta, x))
    linear = b.gt(bx, scalar(b, threshold, x))
    smooth = b.log1p(b.exp(b.where(linear, zeros_like(b, x), bx)))
    return b.where(linear, x, b.div(smooth, scalar(b, beta, x)))


def _shrink(b: Any, x: Any, lambd: float, soft: bool) -> Any:
    """x beyond [-lambd, lambd] (moved towards 0 by lambd if soft), else 0."""
    above, below = b.gt(x, scalar(b, lambd, x)), b.lt(x, scalar(b, -lambd, x))
    hi = b.sub(x, scalar(b, lambd, x)) if soft else x
    lo = b.add(x, scalar(b, lambd, x)) if soft else x
    return b.where(above, hi, b.where(below, lo, zeros_like(b, x)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_ALPHA = {"alpha": Attr("float", 1.0)}
_LAMBD = {"lambd": Attr("float", 0.5)}

SILU = _activation("silu", lambda b, x: b.mul(x, b.sigmoid(x)), "x * sigmoid(x) (swish).")
ELU = _activation("elu", _elu, "x if x > 0 else alpha (exp(x) - 1).", _ALPHA)
SELU = _activation("selu", lambda b, x: b.mul(scalar(b, _SELU_SCALE, x), _elu(b, x, _SELU_ALPHA)),
                   "scale * elu(x, alpha) with the self-normalising constants.")
CELU = _activation("celu", lambda b, x, alpha: _elu(b, x, alpha, 1.0 / alpha),
                   "x if x > 0 else alpha (exp(x / alpha) - 1).", _ALPHA)
SOFTPLUS = _activation("softplus", _softplus, "log(1 + exp(beta x)) / beta, linear above the "
                       "threshold.", {"beta": Attr("float", 1.0), "threshold": Attr("float", 20.0)})
MISH = _activation("mish", lambda b, x: b.mul(x, b.tanh(b.softplus(x))),
                   "x * tanh(softplus(x)).")
SOFTSIGN = _activation("softsign",
                       lambda b, x: b.div(x, b.add(scalar(b, 1.0, x), b.abs(x))), "x / (1 + |x|).")
HARDSIGMOID = _activation(
    "hardsigmoid", lambda b, x: b.where(
        b.le(x, scalar(b, -3.0, x)), zeros_like(b, x), b.where(
            b.ge(x, scalar(b, 3.0, x)), scalar(b, 1.0, x),
            b.add(b.div(x, scalar(b, 6.0, x)), scalar(b, 0.5, x)))),
    "x / 6 + 1/2 clamped to [0, 1]; no gradient at or beyond -3 and 3, as in PyTorch.")
HARDSWISH = _activation(
    "hardswish", lambda b, x: b.where(
        b.le(x, scalar(b, -3.0, x)), zeros_like(b, x), b.where(
            b.lt(x, scalar(b, 3.0, x)),
            b.div(b.mul(x, b.add(x, scalar(b, 3.0, x))), scalar(b, 6.0, x)), x)),
    "x (x + 3) / 6 between -3 and 3, 0 below, x above; PyTorch's gradient at -3 (0) and 3 (1).")
RELU6 = _activation("relu6", lambda b, x: b.hardtanh(x, min_val=0.0, max_val=6.0),
                    "min(max(x, 0), 6): hardtanh(x, 0, 6), no gradient at 0 and 6.")
LOGSIGMOID = _activation(
    "logsigmoid", lambda b, x: b.neg(b.softplus(b.neg(x), beta=1.0, threshold=20.0)),
    "log(sigmoid(x)) = -softplus(-x): no overflow for large |x|.")
TANHSHRINK = _activation("tanhshrink", lambda b, x: b.sub(x, b.tanh(x)), "x - tanh(x).")
SOFTSHRINK = _activation("softshrink", lambda b, x, lambd: _shrink(b, x, lambd, soft=True),
                         "x - lambd above lambd, x + lambd below -lambd, else 0.", _LAMBD)
HARDSHRINK = _activation("hardshrink", lambda b, x, lambd: _shrink(b, x, lambd, soft=False),
                         "x outside [-lambd, lambd], else 0.", _LAMBD)


# two activations that read more than one element: a weight per channel, a gate from a half
def _prelu_infer(x: TensorType, weight: TensorType) -> TensorType:
    require_dtype("prelu", x, FLOATS)
    same_dtype("prelu", x, weight)
    channels = x.shape[1] if x.rank >= 2 else 1
    if weight.rank > 1 or weight.rank == 1 and weight.shape[0] not in (1, channels):
        raise DlgShapeError(f"prelu: weight must be one slope ([] or [1]) or one per channel "
                            f"([{channels}], axis 1 of {x}), got {weight}")
    return x


def _prelu_decompose(b: Any, x: Any, weight: Any) -> Any:
    rank, w = b.type_of(x).rank, weight
    if b.type_of(weight).rank == 1:  # along axis 1
        size = b.type_of(weight).shape[0]
        w = b.reshape(weight, shape=(size,) + (1,) * (rank - 2) if rank >= 2 else ())
    return b.where(b.gt(x, scalar(b, 0.0, x)), x, b.mul(w, x))


def _glu_infer(x: TensorType, axis: int) -> TensorType:
    require_dtype("glu", x, FLOATS)
    a = normalize_axis("glu", axis, x.rank)
    size = x.shape[a] if x.rank else 1
    if not isinstance(size, int) or size % 2:
        raise DlgShapeError(f"glu: axis {axis} of {x} must have an even, known size")
    return x.with_shape(x.shape[:a] + (size // 2,) + x.shape[a + 1:])


def _glu_decompose(b: Any, x: Any, axis: int) -> Any:
    t = b.type_of(x)
    a = normalize_axis("glu", axis, t.rank)
    half = t.shape[a] // 2
    value, gate = b.split(x, axis=a, sizes=(half, half))
    return b.mul(value, b.sigmoid(gate))


PRELU = defop("prelu", ("x", "weight"), _prelu_infer, decompose=_prelu_decompose,
              doc="where(x > 0, x, weight * x), one weight per channel (axis 1) or one for all.")
GLU = defop("glu", ("x",), _glu_infer, decompose=_glu_decompose, attrs={"axis": Attr("int", -1)},
            doc="a * sigmoid(b), a and b the two halves of x along `axis`.")
