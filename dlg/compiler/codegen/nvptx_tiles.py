"""A `tiled` launch's body (codegen/nvptx_launch.py's `Tiling`): matmul and convolution (forward
and both gradients) as shared-memory tiles, for the GPU and its emulation alike.

Each block takes TILE x TILE outputs of one batch index at a time (grid-stride over tiles). Per
step of TILE_K elements of the sum, its threads load the operands' TILE x TILE_K slices into
shared memory (consecutive threads take consecutive sum elements; points outside the matrices
load 0 from a clamped, in-bounds index), wait at a barrier, and each adds the products of its
PER x PER outputs (rows ty + SIDE*i, columns tx + SIDE*j: a warp reads distinct banks) to its
register tile, which lives across the barriers in thread-private memory. Then each thread
stores its outputs with the fused epilogue (bias, activation) as the plain store would.
"""

from __future__ import annotations

from functools import partial

from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import Emitter
from dlg.compiler.codegen.nvptx_grid import Grid, at, when
from dlg.compiler.codegen.nvptx_launch import TILE, TILE_K, Launch, Tiling, extent, reduce_size
from dlg.compiler.codegen.scalar import I64
from dlg.compiler.kernel_ir import Expr
from dlg.ir.dtypes import DType

SIDE = 16  # threads per side of a block (256 threads)
PER = TILE // SIDE  # outputs per side of a thread's register tile
F32 = ir.FloatType()


def emit_tiled(e: Emitter, grid: Grid, launch: Launch) -> None:
    """The launch's tiles, each block one at a time."""
    t = launch.tiling
    assert t is not None and launch.threads == SIDE * SIDE
    b = e.b
    a_tile = grid.shared(e, f"{launch.name}.a", DType.f32, TILE_K * TILE)
    b_tile = grid.shared(e, f"{launch.name}.b", DType.f32, TILE_K * TILE)
    acc = grid.private(e, f"{launch.name}.acc", DType.f32, PER * PER)
    rows, cols, depth = (e.expr(x) for x in (extent(t.rows), extent(t.cols), reduce_size(t.sum)))
    row_tiles = b.sdiv(b.add(rows, I64(TILE - 1)), I64(TILE))
    col_tiles = b.sdiv(b.add(cols, I64(TILE - 1)), I64(TILE))

    def tile(k: ir.Value) -> None:
        at(e, b.sdiv(b.sdiv(k, col_tiles), row_tiles), t.batch)
        row0 = b.mul(b.srem(b.sdiv(k, col_tiles), row_tiles), I64(TILE), name="row0")
        col0 = b.mul(b.srem(k, col_tiles), I64(TILE), name="col0")
        grid.each_thread(e, lambda th: _zero(e, acc(th)))

        def step(k0: ir.Value) -> None:
            def stage(th: ir.Value) -> None:
                _stage(e, t.rows, t.a, row0, rows, k0, depth, th, a_tile, t, launch.threads)
                _stage(e, t.cols, t.b, col0, cols, k0, depth, th, b_tile, t, launch.threads)
            grid.each_thread(e, stage)
            grid.barrier(e)
            grid.each_thread(e, lambda th: _multiply(e, th, a_tile, b_tile, acc(th)))
            grid.barrier(e)  # the slices are read before the next step overwrites them
        e.loop("k0", depth, step, step=I64(TILE_K))
        grid.each_thread(e, lambda th: _store(e, t, launch, th, row0, col0, rows, cols,
                                              acc(th)))
    e.loop("tile", e.expr(t.tiles), tile, start=grid.block(), step=grid.blocks())


def _zero(e: Emitter, acc: ir.Value) -> None:
    for i in range(PER * PER):
        e.b.store(ir.Constant(F32, 0.0), e.b.gep(acc, [I64(i)]))


def _stage(e: Emitter, loops: tuple[tuple[str, Expr], ...], operand: Expr, first: ir.Value,
           size: ir.Value, k0: ir.Value, depth: ir.Value, th: ir.Value, slice_: ir.Value,
           t: Tiling, threads: int) -> None:
    """This thread's share of one operand's TILE x TILE_K slice: element (r, kk) at
    slice[kk * TILE + r], from row first + r and sum element k0 + kk (0 outside)."""
    b = e.b
    for c in range(TILE * TILE_K // threads):
        flat = b.add(th, I64(c * threads))
        r, kk = b.sdiv(flat, I64(TILE_K)), b.srem(flat, I64(TILE_K))
        row, k = b.add(first, r), b.add(k0, kk)
        inside = b.and_(b.icmp_signed("<", row, size), b.icmp_signed("<", k, depth))
        e.scopes.append({})
        at(e, b.select(inside, row, I64(0)), loops)
        at(e, b.select(inside, k, I64(0)), t.sum.axes)
        value = b.select(inside, e.expr(operand), ir.Constant(F32, 0.0))
        e.scopes.pop()
        b.store(value, b.gep(slice_, [b.add(b.mul(kk, I64(TILE)), r)]))


def _multiply(e: Emitter, th: ir.Value, a_tile: ir.Value, b_tile: ir.Value, acc: ir.Value
              ) -> None:
    """acc[i][j] += sum over the staged kk of a[kk][ty + SIDE*i] * b[kk][tx + SIDE*j]."""
    b = e.b
    ty, tx = b.sdiv(th, I64(SIDE)), b.srem(th, I64(SIDE))
    sums = [b.load(b.gep(acc, [I64(i)])) for i in range(PER * PER)]
    for kk in range(TILE_K):
        a = [b.load(b.gep(a_tile, [b.add(ty, I64(kk * TILE + SIDE * i))])) for i in range(PER)]
        w = [b.load(b.gep(b_tile, [b.add(tx, I64(kk * TILE + SIDE * j))])) for j in range(PER)]
        sums = [b.fadd(sums[i * PER + j], b.fmul(a[i], w[j]))
                for i in range(PER) for j in range(PER)]
    for i, value in enumerate(sums):
        b.store(value, b.gep(acc, [I64(i)]))


def _store(e: Emitter, t: Tiling, launch: Launch, th: ir.Value, row0: ir.Value,
           col0: ir.Value, rows: ir.Value, cols: ir.Value, acc: ir.Value) -> None:
    """This thread's outputs that lie inside the matrix, each the store with the sum read from
    its register tile."""
    b = e.b
    ty, tx = b.sdiv(th, I64(SIDE)), b.srem(th, I64(SIDE))
    for i in range(PER):
        for j in range(PER):
            row = b.add(row0, b.add(ty, I64(SIDE * i)))
            col = b.add(col0, b.add(tx, I64(SIDE * j)))
            inside = b.and_(b.icmp_signed("<", row, rows), b.icmp_signed("<", col, cols))
            cell = b.gep(acc, [I64(i * PER + j)])
            when(e, inside, partial(_output, e, t, launch, row, col, cell))


def _output(e: Emitter, t: Tiling, launch: Launch, row: ir.Value, col: ir.Value,
            cell: ir.Value) -> None:
    total = e.b.load(cell)
    at(e, row, t.rows)
    at(e, col, t.cols)
    e.scopes[-1][t.sum] = total
    for s in launch.body:
        e.stmt(s)
