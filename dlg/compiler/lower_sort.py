"""Kernels for sort and the scans (dlg/ir/ops/sort.py), in the plain kernel IR: no codegen of
their own.

sort is a rank scatter: element i of a row goes to position rank(i), the number of elements
ordered before it (smaller, or equal and earlier; NaN largest). Ranks are a permutation, so
every iteration is independent (the outer loop runs in parallel); the work is n^2 per row of n,
like an insertion sort: correct and simple over fast, as sorts in graphs are of short rows
(top-k of logits, a batch's losses). A scan walks each row in order, each element reading the
one stored before it: out[i] = out[i-1] + x[i], as NumPy's accumulate, with the rows in
parallel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import I64, Expr, Load, Loop, Op, Reduce, Stmt, Store, Var
from dlg.ir.dtypes import DType
from dlg.ir.graph import Node
from dlg.ir.ops.elementwise import (
    ADD,
    CAST,
    EQ,
    GT,
    LOGICAL_AND,
    LOGICAL_NOT,
    LOGICAL_OR,
    LT,
    MUL,
    NE,
)
from dlg.ir.ops.sort import CUMPROD, CUMSUM, SORT
from dlg.ir.shapes import Dim

if TYPE_CHECKING:
    from dlg.compiler.lower import Lowering

BOOL = DType.bool


def _nest(names: list[str], extents: list[Dim], body: Stmt, parallel: bool) -> Stmt:
    for k in reversed(range(len(names))):
        body = Loop(names[k], ix.dim(extents[k]), (body,), parallel=parallel and k == 0)
    return body


def _op(dtype: DType, op: object, *args: Expr) -> Expr:
    return Op(dtype, op, args)  # type: ignore[arg-type]


def _before(xj: Expr, xi: Expr, j: Expr, i: Expr, descending: bool) -> Expr:
    """Whether the element xj (at j) sorts before xi (at i): strictly ahead in the order, or
    equal and earlier; NaN is larger than any number and equal to NaN."""
    ahead = _op(BOOL, GT if descending else LT, xj, xi)
    same = _op(BOOL, EQ, xj, xi)
    if xi.dtype.is_float:
        nan_j, nan_i = _op(BOOL, NE, xj, xj), _op(BOOL, NE, xi, xi)
        big, small = (nan_j, nan_i) if descending else (nan_i, nan_j)
        ahead = _op(BOOL, LOGICAL_OR, ahead, _op(BOOL, LOGICAL_AND, big,
                                                  _op(BOOL, LOGICAL_NOT, small)))
        same = _op(BOOL, LOGICAL_OR, same, _op(BOOL, LOGICAL_AND, nan_j, nan_i))
    earlier = _op(BOOL, LOGICAL_AND, same, _op(BOOL, LT, j, i))
    return _op(BOOL, LOGICAL_OR, ahead, earlier)


def _sort(L: Lowering, node: Node, out: str) -> list[Stmt]:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axis = node.attrs["axis"] % len(shape)
    names = [f"s.{a}" for a in range(len(shape))]
    idx: list[Expr] = [Var(I64, n) for n in names]
    j = L.fresh("r.")
    other = idx[:axis] + [Var(I64, j)] + idx[axis + 1:]

    def key(at: list[Expr]) -> Expr:
        value = L.expr(x, at)
        return _op(I64, CAST, value) if value.dtype == BOOL else value
    before = _before(key(other), key(idx), Var(I64, j), idx[axis], node.attrs["descending"])
    rank = Reduce(I64, ADD, ((j, ix.dim(shape[axis])),), _op(I64, CAST, before), 0)
    target = ix.linearize(idx[:axis] + [rank] + idx[axis + 1:], shape)
    values, indices = (L.buffer_of[v] for v in node.outs)
    stores = (Store(values, target, L.expr(x, idx)), Store(indices, target, idx[axis]))
    loops = Loop(names[-1], ix.dim(shape[-1]), stores)
    return [_nest(names[:-1], list(shape[:-1]), loops, True) if len(shape) > 1
            else Loop(names[0], ix.dim(shape[0]), stores, parallel=True)]


def _scan(L: Lowering, node: Node, out: str) -> list[Stmt]:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axis = node.attrs["axis"] % len(shape)
    dtype = node.types[0].dtype
    combine, identity = (ADD, 0) if node.op is CUMSUM else (MUL, 1)
    step = -1 if node.attrs.get("reverse") else 1
    names = [f"s.{a}" for a in range(len(shape))]
    idx: list[Expr] = [Var(I64, n) for n in names]
    k = Var(I64, names[axis])  # the k-th step along the row
    at = k if step == 1 else ix.sub(ix.sub(ix.dim(shape[axis]), ix.ONE), k)
    here = idx[:axis] + [at] + idx[axis + 1:]
    prev = idx[:axis] + [ix.sub(at, ix.const(step))] + idx[axis + 1:]
    started = _op(BOOL, GT, k, ix.ZERO)
    carried = Load(dtype, out, ix.linearize(prev, shape), started, identity)
    value = _op(dtype, combine, carried, L.expr(x, here))
    row = Loop(names[axis], ix.dim(shape[axis]), (Store(out, ix.linearize(here, shape), value),))
    rest = [a for a in range(len(shape)) if a != axis]
    return [_nest([names[a] for a in rest], [shape[a] for a in rest], row, True)]


SORT_KERNELS = {SORT: _sort, CUMSUM: _scan, CUMPROD: _scan}
