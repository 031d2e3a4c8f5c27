"""Monotone functions taken out of max and min reductions: max_r f(x_r) == f(max_r x_r) for an f
that never decreases, so it runs once per output instead of once per term.

A pool after a convolution's bias and ReLU is fused as max over the window of
relu(conv + bias): four adds and four ReLUs per 2x2 output where one of each is needed, and the
scalar max chain around them is what such a pool's time is. The functions taken out are
elementwise ops nondecreasing in one argument whose other arguments do not depend on the
reduction's variables (x + c, x - c, max(x, c), min(x, c)) and the unary ReLU, tanh, sigmoid
and exp. Each maps NaN to NaN, as the NaN-propagating max does, so a NaN term gives NaN either
way. Guarded terms (padding read as -inf) are `select`s and stay inside, and so do reductions
that may be empty (f(-inf) is not -inf for every f).
"""

from __future__ import annotations

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import MAX, MIN, Expr, Op, Reduce
from dlg.ir.ops.elementwise import ADD, EXP, MAXIMUM, MINIMUM, RELU, SIGMOID, SUB, TANH

UNARY = frozenset({RELU, TANH, SIGMOID, EXP})
BINARY = frozenset({ADD, MAXIMUM, MINIMUM})  # nondecreasing in each argument
FIRST_ONLY = frozenset({SUB})  # x - c


def extremes_first(e: Expr) -> Expr:
    """`e` with the monotone functions of each max or min reduction's terms applied to the
    reduction's result instead."""
    if isinstance(e, Reduce):
        body = extremes_first(e.body)
        reduce = e if body is e.body else Reduce(e.dtype, e.combine, e.axes, body, e.init)
        return _outside(reduce) if e.combine in (MAX, MIN) else reduce
    if isinstance(e, Op):
        args = tuple(extremes_first(a) for a in e.args)
        return e if args == e.args else Op(e.dtype, e.op, args)
    return e


def _outside(r: Reduce) -> Expr:
    body = r.body
    if (not isinstance(body, Op) or body.dtype != r.dtype
            or any(ix.int_value(n) in (None, 0) for _, n in r.axes)):  # empty: f(init) != init
        return r
    names = [name for name, _ in r.axes]

    def varies(x: Expr) -> bool:
        return any(ix.mentions(x, name) for name in names)
    if body.op in UNARY:
        inner = 0
    elif body.op in BINARY | FIRST_ONLY:
        moving = [k for k, a in enumerate(body.args) if varies(a)]
        if len(moving) != 1 or (body.op in FIRST_ONLY and moving != [0]):
            return r
        inner = moving[0]
    else:
        return r
    x = body.args[inner]
    if x.dtype != r.dtype:
        return r
    args = list(body.args)
    args[inner] = _outside(Reduce(r.dtype, r.combine, r.axes, x, r.init))
    return Op(body.dtype, body.op, tuple(args))
