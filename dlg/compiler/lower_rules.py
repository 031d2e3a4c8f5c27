"""Lowering rules, keyed by `OpDef`: the value of an op's output at an index vector, as a
kernel-IR expression over its inputs' values (an elementwise primitive is itself the scalar op,
movement ops are index arithmetic, reductions and contractions are `Reduce`s); and the kernels
that write their output by position (`SCATTERS`: scatters, the pooling gradients, sorts and
scans)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler import indexing as ix
from dlg.compiler import kernel_ir as kir
from dlg.compiler.kernel_ir import (
    CLAMP,
    I64,
    MAX,
    MIN,
    SELECT,
    Const,
    Expr,
    Fill,
    Load,
    Loop,
    Op,
    Random,
    ScalarOp,
    Stmt,
    Store,
    Var,
)
from dlg.compiler.lower_sort import SORT_KERNELS
from dlg.compiler.merge_axes import merge_axes
from dlg.ir.dtypes import DType
from dlg.ir.graph import Node, Value
from dlg.ir.ops.conv import CONV, CONV_WEIGHT_GRAD
from dlg.ir.ops.elementwise import ADD, CAST, COS, DIV, EQ, LOG, MUL, SQRT, SUB
from dlg.ir.ops.gather import GATHER, SCATTER, SCATTER_ADD_ALONG
from dlg.ir.ops.im2col import IM2COL
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.pool import AVG_POOL, AVG_POOL_GRAD, MAX_POOL, MAX_POOL_GRAD
from dlg.ir.ops.reduce import (
    ARGMAX,
    ARGMIN,
    NUMEL,
    REDUCE_MAX,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_SUM,
)
from dlg.ir.ops.shape import (
    BROADCAST_TO,
    CONCAT,
    PAD,
    RESHAPE,
    SCATTER_ADD,
    SLICE,
    SPLIT,
    TAKE,
    TRANSPOSE,
)
from dlg.ir.ops.source import ARANGE, CONSTANT, FULL, RANDOM_NORMAL, RANDOM_UNIFORM
from dlg.ir.shapes import Dim, Shape

if TYPE_CHECKING:
    from dlg.compiler.lower import Lowering

BOOL, F64 = DType.bool, DType.f64


# ---- expression rules, one per op (an elementwise primitive is its own scalar op) ---------------
Rule = Callable[["Lowering", Node, Value, list[Expr]], Expr]
LOWERINGS: dict[OpDef, Rule] = {}


def lowering(*ops: OpDef) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op in ops:
            LOWERINGS[op] = fn
        return fn
    return register


def elementwise(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    """Any elementwise primitive: the op itself at its (broadcast) inputs' values."""
    return Op(node.types[0].dtype, node.op, tuple(L.inputs_at(node, idx)))


def lowering_for(op: OpDef) -> Rule | None:
    """The expression rule of `op`; elementwise primitives share `elementwise` (codegen finds
    their scalar form by the op)."""
    return LOWERINGS.get(op) or (elementwise if Trait.ELEMENTWISE in op.traits else None)


@lowering(FULL)
def _full(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    return Const(node.types[0].dtype, node.attrs["value"])


@lowering(ARANGE)
def _arange(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    pos = Op(F64, CAST, (idx[0],))
    value = Op(F64, ADD, (Const(F64, a["start"]), Op(F64, MUL, (pos, Const(F64, a["step"])))))
    return Op(a["dtype"], CAST, (value,))


@lowering(NUMEL)
def _numel(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    t = L.g.type_of(node.inputs[0])
    axes = reduced_axes(node.attrs["axes"], t.rank)
    return Op(node.attrs["dtype"], CAST, (ix.numel([t.shape[a] for a in axes]),))


@lowering(RANDOM_UNIFORM, RANDOM_NORMAL)
def _random(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    dtype = a["dtype"]
    flat = ix.linearize(idx, node.types[0].shape)
    u = Random(F64, 2 * node.id + 1, flat)
    if node.op is RANDOM_UNIFORM:
        value = Op(F64, ADD, (Const(F64, a["low"]), Op(F64, MUL,
                                                        (Const(F64, a["high"] - a["low"]), u))))
    else:  # Box-Muller
        u2 = Random(F64, 2 * node.id + 2, flat)
        radius = Op(F64, SQRT, (Op(F64, MUL, (Const(F64, -2.0),
                                                  Op(F64, LOG, (Op(F64, SUB, (
                                                      Const(F64, 1.0), u)),)))),))
        angle = Op(F64, COS, (Op(F64, MUL, (Const(F64, 2 * math.pi), u2)),))
        value = Op(F64, ADD, (Const(F64, a["mean"]), Op(F64, MUL, (
            Const(F64, a["std"]), Op(F64, MUL, (radius, angle))))))
    return Op(dtype, CAST, (value,))


# ---- movement: index arithmetic ------------------------------------------------------------------
@lowering(RESHAPE)
def _reshape(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    flat = ix.linearize(idx, node.types[0].shape)
    if x in L.buffer_of:  # a buffer in memory is already flat: no index round trip
        return Load(node.types[0].dtype, L.buffer_of[x], flat)
    return L.expr(x, ix.reshape(idx, node.types[0].shape, L.g.type_of(x).shape))


@lowering(TRANSPOSE)
def _transpose(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    perm = [p % len(idx) for p in node.attrs["perm"]]
    src: list[Expr] = [ix.ZERO] * len(idx)
    for out_axis, in_axis in enumerate(perm):
        src[in_axis] = idx[out_axis]
    return L.expr(node.inputs[0], src)


@lowering(BROADCAST_TO)
def _broadcast_to(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    return L.expr(x, ix.broadcast(idx, node.types[0].shape, L.g.type_of(x).shape))


@lowering(SLICE)
def _slice(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    src = list(idx)
    for axis, start, step in zip(a["axes"], a["starts"], a["steps"]):
        axis %= len(idx)
        src[axis] = ix.add(ix.dim(start), ix.mul(idx[axis], ix.const(step)))
    return L.expr(node.inputs[0], src)


@lowering(SPLIT)
def _split(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    axis = node.attrs["axis"] % len(idx)
    src = list(idx)
    src[axis] = ix.add(idx[axis], ix.const(sum(node.attrs["sizes"][:v.index])))
    return L.expr(node.inputs[0], src)


@lowering(PAD)
def _pad(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    src, guard = [], None
    for i, (lo, hi), d in zip(idx, node.attrs["pads"], shape):
        j = ix.sub(i, ix.const(lo))
        src.append(j)
        if lo or hi:
            guard = ix.both(guard, ix.inside(j, ix.dim(d)))
    return L.clamped(x, src, guard, node.attrs["value"])


@lowering(CONCAT)
def _concat(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    axis = node.attrs["axis"] % len(idx)
    dtype = node.types[0].dtype
    parts: list[tuple[Expr, Expr]] = []
    offset: Dim = 0
    for u in node.inputs:
        size = L.g.type_of(u).shape[axis]
        if size == 0:
            continue
        local = ix.sub(idx[axis], ix.dim(offset))
        guard = ix.inside(local, ix.dim(size))
        src = idx[:axis] + [local] + idx[axis + 1:]
        parts.append((guard, L.clamped(u, src, guard, 0.0)))
        offset = offset + size
    if not parts:  # every input is empty along the axis, and so is the output: never read
        return Const(dtype, 0.0)
    value = parts[-1][1]
    for guard, part in reversed(parts[:-1]):
        value = Op(dtype, SELECT, (guard, part, value))
    return value


@lowering(TAKE)
def _take(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, indices = node.inputs
    axis = node.attrs["axis"] % L.g.type_of(x).rank
    k = L.g.type_of(indices).rank
    size = L.g.type_of(x).shape[axis]
    steps = _progression(L.g.node(indices), size)
    if steps is not None:  # a constant arange (a conv gradient's kernel flip): index arithmetic
        where = ix.add(ix.const(steps[0]), ix.mul(ix.const(steps[1]), idx[axis]))
        return L.expr(x, idx[:axis] + [where] + idx[axis + 1:])
    where = Op(I64, CAST, (L.expr(indices, idx[axis:axis + k]),))
    where = Op(I64, CLAMP, (where, ix.ZERO, ix.sub(ix.dim(size), ix.ONE)))  # never out of bounds
    return L.expr(x, idx[:axis] + [where] + idx[axis + k:])


def _progression(node: Node, size: Dim) -> tuple[int, int] | None:
    """(first, step) when `node` is a constant vector of integers first + step*i, all within
    [0, size): taking them is affine index arithmetic, not a load, a cast and a clamp per
    element (ResNet-18's training step: its kernel flips, 5 % of one core's time at batch 16)."""
    if node.op is not CONSTANT:
        return None
    values = np.asarray(node.attrs["value"])
    if (values.ndim != 1 or not len(values) or values.dtype.kind not in "iu"
            or not isinstance(size, int) or values.min() < 0 or values.max() >= size):
        return None
    step = int(values[1] - values[0]) if len(values) > 1 else 1
    if not np.array_equal(values, values[0] + step * np.arange(len(values))):
        return None
    return int(values[0]), step


def _along(L: Lowering, node: Node, idx: list[Expr]) -> list[Expr]:
    """`idx` with its axis replaced by the index tensor's value there (gather, scatter_add_along):
    clamped, so out-of-range indices never leave the buffer."""
    x, index = node.inputs[:2]
    axis = node.attrs["axis"] % len(idx)
    where = Op(I64, CAST, (L.expr(index, idx),))
    size = ix.dim(L.g.type_of(x).shape[axis])
    return idx[:axis] + [Op(I64, CLAMP, (where, ix.ZERO, ix.sub(size, ix.ONE)))] + idx[axis + 1:]


@lowering(GATHER)
def _gather(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    return L.expr(node.inputs[0], _along(L, node, idx))


# ---- reductions and contractions -----------------------------------------------------------------
COMBINE: dict[OpDef, tuple[ScalarOp, float]] = {
    REDUCE_SUM: (ADD, 0.0), REDUCE_PROD: (MUL, 1.0), REDUCE_MAX: (MAX, -math.inf),
    REDUCE_MIN: (MIN, math.inf), ARGMAX: (kir.ARGMAX, -math.inf), ARGMIN: (kir.ARGMIN, math.inf)}


def reduced_axes(axes: tuple[int, ...] | None, rank: int) -> tuple[int, ...]:
    """The axes a reduction runs over, as the registry reads `axes`: None is every axis, () none,
    and axis 0 (or -1) of a 0-d tensor none too."""
    if axes is None:
        return tuple(range(rank))
    return tuple(sorted({a % rank for a in axes})) if rank else ()


def _start(init: float, dtype: DType) -> float:
    """A reduction's first value in `dtype`: an integer's limit for an infinity (an int, as
    float(2^63 - 1) is 2^63, which wrapped to -2^63 in an int64 kernel)."""
    if dtype.is_float or math.isfinite(init):
        return init
    return int(np.iinfo(dtype.np).min if init < 0 else np.iinfo(dtype.np).max)


@lowering(REDUCE_SUM, REDUCE_PROD, REDUCE_MAX, REDUCE_MIN)
def _reduce(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axes = reduced_axes(node.attrs["axes"], len(shape))
    if not axes:  # over no axis (axes=(), or axis 0 of a 0-d tensor): each element is its own
        return L.expr(x, idx)
    keep = node.attrs["keepdims"]
    dtype = node.types[0].dtype
    combine, init = COMBINE[node.op]
    init = _start(init, dtype)

    def body(red: list[Expr]) -> Expr:
        outer, inner = iter(idx), iter(red)
        src = []
        for a in range(len(shape)):
            if a in axes:
                if keep:
                    next(outer)
                src.append(next(inner))
            else:
                src.append(next(outer))
        return L.expr(x, src)
    return merge_axes(L.reduction(combine, [shape[a] for a in axes], body, init, dtype))


@lowering(ARGMAX, ARGMIN)
def _arg(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axis = node.attrs["axis"]
    combine, init = COMBINE[node.op]
    init = _start(init, L.g.type_of(x).dtype)  # the best value so far is x's
    axes = list(reduced_axes(None if axis is None else (axis,), len(shape)))
    if not axes:  # a 0-d tensor is its own only element
        return Const(I64, 0)
    keep = node.attrs["keepdims"]
    outer = [i for a, i in enumerate(idx) if not (keep and a in axes)] if axis is not None else []

    def body(red: list[Expr]) -> Expr:
        if axis is None:
            return L.expr(x, red)
        rest = iter(outer)
        return L.expr(x, [red[0] if a in axes else next(rest) for a in range(len(shape))])
    return merge_axes(L.reduction(combine, [shape[a] for a in axes], body, init, I64))


@lowering(MATMUL)
def _matmul(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, y = node.inputs
    tx, ty = L.g.type_of(x), L.g.type_of(y)
    out = node.types[0]
    xs = (1,) + tx.shape if tx.rank == 1 else tx.shape
    ys = ty.shape + (1,) if ty.rank == 1 else ty.shape
    batch = out.shape[:len(out.shape) - (tx.rank > 1) - (ty.rank > 1)]
    b_idx = idx[:len(batch)]
    i = idx[len(batch)] if tx.rank > 1 else ix.ZERO
    j = idx[-1] if ty.rank > 1 else ix.ZERO

    def body(red: list[Expr]) -> Expr:
        k = red[0]
        xi = ix.broadcast(b_idx, batch, xs[:-2]) + [i, k]
        yi = ix.broadcast(b_idx, batch, ys[:-2]) + [k, j]
        xe = L.expr(x, xi[1:] if tx.rank == 1 else xi)
        ye = L.expr(y, yi[:-1] if ty.rank == 1 else yi)
        return Op(out.dtype, MUL, (xe, ye))
    return L.reduction(ADD, [xs[-1]], body, 0.0, out.dtype)


@lowering(CONV)
def _conv(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, w = node.inputs
    tx, tw = L.g.type_of(x), L.g.type_of(w)
    c_out, c_group, *kernel = (int(d) for d in tw.shape)

    def body(red: list[Expr]) -> Expr:
        xe = _conv_input(L, node, idx[0], idx[1], c_out, red[0], idx[2:], red[1:])
        return Op(tx.dtype, MUL, (xe, L.expr(w, [idx[1], *red])))
    return L.reduction(ADD, [c_group, *kernel], body, 0.0, tx.dtype)


@lowering(CONV_WEIGHT_GRAD)
def _conv_weight_grad(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, g = node.inputs
    tg = L.g.type_of(g)

    def body(red: list[Expr]) -> Expr:
        n, out = red[0], red[1:]
        xe = _conv_input(L, node, n, idx[0], int(tg.shape[1]), idx[1], out, idx[2:])
        return Op(tg.dtype, MUL, (xe, L.expr(g, [n, idx[0], *out])))
    return L.reduction(ADD, list(tg.shape[:1]) + list(tg.shape[2:]), body, 0.0, tg.dtype)


def _conv_input(L: Lowering, node: Node, n: Expr, o: Expr, c_out: int, c: Expr,
                out: list[Expr], ks: list[Expr]) -> Expr:
    """The input element a convolution multiplies with weight [o, c, *ks] for output position
    `out` of sample `n` (zero in the padding)."""
    x = node.inputs[0]
    a = node.attrs
    shape = L.g.type_of(x).shape
    c_group = int(shape[1]) // a["groups"]
    channel = c
    if a["groups"] > 1:
        group = ix.floordiv(o, ix.const(c_out // a["groups"]))
        channel = ix.add(ix.mul(group, ix.const(c_group)), c)
    pos, guard = [], None
    for i, (p, k, s, d, (lo, hi)) in enumerate(zip(out, ks, a["stride"], a["dilation"],
                                                   a["padding"])):
        q = ix.add(ix.mul(p, ix.const(s)), ix.sub(ix.mul(k, ix.const(d)), ix.const(lo)))
        pos.append(q)
        if lo or hi:
            guard = ix.both(guard, ix.inside(q, ix.dim(shape[2 + i])))
    return L.clamped(x, [n, channel, *pos], guard, 0.0)


@lowering(IM2COL)
def _im2col(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    """Row (channel, kernel position), column (sample, output position): the input element that
    kernel position reads there (the row's index arithmetic is loop-invariant in a column)."""
    a = node.attrs
    x = node.inputs[0]
    c, *ks = ix.delinearize(idx[0], (L.g.type_of(x).shape[1], *a["kernel"]))
    pos = [ix.add(ix.mul(p, ix.const(s)), ix.mul(k, ix.const(d)))
           for p, k, s, d in zip(idx[2:], ks, a["stride"], a["dilation"])]
    return L.expr(x, [idx[1], c, *pos])


def _window(L: Lowering, node: Node, idx: list[Expr], ks: list[Expr], dilation: Any,
            shape: Shape | None = None, out: Shape | None = None
            ) -> tuple[list[Expr], Expr | None]:
    """Input positions of window offset `ks` of the output at `idx`, and whether inside the
    pooled input (of `shape`, by default the node's first input's). With the output's shape
    `out`, a dim whose every window lies inside (no padding, the last one ends in the input:
    a 2x2 pool of an even size) needs no guard, so its loads stay plain and vectorise."""
    a = node.attrs
    nd = len(a["kernel"])
    shape = shape if shape is not None else L.g.type_of(node.inputs[0]).shape
    ends = out[len(out) - nd:] if out is not None else (None,) * nd
    lead = idx[:len(idx) - nd]
    pos, guard = [], None
    for o, k, s, p, d, size, kernel, end in zip(idx[len(idx) - nd:], ks, a["stride"],
                                                a["padding"], dilation, shape[len(shape) - nd:],
                                                a["kernel"], ends):
        q = ix.add(ix.mul(o, ix.const(s)), ix.sub(ix.mul(k, ix.const(d)), ix.const(p)))
        pos.append(q)
        if not (p == 0 and isinstance(size, int) and isinstance(end, int)
                and (end - 1) * s + (kernel - 1) * d < size):
            guard = ix.both(guard, ix.inside(q, ix.dim(size)))
    return lead + pos, guard


@lowering(MAX_POOL)
def _max_pool(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    kernel = node.attrs["kernel"]
    dilation = node.attrs["dilation"] or (1,) * len(kernel)

    lowest = _start(-math.inf, node.types[0].dtype)  # an integer dtype's minimum for ints

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, idx, red, dilation, out=node.types[0].shape)
        return L.clamped(node.inputs[0], src, guard, lowest)
    return L.reduction(MAX, list(kernel), body, lowest, node.types[0].dtype)


def _avg_divisor(L: Lowering, node: Node, idx: list[Expr], shape: Shape) -> Expr:
    """PyTorch's avg_pool divisor at output `idx`, as an expression."""
    a = node.attrs
    nd = len(a["kernel"])
    total: Expr = ix.ONE
    for o, k, s, p, size in zip(idx[len(idx) - nd:], a["kernel"], a["stride"], a["padding"],
                                shape[len(shape) - nd:]):
        start = ix.sub(ix.mul(o, ix.const(s)), ix.const(p))
        end = Op(I64, MIN, (ix.add(start, ix.const(k)), ix.add(ix.dim(size), ix.const(p))))
        if not a["count_include_pad"]:
            start = Op(I64, MAX, (start, ix.ZERO))
            end = Op(I64, MIN, (end, ix.dim(size)))
        total = ix.mul(total, ix.sub(end, start))
    return total


@lowering(AVG_POOL)
def _avg_pool(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    dtype = node.types[0].dtype
    kernel = node.attrs["kernel"]

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, idx, red, (1,) * len(kernel), out=node.types[0].shape)
        return L.clamped(node.inputs[0], src, guard, 0.0)
    total = L.reduction(ADD, list(kernel), body, 0.0, dtype)
    divisor = _avg_divisor(L, node, idx, L.g.type_of(node.inputs[0]).shape)
    return Op(dtype, DIV, (total, Op(dtype, CAST, (divisor,))))


# ---- scatters: kernels that add into a zeroed output ---------------------------------------------
def _loops(extents: list[Dim], names: list[str], body: Stmt) -> Stmt:
    for name, extent in reversed(list(zip(names, extents))):
        body = Loop(name, ix.dim(extent), (body,))
    return body


def _scatter_add(L: Lowering, node: Node, out: str) -> list[Stmt]:
    updates, indices = node.inputs
    shape = node.attrs["shape"]
    axis = node.attrs["axis"] % len(shape)
    ushape = L.g.type_of(updates).shape
    k = L.g.type_of(indices).rank
    names = [f"u.{a}" for a in range(len(ushape))]
    u = [Var(I64, n) for n in names]
    where = Op(I64, CAST, (L.expr(indices, u[axis:axis + k]),))
    where = Op(I64, CLAMP, (where, ix.ZERO, ix.sub(ix.dim(shape[axis]), ix.ONE)))
    target = u[:axis] + [where] + u[axis + k:]
    store = Store(out, ix.linearize(target, shape), L.expr(updates, u), accumulate=True)
    return _zeroed(node, out, _loops(list(ushape), names, store))


def _along_stores(L: Lowering, node: Node, out: str, accumulate: bool) -> list[Stmt]:
    """x copied into the output, then each src element stored (or added) at its index's
    position, in index order (serial loops: the last of repeated positions is stored last)."""
    x, _, src = node.inputs
    shape, ishape = node.types[0].shape, L.g.type_of(src).shape
    i = [Var(I64, f"i.{a}") for a in range(len(shape))]
    u = [Var(I64, f"u.{a}") for a in range(len(ishape))]
    copy = Store(out, ix.linearize(i, shape), L.expr(x, i))
    put = Store(out, ix.linearize(_along(L, node, u), shape), L.expr(src, u), accumulate)
    return [_loops(list(shape), [v.name for v in i], copy),
            _loops(list(ishape), [v.name for v in u], put)]


def _scatter_add_along(L: Lowering, node: Node, out: str) -> list[Stmt]:
    return _along_stores(L, node, out, accumulate=True)


def _scatter(L: Lowering, node: Node, out: str) -> list[Stmt]:
    return _along_stores(L, node, out, accumulate=False)


def _max_pool_grad(L: Lowering, node: Node, out: str) -> list[Stmt]:
    """Each window's gradient to its first maximum. Where the windows tile the input exactly
    (stride = kernel, no padding or dilation, nothing left over: a 2x2 pool of an even size)
    each window stores its kernel's positions itself, the gradient at the maximum and zeros
    elsewhere, one store per position with the argmax found once: no zeroing pass and no
    read-add-write, and threads may split the windows (one core, [64, 16, 28, 28]: 2.89 ->
    2.21 ms; what is left is the argmax's chain of NaN-aware comparisons)."""
    x, g = node.inputs
    kernel = node.attrs["kernel"]
    dilation = node.attrs["dilation"] or (1,) * len(kernel)
    gshape = L.g.type_of(g).shape
    xshape = L.g.type_of(x).shape
    names = [f"o.{a}" for a in range(len(gshape))]
    o = [Var(I64, n) for n in names]

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, o, red, dilation, out=gshape)
        return L.clamped(x, src, guard, -math.inf)
    first = L.reduction(kir.ARGMAX, list(kernel), body, -math.inf, I64)
    if _tiles_input(node, xshape, gshape, dilation):
        dtype = node.types[0].dtype
        grad, zero = L.expr(g, o), Const(dtype, 0.0)
        stores = []
        for k, at in enumerate(np.ndindex(*kernel)):
            src, _ = _window(L, node, o, [ix.const(a) for a in at], dilation, out=gshape)
            chosen = Op(DType.bool, EQ, (first, ix.const(k)))
            stores.append(Store(out, ix.linearize(src, xshape),
                                Op(dtype, SELECT, (chosen, grad, zero))))
        nest: Stmt = Loop(names[-1], ix.dim(gshape[-1]), tuple(stores))
        nest = _loops(list(gshape[:-1]), names[:-1], nest)
        return [replace(nest, parallel=True)]  # windows apart: threads may share them
    offsets = ix.delinearize(first, list(kernel))
    src, guard = _window(L, node, o, offsets, dilation, out=gshape)
    store = Store(out, ix.linearize(_inside(src, guard), xshape), L.expr(g, o), accumulate=True)
    return _zeroed(node, out, _loops(list(gshape), names, store))


def _tiles_input(node: Node, xshape: Shape, gshape: Shape, dilation: Any) -> bool:
    """Whether a pool's windows cover its input exactly once each (and there are few enough
    kernel positions to store one by one)."""
    a = node.attrs
    nd = len(a["kernel"])
    sizes = list(xshape[len(xshape) - nd:])
    outs = list(gshape[len(gshape) - nd:])
    return (tuple(a["stride"]) == tuple(a["kernel"]) and not any(a["padding"])
            and all(d == 1 for d in dilation) and int(np.prod(a["kernel"])) <= TILED_STORES
            and all(isinstance(n, int) and isinstance(m, int) and n == m * k
                    for n, m, k in zip(sizes, outs, a["kernel"])))


def _avg_pool_grad(L: Lowering, node: Node, out: str) -> list[Stmt]:
    (g,) = node.inputs
    a = node.attrs
    dtype = node.types[0].dtype
    gshape = L.g.type_of(g).shape
    names = [f"o.{i}" for i in range(len(gshape))]
    o = [Var(I64, n) for n in names]
    knames = [f"k.{i}" for i in range(len(a["kernel"]))]
    ks = [Var(I64, n) for n in knames]
    src, guard = _window(L, node, o, ks, (1,) * len(a["kernel"]), a["shape"], out=gshape)
    share = Op(dtype, DIV, (L.expr(g, o), Op(dtype, CAST,
                                                (_avg_divisor(L, node, o, a["shape"]),))))
    value = share if guard is None else Op(dtype, SELECT, (guard, share, Const(dtype, 0.0)))
    store = Store(out, ix.linearize(_inside(src, guard), a["shape"]), value, accumulate=True)
    inner = _loops(list(a["kernel"]), knames, store)
    return _zeroed(node, out, _loops(list(gshape), names, inner))


def _zeroed(node: Node, out: str, adds: Stmt) -> list[Stmt]:
    """A scatter that adds into its output: the output zeroed first."""
    return [Fill(out, ix.numel(node.types[0].shape), 0.0), adds]


def _inside(src: list[Expr], guard: Expr | None) -> list[Expr]:
    """A window's positions where `guard` holds, else position 0: an index that stays inside
    the buffer for a padded position, whose store adds zero (avg) or is never chosen (max)."""
    if guard is None:
        return src
    return [Op(I64, SELECT, (guard, i, ix.ZERO)) for i in src]


TILED_STORES = 16  # kernel positions a tiling max pool's gradient stores one by one
# Kernels that write their output by position (scatters, sorts, scans), each all of it: those
# that add zero it first (`_zeroed`)
SCATTERS: dict[OpDef, Callable[["Lowering", Node, str], list[Stmt]]] = {
    **SORT_KERNELS,
    SCATTER_ADD: _scatter_add, MAX_POOL_GRAD: _max_pool_grad, AVG_POOL_GRAD: _avg_pool_grad,
    SCATTER_ADD_ALONG: _scatter_add_along, SCATTER: _scatter}
