"""Register tiles on the CPU: a kernel-IR `Tile` as explicit LLVM vector code.

The tile's rows become scalar row indices (a short edge runs one row at a time) and its
columns either vectors of `lanes` consecutive elements (along="col") or scalar column indices
too (along="sum", the lanes then split the sum's last axis). The sum runs as its own loops
around rows x columns multiply-adds into vector accumulators that LLVM keeps in registers: an
operand contiguous along the lanes is one vector load (masked past the end), one constant along
them a broadcast, so each load feeds a whole row or column of the tile. Then the value around
the sum (bias, activation, residual: the fused epilogue) is computed from the accumulators (added
across lanes first when they split the sum) and stored.

Expressions are evaluated lane-wise: what does not depend on the lanes is scalar code from the
kernel's `Emitter` (computed once, broadcast where it meets a vector); ops with a vector form
(stated next to their scalar form in scalar.py: arithmetic, comparisons, select, min/max, float32
exp and tanh, sqrt) run on vectors; the others (casts, erf, float64 tanh, computed indices) one
lane at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from llvmlite import ir

from dlg.compiler import indexing as ix
from dlg.compiler.codegen.scalar import I64, has_vector_form, llvm_type, memory_type
from dlg.compiler.kernel_ir import Expr, Load, Op, Reduce, Tile, Var, substitute, walk
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import MUL

if TYPE_CHECKING:
    from dlg.compiler.codegen.llvm_cpu import Emitter

I32 = ir.IntType(32)
CHAINS = 8  # accumulator vectors a sum-along tile keeps: an add's latency over its throughput


def emit_tile(e: Emitter, t: Tile) -> None:
    """The tile; where its rows may run past their extent (a symbolic batch: one sample is one
    row), an edge of fewer rows runs as one-row tiles instead, so a batch-1 matrix-vector product
    does its row's work once, not `rows` times over a clamped row."""
    if t.rows == 1 or not _may_run_past(t):
        return TileEmitter(e, t).emit()
    b = e.b
    first, extent = e.expr(t.row_start), e.expr(t.row_extent)
    whole = b.icmp_signed("<=", b.add(first, I64(t.rows)), extent)
    with b.if_else(whole) as (full, edge):
        with full:
            _scoped(e, lambda: TileEmitter(e, t).emit())
        with edge:
            start = f"{t.row}#edge"

            def row(i: ir.Value) -> None:
                e.vars[start] = i
                TileEmitter(e, replace(t, rows=1, row_start=Var(DType.i64, start))).emit()
            _scoped(e, lambda: e.loop(start, extent, row, start=first))


def _may_run_past(t: Tile) -> bool:
    """Whether the last tile of rows can be short (its rows start at multiples of `rows`): not
    when the extent is a constant that the rows divide."""
    extent = ix.int_value(t.row_extent)
    return extent is None or extent % t.rows != 0


def _scoped(e: Emitter, emit: Callable[[], None]) -> None:
    """Emit in a scope of its own: values computed in one branch are not reused in another."""
    e.scopes.append({})
    emit()
    e.scopes.pop()


class TileEmitter:
    def __init__(self, e: Emitter, t: Tile, lanes: int | None = None):
        self.e, self.t, self.b = e, t, e.b
        self.lanes = lanes or t.lanes
        self.cache: list[dict[Expr, ir.Value]] = [{}]
        self.columns: dict[str, tuple[ir.Value, ir.Value | None]] = {}  # var -> (base, mask)
        self.varying: dict[Expr, bool] = {}
        self.sum_mask: ir.Value | None = None  # the lanes of a masked remainder along the sum

    def emit(self) -> None:
        e, b, t = self.e, self.b, self.t
        self.bind_clamped(t.row, t.row_start, t.rows, t.row_extent)
        if t.along == "col":
            first = e.expr(t.col_start)
            end = e.expr(t.col_extent)
            for cc in range(t.cols):
                base = b.add(first, I64(cc * self.lanes))
                e.vars[f"{t.col}#{cc}"] = base  # lane 0, for scalar addresses
                mask = b.icmp_signed("<", self.iota(base), self.splat(end)) if t.masked else None
                self.columns[f"{t.col}#{cc}"] = (base, mask)
        else:
            self.bind_clamped(t.col, t.col_start, t.cols, t.col_extent)
        total = next(x for x in walk(t.value) if isinstance(x, Reduce))
        cells = [(rr, cc) for rr in range(t.rows) for cc in range(t.cols)]
        at = {cell: self.at(cell[0], f"{t.col}#{cell[1]}") for cell in cells}
        vector = ir.VectorType(llvm_type(total.dtype), self.lanes)
        chains = max(1, CHAINS // len(cells)) if t.along == "sum" else 1
        sets = [{cell: e.local(vector, "acc", ir.Constant(vector, total.init)) for cell in cells}
                for _ in range(chains)]
        terms = {cell: substitute(total.body, at[cell]) for cell in cells}

        def step(accs: dict[tuple[int, int], ir.Value]) -> None:
            self.cache.append({})
            for cell in cells:
                b.store(self.accumulate(b.load(accs[cell]), terms[cell]), accs[cell])
            self.cache.pop()
        if t.along == "sum":
            self.nest(list(total.axes[:-1]), lambda: self.along_sum(
                total, [functools.partial(step, accs) for accs in sets]))
            sums = {cell: self.horizontal_sum(functools.reduce(
                b.fadd, [b.load(accs[cell]) for accs in sets])) for cell in cells}
            return self.sum_epilogue(total, sums)
        self.nest(list(total.axes), lambda: step(sets[0]))
        for cell in cells:
            self.cache[-1][substitute(total, at[cell])] = b.load(sets[0][cell])
            mask = self.columns[f"{t.col}#{cell[1]}"][1]
            self.store(substitute(t.index, at[cell]), self.vector(substitute(t.value, at[cell])),
                       mask)

    def sum_epilogue(self, total: Reduce, sums: dict[tuple[int, int], ir.Value]) -> None:
        """Per row, the columns' sums as one vector (lanes past the extent masked off), the
        epilogue on it and a vector store; element by element when the store is not
        contiguous along the columns."""
        e, b, t = self.e, self.b, self.t
        if ix.coefficient(t.index, t.col) != 1 or t.cols == 1:
            for (rr, cc), value in sums.items():
                at = self.at(rr, f"{t.col}#{cc}")
                e.scopes[-1][substitute(total, at)] = value
                e.store(t.buffer, e.expr(substitute(t.index, at)), e.expr(substitute(t.value, at)))
            return
        row = TileEmitter(e, t, lanes=t.cols)
        base, name = e.expr(t.col_start), f"{t.col}#lanes"
        e.vars[name] = base
        mask = b.icmp_signed("<", row.iota(base), row.splat(e.expr(t.col_extent)))
        row.columns[name] = (base, mask)
        vector = ir.VectorType(llvm_type(total.dtype), t.cols)
        for rr in range(t.rows):
            at = self.at(rr, name)
            packed = ir.Constant(vector, ir.Undefined)
            for cc in range(t.cols):
                packed = b.insert_element(packed, sums[rr, cc], I32(cc))
            row.cache[-1][substitute(total, at)] = packed
            row.store(substitute(t.index, at), row.vector(substitute(t.value, at)), mask)

    def at(self, rr: int, col: str) -> dict[str, Expr]:
        """The substitution that puts an expression at row rr and column variable `col`."""
        return {self.t.row: Var(DType.i64, f"{self.t.row}#{rr}"), self.t.col: Var(DType.i64, col)}

    def bind_clamped(self, var: str, start: Expr, count: int, extent: Expr) -> None:
        """Scalar values start + 0..count-1 of `var`, the ones past the extent clamped to it."""
        e, b = self.e, self.b
        first, n = e.expr(start), e.expr(extent)
        for k in range(count):
            i = b.add(first, I64(k))
            e.vars[f"{var}#{k}"] = b.select(b.icmp_signed("<", i, n), i, b.sub(n, I64(1)))

    def nest(self, axes: list[tuple[str, Expr]], innermost: Callable[[], None]) -> None:
        if not axes:
            return innermost()
        (name, count), rest = axes[0], axes[1:]

        def body(i: ir.Value) -> None:
            self.e.vars[name] = i
            self.cache.append({})
            self.nest(rest, innermost)
            self.cache.pop()
        self.e.loop(name, self.e.expr(count), body)

    def along_sum(self, total: Reduce, steps: list[Callable[[], None]]) -> None:
        """The sum's last axis in vectors of lanes, len(steps) at a time (each step adds into
        accumulators of its own: that many chains of dependent adds run at once), then the
        whole vectors left and one masked remainder, by the first step."""
        e, b = self.e, self.b
        name, count = total.axes[-1]
        n = e.expr(count)
        whole = b.sdiv(n, I64(self.lanes))

        def run(base: ir.Value, mask: ir.Value | None, step: Callable[[], None]) -> None:
            e.vars[name] = base
            self.columns[name] = (base, mask)
            self.sum_mask = mask
            e.scopes.append({})  # each step's addresses are its own
            step()
            e.scopes.pop()
            self.sum_mask = None

        def group(v: ir.Value) -> None:
            for k, step in enumerate(steps):
                run(b.mul(b.add(b.mul(v, I64(len(steps))), I64(k)), I64(self.lanes)), None, step)
        groups = b.sdiv(whole, I64(len(steps)))
        e.loop(f"{name}.vector", groups, group)
        if len(steps) > 1:
            e.loop(f"{name}.rest", whole, lambda v: run(b.mul(v, I64(self.lanes)), None, steps[0]),
                   start=b.mul(groups, I64(len(steps))))
        with b.if_then(b.icmp_signed(">", b.srem(n, I64(self.lanes)), I64(0))):
            e.scopes.append({})  # values computed here do not dominate what follows
            base = b.mul(whole, I64(self.lanes))
            run(base, b.icmp_signed("<", self.iota(base), self.splat(n)), steps[0])
            e.scopes.pop()

    def horizontal_sum(self, v: ir.Value) -> ir.Value:
        """The lanes of v added pairwise (halves, then quarters...)."""
        n = self.lanes
        while n > 1:
            n //= 2
            halves = [self.b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(
                ir.VectorType(I32, n), list(range(k * n, (k + 1) * n)))) for k in (0, 1)]
            v = self.b.fadd(*halves)
        return self.b.extract_element(v, I32(0))

    # -- vectors ----------------------------------------------------------------------------------
    def splat(self, value: ir.Value) -> ir.Value:
        vector = ir.VectorType(value.type, self.lanes)
        one = self.b.insert_element(ir.Constant(vector, ir.Undefined), value, I32(0))
        return self.b.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                     ir.Constant(ir.VectorType(I32, self.lanes), [0] * self.lanes))

    def iota(self, base: ir.Value) -> ir.Value:
        steps = ir.Constant(ir.VectorType(I64, self.lanes), list(range(self.lanes)))
        return self.b.add(self.splat(base), steps)

    def vector(self, x: Expr) -> ir.Value:
        """x as a vector of lanes (a broadcast when it does not depend on the columns)."""
        v = self.vexpr(x)
        return v if isinstance(v.type, ir.VectorType) else self.splat(v)

    def accumulate(self, acc: ir.Value, term: Expr) -> ir.Value:
        """acc + term; in a masked remainder the lanes past the sum's end keep acc (a term
        constant along the sum is broadcast to every lane, so masked loads alone do not zero
        it)."""
        if isinstance(term, Op) and term.op is MUL:
            a, c = (self.vector(x) for x in term.args)
            fma = self.e.s.intrinsic("llvm.fma", acc.type, 3)
            total = self.b.call(fma, [a, c, acc])
        else:
            total = self.b.fadd(acc, self.vector(term))
        return total if self.sum_mask is None else self.b.select(self.sum_mask, total, acc)

    def is_varying(self, x: Expr) -> bool:
        if x not in self.varying:
            self.varying[x] = any(isinstance(v, Var) and v.name in self.columns for v in walk(x))
        return self.varying[x]

    def vexpr(self, x: Expr) -> ir.Value:
        for scope in reversed(self.cache):
            if x in scope:
                return scope[x]
        if not self.is_varying(x):
            return self.e.expr(x)
        if isinstance(x, Var):
            value = self.iota(self.columns[x.name][0])
        elif isinstance(x, Load):
            value = self.load(x)
        elif isinstance(x, Op):
            value = self.op(x)
        else:
            raise TypeError(f"no vector form for {type(x).__name__} in a tile")
        self.cache[-1][x] = value
        return value

    def column_of(self, x: Expr) -> str:
        return next(v.name for v in walk(x) if isinstance(v, Var) and v.name in self.columns)

    def mask_for(self, x: Load, column: str) -> ir.Value | None:
        mask = self.columns[column][1]
        if x.guard is None:
            return mask
        guard = self.vector(x.guard)
        return guard if mask is None else self.b.and_(mask, guard)

    def load(self, x: Load) -> ir.Value:
        column = self.column_of(x)
        mask = self.mask_for(x, column)
        ptr, dtype = self.e.buffers[x.buffer]
        if ix.coefficient(x.index, column) != 1 or dtype == DType.bool:
            return self.per_lane(x)
        vector = ir.VectorType(memory_type(dtype), self.lanes)
        address = self.b.bitcast(self.b.gep(ptr, [self.e.expr(x.index)]), vector.as_pointer())
        if mask is None:
            return self.b.load(address, align=dtype.np.itemsize)
        fn = self.masked("load", vector, [vector.as_pointer(), I32, mask.type, vector])
        other = ir.Constant(vector, x.other if dtype.is_float else int(x.other))
        return self.b.call(fn, [address, I32(dtype.np.itemsize), mask, other])

    def store(self, index: Expr, value: ir.Value, mask: ir.Value | None) -> None:
        ptr, dtype = self.e.buffers[self.t.buffer]
        address = self.b.bitcast(self.b.gep(ptr, [self.e.expr(index)]), value.type.as_pointer())
        if mask is None:
            self.b.store(value, address, align=dtype.np.itemsize)
            return
        fn = self.masked("store", None, [value.type, value.type.as_pointer(), I32, mask.type])
        self.b.call(fn, [value, address, I32(dtype.np.itemsize), mask])

    def masked(self, what: str, result: ir.Type | None, args: list[ir.Type]) -> ir.Function:
        vector = result or args[0]
        name = f"llvm.masked.{what}.v{vector.count}{vector.element.intrinsic_name}.p0"
        m = self.e.m
        if name not in m.globals:
            ir.Function(m, ir.FunctionType(result or ir.VoidType(), args), name)
        return m.globals[name]

    def op(self, x: Op) -> ir.Value:
        args = [self.vexpr(a) for a in x.args]
        arg_dtypes = [a.dtype for a in x.args]
        s = self.e.s
        if has_vector_form(x.op, x.dtype):
            args = [a if isinstance(a.type, ir.VectorType) else self.splat(a) for a in args]
            return s.op(x.op, x.dtype, args, arg_dtypes)
        out = ir.Constant(ir.VectorType(llvm_type(x.dtype), self.lanes), ir.Undefined)
        for lane in range(self.lanes):
            scalars = [self.b.extract_element(a, I32(lane)) if isinstance(a.type, ir.VectorType)
                       else a for a in args]
            out = self.b.insert_element(out, s.op(x.op, x.dtype, scalars, arg_dtypes), I32(lane))
        return out

    def per_lane(self, x: Load) -> ir.Value:
        """A load whose address is computed per lane (a gather); masked-off lanes read element
        0 and give `other`."""
        b = self.b
        index = self.vector(x.index)
        mask = self.mask_for(x, self.column_of(x))
        out = ir.Constant(ir.VectorType(llvm_type(x.dtype), self.lanes), ir.Undefined)
        for lane in range(self.lanes):
            i = b.extract_element(index, I32(lane))
            if mask is None:
                value = self.e.load(x.buffer, i)
            else:
                keep = b.extract_element(mask, I32(lane))
                value = b.select(keep, self.e.load(x.buffer, b.select(keep, i, I64(0))),
                                 self.e.s.const(x.dtype, x.other))
            out = b.insert_element(out, value, I32(lane))
        return out
