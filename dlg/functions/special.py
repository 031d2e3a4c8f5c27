"""torch's unary float math beyond the registry's primitives, each a composite of them: the
inverse trigonometric and hyperbolic functions (asin, acos, atanh, asinh, acosh), tan, sinc,
expm1, erfc, erfinv, logit, deg2rad/rad2deg, the special functions lgamma, digamma,
polygamma, mvlgamma and i0, and the float format's frexp and nextafter (from log2's exponent,
corrected by one step where log2 rounds across a power of two).

Integer and bool tensors become float32 first, as in torch. Each is written so that its domain
edges give torch's values (asin(1) is pi/2, atanh(1) inf, NaN outside the domain) and its
gradient is autodiff's of the composite: where a branch would divide by zero at points it does
not choose, its input is replaced there first (the "double where"), so that no NaN leaks into
the gradient. lgamma, digamma, polygamma and i0 are computed in float64 and cast back, so that
the series and the Lanczos sum keep float32's precision.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.elementwise import apply
from dlg.functions.front import Front
from dlg.functions.pointwise import floats, signbit
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import EXP2, ISFINITE, ISINF, ISNAN, LOG2, ROUND
from dlg.ir.ops.common import broadcast_shapes
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    ATAN,
    CAST,
    COS,
    DIV,
    EQ,
    ERF,
    EXP,
    FLOOR,
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
    SIN,
    SQRT,
    SUB,
    TANH,
    WHERE,
)
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.shape import BROADCAST_TO


def _e(F: Front, op: OpDef, *values: Any) -> Any:
    """`op` on tensors and numbers (numbers take the tensors' dtype)."""
    return apply(F, op, list(values), {})


def _float(F: Front, name: str, x: Any) -> Any:
    return floats(F, name, (x,), ("input",))[0]


def _pick(F: Front, cond: Any, a: Any, b: Any) -> Any:
    """where(cond, a, b), numbers taking the tensors' dtype."""
    like = a if F.is_tensor(a) else b
    a, b = (v if F.is_tensor(v) else F.lift(v, F.type_of(like).dtype) for v in (a, b))
    return F.emit(WHERE, cond, a, b)


def _in_f64(F: Front, name: str, x: Any) -> tuple[Any, DType]:
    x = _float(F, name, x)
    dtype = F.type_of(x).dtype
    return (x if dtype == DType.f64 else F.emit(CAST, x, dtype=DType.f64)), dtype


def _back(F: Front, x: Any, dtype: DType) -> Any:
    return x if dtype == DType.f64 else F.emit(CAST, x, dtype=dtype)


# ---- trigonometry ------------------------------------------------------------------------------
def tan(F: Front, x: Any) -> Any:
    """sin(x) / cos(x)."""
    x = _float(F, "tan", x)
    return F.emit(DIV, F.emit(SIN, x), F.emit(COS, x))


def asin(F: Front, x: Any) -> Any:
    """atan(x / sqrt((1 - x)(1 + x))): +-pi/2 at +-1, NaN beyond."""
    x = _float(F, "asin", x)
    root = F.emit(SQRT, F.emit(MUL, _e(F, SUB, 1.0, x), _e(F, ADD, 1.0, x)))
    return F.emit(ATAN, F.emit(DIV, x, root))


def acos(F: Front, x: Any) -> Any:
    """2 atan(sqrt((1 - x) / (1 + x))): exact near 1, pi at -1, NaN beyond."""
    x = _float(F, "acos", x)
    ratio = F.emit(DIV, _e(F, SUB, 1.0, x), _e(F, ADD, 1.0, x))
    return _e(F, MUL, 2.0, F.emit(ATAN, F.emit(SQRT, ratio)))


def atanh(F: Front, x: Any) -> Any:
    """(log1p(x) - log1p(-x)) / 2: +-inf at +-1, NaN beyond."""
    x = _float(F, "atanh", x)
    return _e(F, MUL, F.emit(SUB, F.emit(LOG1P, x), F.emit(LOG1P, F.emit(NEG, x))), 0.5)


_HUGE = 2.0 ** 28  # beyond it x^2 + 1 is x^2 in float32 and log(2x) is exact


def asinh(F: Front, x: Any) -> Any:
    """sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2))), log(2|x|) for huge |x|."""
    x = _float(F, "asinh", x)
    a = F.emit(ABS, x)
    s = _e(F, MINIMUM, a, _HUGE)
    s2 = F.emit(MUL, s, s)
    near = F.emit(LOG1P, F.emit(ADD, s, F.emit(DIV, s2, _e(F, ADD, 1.0, F.emit(SQRT, _e(
        F, ADD, 1.0, s2))))))
    far = _e(F, ADD, F.emit(LOG, a), math.log(2.0))
    r = F.emit(WHERE, _e(F, GT, a, _HUGE), far, near)
    return F.emit(WHERE, signbit(F, x), F.emit(NEG, r), r)


def acosh(F: Front, x: Any) -> Any:
    """log1p(t + sqrt(t (x + 1))) with t = x - 1 (exact near 1), log(2x) for huge x; NaN
    below 1."""
    x = _float(F, "acosh", x)
    s = _e(F, MINIMUM, x, _HUGE)
    t = _e(F, SUB, s, 1.0)
    near = F.emit(LOG1P, F.emit(ADD, t, F.emit(SQRT, F.emit(MUL, t, _e(F, ADD, s, 1.0)))))
    far = _e(F, ADD, F.emit(LOG, x), math.log(2.0))
    return _pick(F, _e(F, LT, x, 1.0), math.nan, F.emit(WHERE, _e(F, GT, x, _HUGE), far, near))


def sinc(F: Front, x: Any) -> Any:
    """sin(pi x) / (pi x), 1 at 0 (gradient 0 there)."""
    x = _float(F, "sinc", x)
    zero = _e(F, EQ, x, 0.0)
    px = _e(F, MUL, _pick(F, zero, 1.0, x), math.pi)
    return _pick(F, zero, 1.0, F.emit(DIV, F.emit(SIN, px), px))


def deg2rad(F: Front, x: Any) -> Any:
    """x * pi / 180."""
    return _e(F, MUL, _float(F, "deg2rad", x), math.pi / 180)


def rad2deg(F: Front, x: Any) -> Any:
    """x * 180 / pi."""
    return _e(F, MUL, _float(F, "rad2deg", x), 180 / math.pi)


# ---- exponentials and the error function ---------------------------------------------------------
def expm1(F: Front, x: Any) -> Any:
    """exp(x) - 1, exact for small x: 2t / (1 - t) with t = tanh(x / 2) for |x| < 0.5 (where
    exp(x) - 1 would cancel), exp(x) - 1 elsewhere."""
    x = _float(F, "expm1", x)
    small = _e(F, LT, F.emit(ABS, x), 0.5)
    t = F.emit(TANH, _e(F, MUL, _pick(F, small, x, 0.0), 0.5))
    near = F.emit(DIV, _e(F, MUL, t, 2.0), _e(F, SUB, 1.0, t))
    return F.emit(WHERE, small, near, _e(F, SUB, F.emit(EXP, x), 1.0))


# Numerical Recipes' erfc: t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), relative error < 1.2e-7
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)


def _poly(F: Front, t: Any, coefficients: tuple[float, ...]) -> Any:
    """c0 + t (c1 + t (c2 + ...)), by Horner's rule."""
    out = None
    for c in reversed(coefficients):
        out = F.lift(c, F.type_of(t).dtype) if out is None else _e(F, ADD, F.emit(MUL, out, t), c)
    return out


def erfc(F: Front, x: Any) -> Any:
    """1 - erf(x), without the cancellation for large x: 1 - erf(x) below 0.5, Numerical
    Recipes' rational exponential above (relative error < 1.2e-7: float32's, not float64's),
    in float64."""
    x, dtype = _in_f64(F, "erfc", x)
    z = F.emit(ABS, x)
    t = F.emit(DIV, F.lift(1.0, DType.f64), _e(F, ADD, 1.0, _e(F, MUL, z, 0.5)))
    tail = F.emit(MUL, t, F.emit(EXP, F.emit(SUB, _poly(F, t, _ERFC), F.emit(MUL, z, z))))
    return _back(F, F.emit(WHERE, _e(F, LT, x, 0.5), _e(F, SUB, 1.0, F.emit(ERF, x)), tail),
                 dtype)


# Giles, "Approximating the erfinv function" (GPU Computing Gems), single precision
_ERFINV_CENTRE = (1.50140941, 0.246640727, -0.00417768164, -0.00125372503, 0.00021858087,
                  -4.39150654e-06, -3.5233877e-06, 3.43273939e-07, 2.81022636e-08)
_ERFINV_TAIL = (2.83297682, 1.00167406, 0.00943887047, -0.0076224613, 0.00573950773,
                -0.00367342844, 0.00134934322, 0.000100950558, -0.000200214257)


def erfinv(F: Front, x: Any) -> Any:
    """The inverse of erf on (-1, 1): Giles' polynomials in w = -log(1 - x^2), then Newton
    steps on erf in float64 (one for float32, three for float64); +-inf at +-1, NaN beyond.
    The gradient is torch's formula sqrt(pi)/2 exp(y^2), at the result (a first derivative
    only: the polynomials' own derivative is not as exact)."""
    x = _float(F, "erfinv", x)
    dtype = F.type_of(x).dtype
    a = F.emit(ABS, x)
    edge = _e(F, GE, a, 1.0)
    y = F.emit(STOP_GRADIENT, _pick(F, edge, 0.0, x))  # the edges and beyond: set below
    w = F.emit(NEG, F.emit(LOG, F.emit(MUL, _e(F, SUB, 1.0, y), _e(F, ADD, 1.0, y))))
    centre = _poly(F, _e(F, SUB, _e(F, MINIMUM, w, 5.0), 2.5), _ERFINV_CENTRE)
    tail = _poly(F, _e(F, SUB, F.emit(SQRT, w), 3.0), _ERFINV_TAIL)
    guess = F.emit(MUL, F.emit(WHERE, _e(F, LT, w, 5.0), centre, tail), y)
    g, target = (F.emit(CAST, v, dtype=DType.f64) for v in (guess, y))
    for _ in range(1 if dtype != DType.f64 else 3):
        slope = _e(F, MUL, F.emit(EXP, F.emit(NEG, F.emit(MUL, g, g))), 2 / math.sqrt(math.pi))
        g = F.emit(SUB, g, F.emit(DIV, F.emit(SUB, F.emit(ERF, g), target), slope))
    value = _back(F, g, dtype)
    # value + (x - x) * dy/dx: the value unchanged, the gradient torch's
    slope = _e(F, MUL, F.emit(EXP, F.emit(MUL, value, value)), math.sqrt(math.pi) / 2)
    change = F.emit(SUB, x, F.emit(STOP_GRADIENT, x))
    inner = F.emit(ADD, value, F.emit(MUL, change, F.emit(STOP_GRADIENT, slope)))
    beyond = _pick(F, _e(F, GT, a, 1.0), math.nan,
                   _pick(F, _e(F, GT, x, 0.0), F.lift(math.inf, dtype), -math.inf))
    return F.emit(WHERE, edge, beyond, inner)


def logit(F: Front, x: Any, eps: Any = None) -> Any:
    """log(x / (1 - x)), x clamped to [eps, 1 - eps] first when eps is given."""
    x = _float(F, "logit", x)
    if eps is not None:
        if not is_number(eps):
            raise DlgTypeError(f"logit: eps must be a number, got {describe(F, eps)}")
        x = F.emit(WHERE, _e(F, LT, x, eps), F.lift(eps, F.type_of(x).dtype), x)
        x = F.emit(WHERE, _e(F, GT, x, 1 - eps), F.lift(1 - eps, F.type_of(x).dtype), x)
    return F.emit(LOG, F.emit(DIV, x, _e(F, SUB, 1.0, x)))


# ---- gamma and its derivatives (float64 inside) ------------------------------------------------
# Lanczos, g = 7, n = 9 (relative error below 1e-15)
_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012,
            9.9843695780195716e-6, 1.5056327351493116e-7)


def _lgamma_right(F: Front, x: Any) -> Any:
    """lgamma(x) for x >= 0.5 by Lanczos' sum."""
    z = _e(F, SUB, x, 1.0)
    total = F.lift(_LANCZOS[0], DType.f64)
    for i, c in enumerate(_LANCZOS[1:], 1):
        total = F.emit(ADD, total, F.emit(DIV, F.lift(c, DType.f64), _e(F, ADD, z, float(i))))
    t = _e(F, ADD, z, 7.5)
    return _e(F, ADD, F.emit(ADD, F.emit(SUB, F.emit(MUL, _e(F, ADD, z, 0.5), F.emit(LOG, t)), t),
                             F.emit(LOG, total)), 0.5 * math.log(2 * math.pi))


def _offset(F: Front, x: Any) -> Any:
    """x - round(x), in [-1/2, 1/2]: sin(pi x) and tan(pi x) up to sign, exact at and near the
    integers."""
    return F.emit(SUB, x, F.emit(ROUND, x))


def lgamma(F: Front, x: Any) -> Any:
    """log |Gamma(x)|: Lanczos for x >= 0.5, reflection log(pi / |sin(pi x)|) - lgamma(1 - x)
    below (inf at 0 and the negative integers); inf at +-inf."""
    x, dtype = _in_f64(F, "lgamma", x)
    left = _e(F, LT, x, 0.5)
    right = _lgamma_right(F, _pick(F, left, _e(F, SUB, 1.0, x), x))
    # the reflection reads x only where it is chosen: sin(pi x) is 0 at the integers on the
    # right, whose log would leak a NaN into the gradient there
    sin = F.emit(ABS, F.emit(SIN, _e(F, MUL, _offset(F, _pick(F, left, x, 0.25)), math.pi)))
    reflected = F.emit(SUB, F.emit(LOG, F.emit(DIV, F.lift(math.pi, DType.f64), sin)), right)
    out = F.emit(WHERE, left, reflected, right)
    # torch's exact zeros at 1 and 2, keeping the gradient there (digamma's value)
    exact = F.emit(LOGICAL_OR, _e(F, EQ, x, 1.0), _e(F, EQ, x, 2.0))
    out = _pick(F, exact, F.emit(SUB, out, F.emit(STOP_GRADIENT, out)), out)
    return _back(F, _pick(F, F.emit(ISINF, x), math.inf, out), dtype)


_ZETA_TERMS = 30  # Hurwitz zeta's sum: x > -20 reaches the asymptotic series at x + 30 > 10


def _zeta(F: Front, x: Any, n: int) -> Any:
    """zeta(n + 1, x), the sum over k >= 0 of (x + k)^-(n + 1) (n >= 1): the first 30 terms,
    then Euler-Maclaurin at w = x + 30 (Bernoulli terms to B_12)."""
    s = n + 1
    total = None
    for k in range(_ZETA_TERMS):
        term = _e(F, POW, _e(F, ADD, x, float(k)), float(-s))
        total = term if total is None else F.emit(ADD, total, term)
    w = _e(F, ADD, x, float(_ZETA_TERMS))
    rest = _e(F, ADD, _e(F, DIV, _e(F, POW, w, float(1 - s)), float(s - 1)),
              _e(F, MUL, _e(F, POW, w, float(-s)), 0.5))
    rising = float(s)  # s (s + 1) ... (s + 2j - 2)
    for j, bernoulli in enumerate((1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730), 1):
        if j > 1:
            rising *= (s + 2 * j - 3) * (s + 2 * j - 2)
        c = bernoulli / math.factorial(2 * j) * rising
        rest = F.emit(ADD, rest, _e(F, MUL, _e(F, POW, w, float(-s - 2 * j + 1)), c))
    return F.emit(ADD, total, rest)


def _digamma64(F: Front, x: Any) -> Any:
    """digamma in float64: psi(x + 10) - sum 1/(x + k) with the asymptotic series for x >= 0.5,
    reflection psi(1 - x) - pi / tan(pi x) below (NaN at the negative integers, -inf at 0)."""
    left = _e(F, LT, x, 0.5)
    r = _pick(F, left, _e(F, SUB, 1.0, x), x)
    w = _e(F, ADD, r, 10.0)
    inv2 = F.emit(DIV, F.lift(1.0, DType.f64), F.emit(MUL, w, w))
    series = _e(F, MUL, inv2, _poly(F, inv2, (-1 / 12, 1 / 120, -1 / 252, 1 / 240, -1 / 132,
                                              691 / 32760, -1 / 12)))
    psi = F.emit(ADD, F.emit(SUB, F.emit(LOG, w), F.emit(DIV, F.lift(0.5, DType.f64), w)), series)
    for k in range(10):
        psi = F.emit(SUB, psi, F.emit(DIV, F.lift(1.0, DType.f64), _e(F, ADD, r, float(k))))
    offset = _offset(F, _pick(F, left, x, 0.25))  # only where chosen: no NaN gradient at 1, 2..
    cot = F.emit(DIV, _e(F, MUL, F.emit(COS, _e(F, MUL, offset, math.pi)), math.pi),
                 F.emit(SIN, _e(F, MUL, offset, math.pi)))
    out = F.emit(WHERE, left, F.emit(SUB, psi, cot), psi)
    pole = F.emit(LOGICAL_AND, _e(F, LT, x, 0.0), _e(F, EQ, _offset(F, x), 0.0))
    # torch's -inf at +0, inf at -0
    zero = _pick(F, signbit(F, x), F.lift(math.inf, DType.f64), -math.inf)
    return _pick(F, pole, math.nan, F.emit(WHERE, _e(F, EQ, x, 0.0), zero, out))


def digamma(F: Front, x: Any) -> Any:
    """The logarithmic derivative of Gamma (float64 inside, cast back)."""
    x, dtype = _in_f64(F, "digamma", x)
    return _back(F, _digamma64(F, x), dtype)


def polygamma(F: Front, n: Any, x: Any) -> Any:
    """The n-th derivative of digamma: digamma for n = 0, else (-1)^(n+1) n! zeta(n + 1, x).
    The zeta sum reaches x > -20 (torch's, any x): NaN below."""
    if not is_int(n) or n < 0:
        raise DlgValueError(f"polygamma: n must be an int >= 0, got {describe(F, n)}")
    x, dtype = _in_f64(F, "polygamma", x)
    if n == 0:
        return _back(F, _digamma64(F, x), dtype)
    inside = _e(F, GT, x, 10.0 - _ZETA_TERMS)
    z = _zeta(F, _pick(F, inside, x, 1.0), n)
    out = _e(F, MUL, z, (-1) ** (n + 1) * math.factorial(n))
    return _back(F, _pick(F, inside, out, math.nan), dtype)


def mvlgamma(F: Front, x: Any, p: Any) -> Any:
    """The multivariate log-gamma of dimension p: sum of lgamma(x - i/2) for i < p, plus
    p (p - 1) / 4 log(pi). torch refuses x <= (p - 1) / 2 (a check of the values, not made
    here: those give lgamma's values)."""
    if not is_int(p) or p < 1:
        raise DlgValueError(f"mvlgamma: p must be an int >= 1, got {describe(F, p)}")
    x = _float(F, "mvlgamma", x)
    total = None
    for i in range(p):
        term = lgamma(F, _e(F, SUB, x, i / 2))
        total = term if total is None else F.emit(ADD, total, term)
    return _e(F, ADD, total, p * (p - 1) / 4 * math.log(math.pi))


# Abramowitz & Stegun 9.8.1 and 9.8.2 (relative error below 2e-7)
_I0_SMALL = (1.0, 3.5156229, 3.0899424, 1.2067492, 0.2659732, 0.0360768, 0.0045813)
_I0_LARGE = (0.39894228, 0.01328592, 0.00225319, -0.00157565, 0.00916281, -0.02057706,
             0.02635537, -0.01647633, 0.00392377)


def i0(F: Front, x: Any) -> Any:
    """The modified Bessel function of the first kind, order 0: Abramowitz & Stegun's
    polynomials (relative error below 2e-7: float32's precision, not float64's)."""
    x, dtype = _in_f64(F, "i0", x)
    a = F.emit(ABS, x)
    small = _e(F, LE, a, 3.75)
    s = _e(F, DIV, _pick(F, small, a, 3.75), 3.75)
    near = _poly(F, F.emit(MUL, s, s), _I0_SMALL)
    big = _pick(F, small, 3.75, a)
    far = F.emit(MUL, F.emit(DIV, F.emit(EXP, big), F.emit(SQRT, big)),
                 _poly(F, F.emit(DIV, F.lift(3.75, DType.f64), big), _I0_LARGE))
    return _back(F, F.emit(WHERE, small, near, far), dtype)  # NaN at +-inf, as torch


# ---- the float format: mantissa and exponent, the next float -------------------------------------
def _exponent(F: Front, x: Any) -> tuple[Any, Any]:
    """(m, e) with x = m * 2^e and 0.5 <= |m| < 1 for finite nonzero x (m = x, e = 0
    elsewhere); e as x's float dtype. 2^e is applied in two halves, so that neither overflows
    nor underflows."""
    a = F.emit(ABS, x)
    regular = F.emit(LOGICAL_AND, _e(F, GT, a, 0.0), F.emit(ISFINITE, x))
    safe = _pick(F, regular, a, 1.0)
    e = _e(F, ADD, F.emit(FLOOR, F.emit(LOG2, safe)), 1.0)

    def scaled(e: Any) -> Any:
        half = F.emit(FLOOR, _e(F, MUL, e, 0.5))
        down = F.emit(DIV, _pick(F, regular, x, 1.0), F.emit(EXP2, half))
        return F.emit(DIV, down, F.emit(EXP2, F.emit(SUB, e, half)))
    m = scaled(e)  # log2 may round across a power of two: one step back fixes it
    e = F.emit(WHERE, _e(F, GE, F.emit(ABS, m), 1.0), _e(F, ADD, e, 1.0),
               F.emit(WHERE, _e(F, LT, F.emit(ABS, m), 0.5), _e(F, SUB, e, 1.0), e))
    m = scaled(e)
    return F.emit(WHERE, regular, m, x), _pick(F, regular, e, 0.0)


class Mantissa(NamedTuple):
    """What frexp returns: torch.return_types.frexp's two fields."""

    mantissa: Any
    exponent: Any


def frexp(F: Front, x: Any) -> Mantissa:
    """x as mantissa * 2^exponent, the mantissa in [0.5, 1) in magnitude (x's dtype) and the
    exponent an int32; 0, inf and NaN are their own mantissa, exponent 0."""
    x = tensor(F, x, "frexp's input")
    if not F.type_of(x).dtype.is_float:
        raise DlgTypeError(f"frexp: input must be a float tensor, got {F.type_of(x)} (torch's "
                           "rule)")
    m, e = _exponent(F, x)
    return Mantissa(m, F.emit(CAST, e, dtype=DType.i32))


_FORMAT = {DType.f16: (11, -24), DType.f32: (24, -149), DType.f64: (53, -1074)}


def nextafter(F: Front, x: Any, y: Any) -> Any:
    """The float after x in the direction of y (y where they are equal; NaN where either is
    NaN; inf steps to the largest finite float): x moved by one unit in its last place, found
    from frexp's exponent."""
    a, b = floats(F, "nextafter", (x, y), ("input", "other"))
    dtype = F.type_of(a).dtype
    digits, tiny = _FORMAT[dtype]
    if F.type_of(a).shape != F.type_of(b).shape:
        shape = broadcast_shapes("nextafter", F.type_of(a).shape, F.type_of(b).shape)
        a, b = (v if F.type_of(v).shape == shape else F.emit(BROADCAST_TO, v, shape=shape)
                for v in (a, b))
    m, e = _exponent(F, a)
    up = F.emit(GT, b, a)
    away = F.emit(LOGICAL_OR, F.emit(LOGICAL_AND, up, _e(F, GT, a, 0.0)),
                  F.emit(LOGICAL_AND, F.emit(LOGICAL_NOT, up), _e(F, LT, a, 0.0)))
    power = F.emit(WHERE, F.emit(LOGICAL_OR, away, _e(F, NE, F.emit(ABS, m), 0.5)),
                   _e(F, SUB, e, float(digits)), _e(F, SUB, e, float(digits + 1)))
    step = _e(F, MAXIMUM, F.emit(EXP2, _e(F, MAXIMUM, power, float(tiny))), 2.0 ** tiny)
    step = F.emit(WHERE, _e(F, EQ, a, 0.0), F.lift(2.0 ** tiny, dtype), step)
    moved = F.emit(WHERE, up, F.emit(ADD, a, step), F.emit(SUB, a, step))
    largest = float(np.finfo(dtype.np).max)
    edge = _pick(F, _e(F, GT, a, 0.0), F.lift(largest, dtype), -largest)
    moved = F.emit(WHERE, F.emit(ISINF, a), edge, moved)
    nan = F.emit(LOGICAL_OR, F.emit(ISNAN, a), F.emit(ISNAN, b))
    return F.emit(WHERE, F.emit(EQ, a, b), b, F.emit(WHERE, nan, F.emit(ADD, a, b), moved))
