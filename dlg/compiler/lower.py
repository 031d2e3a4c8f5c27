"""Lowering: a primitive graph, with fusion's choice of materialized values, becomes a `Program`
of kernels over named buffers.

Each materialized value gets one kernel: loops over its index space around a store of its
expression. `Lowering.expr(v, idx)` is the value of `v` at index vector `idx`: a load where `v`
is in memory, otherwise the op's scalar form over its inputs' expressions at the indices the op
reads (movement ops are index arithmetic, reductions are `Reduce`s). Scan bodies lower to
programs of their own, called once per step from the parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import (
    I64,
    SELECT,
    CallScan,
    Const,
    Copy,
    Expr,
    IfFinite,
    Kernel,
    Load,
    Loop,
    Op,
    Reduce,
    ScalarOp,
    Slot,
    Stmt,
    Store,
    Var,
)
from dlg.compiler.lower_rules import SCATTERS, lowering_for
from dlg.compiler.passes.fuse import Fusion, fuse
from dlg.errors import DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.shape import CONCAT
from dlg.ir.ops.source import CONSTANT, INPUT, PARAM
from dlg.ir.shapes import Dim, Shape

BOOL, F64 = DType.bool, DType.f64


@dataclass
class Buffer:
    name: str
    dtype: DType
    shape: Shape
    kind: str  # input, param, output, temp, constant
    value: np.ndarray | None = None


@dataclass
class Program:
    """Kernels over buffers; `order` is the buffer table a compiled entry is called with."""

    name: str
    buffers: dict[str, Buffer] = field(default_factory=dict)
    kernels: list[Kernel] = field(default_factory=list)
    inputs: list[tuple[str, str]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[Program] = field(default_factory=list)

    @property
    def order(self) -> list[str]:
        return list(self.buffers)

    @property
    def dims(self) -> list[str]:
        names = {s for b in self.buffers.values() for d in b.shape
                 if not isinstance(d, int) for s in d.symbols}
        for body in self.bodies:
            names |= set(body.dims)
        return sorted(names)


def lower(g: Graph, name: str = "main", loss: str | None = None,
          fusion: Fusion | None = None) -> Program:
    """Lower a decomposed graph (with `fusion`'s choice, else `fuse`'s); with `loss`, state
    updates happen only when it is finite."""
    return Lowering(g, name, fusion).run(loss)


def has_lowering(op: OpDef) -> bool:
    """Whether `lower` compiles `op` (the registry tests ask): it is a buffer, gets a kernel of
    its own (scan, the scatters) or has an expression rule."""
    if Trait.INTERPRETED in op.traits:  # complex values: not lowered yet (compiler/interpreted)
        return False
    return (Trait.BUFFER in op.traits or op is SCAN or op in SCATTERS
            or lowering_for(op) is not None)


class Lowering:
    def __init__(self, g: Graph, name: str, fusion: Fusion | None = None):
        self.g = g
        self.fusion = fuse(g) if fusion is None else fusion
        self.p = Program(name)
        self.buffer_of: dict[Value, str] = {}
        self.counter = 0
        self.ops: list[str] = []

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def add_buffer(self, name: str, dtype: DType, shape: Shape, kind: str,
                   value: np.ndarray | None = None) -> str:
        assert name not in self.p.buffers, name
        self.p.buffers[name] = Buffer(name, dtype, tuple(shape), kind, value)
        return name

    # -- the program ------------------------------------------------------------------------------
    def run(self, loss: str | None) -> Program:
        g = self.g
        for node in g:
            t = node.types[0] if node.types else None
            if node.op is INPUT:
                self.buffer_of[node.out] = self.add_buffer(f"in.{node.name}", t.dtype, t.shape,
                                                           "input")
                self.p.inputs.append((node.name, f"in.{node.name}"))
            elif node.op is PARAM:
                self.buffer_of[node.out] = self.add_buffer(f"p.{node.name}", t.dtype, t.shape,
                                                           "param")
                self.p.params.append((node.name, f"p.{node.name}"))
            elif node.op is CONSTANT:
                self.buffer_of[node.out] = self.add_buffer(f"c{node.id}", t.dtype, t.shape,
                                                           "constant", node.attrs["value"])
        for out_name, v in g.outputs:  # outputs are written where the caller wants them
            if v not in self.buffer_of:
                t = g.type_of(v)
                self.buffer_of[v] = self.add_buffer(f"out.{out_name}", t.dtype, t.shape, "output")
        for node in g:
            if Trait.BUFFER in node.op.traits:
                continue
            for v in node.outs:
                if v in self.fusion.materialized and v not in self.buffer_of:
                    t = g.type_of(v)
                    label = f".{node.name}" if node.name else ""
                    self.buffer_of[v] = self.add_buffer(f"t{node.id}_{v.index}{label}", t.dtype,
                                                        t.shape, "temp")
            if any(v in self.fusion.materialized for v in node.outs):
                self.kernel_for(node)
        for out_name, v in g.outputs:  # a value output twice, or an input/param output as is
            buf = f"out.{out_name}"
            if buf not in self.p.buffers:
                t = g.type_of(v)
                self.add_buffer(buf, t.dtype, t.shape, "output")
            if self.buffer_of[v] != buf:
                self.emit(f"copy_{out_name}", [Copy(buf, self.buffer_of[v], ix.numel(t.shape))])
            self.p.outputs.append((out_name, buf))
        copies: list[Stmt] = [Copy(f"p.{name}", self.buffer_of[v],
                                   ix.numel(g.type_of(v).shape)) for name, v in g.updates]
        if copies:
            if loss is not None:
                copies = [IfFinite(f"out.{loss}", tuple(copies))]
            self.emit("update_state", copies)
        return self.p

    def emit(self, name: str, body: list[Stmt]) -> None:
        self.p.kernels.append(Kernel.over(f"k{len(self.p.kernels)}_{name}"[:60], tuple(body)))

    def kernel_for(self, node: Node) -> None:
        if node.op is SCAN:
            return self.scan(node)
        if node.op in SCATTERS:
            name = node.op.name
            self.ops = [name]
            out = self.buffer_of[node.outs[0]]
            return self.emit(name, SCATTERS[node.op](self, node, out))
        for v in node.outs:
            if v not in self.fusion.materialized:
                continue
            self.ops = []
            shape = self.g.type_of(v).shape
            if node.op is CONCAT:
                stmts = self.concat_nests(node, v)
            else:
                stmts = self.store_nest(v, v, shape, range(len(shape)), {})
            self.emit("_".join(dict.fromkeys(self.ops)), stmts)

    def store_nest(self, out: Value, src: Value, extents: Shape, axes: Iterable[int],
                   offsets: dict[int, Dim]) -> list[Stmt]:
        """The loops over `axes` (the outer ones are the caller's) that store `src`, of shape
        `extents`, into `out`'s buffer, each index moved on by `offsets` along its axis."""
        shape = self.g.type_of(out).shape
        idx = [Var(I64, f"i.{a}") for a in range(len(shape))]
        at = [ix.add(i, ix.dim(offsets[a])) if a in offsets else i for a, i in enumerate(idx)]
        stmt: Stmt = Store(self.buffer_of[out], ix.linearize(at, shape),
                           self.expr(src, idx, root=src == out))
        for a in reversed(list(axes)):
            stmt = Loop(f"i.{a}", ix.dim(extents[a]), (stmt,), parallel=a == 0)
        return [stmt]

    def concat_nests(self, node: Node, v: Value) -> list[Stmt]:
        """A concatenation stored part by part into its slice of the output, inside the loops
        of the axes before the joined one: each part's elements are computed alone, where one
        nest over the whole would select among every part's values at every element."""
        self.ops.append(node.op.name)
        shape = self.g.type_of(v).shape
        axis = node.attrs["axis"] % len(shape)
        parts: list[Stmt] = []
        offset: Dim = 0
        for u in node.inputs:
            extents = self.g.type_of(u).shape
            if extents[axis] != 0:
                parts += self.store_nest(v, u, extents, range(axis, len(shape)), {axis: offset})
            offset = offset + extents[axis]
        for a in reversed(range(axis)):
            parts = [Loop(f"i.{a}", ix.dim(shape[a]), tuple(parts), parallel=a == 0)]
        return parts

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, v: Value, idx: list[Expr], root: bool = False) -> Expr:
        t = self.g.type_of(v)
        if v in self.buffer_of and not root:
            return Load(t.dtype, self.buffer_of[v], ix.linearize(idx, t.shape))
        node = self.g.node(v)
        self.ops.append(node.op.name)
        rule = lowering_for(node.op)
        if rule is None:
            raise DlgTypeError(f"the compiler has no lowering for {node.op.name}", node.span)
        return rule(self, node, v, idx)

    def inputs_at(self, node: Node, idx: list[Expr]) -> list[Expr]:
        out_shape = node.types[0].shape
        return [self.expr(u, ix.broadcast(idx, out_shape, self.g.type_of(u).shape))
                for u in node.inputs]

    def clamped(self, u: Value, idx: list[Expr], guard: Expr | None, other: float) -> Expr:
        """u at idx where `guard` holds, else `other`; idx is clamped so memory stays safe."""
        if guard is None:
            return self.expr(u, idx)
        safe = [Op(I64, SELECT, (guard, i, ix.ZERO)) for i in idx]
        dtype = self.g.type_of(u).dtype
        return Op(dtype, SELECT, (guard, self.expr(u, safe), Const(dtype, other)))

    def reduction(self, combine: ScalarOp, extents: list[Dim], body: Callable[[list[Expr]], Expr],
                  init: float, dtype: DType) -> Expr:
        names = [self.fresh("r.") for _ in extents]
        red = [Var(I64, n) for n in names]
        return Reduce(dtype, combine, tuple(zip(names, (ix.dim(e) for e in extents))), body(red),
                      init)

    # -- scan -------------------------------------------------------------------------------------
    def scan(self, node: Node) -> None:
        a = node.attrs
        nc, ns = a["n_carry"], a["n_seq"]
        if any(self.g.type_of(v).rank and a["axis"] % self.g.type_of(v).rank
               for v in node.inputs[nc:nc + ns]):
            raise DlgTypeError("the compiler runs scan over axis 0 only (transpose first)",
                               node.span)
        body = lower(a["body"], f"{self.p.name}_scan{node.id}")
        self.p.bodies.append(body)
        prefix = f"s{node.id}."
        slots: dict[str, Slot] = {}  # body buffer -> where it lives in this program
        state, copies, stmts = [], [], []
        for i, (_, buf) in enumerate(body.inputs):
            t = body.buffers[buf]
            if i < nc:
                st = self.add_buffer(f"{prefix}state{i}", t.dtype, t.shape, "temp")
                state.append((st, t))
                stmts.append(Copy(st, self.in_memory(node.inputs[i]), ix.numel(t.shape)))
                slots[buf] = Slot(st)
            elif i < nc + ns:
                slots[buf] = Slot(self.in_memory(node.inputs[i]), ix.numel(t.shape))
            else:
                slots[buf] = Slot(self.in_memory(node.inputs[i]))
        outs = dict(body.outputs)
        for i, (out_name, _) in enumerate(a["body"].outputs):
            t = body.buffers[outs[out_name]]
            if i < nc:
                nxt = self.add_buffer(f"{prefix}next{i}", t.dtype, t.shape, "temp")
                copies.append((state[i][0], nxt, ix.numel(t.shape)))
                slots[outs[out_name]] = Slot(nxt)
            else:
                slots[outs[out_name]] = Slot(self.buffer_of[node.outs[i]], ix.numel(t.shape))
        for buf in body.order:
            b = body.buffers[buf]
            if b.kind in ("temp", "constant"):
                self.add_buffer(prefix + buf, b.dtype, b.shape, b.kind, b.value)
                slots[buf] = Slot(prefix + buf)
        steps = ix.dim(self.g.type_of(node.inputs[nc]).shape[0])
        stmts.append(CallScan(body.name, steps, a["reverse"],
                              tuple(slots[buf] for buf in body.order), tuple(copies)))
        stmts += [Copy(self.buffer_of[node.outs[i]], st, ix.numel(t.shape))
                  for i, (st, t) in enumerate(state)]
        self.ops = [SCAN.name]
        self.emit(SCAN.name, stmts)


    def in_memory(self, v: Value) -> str:
        """The buffer a scan reads `v` from: its own, or that of the value it reshapes (fusion
        leaves such reshapes to the scan)."""
        if v not in self.buffer_of:
            v = self.g.node(v).inputs[0]
        return self.buffer_of[v]


