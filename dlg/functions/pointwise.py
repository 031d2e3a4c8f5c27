"""Elementwise functions of PyTorch that are compositions of registry ops: lerp, hypot, atan2,
logaddexp, logaddexp2, xlogy, heaviside, signbit, clamp_min, clamp_max, float_power,
nan_to_num, copysign, fmax/fmin, ldexp, isposinf/isneginf, isreal, positive,
addcmul/addcdiv and gcd/lcm.

These take only floats in PyTorch (but heaviside, signbit and the clamps), so integer tensors
are promoted first: to float32, or to the widest float among the operands (`floats`), from both
front doors alike. Each is written so that its gradient is PyTorch's also at ties and
infinities (logaddexp splits a tie in half through maximum/minimum, as torch does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError
from dlg.functions.args import describe, is_number, is_static, operands, tensor
from dlg.functions.elementwise import apply, clamp
from dlg.functions.front import Front
from dlg.ir.dtypes import DType, promote_types
from dlg.ir.ops.arith import FLOOR_DIVIDE, FMOD, ISINF, ISNAN, RECIPROCAL
from dlg.ir.ops.complexes import IMAG
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    ATAN,
    CAST,
    DIV,
    EQ,
    EXP,
    GE,
    GT,
    LE,
    LOG,
    LOG1P,
    LOGICAL_AND,
    LOGICAL_NOT,
    LOGICAL_OR,
    LT,
    MAXIMUM,
    MINIMUM,
    MUL,
    NE,
    NEG,
    POW,
    SQRT,
    SUB,
    WHERE,
)

_FLOAT_ORDER = (DType.f16, DType.f32, DType.f64)


def promoted(F: Front, values: Sequence[Any], whats: Sequence[str], dtype: DType | None = None
             ) -> list[Any]:
    """`values` as tensors of one dtype: `dtype` if given, else the widest float among the
    tensors, else the widest tensor dtype (PyTorch's promotion of tensors of one kind)."""
    for v, what in zip(values, whats):
        if not (F.is_tensor(v) or is_static(v)):
            raise DlgTypeError(f"{what} must be a tensor or a number, got {describe(F, v)}")
    have = [F.type_of(v).dtype for v in values if F.is_tensor(v)]
    if dtype is None:
        dtype = DType.f32
        for i, d in enumerate(have):
            dtype = d if i == 0 else promote_types(dtype, d)
    cast = [v if not F.is_tensor(v) or F.type_of(v).dtype == dtype else
            F.emit(CAST, v, dtype=dtype) for v in values]
    return operands(F, cast, whats)


def floats(F: Front, name: str, values: Sequence[Any], names: Sequence[str]) -> list[Any]:
    """`values` as tensors of one float dtype: integer tensors and numbers become float32;
    complex ones are refused (the float functions would drop their imaginary parts)."""
    have = [F.type_of(v).dtype for v in values if F.is_tensor(v)]
    if any(d.is_complex for d in have):
        raise DlgTypeError(f"{name}: complex tensors are not supported, got "
                           f"{', '.join(str(d) for d in have)}")
    widest = max((d for d in have if d.is_float), key=_FLOAT_ORDER.index, default=DType.f32)
    return promoted(F, values, [f"{name}'s {n}" for n in names], widest)


def _scalar(F: Front, like: Any, value: float) -> Any:
    return F.lift(value, F.type_of(like).dtype)


def lerp(F: Front, x: Any, end: Any, weight: Any) -> Any:
    """x + weight * (end - x), as PyTorch computes it: from `end` backwards where |weight| >=
    0.5, so that weight 1 gives `end` exactly. x and end must be one float dtype."""
    start, stop = (tensor(F, v, f"lerp's {n}") for v, n in ((x, "input"), (end, "end")))
    ts, te = F.type_of(start), F.type_of(stop)
    if ts.dtype != te.dtype or not ts.dtype.is_float:
        raise DlgTypeError(f"lerp: input and end must be one float dtype, got {ts} and {te}")
    if not (F.is_tensor(weight) or is_static(weight)):
        raise DlgTypeError(f"lerp: weight must be a tensor or a number, got "
                           f"{describe(F, weight)}")
    w = weight if F.is_tensor(weight) else F.lift(float(weight), ts.dtype)
    if F.type_of(w).rank == 0 and F.type_of(w).dtype.is_float:  # a 0-d weight takes x's dtype
        w = F.emit(CAST, w, dtype=ts.dtype)
    if F.type_of(w).dtype != ts.dtype:
        raise DlgTypeError(f"lerp: weight must have the input's dtype, got {F.type_of(w)} "
                           f"and {ts}")
    step = F.emit(SUB, stop, start)
    low = F.emit(ADD, start, F.emit(MUL, w, step))
    high = F.emit(SUB, stop, F.emit(MUL, step, F.emit(SUB, _scalar(F, w, 1.0), w)))
    return F.emit(WHERE, F.emit(LT, F.emit(ABS, w), _scalar(F, w, 0.5)), low, high)


def hypot(F: Front, x: Any, y: Any) -> Any:
    """sqrt(x^2 + y^2); inf where either is infinite, as C's hypot."""
    a, b = floats(F, "hypot", (x, y), ("input", "other"))
    root = F.emit(SQRT, F.emit(ADD, F.emit(MUL, a, a), F.emit(MUL, b, b)))
    infinite = F.emit(LOGICAL_OR, F.emit(ISINF, a), F.emit(ISINF, b))
    return F.emit(WHERE, infinite, _scalar(F, root, math.inf), root)  # even beside a NaN


def atan2(F: Front, x: Any, y: Any) -> Any:
    """The angle of the point (y, x), PyTorch's atan2(input=x, other=y): atan(x / y), moved by
    +-pi where y is negative; signed zeros and infinities as C's atan2."""
    a, b = floats(F, "atan2", (x, y), ("input", "other"))
    a_zero, b_zero = (F.emit(EQ, v, _scalar(F, v, 0.0)) for v in (a, b))
    both_zero = F.emit(LOGICAL_AND, a_zero, b_zero)
    # a / +0 is +-inf with a's sign (atan2(a, +-0) is +-pi/2), 0 / 1 keeps a's zero's sign
    safe = F.emit(WHERE, b_zero, F.emit(CAST, a_zero, dtype=F.type_of(b).dtype), b)
    base = F.emit(ATAN, F.emit(DIV, a, safe))
    turn = F.emit(WHERE, _signbit(F, a), _scalar(F, a, -math.pi), _scalar(F, a, math.pi))
    behind = F.emit(LOGICAL_AND, _signbit(F, b), F.emit(LOGICAL_OR, both_zero, F.emit(
        LT, b, _scalar(F, b, 0.0))))
    infinite = F.emit(LOGICAL_AND, F.emit(ISINF, a), F.emit(ISINF, b))
    corner = F.emit(MUL, F.emit(WHERE, behind, _scalar(F, a, 0.75), _scalar(F, a, 0.25)), turn)
    angle = F.emit(WHERE, behind, F.emit(ADD, base, turn), base)
    return F.emit(WHERE, infinite, corner, angle)


def _logaddexp(F: Front, name: str, x: Any, y: Any, base: float) -> Any:
    """log_base(base^x + base^y) as max + log1p(base^(min - max)) / ln(base); the gap is 0
    where x == y, so that equal infinities give themselves, not NaN."""
    a, b = floats(F, name, (x, y), ("input", "other"))
    high, low = F.emit(MAXIMUM, a, b), F.emit(MINIMUM, a, b)
    gap = F.emit(WHERE, F.emit(EQ, a, b), _scalar(F, a, 0.0), F.emit(SUB, low, high))
    ln = math.log(base)
    power = F.emit(EXP, gap if base == math.e else F.emit(MUL, gap, _scalar(F, a, ln)))
    rest = F.emit(LOG1P, power)
    return F.emit(ADD, high, rest if base == math.e else F.emit(MUL, rest, _scalar(F, a, 1 / ln)))


def logaddexp(F: Front, x: Any, y: Any) -> Any:
    """log(exp(x) + exp(y)) without overflow."""
    return _logaddexp(F, "logaddexp", x, y, math.e)


def logaddexp2(F: Front, x: Any, y: Any) -> Any:
    """log2(2^x + 2^y) without overflow."""
    return _logaddexp(F, "logaddexp2", x, y, 2.0)


def xlogy(F: Front, x: Any, y: Any) -> Any:
    """x * log(y), 0 where x is 0 (unless y is NaN). Where x is 0 the value is x times log(y)
    held constant (0 where log(y) is not finite), so the gradient in x stays log(y) there, as
    torch's (the Gamma/Beta/Dirichlet densities at concentration 1 differentiate through it)."""
    a, b = floats(F, "xlogy", (x, y), ("input", "other"))
    at_zero = F.emit(EQ, a, _scalar(F, a, 0.0))
    log = F.emit(LOG, b)
    finite = F.emit(LOGICAL_NOT, F.emit(LOGICAL_OR, F.emit(ISINF, log), F.emit(ISNAN, log)))
    held = F.emit(STOP_GRADIENT, F.emit(WHERE, finite, log, _scalar(F, a, 0.0)))
    # the product reads y only where x is not 0: log(0) would put 0 * inf in its gradient
    product = F.emit(MUL, a, F.emit(LOG, F.emit(WHERE, at_zero, _scalar(F, a, 1.0), b)))
    zero = F.emit(WHERE, at_zero, F.emit(MUL, a, held), product)
    return F.emit(WHERE, F.emit(ISNAN, b), b, zero)


def heaviside(F: Front, x: Any, values: Any) -> Any:
    """The step function: 0 below 0, 1 above, `values` at 0 (x and values of one dtype)."""
    a = F.type_of(tensor(F, x, "heaviside's input"))
    v = F.type_of(tensor(F, values, "heaviside's values"))
    if a.dtype != v.dtype:
        raise DlgTypeError(f"heaviside: input and values must be one dtype, got {a} and {v}")
    step = F.emit(CAST, F.emit(GT, x, F.lift(0, a.dtype)), dtype=a.dtype)
    return F.emit(WHERE, F.emit(EQ, x, F.lift(0, a.dtype)), values, step)


def _signbit(F: Front, x: Any) -> Any:
    """x < 0, and -0.0 (whose reciprocal is -inf); a NaN's sign is not seen."""
    below = F.emit(LT, x, F.lift(0, F.type_of(x).dtype))
    if not F.type_of(x).dtype.is_float:
        return below
    negative_zero = F.emit(LOGICAL_AND, F.emit(EQ, x, _scalar(F, x, 0.0)),
                           F.emit(LT, F.emit(RECIPROCAL, x), _scalar(F, x, 0.0)))
    return F.emit(LOGICAL_OR, below, negative_zero)


def signbit(F: Front, x: Any) -> Any:
    """Whether x's sign bit is set (x < 0 or x is -0.0), as bools (never, for bools)."""
    x = tensor(F, x, "signbit's argument")
    if F.type_of(x).dtype == DType.bool:
        x = F.emit(CAST, x, dtype=DType.i32)
    return _signbit(F, x)


def clamp_min(F: Front, x: Any, min: Any) -> Any:  # noqa: A002
    """x limited from below (clamp with only min)."""
    return clamp(F, x, min, None)


def clamp_max(F: Front, x: Any, max: Any) -> Any:  # noqa: A002
    """x limited from above (clamp with only max)."""
    return clamp(F, x, None, max)


def float_power(F: Front, x: Any, exponent: Any) -> Any:
    """x ** exponent in float64, whatever the operands' dtypes (PyTorch's float_power)."""
    a, b = promoted(F, (x, exponent), ("float_power's input", "float_power's exponent"),
                    DType.f64)
    return apply(F, POW, [a, b], {})


def nan_to_num(F: Front, x: Any, nan: Any = 0.0, posinf: Any = None, neginf: Any = None) -> Any:
    """x with NaN, +inf and -inf replaced: by 0 and by the dtype's largest and lowest finite
    values unless given (torch.nan_to_num); integer and bool tensors hold none of them. A where,
    so the gradient passes where x is finite."""
    dtype = F.type_of(tensor(F, x, "nan_to_num's argument")).dtype
    for name, v in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if v is not None and not is_number(v):
            raise DlgTypeError(f"nan_to_num: {name} must be a number, got {describe(F, v)}")
    if not dtype.is_float:
        return x
    info = np.finfo(dtype.np)
    high, low = (F.lift(default if v is None else v, dtype)
                 for v, default in ((posinf, info.max), (neginf, info.min)))
    infinite = F.emit(WHERE, F.emit(GT, x, _scalar(F, x, 0)), high, low)
    finite = F.emit(WHERE, F.emit(ISINF, x), infinite, x)
    return F.emit(WHERE, F.emit(ISNAN, x), F.lift(0.0 if nan is None else nan, dtype), finite)


# ---- signs, NaN-ignoring extrema, powers of two, infinities -----------------------------------
def copysign(F: Front, x: Any, y: Any) -> Any:
    """|x| with y's sign bit (-0.0 counts as negative), in float."""
    a, b = floats(F, "copysign", (x, y), ("input", "other"))
    size = F.emit(ABS, a)
    return F.emit(WHERE, _signbit(F, b), F.emit(NEG, size), size)


def _nan_ignoring(name: str, keep: Any) -> Any:
    def fn(F: Front, x: Any, y: Any) -> Any:
        a, b = promoted(F, (x, y), (f"{name}'s input", f"{name}'s other"))
        if not F.type_of(a).dtype.is_float:
            return F.emit(WHERE, F.emit(keep, a, b), a, b)
        # ties and a NaN other go to x, as torch's gradient does; NaN only where both are
        chosen = F.emit(LOGICAL_OR, F.emit(keep, a, b), F.emit(ISNAN, b))
        return F.emit(WHERE, chosen, a, b)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The {'larger' if name == 'fmax' else 'smaller'} of x and y, elementwise; "
                  "a NaN loses to a number (NaN only where both are).")
    return fn


fmax = _nan_ignoring("fmax", GE)
fmin = _nan_ignoring("fmin", LE)


def ldexp(F: Front, x: Any, other: Any) -> Any:
    """x * 2 ** other, in float (torch's composite: its gradient reaches other too)."""
    a, b = floats(F, "ldexp", (x, other), ("input", "other"))
    return F.emit(MUL, a, F.emit(POW, _scalar(F, b, 2.0), b))


def _infinity(name: str, positive: bool) -> Any:
    def fn(F: Front, x: Any) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        dtype = F.type_of(x).dtype
        if not dtype.is_float:
            return F.emit(NE, x, x)  # never infinite: all false
        return F.emit(EQ, x, _scalar(F, x, math.inf if positive else -math.inf))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Whether x is {'+' if positive else '-'}inf, as bools."
    return fn


isposinf = _infinity("isposinf", True)
isneginf = _infinity("isneginf", False)


def isreal(F: Front, x: Any) -> Any:
    """Where the imaginary part is 0 (true everywhere for real tensors), as bools of x's
    shape."""
    x = tensor(F, x, "isreal's argument")
    if F.type_of(x).dtype.is_complex:
        part = F.emit(IMAG, x)
        return F.emit(EQ, part, F.lift(0, F.type_of(part).dtype))
    return F.emit(LOGICAL_OR, F.emit(EQ, x, x), F.emit(NE, x, x))


def positive(F: Front, x: Any) -> Any:
    """x itself (torch refuses bools)."""
    x = tensor(F, x, "positive's argument")
    if F.type_of(x).dtype == DType.bool:
        raise DlgTypeError("positive: not defined for bool tensors (torch's rule)")
    return x


# ---- input + value * t1 * t2 (or / t2): the optimizers' updates ---------------------------------
def addcmul(F: Front, x: Any, tensor1: Any, tensor2: Any, value: Any = 1) -> Any:
    """x + value * tensor1 * tensor2, the three promoted to one dtype and broadcast."""
    return _addc(F, "addcmul", MUL, x, tensor1, tensor2, value)


def addcdiv(F: Front, x: Any, tensor1: Any, tensor2: Any, value: Any = 1) -> Any:
    """x + value * tensor1 / tensor2 (integer tensors are refused, as torch refuses them)."""
    return _addc(F, "addcdiv", DIV, x, tensor1, tensor2, value)


def _addc(F: Front, name: str, op: Any, x: Any, t1: Any, t2: Any, value: Any) -> Any:
    if not is_number(value):
        raise DlgTypeError(f"{name}: value must be a number, got {describe(F, value)}")
    a, b, c = promoted(F, (x, t1, t2), (f"{name}'s input", f"{name}'s tensor1",
                                        f"{name}'s tensor2"))
    dtype = F.type_of(a).dtype
    if op is DIV and not dtype.is_float:
        raise DlgTypeError(f"{name}: integer division is not supported (torch's rule); use "
                           "float tensors")
    if isinstance(value, float) and not dtype.is_float:
        raise DlgTypeError(f"{name}: the float value {value} meets {dtype} tensors")
    scaled = b if value == 1 else F.emit(MUL, F.lift(value, dtype), b)
    return F.emit(ADD, a, F.emit(op, scaled, c))


# ---- gcd and lcm: Euclid's algorithm, unrolled ------------------------------------------------
# Euclid takes at most as many steps as the largest Fibonacci number below the dtype's limit
_EUCLID_STEPS = {DType.i32: 46, DType.i64: 92}


def gcd(F: Front, x: Any, y: Any) -> Any:
    """The greatest common divisor of integers, elementwise (gcd(0, 0) is 0): Euclid's steps,
    as many as the dtype can need, each a where that holds once the divisor reaches 0."""
    a, b = _integers(F, "gcd", x, y)
    a, b = F.emit(ABS, a), F.emit(ABS, b)
    zero, one = (F.lift(v, F.type_of(a).dtype) for v in (0, 1))
    for _ in range(_EUCLID_STEPS.get(F.type_of(a).dtype, 92)):
        done = F.emit(EQ, b, zero)
        rest = F.emit(FMOD, a, F.emit(WHERE, done, one, b))
        a, b = F.emit(WHERE, done, a, b), F.emit(WHERE, done, zero, rest)
    return a


def lcm(F: Front, x: Any, y: Any) -> Any:
    """The least common multiple of integers, elementwise: |x / gcd(x, y) * y| (0 where the gcd
    is 0)."""
    a, b = _integers(F, "lcm", x, y)
    g = gcd(F, a, b)
    dtype = F.type_of(g).dtype
    zero = F.emit(EQ, g, F.lift(0, dtype))
    quotient = F.emit(FLOOR_DIVIDE, a, F.emit(WHERE, zero, F.lift(1, dtype), g))
    return F.emit(WHERE, zero, F.lift(0, dtype), F.emit(ABS, F.emit(MUL, quotient, b)))


def _integers(F: Front, name: str, x: Any, y: Any) -> list[Any]:
    a, b = promoted(F, (x, y), (f"{name}'s input", f"{name}'s other"))
    dtype = F.type_of(a).dtype
    if dtype.is_float or dtype == DType.bool:
        raise DlgTypeError(f"{name}: integer tensors only, got {F.type_of(a)} (torch's rule)")
    return [a, b]
