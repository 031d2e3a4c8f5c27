"""More elementwise math, each a decomposition into the primitives of `elementwise.py` that gives
PyTorch's values exactly (so gradients and compiled forms come from those primitives):
rounding (trunc, frac, round with `decimals`), square, reciprocal, exp2, log2, log10, sinh,
cosh, the rounded divisions (floor_divide, remainder, fmod) and the float classes (isnan,
isinf, isfinite).

Where one rounding in the input's dtype would differ from the correctly rounded result (log2 of
a power of two, a quotient that rounds up to an integer before it is floored) the work is done
in float64 and rounded once: exact for f16, f32 and integers below 2^52; f64 inputs round twice.
Left out because they do not decompose exactly: expm1, asin, acos (atan is a primitive of
`elementwise.py`; atan2 is a function over it, `dlg/functions/pointwise.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, NUMERIC, broadcast_shapes, require_dtype, same_dtype, scalar
from dlg.ir.ops.opdef import Attr, OpDef, Trait, defop
from dlg.ir.types import TensorType

_ANY = NUMERIC + (DType.bool,)


def _unary(name: str, decompose: Callable[..., Any], doc: str, allowed: tuple[DType, ...] = FLOATS,
           result: DType | None = None, attrs: dict[str, Attr] | None = None) -> OpDef:
    def infer(x: TensorType, **_: Any) -> TensorType:
        require_dtype(name, x, allowed)
        return x.with_dtype(result) if result else x
    return defop(name, ("x",), infer, attrs=attrs, decompose=decompose,
                 traits={Trait.UNARY, Trait.ELEMENTWISE}, doc=doc)


def _binary(name: str, decompose: Callable[..., Any], doc: str) -> OpDef:
    def infer(x: TensorType, y: TensorType) -> TensorType:
        dtype = same_dtype(name, x, y)
        require_dtype(name, x, NUMERIC, "inputs")
        return TensorType(dtype, broadcast_shapes(name, x.shape, y.shape))
    return defop(name, ("x", "y"), infer, decompose=decompose,
                 traits={Trait.BINARY, Trait.ELEMENTWISE}, doc=doc)


def _in_f64(b: Any, fn: Callable[..., Any], *xs: Any) -> Any:
    """fn on float64 copies of xs, rounded back to their dtype once."""
    dtype = b.type_of(xs[0]).dtype
    if dtype == DType.f64:
        return fn(*xs)
    return b.cast(fn(*(b.cast(x, dtype=DType.f64) for x in xs)), dtype=dtype)


def _is_float(b: Any, x: Any) -> bool:
    return b.type_of(x).dtype.is_float


# ---- rounding --------------------------------------------------------------------------------
def _trunc(b: Any, x: Any) -> Any:
    if not _is_float(b, x):
        return x
    return b.where(b.lt(x, scalar(b, 0, x)), b.ceil(x), b.floor(x))


def _half_even(b: Any, x: Any) -> Any:
    """Round half to even (NumPy's and PyTorch's nearbyint) from floor: x - floor(x) is exact,
    so no x + 0.5 rounds up before it is floored; inf and nan come through as themselves."""
    down = b.floor(x)
    rest = b.sub(x, down)
    odd = b.sub(down, b.mul(scalar(b, 2, x), b.floor(b.mul(down, scalar(b, 0.5, x)))))
    half = b.add(down, odd)
    up = b.add(down, scalar(b, 1, x))
    return b.where(b.gt(rest, scalar(b, 0.5, x)), up,
                   b.where(b.eq(rest, scalar(b, 0.5, x)), half, down))


def _round(b: Any, x: Any, decimals: int) -> Any:
    """PyTorch's round(x, decimals): nearbyint(x * 10^d) / 10^d, or nearbyint(x / 10^-d) *
    10^-d for negative d, in the input's dtype."""
    if not _is_float(b, x):
        return x
    if decimals == 0:
        return _half_even(b, x)
    scale = scalar(b, 10.0 ** abs(decimals), x)
    if decimals > 0:
        return b.div(_half_even(b, b.mul(x, scale)), scale)
    return b.mul(_half_even(b, b.div(x, scale)), scale)


TRUNC = _unary("trunc", _trunc, "Rounds towards zero; integers stay as they are.", NUMERIC)
FRAC = _unary("frac", lambda b, x: b.sub(x, _trunc(b, x)), "x - trunc(x), with x's sign.")
ROUND = _unary("round", _round, "Rounds half to even, at `decimals` decimal places.", NUMERIC,
               attrs={"decimals": Attr("int", 0)})

# ---- powers, logarithms, hyperbolic functions ----------------------------------------------------
SQUARE = _unary("square", lambda b, x: b.mul(x, x), "x * x.", NUMERIC)
RECIPROCAL = _unary("reciprocal", lambda b, x: b.div(scalar(b, 1, x), x), "1 / x.")
EXP2 = _unary("exp2", lambda b, x: b.pow(scalar(b, 2, x), x), "2 ** x.")


def _log_base(base: float) -> Callable[..., Any]:
    def decompose(b: Any, x: Any) -> Any:
        return _in_f64(b, lambda v: b.mul(b.log(v), scalar(b, 1 / math.log(base), v)), x)
    return decompose


LOG2 = _unary("log2", _log_base(2), "log(x) / log(2), exact for powers of two.")
LOG10 = _unary("log10", _log_base(10), "log(x) / log(10), exact for powers of ten.")


def _sinh(b: Any, v: Any) -> Any:
    """(e^x - e^-x) / 2; x itself below 1e-4, where the difference cancels and x^3/6 is below
    float32's half ulp."""
    half = scalar(b, 0.5, v)
    wide = b.mul(half, b.sub(b.exp(v), b.exp(b.neg(v))))
    return b.where(b.lt(b.abs(v), scalar(b, 1e-4, v)), v, wide)


SINH = _unary("sinh", lambda b, x: _in_f64(b, lambda v: _sinh(b, v), x),
              "The hyperbolic sine (computed in float64).")
COSH = _unary("cosh", lambda b, x: _in_f64(
    b, lambda v: b.mul(scalar(b, 0.5, v), b.add(b.exp(v), b.exp(b.neg(v)))), x),
    "The hyperbolic cosine (computed in float64).")


# ---- rounded division ----------------------------------------------------------------------------
def _rounded(b: Any, x: Any, y: Any, rounder: str, remainder: bool) -> Any:
    """The quotient x / y rounded by `rounder` (floor or trunc), or what it leaves, x - q y:
    in float64, where both are exact for f32 and integer inputs."""
    def fn(u: Any, v: Any) -> Any:
        q = getattr(b, rounder)(b.div(u, v))
        return b.sub(u, b.mul(q, v)) if remainder else q
    dtype = b.type_of(x).dtype
    if dtype.is_float:
        return _in_f64(b, fn, x, y)
    return b.cast(fn(b.cast(x, dtype=DType.f64), b.cast(y, dtype=DType.f64)), dtype=dtype)


FLOOR_DIVIDE = _binary("floor_divide", lambda b, x, y: _rounded(b, x, y, "floor", False),
                       "floor(x / y) (Python's //); integers stay integers.")
REMAINDER = _binary("remainder", lambda b, x, y: _rounded(b, x, y, "floor", True),
                    "x - floor(x / y) y, with y's sign (Python's %).")
FMOD = _binary("fmod", lambda b, x, y: _rounded(b, x, y, "trunc", True),
               "x - trunc(x / y) y, with x's sign (C's fmod).")


# ---- float classes -------------------------------------------------------------------------------
def _isinf(b: Any, x: Any) -> Any:
    if not _is_float(b, x):
        return b.ne(x, x)
    return b.eq(b.abs(x), scalar(b, math.inf, x))


def _isfinite(b: Any, x: Any) -> Any:
    if not _is_float(b, x):
        return b.eq(x, x)
    return b.eq(b.sub(x, x), scalar(b, 0, x))  # inf - inf and nan - nan are nan


ISNAN = _unary("isnan", lambda b, x: b.ne(x, x), "Whether x is nan.", _ANY, DType.bool)
ISINF = _unary("isinf", _isinf, "Whether x is +inf or -inf.", _ANY, DType.bool)
ISFINITE = _unary("isfinite", _isfinite, "Whether x is neither inf nor nan.", _ANY, DType.bool)
