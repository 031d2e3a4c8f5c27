"""The scalar semantics of every kernel-IR op, as LLVM IR: one table for all backends, and the
only place that says what `exp` or `maximum` means in compiled code. An elementwise graph
primitive's form is found by its `OpDef`; the kernel-only ops (select, max/min, clamp,
floordiv, mod) follow. Each entry also states the op's vector form (`ScalarForm.vector`).

The choices follow NumPy (the reference): NaN propagates through maximum/minimum/relu/sign and
reductions, comparisons with NaN are false except `ne`, sigmoid never overflows, float to int
casts truncate. The forms here carry no fast-math flags, so each op rounds as IEEE says; the one
flag in compiled code is `reassoc` on the adds of a float sum (llvm_cpu.py's `Reduce`), which
lets LLVM vectorise it and so adds in another order than NumPy. float32 exp and tanh (and
sigmoid through exp) are polynomial approximations, within a few ulps, so that they vectorise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from dlg.compiler.kernel_ir import CLAMP, FLOORDIV, MAX, MIN, MOD, SELECT, ScalarOp
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    ATAN,
    BITWISE_AND,
    BITWISE_LEFT_SHIFT,
    BITWISE_NOT,
    BITWISE_OR,
    BITWISE_RIGHT_SHIFT,
    BITWISE_XOR,
    CAST,
    CEIL,
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
    RELU,
    RSQRT,
    SIGMOID,
    SIGN,
    SIN,
    SQRT,
    SUB,
    TANH,
    WHERE,
)

FLOAT_TYPES = {DType.f16: ir.HalfType(), DType.f32: ir.FloatType(), DType.f64: ir.DoubleType()}
INT_TYPES = {DType.i32: ir.IntType(32), DType.i64: ir.IntType(64), DType.bool: ir.IntType(1),
             DType.u8: ir.IntType(8), DType.i8: ir.IntType(8), DType.i16: ir.IntType(16)}
I1, I8, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(64)


def llvm_type(dtype: DType) -> ir.Type:
    """The register type of a dtype (bool is i1 in registers, i8 in memory)."""
    return FLOAT_TYPES.get(dtype) or INT_TYPES[dtype]


def memory_type(dtype: DType) -> ir.Type:
    return I8 if dtype == DType.bool else llvm_type(dtype)


class Scalar:
    """Emits scalar ops with one builder; math functions are declared in its module once."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder):
        self.m = module
        self.b = builder

    def intrinsic(self, name: str, t: ir.Type, arity: int = 1) -> ir.Function:
        """An overloaded LLVM intrinsic at type t (a scalar or a vector: llvm.fma.v16f32)."""
        if not isinstance(t, ir.VectorType):
            return self.m.declare_intrinsic(name, [t], ir.FunctionType(t, [t] * arity))
        symbol = f"{name}.v{t.count}{t.element.intrinsic_name}"
        if symbol not in self.m.globals:
            ir.Function(self.m, ir.FunctionType(t, [t] * arity), symbol)
        return self.m.globals[symbol]

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        """a * b + c rounded once: polynomials in one instruction per term, not two."""
        return self.b.call(self.intrinsic("llvm.fma", a.type, 3), [a, b, c])

    def libm(self, name: str, t: ir.Type) -> ir.Function:
        """A C math function (tanhf/tanh, erff/erf) declared once."""
        symbol = name + ("f" if isinstance(t, ir.FloatType) else "")
        if symbol in self.m.globals:
            return self.m.globals[symbol]
        return ir.Function(self.m, ir.FunctionType(t, [t]), symbol)

    def const(self, dtype: DType, value: float | int | bool) -> ir.Constant:
        t = llvm_type(dtype)
        if dtype == DType.bool:
            return ir.Constant(t, int(bool(value)))
        if dtype.is_float:
            return ir.Constant(t, float(value))
        return ir.Constant(t, int(value))

    # -- the table --------------------------------------------------------------------------------
    def op(self, op: ScalarOp, dtype: DType, args: list[ir.Value], arg_dtypes: list[DType]
           ) -> ir.Value:
        form = SCALAR_FORMS.get(op)
        if form is None:
            raise NotImplementedError(f"no scalar form for {op.name}")
        return form.emit(self, dtype, args, arg_dtypes)

    def cast(self, value: ir.Value, src: DType, dst: DType) -> ir.Value:
        b, t = self.b, llvm_type(dst)
        if src == dst:
            return value
        if dst == DType.bool:
            if src.is_float:
                return b.fcmp_unordered("!=", value, ir.Constant(value.type, 0.0))
            return b.icmp_signed("!=", value, ir.Constant(value.type, 0))
        if src == DType.bool:
            return b.uitofp(value, t) if dst.is_float else b.zext(value, t)
        if src == DType.f64 and dst == DType.f16:
            return b.fptrunc(self.f32_rounded_to_odd(value), t)
        if src.is_float and dst.is_float:
            return b.fpext(value, t) if _bits(dst) > _bits(src) else b.fptrunc(value, t)
        if src.is_float:  # to a narrow int through int64 (uint8) or int32, as the ref and torch
            if _bits(dst) >= 32:
                return b.fptosi(value, t)
            return b.trunc(b.fptosi(value, I64 if dst.is_unsigned else ir.IntType(32)), t)
        if dst.is_float:
            return b.uitofp(value, t) if src.is_unsigned else b.sitofp(value, t)
        if _bits(dst) > _bits(src):
            return b.zext(value, t) if src.is_unsigned else b.sext(value, t)
        return b.trunc(value, t) if _bits(dst) < _bits(src) else value

    def f32_rounded_to_odd(self, x: ir.Value) -> ir.Value:
        """f64 -> f32 rounded to odd: an inexact result is truncated toward zero and its last bit
        set. x86 has no f64 -> f16 instruction (LLVM calls __truncdfhf2, which the JIT does not
        link: a segfault), and plain f64 -> f32 -> f16 rounds twice (a value just short of a
        half-way point lands on it, then ties to even); the odd bit keeps 'inexact' for the
        second rounding, which is then correct since 24 >= 11 + 2 bits."""
        b = self.b
        lanes = x.type.count if isinstance(x.type, ir.VectorType) else None
        f32, i32 = ((ir.VectorType(ir.FloatType(), lanes), ir.VectorType(ir.IntType(32), lanes))
                    if lanes else (ir.FloatType(), ir.IntType(32)))
        narrow = b.fptrunc(x, f32)
        wide = b.fpext(narrow, x.type)
        inexact = b.fcmp_ordered("one", wide, x)
        finite = b.fcmp_ordered("one", self.fabs(narrow), ir.Constant(f32, float("inf")))
        bits = b.bitcast(narrow, i32)
        away = b.fcmp_ordered(">", self.fabs(wide), self.fabs(x))
        truncated = b.select(away, b.sub(bits, ir.Constant(i32, 1)), bits)
        odd = b.bitcast(b.or_(truncated, ir.Constant(i32, 1)), f32)
        return b.select(b.and_(inexact, finite), odd, narrow)

    def fabs(self, x: ir.Value) -> ir.Value:
        return self.b.call(self.intrinsic("llvm.fabs", x.type), [x])

    def isnan(self, v: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", v, v)

    def greater(self, a: ir.Value, b: ir.Value, dtype: DType, less: bool = False) -> ir.Value:
        """a > b (a < b with `less`), NaN counting as the most extreme, as np.argmax does."""
        if not dtype.is_float:
            return icmp(self.b, dtype, "<" if less else ">", a, b)
        strict = self.b.fcmp_ordered("<" if less else ">", a, b)
        nan_first = self.b.and_(self.isnan(a), self.b.not_(self.isnan(b)))
        return self.b.or_(strict, nan_first)

    def extremum(self, a: ir.Value, b: ir.Value, dtype: DType, maximum: bool) -> ir.Value:
        """NumPy's maximum (minimum): `a >= b or isnan(a) ? a : b`, so a NaN on either side
        propagates and equal zeros are not ordered by sign. (LLVM's `llvm.maximum` also orders
        -0 below +0, which costs two sign tests and branches per scalar on AVX2.)"""
        if not dtype.is_float:
            return self.b.select(icmp(self.b, dtype, ">" if maximum else "<", a, b), a, b)
        pick = self.b.or_(self.b.fcmp_ordered(">=" if maximum else "<=", a, b), self.isnan(a))
        return self.b.select(pick, a, b)


def has_vector_form(op: ScalarOp, dtype: DType) -> bool:
    """Whether the op's scalar form also emits correct code for vector operands of `dtype` (a
    C math function does not: it is called lane by lane)."""
    form = SCALAR_FORMS.get(op)
    return form is not None and dtype in form.vector


def _bits(dtype: DType) -> int:
    return 1 if dtype == DType.bool else dtype.itemsize * 8


def icmp(b: ir.IRBuilder, dtype: DType, symbol: str, x: ir.Value, y: ir.Value) -> ir.Value:
    """An integer comparison: unsigned for uint8 (200 > 100, where i8's signed compare says
    -56 < 100), signed for the other ints."""
    return (b.icmp_unsigned if dtype.is_unsigned else b.icmp_signed)(symbol, x, y)


OpRule = Callable[[Scalar, DType, list[ir.Value], list[DType]], ir.Value]


def _arith(float_op: str, int_op: str, unsigned_op: str | None = None) -> OpRule:
    """One instruction per kind; uint8 divides with `unsigned_op` (udiv, urem)."""
    def emit(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
        name = (float_op if dt[0].is_float else unsigned_op if unsigned_op and dt[0].is_unsigned
                else int_op)
        return getattr(s.b, name)(a[0], a[1])
    return emit


def _extreme(maximum: bool) -> OpRule:
    return lambda s, dtype, a, dt: s.extremum(a[0], a[1], dt[0], maximum)


def _unary_intrinsic(name: str) -> OpRule:
    return lambda s, dtype, a, dt: s.b.call(s.intrinsic(name, a[0].type), [a[0]])


def _libm(name: str) -> OpRule:
    return lambda s, dtype, a, dt: s.b.call(s.libm(name, a[0].type), [a[0]])


def _compare(symbol: str) -> OpRule:
    def emit(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
        if dt[0].is_float:
            if symbol == "!=":
                return s.b.fcmp_unordered(symbol, a[0], a[1])
            return s.b.fcmp_ordered(symbol, a[0], a[1])
        return icmp(s.b, dt[0], symbol, a[0], a[1])
    return emit


def _neg(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    return s.b.fneg(a[0]) if dtype.is_float else s.b.neg(a[0])


def _abs(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    if dtype.is_float:
        return s.b.call(s.intrinsic("llvm.fabs", a[0].type), [a[0]])
    if dtype.is_unsigned:
        return a[0]
    return s.b.select(s.b.icmp_signed("<", a[0], ir.Constant(a[0].type, 0)), s.b.neg(a[0]), a[0])


def _relu(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    zero = ir.Constant(a[0].type, 0.0 if dtype.is_float else 0)
    below = (s.b.fcmp_ordered("<", a[0], zero) if dtype.is_float
             else icmp(s.b, dtype, "<", a[0], zero))
    return s.b.select(below, zero, a[0])  # NaN stays NaN


def _sign(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    x = a[0]
    one, zero = s.const(dtype, 1), s.const(dtype, 0)
    gt = _compare(">")(s, DType.bool, [x, zero], dt)
    lt = _compare("<")(s, DType.bool, [x, zero], dt)
    minus = s.b.neg(one) if not dtype.is_float else s.b.fneg(one)
    return s.b.select(gt, one, s.b.select(lt, minus, zero))  # +-0 and NaN: +0, as PyTorch


# tanh(x) ~ x * P(x^2) / Q(x^2) on [-CLAMP, CLAMP] (a minimax rational fit, as Eigen's fast
# float tanh, evaluated with fused multiply-adds): within 5 ulps of the exact value (4.9 at worst
# over every float32 input;
# tests/compiler/test_scalar.py checks a grid), NaN stays NaN, and unlike a libm call it
# vectorises.
TANH_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
          5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
          -2.76076847742355e-16)
TANH_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
          1.19825839466702e-06)
TANH_CLAMP, TANH_LINEAR = 7.90531110763549805, 0.0004  # |x| below TANH_LINEAR: tanh(x) = x


def _tanh(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    x = a[0]
    if dtype != DType.f32:
        return s.b.call(s.libm("tanh", x.type), [x])
    ratio = _odd_rational(s, x, TANH_CLAMP, TANH_P, TANH_Q)
    magnitude = s.fabs(x)
    one = s.b.call(s.intrinsic("llvm.copysign", x.type, 2), [ir.Constant(x.type, 1.0), x])
    ratio = s.b.select(s.b.fcmp_ordered(">", magnitude, ir.Constant(x.type, TANH_CLAMP)), one,
                       ratio)  # the fit ends at the clamp; past it tanh is 1 within 5 ulps
    small = s.b.fcmp_ordered("<", magnitude, ir.Constant(x.type, TANH_LINEAR))
    return s.b.select(small, x, ratio)


# erf(x) ~ x * P(x^2) / Q(x^2) on [-4, 4] (past 4 erf is +-1 in float32; the minimax fit of
# Eigen's fast float erf): within 5.5 ulps of the exact value (at worst near |x| = 3.9;
# tests/compiler/test_scalar.py checks a grid), NaN stays NaN, and unlike a libm call it
# vectorises: a GELU layer's erff calls were 40 % of a transformer's call.
ERF_P = (1.60960333262415e-02, 2.95459980854025e-03, 7.34990630326855e-04,
         5.69250639462346e-05, 2.10102402082508e-06, -2.77068142495902e-08,
         2.72614225801306e-10)
ERF_Q = (1.42647390514189e-02, 7.37332916720468e-03, 1.68282697438203e-03,
         2.13374055278905e-04, 1.45660718464996e-05)
ERF_CLAMP = 4.0


def _erf(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    x = a[0]
    if dtype != DType.f32:
        return s.b.call(s.libm("erf", x.type), [x])
    return _odd_rational(s, x, ERF_CLAMP, ERF_P, ERF_Q)


def _odd_rational(s: Scalar, x: ir.Value, clamp: float, p: tuple[float, ...],
                  q: tuple[float, ...]) -> ir.Value:
    """x * P(x^2) / Q(x^2) with x clamped to [-clamp, clamp] (NaN passes through)."""
    b, c = s.b, (lambda v: ir.Constant(x.type, v))
    clamped = b.select(b.fcmp_ordered(">", x, c(clamp)), c(clamp), x)
    clamped = b.select(b.fcmp_ordered("<", clamped, c(-clamp)), c(-clamp), clamped)
    x2 = b.fmul(clamped, clamped)

    def poly(coefficients: tuple[float, ...]) -> ir.Value:
        acc = c(coefficients[-1])
        for k in reversed(coefficients[:-1]):
            acc = s.fma(acc, x2, c(k))
        return acc
    return b.fdiv(b.fmul(clamped, poly(p)), poly(q))


# exp(x) = 2^n * e^r with n = round(x / ln 2) and r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 in
# two parts, Cody and Waite's), e^r by its degree-6 Taylor polynomial and 2^n as float bits,
# in two halves so that results down to the smallest subnormal are reached: within 2.8 ulps of
# the exact value (2.74 at worst over every float32 input, with fused multiply-adds;
# tests/compiler/test_scalar.py checks a grid), and unlike a libm call it vectorises.
EXP_HIGH, EXP_LOW = 88.72283935546875, -103.972084045410  # above: inf; below: 0
LN2_HIGH, LN2_LOW = 0.693359375, -2.12194440e-4


def _exp(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    x = a[0]
    if dtype != DType.f32:
        return s.b.call(s.intrinsic("llvm.exp", x.type), [x])
    b, c = s.b, (lambda v: ir.Constant(x.type, v))
    ints = (ir.VectorType(ir.IntType(32), x.type.count) if isinstance(x.type, ir.VectorType)
            else ir.IntType(32))
    clamped = b.select(b.fcmp_ordered(">", x, c(EXP_HIGH)), c(EXP_HIGH), x)
    clamped = b.select(b.fcmp_ordered("<", clamped, c(EXP_LOW)), c(EXP_LOW), clamped)
    n = b.call(s.intrinsic("llvm.floor", x.type), [s.fma(clamped, c(1.4426950408889634),
                                                         c(0.5))])
    r = s.fma(n, c(-LN2_LOW), s.fma(n, c(-LN2_HIGH), clamped))
    p = c(1 / 720)
    for k in (1 / 120, 1 / 24, 1 / 6, 1 / 2, 1.0, 1.0):
        p = s.fma(p, r, c(k))
    whole = b.fptosi(n, ints)
    half = b.ashr(whole, ir.Constant(ints, 1))
    for part in (half, b.sub(whole, half)):
        bits = b.shl(b.add(part, ir.Constant(ints, 127)), ir.Constant(ints, 23))
        p = b.fmul(p, b.bitcast(bits, x.type))
    p = b.select(b.fcmp_ordered(">", x, c(EXP_HIGH)), c(float("inf")), p)
    p = b.select(b.fcmp_ordered("<", x, c(EXP_LOW)), c(0.0), p)
    return b.select(b.fcmp_unordered("uno", x, x), x, p)


def _sigmoid(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    """1 / (1 + e) for x >= 0, else e / (1 + e), with e = exp(-|x|): no overflow, and small
    results keep their relative precision (log(sigmoid(x)) stays finite and right). In float32,
    within 3.9 ulps of the exact value (3.85 at worst over every float32 input)."""
    b, x = s.b, a[0]
    e = _exp(s, dtype, [b.fneg(b.call(s.intrinsic("llvm.fabs", x.type), [x]))], dt)
    share = b.fdiv(ir.Constant(x.type, 1.0), b.fadd(ir.Constant(x.type, 1.0), e))
    return b.select(b.fcmp_ordered("<", x, ir.Constant(x.type, 0.0)), b.fmul(e, share), share)


def _rsqrt(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    root = s.b.call(s.intrinsic("llvm.sqrt", a[0].type), [a[0]])
    return s.b.fdiv(ir.Constant(a[0].type, 1.0), root)


def _pow(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    return s.b.call(s.intrinsic("llvm.pow", a[0].type, 2), [a[0], a[1]])


def _shift(left: bool) -> OpRule:
    """PyTorch's shifts (see the ref in elementwise.py): a count outside 0..bits-1 gives 0 to
    the left and the sign to the right, where LLVM's shl/ashr would give poison."""
    def emit(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
        x, count = a
        zero, top = ir.Constant(x.type, 0), ir.Constant(x.type, _bits(dtype) - 1)
        outside = s.b.or_(icmp(s.b, dtype, "<", count, zero), icmp(s.b, dtype, ">", count, top))
        if left:
            return s.b.select(outside, zero, s.b.shl(x, s.b.select(outside, zero, count)))
        if dtype.is_unsigned:  # no sign to shift in: 0 past the width
            return s.b.select(outside, zero, s.b.lshr(x, s.b.select(outside, zero, count)))
        return s.b.ashr(x, s.b.select(outside, top, count))
    return emit


def _select(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    return s.b.select(a[0], a[1], a[2])


def _clamp(s: Scalar, dtype: DType, a: list[ir.Value], dt: list[DType]) -> ir.Value:
    low = s.b.select(icmp(s.b, dt[0], "<", a[0], a[1]), a[1], a[0])
    return s.b.select(icmp(s.b, dt[0], ">", low, a[2]), a[2], low)


@dataclass(frozen=True)
class ScalarForm:
    """How one scalar op is emitted, and its vector form: the result dtypes for which a register
    tile runs that same code on whole vectors (vector.py); for the others it runs lane by lane
    (a libm call, a cast, a computed index). `work`: what one costs in loop iterations, for the
    decision to spread a loop over threads (a polynomial or libm call is ~16 operations: 4 more).
    """

    emit: OpRule
    vector: frozenset[DType]
    work: int = 0


ALL = frozenset(DType)
NONE: frozenset[DType] = frozenset()
F32 = frozenset({DType.f32})  # the float32 polynomial; other dtypes call libm
MATH = 4  # the work of a polynomial exp, tanh, sigmoid or erf, or a libm call, beyond one


# The one table: elementwise graph primitives by their OpDef, then the kernel-only ops.
SCALAR_FORMS: dict[ScalarOp, ScalarForm] = {
    ADD: ScalarForm(_arith("fadd", "add"), ALL), SUB: ScalarForm(_arith("fsub", "sub"), ALL),
    MUL: ScalarForm(_arith("fmul", "mul"), ALL),
    DIV: ScalarForm(_arith("fdiv", "sdiv", "udiv"), ALL),
    POW: ScalarForm(_pow, NONE, MATH),
    MAXIMUM: ScalarForm(_extreme(True), ALL), MINIMUM: ScalarForm(_extreme(False), ALL),
    EQ: ScalarForm(_compare("=="), ALL), NE: ScalarForm(_compare("!="), ALL),
    LT: ScalarForm(_compare("<"), ALL), LE: ScalarForm(_compare("<="), ALL),
    GT: ScalarForm(_compare(">"), ALL), GE: ScalarForm(_compare(">="), ALL),
    LOGICAL_AND: ScalarForm(lambda s, d, a, dt: s.b.and_(a[0], a[1]), ALL),
    LOGICAL_OR: ScalarForm(lambda s, d, a, dt: s.b.or_(a[0], a[1]), ALL),
    LOGICAL_NOT: ScalarForm(lambda s, d, a, dt: s.b.not_(a[0]), ALL),
    BITWISE_AND: ScalarForm(lambda s, d, a, dt: s.b.and_(a[0], a[1]), ALL),
    BITWISE_OR: ScalarForm(lambda s, d, a, dt: s.b.or_(a[0], a[1]), ALL),
    BITWISE_XOR: ScalarForm(lambda s, d, a, dt: s.b.xor(a[0], a[1]), ALL),
    BITWISE_NOT: ScalarForm(lambda s, d, a, dt: s.b.not_(a[0]), ALL),
    BITWISE_LEFT_SHIFT: ScalarForm(_shift(True), ALL),
    BITWISE_RIGHT_SHIFT: ScalarForm(_shift(False), ALL),
    NEG: ScalarForm(_neg, ALL), ABS: ScalarForm(_abs, ALL), RELU: ScalarForm(_relu, ALL),
    SIGN: ScalarForm(_sign, NONE), SIGMOID: ScalarForm(_sigmoid, ALL, MATH),
    RSQRT: ScalarForm(_rsqrt, ALL), WHERE: ScalarForm(_select, ALL),
    EXP: ScalarForm(_exp, ALL, MATH), LOG: ScalarForm(_unary_intrinsic("llvm.log"), ALL, MATH),
    SQRT: ScalarForm(_unary_intrinsic("llvm.sqrt"), ALL),
    SIN: ScalarForm(_unary_intrinsic("llvm.sin"), NONE, MATH),
    COS: ScalarForm(_unary_intrinsic("llvm.cos"), NONE, MATH),
    FLOOR: ScalarForm(_unary_intrinsic("llvm.floor"), ALL),
    CEIL: ScalarForm(_unary_intrinsic("llvm.ceil"), ALL),
    TANH: ScalarForm(_tanh, F32, MATH), ERF: ScalarForm(_erf, F32, MATH),
    LOG1P: ScalarForm(_libm("log1p"), NONE, MATH), ATAN: ScalarForm(_libm("atan"), NONE, MATH),
    CAST: ScalarForm(lambda s, d, a, dt: s.cast(a[0], dt[0], d), NONE),
    # kernel-only
    SELECT: ScalarForm(_select, ALL), MAX: ScalarForm(_extreme(True), ALL),
    MIN: ScalarForm(_extreme(False), ALL), CLAMP: ScalarForm(_clamp, NONE),
    FLOORDIV: ScalarForm(_arith("fdiv", "sdiv", "udiv"), NONE),
    MOD: ScalarForm(_arith("frem", "srem", "urem"), NONE),
}
