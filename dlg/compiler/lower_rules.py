"""Lowering rules, one per op: the value of an op's output at an index vector, as a kernel-IR
expression over its inputs' values (elementwise ops map to scalar ops by name, movement ops are
index arithmetic, reductions and contractions are `Reduce`s); and the scatter kernels (ops that
add into a zeroed output: scatter_add and the pooling gradients)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import I64, Const, Expr, Load, Loop, Op, Random, Stmt, Store, Var
from dlg.errors import DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.graph import Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.shapes import Dim, Shape

if TYPE_CHECKING:
    from dlg.compiler.lower import Lowering

BOOL, F64 = DType.bool, DType.f64


# ---- expression rules, one per op (elementwise ops map to scalar ops by name) --------------------
Rule = Callable[["Lowering", Node, Value, list[Expr]], Expr]
RULES: dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn
    return register


def elementwise(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    if Trait.ELEMENTWISE not in node.op.traits:
        raise DlgTypeError(f"the compiler has no lowering for {node.op.name}", node.span)
    args = L.inputs_at(node, idx)
    dtype = node.types[0].dtype
    name = node.op.name
    if name == "where":
        return Op(dtype, "select", tuple(args))
    return Op(dtype, name, tuple(args))


@rule("full")
def _full(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    return Const(node.types[0].dtype, node.attrs["value"])


@rule("arange")
def _arange(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    pos = Op(F64, "cast", (idx[0],))
    value = Op(F64, "add", (Const(F64, a["start"]), Op(F64, "mul", (pos, Const(F64, a["step"])))))
    return Op(a["dtype"], "cast", (value,))


@rule("numel")
def _numel(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    t = L.g.type_of(node.inputs[0])
    axes = range(t.rank) if node.attrs["axes"] is None else node.attrs["axes"]
    return Op(node.attrs["dtype"], "cast", (ix.numel([t.shape[a] for a in axes]),))


@rule("random_uniform", "random_normal")
def _random(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    dtype = a["dtype"]
    flat = ix.linearize(idx, node.types[0].shape)
    u = Random(F64, 2 * node.id + 1, flat)
    if node.op.name == "random_uniform":
        value = Op(F64, "add", (Const(F64, a["low"]), Op(F64, "mul",
                                                        (Const(F64, a["high"] - a["low"]), u))))
    else:  # Box-Muller
        u2 = Random(F64, 2 * node.id + 2, flat)
        radius = Op(F64, "sqrt", (Op(F64, "mul", (Const(F64, -2.0),
                                                  Op(F64, "log", (Op(F64, "sub", (
                                                      Const(F64, 1.0), u)),)))),))
        angle = Op(F64, "cos", (Op(F64, "mul", (Const(F64, 2 * math.pi), u2)),))
        value = Op(F64, "add", (Const(F64, a["mean"]), Op(F64, "mul", (
            Const(F64, a["std"]), Op(F64, "mul", (radius, angle))))))
    return Op(dtype, "cast", (value,))


# ---- movement: index arithmetic ------------------------------------------------------------------
@rule("reshape")
def _reshape(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    flat = ix.linearize(idx, node.types[0].shape)
    if x in L.buffer_of:  # a buffer in memory is already flat: no index round trip
        return Load(node.types[0].dtype, L.buffer_of[x], flat)
    return L.expr(x, ix.delinearize(flat, L.g.type_of(x).shape))


@rule("transpose")
def _transpose(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    perm = [p % len(idx) for p in node.attrs["perm"]]
    src: list[Expr] = [ix.ZERO] * len(idx)
    for out_axis, in_axis in enumerate(perm):
        src[in_axis] = idx[out_axis]
    return L.expr(node.inputs[0], src)


@rule("broadcast_to")
def _broadcast_to(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    return L.expr(x, ix.broadcast(idx, node.types[0].shape, L.g.type_of(x).shape))


@rule("slice")
def _slice(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    a = node.attrs
    src = list(idx)
    for axis, start, step in zip(a["axes"], a["starts"], a["steps"]):
        axis %= len(idx)
        src[axis] = ix.add(ix.dim(start), ix.mul(idx[axis], ix.const(step)))
    return L.expr(node.inputs[0], src)


@rule("split")
def _split(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    axis = node.attrs["axis"] % len(idx)
    src = list(idx)
    src[axis] = ix.add(idx[axis], ix.const(sum(node.attrs["sizes"][:v.index])))
    return L.expr(node.inputs[0], src)


@rule("pad")
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


@rule("concat")
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
    value = parts[-1][1]
    for guard, part in reversed(parts[:-1]):
        value = Op(dtype, "select", (guard, part, value))
    return value


@rule("take")
def _take(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, indices = node.inputs
    axis = node.attrs["axis"] % L.g.type_of(x).rank
    k = L.g.type_of(indices).rank
    where = Op(I64, "cast", (L.expr(indices, idx[axis:axis + k]),))
    size = ix.dim(L.g.type_of(x).shape[axis])
    where = Op(I64, "clamp", (where, ix.ZERO, ix.sub(size, ix.ONE)))  # never out of bounds
    return L.expr(x, idx[:axis] + [where] + idx[axis + k:])


# ---- reductions and contractions -----------------------------------------------------------------
COMBINE = {"reduce_sum": ("add", 0.0), "reduce_prod": ("mul", 1.0),
           "reduce_max": ("max", -math.inf), "reduce_min": ("min", math.inf),
           "argmax": ("argmax", -math.inf), "argmin": ("argmin", math.inf)}


@rule("reduce_sum", "reduce_prod", "reduce_max", "reduce_min")
def _reduce(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axes = sorted(a % len(shape) for a in (node.attrs["axes"] or range(len(shape))))
    keep = node.attrs["keepdims"]
    dtype = node.types[0].dtype
    combine, init = COMBINE[node.op.name]
    if dtype.is_float is False and not math.isfinite(init):
        init = float(np.iinfo(dtype.np).min if init < 0 else np.iinfo(dtype.np).max)

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
    return L.reduction(combine, [shape[a] for a in axes], body, init, dtype)


@rule("argmax", "argmin")
def _arg(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x = node.inputs[0]
    shape = L.g.type_of(x).shape
    axis = node.attrs["axis"]
    combine, init = COMBINE[node.op.name]
    axes = list(range(len(shape))) if axis is None else [axis % len(shape)]
    keep = node.attrs["keepdims"]
    outer = [i for a, i in enumerate(idx) if not (keep and a in axes)] if axis is not None else []

    def body(red: list[Expr]) -> Expr:
        if axis is None:
            return L.expr(x, red)
        rest = iter(outer)
        return L.expr(x, [red[0] if a in axes else next(rest) for a in range(len(shape))])
    return L.reduction(combine, [shape[a] for a in axes], body, init, I64)


@rule("matmul")
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
        return Op(out.dtype, "mul", (xe, ye))
    return L.reduction("add", [xs[-1]], body, 0.0, out.dtype)


@rule("conv")
def _conv(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, w = node.inputs
    tx, tw = L.g.type_of(x), L.g.type_of(w)
    c_out, c_group, *kernel = (int(d) for d in tw.shape)

    def body(red: list[Expr]) -> Expr:
        xe = _conv_input(L, node, idx[0], idx[1], c_out, red[0], idx[2:], red[1:])
        return Op(tx.dtype, "mul", (xe, L.expr(w, [idx[1], *red])))
    return L.reduction("add", [c_group, *kernel], body, 0.0, tx.dtype)


@rule("conv_weight_grad")
def _conv_weight_grad(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    x, g = node.inputs
    tg = L.g.type_of(g)

    def body(red: list[Expr]) -> Expr:
        n, out = red[0], red[1:]
        xe = _conv_input(L, node, n, idx[0], int(tg.shape[1]), idx[1], out, idx[2:])
        return Op(tg.dtype, "mul", (xe, L.expr(g, [n, idx[0], *out])))
    return L.reduction("add", list(tg.shape[:1]) + list(tg.shape[2:]), body, 0.0, tg.dtype)


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


def _window(L: Lowering, node: Node, idx: list[Expr], ks: list[Expr], dilation: Any,
            shape: Shape | None = None) -> tuple[list[Expr], Expr | None]:
    """Input positions of window offset `ks` of the output at `idx`, and whether inside the
    pooled input (of `shape`, by default the node's first input's)."""
    a = node.attrs
    nd = len(a["kernel"])
    shape = shape if shape is not None else L.g.type_of(node.inputs[0]).shape
    lead = idx[:len(idx) - nd]
    pos, guard = [], None
    for o, k, s, p, d, size in zip(idx[len(idx) - nd:], ks, a["stride"], a["padding"], dilation,
                                   shape[len(shape) - nd:]):
        q = ix.add(ix.mul(o, ix.const(s)), ix.sub(ix.mul(k, ix.const(d)), ix.const(p)))
        pos.append(q)
        guard = ix.both(guard, ix.inside(q, ix.dim(size)))
    return lead + pos, guard


@rule("max_pool")
def _max_pool(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    kernel = node.attrs["kernel"]
    dilation = node.attrs["dilation"] or (1,) * len(kernel)

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, idx, red, dilation)
        return L.clamped(node.inputs[0], src, guard, -math.inf)
    return L.reduction("max", list(kernel), body, -math.inf, node.types[0].dtype)


def _avg_divisor(L: Lowering, node: Node, idx: list[Expr], shape: Shape) -> Expr:
    """PyTorch's avg_pool divisor at output `idx`, as an expression."""
    a = node.attrs
    nd = len(a["kernel"])
    total: Expr = ix.ONE
    for o, k, s, p, size in zip(idx[len(idx) - nd:], a["kernel"], a["stride"], a["padding"],
                                shape[len(shape) - nd:]):
        start = ix.sub(ix.mul(o, ix.const(s)), ix.const(p))
        end = Op(I64, "min", (ix.add(start, ix.const(k)), ix.add(ix.dim(size), ix.const(p))))
        if not a["count_include_pad"]:
            start = Op(I64, "max", (start, ix.ZERO))
            end = Op(I64, "min", (end, ix.dim(size)))
        total = ix.mul(total, ix.sub(end, start))
    return total


@rule("avg_pool")
def _avg_pool(L: Lowering, node: Node, v: Value, idx: list[Expr]) -> Expr:
    dtype = node.types[0].dtype
    kernel = node.attrs["kernel"]

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, idx, red, (1,) * len(kernel))
        return L.clamped(node.inputs[0], src, guard, 0.0)
    total = L.reduction("add", list(kernel), body, 0.0, dtype)
    divisor = _avg_divisor(L, node, idx, L.g.type_of(node.inputs[0]).shape)
    return Op(dtype, "div", (total, Op(dtype, "cast", (divisor,))))


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
    where = Op(I64, "cast", (L.expr(indices, u[axis:axis + k]),))
    where = Op(I64, "clamp", (where, ix.ZERO, ix.sub(ix.dim(shape[axis]), ix.ONE)))
    target = u[:axis] + [where] + u[axis + k:]
    store = Store(out, ix.linearize(target, shape), L.expr(updates, u), accumulate=True)
    return [_loops(list(ushape), names, store)]


def _max_pool_grad(L: Lowering, node: Node, out: str) -> list[Stmt]:
    x, g = node.inputs
    kernel = node.attrs["kernel"]
    dilation = node.attrs["dilation"] or (1,) * len(kernel)
    gshape = L.g.type_of(g).shape
    names = [f"o.{a}" for a in range(len(gshape))]
    o = [Var(I64, n) for n in names]

    def body(red: list[Expr]) -> Expr:
        src, guard = _window(L, node, o, red, dilation)
        return L.clamped(x, src, guard, -math.inf)
    first = L.reduction("argmax", list(kernel), body, -math.inf, I64)
    offsets = ix.delinearize(first, list(kernel))
    src, guard = _window(L, node, o, offsets, dilation)
    safe = [Op(I64, "select", (guard, i, ix.ZERO)) for i in src]  # type: ignore[arg-type]
    xshape = L.g.type_of(x).shape
    store = Store(out, ix.linearize(safe, xshape), L.expr(g, o), accumulate=True)
    return [_loops(list(gshape), names, store)]


def _avg_pool_grad(L: Lowering, node: Node, out: str) -> list[Stmt]:
    (g,) = node.inputs
    a = node.attrs
    dtype = node.types[0].dtype
    gshape = L.g.type_of(g).shape
    names = [f"o.{i}" for i in range(len(gshape))]
    o = [Var(I64, n) for n in names]
    knames = [f"k.{i}" for i in range(len(a["kernel"]))]
    ks = [Var(I64, n) for n in knames]
    src, guard = _window(L, node, o, ks, (1,) * len(a["kernel"]), a["shape"])
    safe = [Op(I64, "select", (guard, i, ix.ZERO)) for i in src]  # type: ignore[arg-type]
    share = Op(dtype, "div", (L.expr(g, o), Op(dtype, "cast",
                                                (_avg_divisor(L, node, o, a["shape"]),))))
    value = Op(dtype, "select", (guard, share, Const(dtype, 0.0)))
    store = Store(out, ix.linearize(safe, a["shape"]), value, accumulate=True)
    inner = _loops(list(a["kernel"]), knames, store)
    return [_loops(list(gshape), names, inner)]


SCATTERS: dict[str, Callable[["Lowering", Node, str], list[Stmt]]] = {
    "scatter_add": _scatter_add, "max_pool_grad": _max_pool_grad,
    "avg_pool_grad": _avg_pool_grad}
