"""Scheduling: how each kernel's loop nest runs on a target, chosen after lowering.

Lowering gives every value the plain nest `for i.0 .. for i.n-1: out[i] = value`. A sum whose
operands are reused across two output dims (matmul, convolution, their gradients) becomes a
register tile (`Tile`): `rows` values of one output dim times vectors along the last, so each
operand load feeds several multiply-adds, the way BLAS micro-kernels work. A sum that strides
through memory while the last output dim is contiguous, but that cannot be tiled, runs inside out
(`out[..., j] += body` with j innermost). Anything else stays as lowered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import (
    Const,
    Expr,
    Fill,
    Kernel,
    Load,
    Loop,
    Random,
    Reduce,
    Stmt,
    Store,
    Tile,
    Var,
    walk,
)
from dlg.compiler.lower import Program
from dlg.ir.dtypes import DType

MAX_ROWS = 8  # rows of a tile: enough loads saved, few enough broadcasts


@dataclass(frozen=True)
class Target:
    """What a schedule is fitted to: vector register width and count."""

    vector_bytes: int  # 64 with AVX-512, 32 with AVX2, 16 with SSE or NEON
    registers: int  # vector registers: 32 with AVX-512, else 16


def schedule(p: Program, target: Target) -> Program:
    """Each kernel of `p` (and of its scan bodies) with its schedule, in place."""
    for k, kernel in enumerate(p.kernels):
        body = _schedule_body(p, kernel.body, target)
        if body is not kernel.body:
            p.kernels[k] = Kernel(kernel.name, body, kernel.reads, kernel.writes)
    for sub in p.bodies:
        schedule(sub, target)
    return p


def _schedule_body(p: Program, body: tuple[Stmt, ...], target: Target) -> tuple[Stmt, ...]:
    nest = _store_nest(body)
    if nest is None:
        return body
    loops, store = nest
    tiled = _tile(p, loops, store, target)
    if tiled is not None:
        return (tiled,)
    if _sum_inside_out(store.value, [lp.var for lp in loops]):
        assert isinstance(store.value, Reduce)
        shape = tuple(p.buffers[store.buffer].shape)
        return (Fill(store.buffer, ix.numel(shape), 0.0), _accumulating(loops, store))
    return body


def _store_nest(body: tuple[Stmt, ...]) -> tuple[list[Loop], Store] | None:
    """The loops and the store of a lowered value's nest (one loop per output dim)."""
    loops: list[Loop] = []
    s = body[0] if len(body) == 1 else None
    while isinstance(s, Loop) and len(s.body) == 1:
        loops.append(s)
        s = s.body[0]
    if isinstance(s, Store) and not s.accumulate and loops:
        return loops, s
    return None


# ---- register tiles ------------------------------------------------------------------------------
def _tile(p: Program, loops: list[Loop], store: Store, target: Target) -> Stmt | None:
    """The nest with its last two loops' worth of work in register tiles, when its value is one
    sum with operands that are either contiguous along the last output dim (vector loads) or
    constant along it (broadcasts), and some output dim (the rows) that only the broadcast
    operands depend on."""
    dtype = p.buffers[store.buffer].dtype
    sums = [e for e in walk(store.value) if isinstance(e, Reduce)]
    if (dtype not in (DType.f32, DType.f64) or len(sums) != 1 or sums[0].combine != "add"
            or any(isinstance(e, Random) for e in walk(store.value)) or len(loops) < 2):
        return None
    col = loops[-1].var
    if ix.coefficient(store.index, col) != 1:
        return None
    loads = [e for e in walk(sums[0].body) if isinstance(e, Load)]
    steps = [ix.coefficient(ld.index, col) for ld in loads]
    if (1 not in steps or any(s not in (0, 1) for s in steps)
            or any(ld.guard is not None and ix.mentions(ld.guard, col) for ld in loads)):
        return None
    vectors = [ld for ld, s in zip(loads, steps) if s == 1]
    broadcasts = [ld for ld, s in zip(loads, steps) if s == 0]
    rows = [k for k, lp in enumerate(loops[:-1])
            if not any(ix.mentions(ld, lp.var) for ld in vectors)
            and any(ix.mentions(ld, lp.var) for ld in broadcasts)]
    if not rows:
        return None
    return _tiled_nest(loops, rows[-1], store, dtype, target)


def _tiled_nest(loops: list[Loop], r: int, store: Store, dtype: DType, target: Target) -> Stmt:
    row, col = loops[r], loops[-1]
    cols = _int(col.extent)
    lanes = target.vector_bytes // dtype.np.itemsize
    while cols is not None and lanes > 4 and lanes >= 2 * cols:
        lanes //= 2
    vectors = 2 if cols is None or cols >= 2 * lanes else 1
    rows = min(MAX_ROWS, (target.registers - 4) // vectors)
    if _int(row.extent) is not None:
        rows = min(rows, _int(row.extent))  # type: ignore[type-var]
    tile_var, col_tile, col_tail = f"{row.var}.tile", f"{col.var}.tile", f"{col.var}.tail"
    width = lanes * vectors

    def tile(col_start: Expr, count: int, end: Expr | None) -> Tile:
        return Tile(store.buffer, store.index, store.value, row.var,
                    ix.mul(Var(ix.I64, tile_var), ix.const(rows)), rows, row.extent, col.var,
                    col_start, count, lanes, end)
    full = _ceildiv(col.extent, width, floor=True)
    done = ix.mul(full, ix.const(width))
    body: list[Stmt] = []
    if _int(full) != 0:
        body.append(Loop(col_tile, full, (tile(ix.mul(Var(ix.I64, col_tile),
                                                       ix.const(width)), vectors, None),)))
    rest = _ceildiv(ix.sub(col.extent, done), lanes)
    if _int(rest) != 0:
        start = ix.add(done, ix.mul(Var(ix.I64, col_tail), ix.const(lanes)))
        body.append(Loop(col_tail, rest, (tile(start, 1, col.extent),)))
    stmt: tuple[Stmt, ...] = tuple(body)
    for k in reversed(range(len(loops) - 1)):
        lp = loops[k]
        if k == r:
            stmt = (Loop(tile_var, _ceildiv(lp.extent, rows), stmt, lp.parallel),)
        else:
            stmt = (Loop(lp.var, lp.extent, stmt, lp.parallel),)
    return stmt[0]


def _int(e: Expr) -> int | None:
    return int(e.value) if isinstance(e, Const) else None


def _ceildiv(e: Expr, n: int, floor: bool = False) -> Expr:
    """ceil(e / n) (floor with `floor`), folded when e is a constant."""
    up = 0 if floor else n - 1
    if _int(e) is not None:
        return ix.const((_int(e) + up) // n)  # type: ignore[operator]
    return ix.floordiv(ix.add(e, ix.const(up)), ix.const(n))


# ---- sums inside out -----------------------------------------------------------------------------
def _sum_inside_out(value: Expr, idx: list[str]) -> bool:
    """Whether out[..., j] = sum_k body should run as out[..., j] += body with k outside j: when
    the summed index strides through memory in some operand while the last output index is
    contiguous (or absent) in all of them, as in the weight gradient g^T @ x of a linear layer."""
    if not (isinstance(value, Reduce) and value.combine == "add" and value.dtype.is_float):
        return False
    loads = [e for e in walk(value.body) if isinstance(e, Load)]
    inner, j = value.axes[-1][0], idx[-1]
    k_strided = any(abs(ix.stride(e.index, inner)) > 1 for e in loads)
    j_contiguous = all(abs(ix.stride(e.index, j)) <= 1 for e in loads)
    return k_strided and j_contiguous


def _accumulating(loops: list[Loop], store: Store) -> Stmt:
    """Loops: the outer output indices, then the summed ones, then the last output index."""
    value = store.value
    assert isinstance(value, Reduce)
    stmt: Stmt = replace(store, value=value.body, accumulate=True)
    stmt = Loop(loops[-1].var, loops[-1].extent, (stmt,))
    for name, extent in reversed(value.axes):
        stmt = Loop(name, extent, (stmt,))
    for lp in reversed(loops[:-1]):
        stmt = Loop(lp.var, lp.extent, (stmt,), lp.parallel)
    return stmt

