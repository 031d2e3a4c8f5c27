"""Index arithmetic for the kernel IR: i64 expressions with the folding that keeps them short
(x*1, x+0, constants), symbolic dims as runtime variables, row-major (de)linearisation and
NumPy broadcasting of index vectors."""

from __future__ import annotations

from collections.abc import Sequence

from dlg.compiler.kernel_ir import (
    CLAMP,
    FLOORDIV,
    I64,
    MAX,
    MIN,
    MOD,
    SELECT,
    Const,
    Expr,
    Op,
    Var,
    walk,
)
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, CAST, GE, LOGICAL_AND, LT, MUL, SUB, WHERE
from dlg.ir.shapes import Dim, Sym

ZERO, ONE = Const(I64, 0), Const(I64, 1)


def const(n: int) -> Expr:
    return Const(I64, int(n))


def int_value(e: Expr) -> int | None:
    """The value of a constant index expression, else None."""
    return int(e.value) if isinstance(e, Const) else None


def add(a: Expr, b: Expr) -> Expr:
    if int_value(a) == 0:
        return b
    if int_value(b) == 0:
        return a
    if int_value(a) is not None and int_value(b) is not None:
        return const(int_value(a) + int_value(b))  # type: ignore[operator]
    return Op(I64, ADD, (a, b))


def sub(a: Expr, b: Expr) -> Expr:
    if int_value(b) == 0:
        return a
    if int_value(a) is not None and int_value(b) is not None:
        return const(int_value(a) - int_value(b))  # type: ignore[operator]
    return Op(I64, SUB, (a, b))


def mul(a: Expr, b: Expr) -> Expr:
    if int_value(a) == 1:
        return b
    if int_value(b) == 1:
        return a
    if int_value(a) == 0 or int_value(b) == 0:
        return ZERO
    if int_value(a) is not None and int_value(b) is not None:
        return const(int_value(a) * int_value(b))  # type: ignore[operator]
    return Op(I64, MUL, (a, b))


def floordiv(a: Expr, b: Expr) -> Expr:
    if int_value(b) == 1:
        return a
    x, y = int_value(a), int_value(b)
    if x is not None and y is not None and x >= 0 and y > 0:  # the kernels' division truncates
        return const(x // y)
    return Op(I64, FLOORDIV, (a, b))


def ceildiv(a: Expr, n: int) -> Expr:
    """ceil(a / n) for a >= 0."""
    return floordiv(add(a, const(n - 1)), const(n))


def mod(a: Expr, b: Expr) -> Expr:
    return ZERO if int_value(b) == 1 else Op(I64, MOD, (a, b))


def dim(d: Dim) -> Expr:
    """A dim as an expression: symbols are runtime variables named after them."""
    if not isinstance(d, Sym):
        return const(d)
    total: Expr = ZERO
    for monomial, coefficient in d.terms:
        term: Expr = const(coefficient)
        for name in monomial:
            term = mul(term, Var(I64, name))
        total = add(total, term)
    return total


def numel(shape: Sequence[Dim]) -> Expr:
    total: Expr = ONE
    for d in shape:
        total = mul(total, dim(d))
    return total


def linearize(idx: Sequence[Expr], shape: Sequence[Dim]) -> Expr:
    """The row-major flat position of index vector `idx` in `shape`."""
    flat: Expr = ZERO
    for i, d in zip(idx, shape):
        flat = add(mul(flat, dim(d)), i)
    return flat


def delinearize(flat: Expr, shape: Sequence[Dim]) -> list[Expr]:
    out: list[Expr] = []
    for k, d in enumerate(reversed(shape)):
        if d == 1:
            out.append(ZERO)
        elif k == len(shape) - 1:  # the outermost index is the rest: it is in range already
            out.append(flat)
        else:
            out.append(mod(flat, dim(d)))
        flat = floordiv(flat, dim(d))
    return out[::-1]


def reshape(idx: Sequence[Expr], out_shape: Sequence[Dim], in_shape: Sequence[Dim]
              ) -> list[Expr]:
    """The index into `in_shape` of element `idx` of its reshape to `out_shape`, group by group:
    the dims split where both shapes' prefix products agree ([28, N, 28] -> [28*N, 28] is
    {28, N} <- {28*N} and {28} <- {28}), so a dim both shapes keep is its own index and only
    a merged or split group pays a division (one that loops can hoist)."""
    ends_in = dict(_group_ends(in_shape))
    result: list[Expr] = []
    o = i = 0
    for product, o_end in _group_ends(out_shape):
        i_end = ends_in.get(product)
        if i_end is not None:
            result += delinearize(linearize(idx[o:o_end], out_shape[o:o_end]),
                                  in_shape[i:i_end])
            o, i = o_end, i_end
    return result + delinearize(linearize(idx[o:], out_shape[o:]), in_shape[i:])


def _group_ends(shape: Sequence[Dim]) -> list[tuple[Dim, int]]:
    """(product of the dims before position p, p) after each dim that is not 1 (so a 1
    inserted or dropped does not end a group)."""
    ends: list[tuple[Dim, int]] = []
    total: Dim = 1
    for p, d in enumerate(shape, 1):
        total = total * d
        if d != 1:
            ends.append((total, p))
    return ends


def broadcast(idx: Sequence[Expr], out_shape: Sequence[Dim], in_shape: Sequence[Dim]
              ) -> list[Expr]:
    """The index into an operand of shape `in_shape` broadcast to `out_shape`."""
    lead = len(out_shape) - len(in_shape)
    return [ZERO if d == 1 and out_shape[lead + i] != 1 else idx[lead + i]
            for i, d in enumerate(in_shape)]


def inside(i: Expr, size: Expr) -> Expr:
    """0 <= i < size, as a bool expression."""
    return both(Op(DType.bool, GE, (i, ZERO)), Op(DType.bool, LT, (i, size)))


def both(a: Expr | None, b: Expr) -> Expr:
    return b if a is None else Op(DType.bool, LOGICAL_AND, (a, b))


def stride(e: Expr, var: str, dims: int = 7) -> int:
    """How far `e` moves when `var` grows by one (others 0, every symbolic dim taken as `dims`):
    a cheap probe of an index's memory stride."""
    return _evaluate(e, {var: 1}, dims) - _evaluate(e, {}, dims)


def coefficient(e: Expr, var: str) -> int | None:
    """The exact step of `e` per unit of `var` when `e` is affine in it with a constant step
    (0 when `var` does not occur), else None (floordiv, mod, select, loads of it...)."""
    if isinstance(e, Var):
        return int(e.name == var)
    if isinstance(e, Const):
        return 0
    if isinstance(e, Op) and e.op in (ADD, SUB):
        a, b = (coefficient(x, var) for x in e.args)
        if a is None or b is None:
            return None
        return a + b if e.op is ADD else a - b
    if isinstance(e, Op) and e.op is MUL:
        a, b = (coefficient(x, var) for x in e.args)
        if a == 0 and b == 0:
            return 0
        for step, other in ((a, e.args[1]), (b, e.args[0])):
            if step and coefficient(other, var) == 0 and isinstance(other, Const):
                return step * int(other.value)
        return None
    return 0 if not mentions(e, var) else None


def mentions(e: Expr, var: str) -> bool:
    return any(isinstance(x, Var) and x.name == var for x in walk(e))


def _evaluate(e: Expr, env: dict[str, int], dims: int) -> int:
    if isinstance(e, Const):
        return int(e.value)
    if isinstance(e, Var):
        return env.get(e.name, 0 if "." in e.name else dims)
    if isinstance(e, Op) and e.op in _INT_OPS:
        args = [_evaluate(a, env, dims) for a in e.args]
        return _INT_OPS[e.op](*args)
    return 0  # a loaded or computed index (take): no fixed stride


_INT_OPS = {ADD: lambda a, b: a + b, SUB: lambda a, b: a - b, MUL: lambda a, b: a * b,
            FLOORDIV: lambda a, b: a // b if b else 0, MOD: lambda a, b: a % b if b else 0,
            CAST: lambda a: a, SELECT: lambda c, a, b: a if c else b,
            WHERE: lambda c, a, b: a if c else b,
            MIN: min, MAX: max, CLAMP: lambda x, lo, hi: max(lo, min(x, hi))}
