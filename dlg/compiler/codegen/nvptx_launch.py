"""How a kernel of the kernel IR runs on a CUDA grid: its launches, each with a launch
configuration computed from the symbolic dims at run time (one PTX module serves every size).

Target-independent: the NVPTX lowering (codegen/nvptx.py) and the CPU grid emulation
(codegen/emulate.py) both take their launches from here and emit their bodies with the same
code (codegen/nvptx_kernels.py), so the emulation runs the very index arithmetic, launch
configuration and shared-memory steps the GPU runs.

A kernel's top-level statements run in order, so each is a launch of its own (the end of a
launch is the grid-wide barrier between them); a scan is a host-side loop over its body's
launches. Four kinds:

- `elementwise`: a parallel loop nest whose iterations are independent (the outer parallel loop,
  and the loops inside it while they lead to one plain store that reads nothing it writes) is
  one flat index space, walked by a grid-stride loop (`i = block * threads + thread`, step
  `blocks * threads`): any size runs on at most `MAX_BLOCKS` blocks. Fills and copies are such
  nests. Sums inside run per thread, and so do loops that are not independent (a cumsum's
  row: one thread per row).
- `reduce`: a store of a value with a sum (or product, max, min) over many elements into few
  outputs: one block per output (grid-stride over outputs), its threads splitting the sum, then
  a tree in shared memory (log2(threads) steps, each ending at a barrier); thread 0 stores.
- `tiled`: a float32 sum of a product whose operands split the output loops into rows and
  columns (matmuls, convolutions and their gradients): shared-memory tiles
  (codegen/nvptx_tiles.py, `Tiling`).
- `serial`: anything else (scatters, which may add into one position from several points):
  one thread of one block runs the statement as the CPU would.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from dlg.compiler import indexing as ix
from dlg.compiler.kernel_ir import (
    ARGMAX,
    ARGMIN,
    I64,
    MAX,
    CallScan,
    Const,
    Copy,
    Expr,
    Fill,
    IfFinite,
    Kernel,
    Load,
    Loop,
    Op,
    Reduce,
    Stmt,
    Store,
    Var,
    independent,
    walk,
)
from dlg.compiler.kernel_ir import MIN as KMIN
from dlg.compiler.lower import Program
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL

THREADS = 256  # threads per block of an elementwise launch
MAX_BLOCKS = 1024  # ~ 8 blocks of 256 threads per SM of an H100/H200: more is a grid-stride loop
REDUCE_MIN_WORK = 64  # a sum this long (symbolic dims counted as ESTIMATE) is worth a block...
REDUCE_MAX_OUTPUTS = 2048  # ...when there are at most this many outputs (else one per thread)
ESTIMATE = 64  # a symbolic dim's size for the choices above (the batch)


@dataclass(frozen=True)
class Tiling:
    """A sum of products `a * b` over the output loops split three ways: `rows` (the loops `a`
    reads along), `cols` (those `b` reads along) and `batch` (both, or neither). A block makes
    TILE x TILE outputs of one batch index, staging TILE_K steps of the sum of both operands in
    shared memory; each thread keeps a PER x PER register tile."""

    batch: tuple[tuple[str, Expr], ...]
    rows: tuple[tuple[str, Expr], ...]
    cols: tuple[tuple[str, Expr], ...]
    sum: Reduce
    a: Expr
    b: Expr

    @property
    def tiles(self) -> Expr:
        return ix.mul(ix.mul(extent(self.batch), ix.ceildiv(extent(self.rows), TILE)),
                      ix.ceildiv(extent(self.cols), TILE))


TILE, TILE_K = 64, 16  # outputs per side of a block's tile; sum steps staged at once
TILE_MIN = 32  # rows, columns and sum each at least this (estimated) to be worth a tile


def extent(loops: tuple[tuple[str, Expr], ...]) -> Expr:
    """How many points a list of loops covers."""
    total: Expr = ix.ONE
    for _, n in loops:
        total = ix.mul(total, n)
    return total


@dataclass(frozen=True)
class Launch:
    """One kernel launch: its entry's name, what it runs, and its configuration. `loops` are
    the flattened loops of an elementwise launch (or the output loops of a reduce one) and
    `body` what runs at each point; `guards` name scalars that must be finite for it to run
    (a training step's state updates)."""

    name: str
    kind: str  # elementwise, reduce, tiled, serial
    loops: tuple[tuple[str, Expr], ...]
    body: tuple[Stmt, ...]
    threads: int
    guards: tuple[str, ...]
    buffers: tuple[str, ...]
    tiling: Tiling | None = None

    @property
    def points(self) -> Expr:
        """The size of the flattened index space (1 without loops)."""
        return extent(self.loops)

    @property
    def blocks(self) -> Expr:
        """The grid's size as an expression of the dims: enough blocks for every point (one per
        output of a reduce launch), at most MAX_BLOCKS, at least 1."""
        if self.kind == "serial":
            return ix.ONE
        wanted = (self.tiling.tiles if self.tiling is not None
                  else ix.ceildiv(self.points, 1 if self.kind == "reduce" else self.threads))
        return Op(I64, MAX, (Op(I64, KMIN, (wanted, ix.const(MAX_BLOCKS))), ix.ONE))


Step = Launch | CallScan


def plan_kernel(p: Program, kernel: Kernel) -> list[Step]:
    """The launches (and host-side scan loops) that run `kernel`, in order."""
    count = itertools.count()
    steps: list[Step] = []
    buffers = tuple(dict.fromkeys(kernel.reads + kernel.writes))

    def visit(stmts: tuple[Stmt, ...], guards: tuple[str, ...]) -> None:
        for s in stmts:
            if isinstance(s, IfFinite):
                visit(s.body, guards + (s.buffer,))
            elif isinstance(s, CallScan):
                steps.append(s)
            else:
                name = f"{p.name}.{kernel.name}.l{next(count)}"
                steps.append(_launch(p, name, s, guards, buffers))
    visit(kernel.body, ())
    return steps


def _launch(p: Program, name: str, s: Stmt, guards: tuple[str, ...], buffers: tuple[str, ...]
            ) -> Launch:
    s = _as_loop(p, s)
    loops: list[tuple[str, Expr]] = []
    body: tuple[Stmt, ...] = (s,)
    if isinstance(s, Loop) and s.parallel:
        loops, body = [(s.var, s.extent)], s.body
        while len(body) == 1 and isinstance(body[0], Loop) and independent(body[0]):
            loops.append((body[0].var, body[0].extent))
            body = body[0].body
    elif not (isinstance(s, Store) and not s.accumulate):
        return Launch(name, "serial", (), (s,), 1, guards, buffers)
    threads = _reduce_threads(loops, body)
    if threads is not None:
        return Launch(name, "reduce", tuple(loops), body, threads, guards, buffers)
    tiling = _tiling(tuple(loops), body)
    return Launch(name, "elementwise" if tiling is None else "tiled", tuple(loops), body,
                  THREADS, guards, buffers, tiling)


def _tiling(loops: tuple[tuple[str, Expr], ...], body: tuple[Stmt, ...]) -> Tiling | None:
    """The tiling of a store whose one reduction is a float32 sum of a product, when rows,
    columns and the sum are all long enough."""
    if len(body) != 1 or not isinstance(body[0], Store) or body[0].accumulate:
        return None
    sums = {e for e in walk(body[0].value) if isinstance(e, Reduce)}
    if len(sums) != 1:
        return None
    (r,) = sums
    if r.combine is not ADD or r.body.dtype != DType.f32 or not (
            isinstance(r.body, Op) and r.body.op is MUL):
        return None
    a, b = r.body.args
    in_a = {v for v, _ in loops if ix.mentions(a, v)}
    in_b = {v for v, _ in loops if ix.mentions(b, v)}
    tiling = Tiling(tuple(lp for lp in loops if (lp[0] in in_a) == (lp[0] in in_b)),
                    tuple(lp for lp in loops if lp[0] in in_a - in_b),
                    tuple(lp for lp in loops if lp[0] in in_b - in_a), r, a, b)
    sizes = (extent(tiling.rows), extent(tiling.cols), reduce_size(r))
    if not tiling.rows or not tiling.cols or min(map(_estimate, sizes)) < TILE_MIN:
        return None
    return tiling


def _as_loop(p: Program, s: Stmt) -> Stmt:
    """Fills and copies as the parallel loops they are."""
    if isinstance(s, Fill):
        dtype = p.buffers[s.buffer].dtype
        return Loop("fill", s.count, (Store(s.buffer, Var(I64, "fill"),
                                            Const(dtype, s.value)),), parallel=True)
    if isinstance(s, Copy):
        dtype = p.buffers[s.src].dtype
        i = Var(I64, "copy")
        return Loop("copy", s.count, (Store(s.dst, i, Load(dtype, s.src, i)),), parallel=True)
    return s


def cooperative_sums(value: Expr) -> list[Reduce]:
    """The reductions of a value that a block computes together: outermost ones (not inside
    another), combined by add, mul, max or min (argmax/argmin run per thread)."""
    found: list[Reduce] = []

    def visit(e: Expr) -> None:
        if isinstance(e, Reduce):
            if e.combine not in (ARGMAX, ARGMIN) and e not in found:
                found.append(e)
            return
        for child in _children(e):
            visit(child)
    visit(value)
    return found


def _children(e: Expr) -> list[Expr]:
    if isinstance(e, Load):
        return [e.index] + ([] if e.guard is None else [e.guard])
    if isinstance(e, Op):
        return list(e.args)
    return []


def _reduce_threads(loops: list[tuple[str, Expr]], body: tuple[Stmt, ...]) -> int | None:
    """The block size of a reduce launch for this nest, or None when it runs elementwise: one
    plain store, a long cooperative sum, few outputs."""
    if len(body) != 1 or not isinstance(body[0], Store) or body[0].accumulate:
        return None
    sums = cooperative_sums(body[0].value)
    if not sums:
        return None
    work = max(_estimate(reduce_size(r)) for r in sums)
    outputs = _estimate(extent(tuple(loops)))
    if work < REDUCE_MIN_WORK or outputs > REDUCE_MAX_OUTPUTS:
        return None
    threads = 32
    while threads < min(work, THREADS):
        threads *= 2
    return threads


def reduce_size(r: Reduce) -> Expr:
    """How many elements a reduction folds (its axes' extents multiplied)."""
    return extent(r.axes)


def _estimate(e: Expr) -> int:
    """An index expression's value with every symbolic dim at ESTIMATE (a guess for choices)."""
    return ix._evaluate(e, {}, ESTIMATE)


def evaluate(e: Expr, dims: Mapping[str, int]) -> int:
    """An index expression of the dims, in Python (the host side of a launch: its grid size)."""
    return ix._evaluate(e, dict(dims), 0)
