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
from dlg.compiler.extremes import extremes_first
from dlg.compiler.kernel_ir import (
    Expr,
    Fill,
    Gemm,
    Kernel,
    Load,
    Loop,
    Matrix,
    Op,
    Random,
    Reduce,
    Stmt,
    Store,
    Tile,
    Var,
    substitute,
    walk,
)
from dlg.compiler.lower import Program
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL, SUB

MAX_ROWS = 8  # rows of a tile: enough loads saved, few enough broadcasts
# The GEMM library's packing pays once an operand outgrows the caches that register tiles
# stream it from (measured: tiles are as fast up to a few million multiply-adds, and faster when
# a side is shorter than the micro-kernel's 16 columns, as in a 10-class output layer)
GEMM_MIN_WORK = 1 << 21  # m*n*k
GEMM_MIN_SIDE = 16
SHORT_SUM_GEMM_WORK = 1 << 14  # m*n*k: `_min_work`
# x @ W^T's tiles along the sum put W's column tiles outside past HUGE_WEIGHT_L2S L2s of W,
# so that each tile's rows of W stay in cache while x's rows pass (x [64, 4096] @ W [1000,
# 4096]^T, 16 MB, one core: 15.8 -> 6.5 ms; at 8 MB the two orders are even, at 4 MB rows
# outside win by 8 %); past one L2 of W they are WIDE_SUM_COLS columns wide with 32 vector
# registers (4 x 6 accumulators: each x vector loaded from L2 feeds 6 multiply-adds; one core,
# x [64, 21632] @ W [128, 21632]^T 73-77 -> 92-94 GF/s, x [64, 4096] @ W [256, 4096]^T 70-88
# -> 94-97; with W in L2, as [128, 1600], 4 x 4 is as fast or faster; 4 x 7 spills registers)
HUGE_WEIGHT_L2S = 8
WIDE_SUM_COLS = 6
SMALL_BATCH_ROWS = 96  # rows: `_min_rows` (measured crossover ~100 at x [m, 4096] @ W^T)
# Tiles whose lanes run along B's rows (W @ im2col, a convolution at a small batch) read A in
# place and stream B (k x n) from L2 for each tile of rows; the library packs all of A on every
# call. So while B is within TILE_B_L2S L2s they win at any work. One core, W [512, 4608] @
# x [4608, n]: n=16 1.90 -> 0.67 ms, n=64 3.42 -> 2.66, n=128 (B 2.4 MB) 6.30 -> 5.38; at n=144
# (2.7 MB) the library leads, 8.1 vs 8.8; W [64, 576] @ x [576, 1024] 0.86 -> 0.73.
TILE_B_L2S = 2


@dataclass(frozen=True)
class Target:
    """What a schedule is fitted to: vector register width and count, L2 cache size."""

    vector_bytes: int  # 64 with AVX-512, 32 with AVX2, 16 with SSE or NEON
    registers: int  # vector registers: 32 with AVX-512, else 16
    l2_bytes: int = 1 << 20


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
    value = extremes_first(store.value)
    if value is not store.value:
        store = replace(store, value=value)
        body = (_nested(loops, store),)
    scheduled = body
    tiled = _tile(p, loops, store, target)
    if tiled is not None:
        scheduled = (tiled,)
    elif _sum_inside_out(store.value, [lp.var for lp in loops]):
        assert isinstance(store.value, Reduce)
        shape = tuple(p.buffers[store.buffer].shape)
        scheduled = (Fill(store.buffer, ix.numel(shape), 0.0), _accumulating(loops, store))
    product = _gemm(p, loops, store, scheduled, target)
    if product is not None:
        return (product,)
    reordered = _in_read_order(loops, store) if scheduled is body else None
    return scheduled if reordered is None else (reordered,)


def _nested(loops: list[Loop], stmt: Stmt) -> Stmt:
    for lp in reversed(loops):
        stmt = Loop(lp.var, lp.extent, (stmt,), lp.parallel)
    return stmt


def _in_read_order(loops: list[Loop], store: Store) -> Stmt | None:
    """A window or reduction nest with its loops in the order of the input it reads most,
    largest stride outermost: each output reads several inputs, so walking the input forward
    matters more than walking the output (a 2x2 max pool over a GEMM's [C, N*H*W] result
    jumped N*H*W floats from channel to channel). None when the order is already that."""
    if not any(isinstance(e, Reduce) for e in walk(store.value)):
        return None
    loads = [e for e in walk(store.value) if isinstance(e, Load)]
    if not loads:
        return None
    main = max(loads, key=lambda ld: sum(ix.mentions(ld.index, lp.var) for lp in loops))
    order = sorted(loops, key=lambda lp: -abs(ix.stride(main.index, lp.var)))
    if [lp.var for lp in order] == [lp.var for lp in loops]:
        return None
    stmt: Stmt = store
    for k in reversed(range(len(order))):
        stmt = Loop(order[k].var, order[k].extent, (stmt,), parallel=k == 0)
    return stmt


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
    """The nest with its work in register tiles, when its value is one float sum whose operands
    each vary with only some of the output dims: lanes along the last output dim when every
    operand is contiguous or constant along it, else along the sum's last axis when they are
    along that."""
    dtype = p.buffers[store.buffer].dtype
    sums = [e for e in walk(store.value) if isinstance(e, Reduce)]
    if (dtype not in (DType.f32, DType.f64) or len(sums) != 1 or sums[0].combine is not ADD
            or any(isinstance(e, Random) for e in walk(store.value)) or len(loops) < 2):
        return None
    loads = [e for e in walk(sums[0].body) if isinstance(e, Load)]
    col = loops[-1]
    along_col = _lanes_along(loads, col.var)
    if along_col is not None and ix.coefficient(store.index, col.var) == 1:
        vectors, broadcasts = along_col
        rows = [k for k, lp in enumerate(loops[:-1])
                if not any(ix.mentions(ld, lp.var) for ld in vectors)
                and any(ix.mentions(ld, lp.var) for ld in broadcasts)]
        tiled = _column_tiles(loops, rows[-1], store, dtype, target) if rows else None
        if tiled is not None:
            return tiled
    if _lanes_along(loads, sums[0].axes[-1][0]) is not None:
        pair = _row_and_col(loads, loops)
        if pair is not None:
            return _sum_tiles(loops, pair, store, sums[0], dtype, target)
    return None


def _lanes_along(loads: list[Load], var: str) -> tuple[list[Load], list[Load]] | None:
    """The loads contiguous along `var` and those constant along it, when there are some of the
    first kind and none of any other (and no bounds check depends on `var`)."""
    steps = [ix.coefficient(ld.index, var) for ld in loads]
    if (1 not in steps or any(s not in (0, 1) for s in steps)
            or any(ld.guard is not None and ix.mentions(ld.guard, var) for ld in loads)):
        return None
    return ([ld for ld, s in zip(loads, steps) if s == 1],
            [ld for ld, s in zip(loads, steps) if s == 0])


def _row_and_col(loads: list[Load], loops: list[Loop]) -> tuple[int, int] | None:
    """Two output dims such that some operand varies with the first only and some with the
    second only (each is then loaded once per tile row or column), innermost first."""
    def alone(k: int, other: int) -> bool:
        return any(ix.mentions(ld, loops[k].var) and not ix.mentions(ld, loops[other].var)
                   for ld in loads)
    pairs = [(r, c) for c in range(len(loops)) for r in range(c)
             if alone(r, c) and alone(c, r)
             and all(not (ix.mentions(ld, loops[r].var) and ix.mentions(ld, loops[c].var))
                     for ld in loads)]
    return pairs[-1] if pairs else None


def _lanes(target: Target, dtype: DType, extent: Expr) -> int | None:
    """Lanes per vector, halved for a short extent; None when it is too short for vectors."""
    n = ix.int_value(extent)
    if n is not None and n < 4:
        return None
    lanes = target.vector_bytes // dtype.np.itemsize
    while n is not None and lanes > 4 and lanes >= 2 * n:
        lanes //= 2
    return lanes


def _column_tiles(loops: list[Loop], r: int, store: Store, dtype: DType, target: Target
                  ) -> Stmt | None:
    row, col = loops[r], loops[-1]
    lanes = _lanes(target, dtype, col.extent)
    if lanes is None:
        return None
    n = ix.int_value(col.extent)
    vectors = 2 if n is None or n >= 2 * lanes else 1
    rows = _fit(MAX_ROWS, (target.registers - 4) // vectors, row.extent)
    tile_var, col_tile, col_tail = f"{row.var}.tile", f"{col.var}.tile", f"{col.var}.tail"
    width = lanes * vectors

    def tile(col_start: Expr, count: int, masked: bool) -> Tile:
        return Tile(store.buffer, store.index, store.value, row.var,
                    ix.mul(Var(ix.I64, tile_var), ix.const(rows)), rows, row.extent, col.var,
                    col_start, count, col.extent, lanes, "col", masked)
    full = ix.floordiv(col.extent, ix.const(width))
    done = ix.mul(full, ix.const(width))
    body: list[Stmt] = []
    if ix.int_value(full) != 0:
        start = ix.mul(Var(ix.I64, col_tile), ix.const(width))
        body.append(Loop(col_tile, full, (tile(start, vectors, False),)))
    rest = ix.ceildiv(ix.sub(col.extent, done), lanes)
    if ix.int_value(rest) != 0:
        start = ix.add(done, ix.mul(Var(ix.I64, col_tail), ix.const(lanes)))
        body.append(Loop(col_tail, rest, (tile(start, 1, True),)))
    return _around(loops, {r: (tile_var, rows), len(loops) - 1: None}, tuple(body))


def _sum_tiles(loops: list[Loop], pair: tuple[int, int], store: Store, total: Reduce,
               dtype: DType, target: Target) -> Stmt | None:
    lanes = _lanes(target, dtype, total.axes[-1][1])
    if lanes is None:
        return None
    side = 4 if target.registers >= 32 else 3  # side^2 accumulators + 2 * side operand vectors
    r, c = pair
    wide = target.registers >= 32 and _weight_bytes(loops[c].extent, total.axes[-1][1],
                                                    dtype) > target.l2_bytes
    rows, cols = _fit(side, side, loops[r].extent), _fit(WIDE_SUM_COLS if wide else side,
                                                         WIDE_SUM_COLS, loops[c].extent)
    row_var, col_var = f"{loops[r].var}.tile", f"{loops[c].var}.tile"
    tile = Tile(store.buffer, store.index, store.value, loops[r].var,
                ix.mul(Var(ix.I64, row_var), ix.const(rows)), rows, loops[r].extent,
                loops[c].var, ix.mul(Var(ix.I64, col_var), ix.const(cols)), cols,
                loops[c].extent, lanes, "sum")
    if len(loops) == 2 and (_weight_bytes(loops[c].extent, total.axes[-1][1], dtype)
                            > HUGE_WEIGHT_L2S * target.l2_bytes):
        inner = Loop(row_var, ix.ceildiv(loops[r].extent, rows), (tile,))
        return Loop(col_var, ix.ceildiv(loops[c].extent, cols), (inner,), parallel=True)
    return _around(loops, {r: (row_var, rows), c: (col_var, cols)}, (tile,))


def _weight_bytes(cols: Expr, depth: Expr, dtype: DType) -> int:
    """The bytes of x @ W^T's W (cols x depth); 0 when a side is symbolic."""
    n, k = ix.int_value(cols), ix.int_value(depth)
    return 0 if n is None or k is None else n * k * dtype.itemsize


def _around(loops: list[Loop], tiled: dict[int, tuple[str, int] | None],
            body: tuple[Stmt, ...]) -> Stmt:
    """The output loops around a tile's statements, in their order: a tiled dim steps by tiles
    (name, size), one mapped to None is run inside the tile's statements."""
    stmt = body
    for k in reversed(range(len(loops))):
        lp, step = loops[k], tiled.get(k)
        if k not in tiled:
            stmt = (Loop(lp.var, lp.extent, stmt, lp.parallel),)
        elif step is not None:
            stmt = (Loop(step[0], ix.ceildiv(lp.extent, step[1]), stmt, lp.parallel),)
    return stmt[0]


def _fit(limit: int, budget: int, extent: Expr) -> int:
    """A tile side: within the limit and the register budget, and no longer than the dim."""
    n, known = min(limit, budget), ix.int_value(extent)
    return n if known is None else max(1, min(n, known))


# ---- sums inside out -----------------------------------------------------------------------------
def _sum_inside_out(value: Expr, idx: list[str]) -> bool:
    """Whether out[..., j] = sum_k body should run as out[..., j] += body with k outside j: when
    the summed index strides through memory in some operand while the last output index is
    contiguous (or absent) in all of them, as in the weight gradient g^T @ x of a linear layer."""
    if not (isinstance(value, Reduce) and value.combine is ADD and value.dtype.is_float):
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



# ---- the GEMM library ----------------------------------------------------------------------------
def _gemm(p: Program, loops: list[Loop], store: Store, otherwise: tuple[Stmt, ...],
          target: Target) -> Gemm | None:
    """The nest as a call of the GEMM library, when its value is a float32 sum over one axis of
    the product of two strided loads (a matmul: x @ W, x @ W^T, g^T @ x, batched) around which
    the rest is an elementwise epilogue; `otherwise` runs when the work is small at run time."""
    sums = [e for e in walk(store.value) if isinstance(e, Reduce)]
    if len(sums) != 1 or p.buffers[store.buffer].dtype != DType.f32:
        return None
    total = sums[0]
    body = total.body
    if (total.combine is not ADD or total.init != 0 or len(total.axes) != 1
            or not isinstance(body, Op) or body.op is not MUL
            or not all(isinstance(x, Load) and x.guard is None and x.dtype == DType.f32
                       for x in body.args)):
        return None
    names = [lp.var for lp in loops]

    def alone(x: Load, y: Load) -> list[str]:
        return [v for v in names if ix.mentions(x.index, v) and not ix.mentions(y.index, v)]
    orientations = [(lhs, rhs, alone(lhs, rhs), alone(rhs, lhs))
                    for lhs, rhs in (body.args, body.args[::-1])]
    found = [(lhs, rhs, rows[-1], cols[-1]) for lhs, rhs, rows, cols in orientations
             if rows and cols and names.index(rows[-1]) < names.index(cols[-1])]
    if not found:
        return None
    (lhs, rhs, m_var, n_var), = found
    k_var, k = total.axes[0]
    bound = set(names) | {k_var}
    extents = {lp.var: lp.extent for lp in loops}
    m, n = extents[m_var], extents[n_var]
    batch = [v for v in names if v not in (m_var, n_var)]
    folded = _rows_of(batch, m_var, extents, lhs, rhs, store)
    zero = {v: ix.ZERO for v in folded}
    a = _matrix(lhs.buffer, lhs.index, m_var, k_var, bound, zero)
    b = _matrix(rhs.buffer, rhs.index, k_var, n_var, bound, zero)
    c = _matrix(store.buffer, store.index, m_var, n_var, bound, zero)
    if a is None or b is None or c is None:
        return None
    for v in folded:
        m = ix.mul(extents[v], m)
    sizes = [ix.int_value(x) for x in (m, n, k)]
    tile = _fallback_tile(otherwise)
    sum_lanes = tile.lanes if tile is not None and tile.along == "sum" else None
    min_work = _min_work(sum_lanes, sizes[2])
    along_cols = tile is not None and tile.along == "col"
    tile_b_bytes = int(TILE_B_L2S * target.l2_bytes) if along_cols else 0
    if any(x is not None and x < GEMM_MIN_SIDE for x in sizes) or (
            None not in sizes and (sizes[0] * sizes[1] * sizes[2] < min_work  # type: ignore
                                   or sizes[1] * sizes[2] * 4 <= tile_b_bytes)):  # type: ignore
        return None
    batch = tuple((v, extents[v]) for v in batch if v not in folded)
    epilogue = _epilogue(loops, store, total)
    if epilogue is None:
        return None
    return Gemm(m, n, k, a, b, c, batch, epilogue, otherwise, min_work,
                _min_rows(sum_lanes, sizes[1], sizes[2], target), tile_b_bytes)


def _fallback_tile(otherwise: tuple[Stmt, ...]) -> Tile | None:
    """The register tile the fallback runs, if it has one."""
    stack = list(otherwise)
    while stack:
        s = stack.pop()
        if isinstance(s, Loop):
            stack.extend(s.body)
        elif isinstance(s, Tile):
            return s
    return None


def _min_work(sum_lanes: int | None, k: int | None) -> int:
    """The m*n*k from which the library beats the fallback tiles: GEMM_MIN_WORK, but much less
    when the tiles' lanes run along a short sum (x @ W^T with a few inputs, as a recurrent
    layer's input projection over its 28 features): each output then costs a vector's
    horizontal sum for a few multiply-adds (GRU's [28, 28] @ [384, 28]^T, one core: 26 -> 10 µs)."""
    short = sum_lanes is not None and k is not None and k < 4 * sum_lanes
    return SHORT_SUM_GEMM_WORK if short else GEMM_MIN_WORK


def _min_rows(sum_lanes: int | None, n: int | None, k: int | None, target: Target) -> int:
    """The rows from which the library beats fallback tiles whose lanes run along a long sum
    (x @ W^T with PyTorch's weight layout), when B (W^T, n x k) is larger than a quarter of L2:
    the library packs all of it, transposed, on every call (about a nanosecond a float once it
    comes from L3), which the few rows of a small batch do not pay back; the tiles read W where
    it is. One core, x [64, 4096] @ W [256, 4096]^T: 2.1 -> 1.65 ms (16 rows 1.1 -> 0.43);
    x [32, 784] @ W [128, 784]^T (MLP's fc1) 0.089-0.101 -> 0.073-0.075 ms. At 256 KB the
    library still wins or ties (an LSTM's [64, 128] @ [512, 128]^T step 0.112 vs 0.136 ms)."""
    large = n is not None and k is not None and n * k * 4 > target.l2_bytes // 4
    return SMALL_BATCH_ROWS if large and sum_lanes is not None else 0


def _rows_of(batch: list[str], m_var: str, extents: dict[str, Expr], lhs: Load, rhs: Load,
             store: Store) -> list[str]:
    """The batch loops, from the innermost out, that continue the rows of both A and C (as the
    batch and time dims of x @ W with x [N, T, K]): they join m, so one call does them all."""
    folded: list[str] = []
    m = extents[m_var]
    rows = {x: _step(x.index, m_var) for x in (lhs, store)}
    for v in reversed(batch):
        if (ix.mentions(rhs.index, v) or None in rows.values()
                or any(_step(x.index, v) != ix.mul(m, rows[x]) for x in rows)):  # type: ignore
            break
        folded.append(v)
        m = ix.mul(extents[v], m)
    return folded


def _matrix(buffer: str, index: Expr, row: str, col: str, bound: set[str],
            zero: dict[str, Expr]) -> Matrix | None:
    """`buffer[index]` as a strided matrix over (row, col), when the index is affine in both
    with steps that no loop variable changes (the variables in `zero` are folded into rows)."""
    steps = [_step(index, v) for v in (row, col)]
    if any(s is None or any(ix.mentions(s, v) for v in bound) for s in steps):
        return None
    offset = _folded(substitute(index, {row: ix.ZERO, col: ix.ZERO, **zero}))
    return Matrix(buffer, offset, steps[0], steps[1])  # type: ignore[arg-type]


def _step(e: Expr, var: str) -> Expr | None:
    """How far e moves per unit of `var`, as an expression, when e is a sum of products in which
    `var` is a factor at most once (None otherwise: floordiv, mod, select of it...)."""
    if not ix.mentions(e, var):
        return ix.ZERO
    if isinstance(e, Var):
        return ix.ONE
    if isinstance(e, Op) and e.op in (ADD, SUB):
        x, y = (_step(a, var) for a in e.args)
        if x is None or y is None:
            return None
        return ix.add(x, y) if e.op is ADD else ix.sub(x, y)
    if isinstance(e, Op) and e.op is MUL:
        x, y = e.args
        if ix.mentions(x, var) and ix.mentions(y, var):
            return None
        inner, factor = (x, y) if ix.mentions(x, var) else (y, x)
        step = _step(inner, var)
        return None if step is None else ix.mul(step, factor)
    return None


def _folded(e: Expr) -> Expr:
    """e with the index arithmetic on constants done (what remains of an index at row 0)."""
    if isinstance(e, Op) and e.op in _FOLD:
        return _FOLD[e.op](*(_folded(a) for a in e.args))
    return e


_FOLD = {ADD: ix.add, SUB: ix.sub, MUL: ix.mul}


def _epilogue(loops: list[Loop], store: Store, total: Reduce) -> tuple[Stmt, ...] | None:
    """The store's value with the sum read back from the output: the fused bias and activation
    as an elementwise nest after the call (nothing when the value is the sum itself)."""
    if store.value == total:
        return ()
    value = _replace(store.value, total, Load(total.dtype, store.buffer, store.index))
    if any(isinstance(e, Reduce) for e in walk(value)):
        return None
    stmt: Stmt = replace(store, value=value)
    for lp in reversed(loops):
        stmt = Loop(lp.var, lp.extent, (stmt,), lp.parallel)
    return (stmt,)


def _replace(e: Expr, old: Expr, new: Expr) -> Expr:
    if e == old:
        return new
    if isinstance(e, Op):
        return Op(e.dtype, e.op, tuple(_replace(a, old, new) for a in e.args))
    return e
