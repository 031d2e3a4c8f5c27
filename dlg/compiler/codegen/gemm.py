"""Float32 matrix multiplication (GEMM) as a small LLVM module JIT-compiled once per process.

A register tile that streams a whole sum reads its operands from memory again for every tile;
at a few hundred rows and columns they no longer fit the caches and the multiply-adds wait on
memory. So large products go through BLIS's loops instead: B in blocks of KC x NC and A in
blocks of MC x KC, each copied ("packed") into contiguous micro-panels of NR columns or MR rows
(edges padded with zeros), sized so that a B micro-panel stays in L1 and an A block in L2 while
the micro-kernel runs MR x NR multiply-adds per step from registers. Packing reads any element
strides, so a transposed operand (x @ W^T with PyTorch's weight layout, the gradients g^T x and
g W) costs no copy of its own.

    dlg_sgemm(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, rs_c, cs_c, accumulate, threads)

sets c (m x n, element (i, j) at c[i*rs_c + j*cs_c]) to a @ b, or adds it with `accumulate`.
With several threads the larger of m and n is split over the process's thread pool
(`dlg_run_parallel`, codegen/threads.py), each part packing its own panels. Compiled graph
modules declare `dlg_sgemm` and MCJIT resolves it to this module's function (`llvm.add_symbol`),
so cached object code stays valid across processes.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen import cache, threads
from dlg.compiler.codegen.parts import TIDY_PASSES, tidy
from dlg.compiler.codegen.scalar import Scalar
from dlg.compiler.kernel_ir import Gemm, Stmt
from dlg.compiler.schedule import GEMM_MIN_SIDE, Target

if TYPE_CHECKING:
    from dlg.compiler.codegen.llvm_cpu import Emitter

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
F32 = ir.FloatType()
F32P, I8P = F32.as_pointer(), ir.IntType(8).as_pointer()
SGEMM = "dlg_sgemm"
SGEMM_ARGS = [I64, I64, I64, F32P, I64, I64, F32P, I64, I64, F32P, I64, I64, I64, I64]
SGEMM_TYPE = ir.FunctionType(ir.VoidType(), SGEMM_ARGS)
PROTOTYPE = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 3, *[ctypes.c_void_p, ctypes.c_int64,
                                                            ctypes.c_int64] * 3,
                             ctypes.c_int64, ctypes.c_int64)
PARALLEL_WORK = 1 << 17  # m*n*k worth a second thread
MAX_THREADS = 64
ALIGN = 64
BLOCK = 8  # depths (and lines) per transposed copy in packing
ALIASED_ROWS = 512  # floats: rows of A this far apart (2 KB) share L1 sets, so A is packed even
# when it could be read in place: the micro-kernel's MR rows would evict each other (x [64, 4096]
# @ W^T, one core: 57 -> 61 GF/s at 64 rows, 45 -> 73 at 128, 63 -> 85 at 512)
# The code is written as it should run (explicit vectors, fma, unrolled rows): the TIDY passes
# (registers for the stack slots, tidy loops) give the speed of LLVM's O3 pipeline at a fifth of
# its compile time, which every process pays once (~0.1 s instead of ~0.55 s)


@dataclass(frozen=True)
class Blocking:
    """The micro-kernel's shape (MR rows x NR columns, `lanes` per vector) and the cache
    blocks: KC x NR floats of B fill half of L1, MC x KC of A half of L2."""

    lanes: int
    mr: int
    nr: int
    kc: int
    mc: int
    nc: int


def blocking(target: Target, l1: int, l2: int) -> Blocking:
    lanes = target.vector_bytes // 4
    nr = 2 * lanes
    mr = (target.registers - 3) // 2  # 2*mr accumulators, two B vectors, one broadcast
    kc = max(128, min(512, l1 * 3 // 4 // (nr * 4) // 8 * 8))
    mc = max(mr, l2 // 2 // (kc * 4) // mr * mr)
    return Blocking(lanes, mr, nr, kc, mc, nc=max(nr, l2 * 3 // 2 // (kc * 4) // nr * nr))


@functools.cache
def cache_sizes() -> tuple[int, int]:
    """This CPU's L1 data and L2 cache sizes in bytes (Linux sysfs; common sizes elsewhere)."""
    sizes = {1: 32 << 10, 2: 512 << 10}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and level in sizes and text[:-1].isdigit():
            sizes[level] = int(text[:-1]) << {"K": 10, "M": 20}.get(text[-1], 0)
    return sizes[1], sizes[2]


def declare(m: ir.Module) -> ir.Function:
    """`dlg_sgemm` in a graph module (resolved when its code is loaded)."""
    if SGEMM not in m.globals:
        ir.Function(m, SGEMM_TYPE, SGEMM)
    return m.globals[SGEMM]


@functools.cache
def start(target: Target, machine: Callable[[], llvm.TargetMachine]) -> object:
    """Compile the library for `target` and make `dlg_sgemm` resolvable; once per process,
    after the thread pool (its object code kept in the disk cache). Returns the engine, which
    must stay alive."""
    bl = blocking(target, *cache_sizes())
    engine = cache.library(f"gemm {bl}", functools.partial(module, bl), ",".join(TIDY_PASSES),
                           lambda text: _object_code(text, machine()), machine)
    llvm.add_symbol(SGEMM, engine.get_function_address(SGEMM))
    return engine


def compile_library(target: Target, tm: llvm.TargetMachine) -> llvm.ExecutionEngine:
    """The library for `target`, optimised and loaded (its `dlg_sgemm` not yet published)."""
    mod = _optimized(str(module(blocking(target, *cache_sizes()))), tm)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return engine


def _object_code(text: str, tm: llvm.TargetMachine) -> bytes:
    return tm.emit_object(_optimized(text, tm))


def _optimized(text: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    mod = llvm.parse_assembly(text)
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    mod.verify()
    tidy(mod, tm)
    return mod


def module(bl: Blocking) -> ir.Module:
    m = ir.Module("dlg_gemm")
    m.triple = llvm.get_process_triple()
    lib = _Library(m, bl)
    serial = lib.serial(lib.micro(), lib.pack("a", bl.mr), lib.pack("b", bl.nr))
    lib.entry(serial, lib.part(serial))
    return m


def _for(b: ir.IRBuilder, name: str, start: ir.Value, stop: ir.Value, step: int | ir.Value,
         body: Callable[[ir.Value], None]) -> None:
    """for (i = start; i < stop; i += step) body(i)"""
    fn, before = b.function, b.block
    head, inner, done = (fn.append_basic_block(f"{name}.{s}") for s in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, before)
    b.cbranch(b.icmp_signed("<", i, stop), inner, done)
    b.position_at_end(inner)
    body(i)
    i.add_incoming(b.add(i, I64(step) if isinstance(step, int) else step), b.block)
    b.branch(head)
    b.position_at_end(done)


def _transpose8(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """The columns of an 8 x 8 block given as 8 row vectors: AVX's unpack, shuffle and
    128-bit permute network (24 shuffles; other widths are split or joined by the backend)."""
    def shuffle(x: ir.Value, y: ir.Value, picks: list[int]) -> ir.Value:
        return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, BLOCK), picks))
    lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
    pairs = [shuffle(rows[r], rows[r + 1], picks) for r in range(0, BLOCK, 2) for picks in (lo, hi)]
    even, odd = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    quads = [shuffle(pairs[g + h], pairs[g + h + 2], picks)
             for g in (0, 4) for h in (0, 1) for picks in (even, odd)]
    # quads[g/4*4 + j]: rows g..g+3 at depths j and j + 4 (j = 0..3), each in a 128-bit half
    low, high = list(range(4)) + list(range(8, 12)), list(range(4, 8)) + list(range(12, 16))
    return [shuffle(quads[j], quads[4 + j], low) for j in range(4)] + [
        shuffle(quads[j], quads[4 + j], high) for j in range(4)]


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _function(m: ir.Module, name: str, args: list[ir.Type], names: str,
              result: ir.Type | None = None) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(m, ir.FunctionType(result or ir.VoidType(), args), name)
    for arg, arg_name in zip(fn.args, names.split()):
        arg.name = arg_name
    if name != SGEMM:
        fn.linkage = "internal"
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


class _Library:
    """The library's functions, from the micro-kernel up."""

    def __init__(self, m: ir.Module, bl: Blocking):
        self.m, self.bl = m, bl
        self.vector = ir.VectorType(F32, bl.lanes)
        self.fma = Scalar(m, ir.IRBuilder()).intrinsic("llvm.fma", self.vector, 3)
        self.memalign = ir.Function(m, ir.FunctionType(I32, [I8P.as_pointer(), I64, I64]),
                                    "posix_memalign")
        self.free = ir.Function(m, ir.FunctionType(ir.VoidType(), [I8P]), "free")

    def splat(self, b: ir.IRBuilder, x: ir.Value, vector: ir.VectorType | None = None
              ) -> ir.Value:
        vector = vector or self.vector
        one = b.insert_element(ir.Constant(vector, ir.Undefined), x, I32(0))
        return b.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                ir.Constant(ir.VectorType(I32, vector.count), [0] * vector.count))

    def micro(self) -> ir.Function:
        """c[rows x cols] (+)= a (MR x kc: row r, depth p at a[r*a_row + p*a_step]; packed,
        a_row = 1 and a_step = MR) @ bp (kc x NR, packed): MR x NR sums in registers, stored as
        vectors into a row-major c (masked at its edges), else element by element. Rows past
        `rows` read the last row (an unpacked A has nothing after it) and are not stored."""
        bl, vec = self.bl, self.vector
        fn, b = _function(self.m, "dlg_gemm.micro", [I64, F32P, I64, I64, F32P, F32P, I64, I64,
                                                     I64, I64, I1],
                          "kc a a_row a_step bp c rs_c cs_c rows cols beta")
        fn.attributes.add("alwaysinline")
        kc, ap, a_row, a_step, bp, c, rs_c, cs_c, rows, cols, beta = fn.args
        row_of = [b.mul(_min(b, I64(r), b.sub(rows, I64(1))), a_row) for r in range(bl.mr)]
        vectors = bl.nr // bl.lanes
        accs = [[b.alloca(vec, name=f"acc{r}.{v}") for v in range(vectors)] for r in range(bl.mr)]
        tile = b.alloca(ir.ArrayType(F32, bl.mr * bl.nr), name="tile")  # in the entry: static
        for row in accs:
            for acc in row:
                b.store(ir.Constant(vec, 0.0), acc)

        def step(p: ir.Value) -> None:
            bs = [b.load(b.bitcast(b.gep(bp, [b.add(b.mul(p, I64(bl.nr)), I64(v * bl.lanes))]),
                                   vec.as_pointer()), align=4 * bl.lanes)
                  for v in range(vectors)]
            for r in range(bl.mr):
                x = self.splat(b, b.load(b.gep(ap, [b.add(b.mul(p, a_step), row_of[r])])))
                for v in range(vectors):
                    b.store(b.call(self.fma, [x, bs[v], b.load(accs[r][v])]), accs[r][v])
        prefetch = self.m.declare_intrinsic("llvm.prefetch", [I8P], ir.FunctionType(
            ir.VoidType(), [I8P, I32, I32, I32]))
        for r in range(bl.mr):  # C's rows are read and written after the sum: start them now
            line = b.gep(c, [b.mul(_min(b, I64(r), b.sub(rows, I64(1))), rs_c)])
            for offset in (0, bl.nr - 1):
                b.call(prefetch, [b.bitcast(b.gep(line, [I64(offset)]), I8P), I32(1), I32(3),
                                  I32(1)])
        _for(b, "p", I64(0), kc, 1, step)
        with b.if_else(b.icmp_signed("==", cs_c, I64(1))) as (then, otherwise):
            with then:
                whole = b.icmp_signed("==", cols, I64(bl.nr))
                for add, when in ((True, beta), (False, b.not_(beta))):  # C read only to add
                    with b.if_then(b.and_(when, whole)):
                        self.store_rows(b, accs, c, rs_c, rows, None, add)
                    with b.if_then(b.and_(when, b.not_(whole))):
                        self.store_rows(b, accs, c, rs_c, rows, cols, add)
            with otherwise:
                self.store_edge(b, self.spill(b, accs, tile), c, rs_c, cs_c, rows, cols, beta)
        b.ret_void()
        return fn

    def declared(self, name: str, t: ir.FunctionType) -> ir.Function:
        if name not in self.m.globals:
            ir.Function(self.m, t, name)
        return self.m.globals[name]

    def store_rows(self, b: ir.IRBuilder, accs: list[list[ir.Value]], c: ir.Value,
                   rs_c: ir.Value, rows: ir.Value, cols: ir.Value | None, add: bool) -> None:
        """The tile's first `rows` rows into (or, with `add`, added to) a c whose rows are
        contiguous, as vectors; with `cols`, lanes at or past it masked off."""
        vec, lanes = self.vector, self.bl.lanes
        masks: list[ir.Value | None] = [None] * len(accs[0])
        if cols is not None:
            iota = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
            ends = self.splat(b, cols, ir.VectorType(I64, lanes))
            masks = [b.icmp_signed("<", b.add(iota, self.splat(b, I64(v * lanes),
                                                               ir.VectorType(I64, lanes))), ends)
                     for v in range(len(accs[0]))]
        flags = ir.VectorType(I1, lanes)
        name = f"v{lanes}f32.p0"
        load = self.declared(f"llvm.masked.load.{name}", ir.FunctionType(
            vec, [vec.as_pointer(), I32, flags, vec]))
        store = self.declared(f"llvm.masked.store.{name}", ir.FunctionType(
            ir.VoidType(), [vec, vec.as_pointer(), I32, flags]))
        for r, row in enumerate(accs):
            with b.if_then(b.icmp_signed("<", I64(r), rows)):
                for v, (acc, mask) in enumerate(zip(row, masks)):
                    at = b.bitcast(b.gep(c, [b.add(b.mul(I64(r), rs_c), I64(v * lanes))]),
                                   vec.as_pointer())
                    value = b.load(acc)
                    if mask is None:
                        if add:
                            value = b.fadd(value, b.load(at, align=4))
                        b.store(value, at, align=4)
                    else:
                        if add:
                            value = b.fadd(value, b.call(load, [at, I32(4), mask,
                                                                ir.Constant(vec, 0.0)]))
                        b.call(store, [value, at, I32(4), mask])

    def spill(self, b: ir.IRBuilder, accs: list[list[ir.Value]], tile: ir.Value) -> ir.Value:
        """The accumulators in `tile`, a row-major MR x NR array on the stack."""
        bl = self.bl
        first = b.bitcast(tile, F32P)
        for r, row in enumerate(accs):
            for v, acc in enumerate(row):
                at = b.bitcast(b.gep(first, [I64(r * bl.nr + v * bl.lanes)]),
                               self.vector.as_pointer())
                b.store(b.load(acc), at, align=4)
        return first

    def store_edge(self, b: ir.IRBuilder, tile: ir.Value, c: ir.Value, rs_c: ir.Value,
                   cs_c: ir.Value, rows: ir.Value, cols: ir.Value, beta: ir.Value) -> None:
        def row(r: ir.Value) -> None:
            def col(j: ir.Value) -> None:
                value = b.load(b.gep(tile, [b.add(b.mul(r, I64(self.bl.nr)), j)]))
                at = b.gep(c, [b.add(b.mul(r, rs_c), b.mul(j, cs_c))])
                b.store(b.select(beta, b.fadd(value, b.load(at)), value), at)
            _for(b, "j", I64(0), cols, 1, col)
        _for(b, "r", I64(0), rows, 1, row)

    def pack(self, which: str, width: int) -> ir.Function:
        """Copy `count` lines (rows of A, columns of B) of depth kc into micro-panels of `width`
        lines, each kc x width and contiguous, lines past `count` zero. A line is `step` apart in
        the source, its elements `along` apart. The source is read in its memory order: where
        lines are adjacent (step 1: B row-major, A column-major) a depth at a time across whole
        panels, as vectors; else a panel at a time, its lines side by side."""
        fn, b = _function(self.m, f"dlg_gemm.pack_{which}", [I64, I64, F32P, I64, I64, F32P],
                          "count kc src step along dst")
        count, kc, src, step, along, dst = fn.args
        vector = ir.VectorType(F32, width)
        whole = b.mul(b.sdiv(count, I64(width)), I64(width))

        def copy(i: ir.Value, p: ir.Value, edge: bool) -> None:
            out = b.gep(dst, [b.add(b.mul(i, kc), b.mul(p, I64(width)))])
            first = b.add(b.mul(i, step), b.mul(p, along))
            for r in range(width):
                at = b.add(first, b.mul(I64(r), step))
                if edge:
                    inside = b.icmp_signed("<", b.add(i, I64(r)), count)
                    value = b.select(inside, b.load(b.gep(src, [b.select(inside, at, first)])),
                                     F32(0.0))
                else:
                    value = b.load(b.gep(src, [at]))
                b.store(value, b.gep(out, [I64(r)]))

        def copy_vector(i: ir.Value, p: ir.Value) -> None:
            out = b.gep(dst, [b.add(b.mul(i, kc), b.mul(p, I64(width)))])
            at = b.bitcast(b.gep(src, [b.add(i, b.mul(p, along))]), vector.as_pointer())
            b.store(b.load(at, align=4), b.bitcast(out, vector.as_pointer()), align=4)
        with b.if_else(b.icmp_signed("==", step, I64(1))) as (adjacent, apart):
            with adjacent:
                _for(b, "p", I64(0), kc, 1, lambda p: _for(
                    b, "i", I64(0), whole, width, lambda i: copy_vector(i, p)))
            with apart:
                blocks = b.mul(b.sdiv(kc, I64(BLOCK)), I64(BLOCK))
                contiguous = b.icmp_signed("==", along, I64(1))

                def panel(i: ir.Value) -> None:
                    with b.if_then(contiguous):
                        _for(b, "p", I64(0), blocks, BLOCK,
                             lambda p: self.copy_transposed(b, src, step, i, p, dst, kc, width))
                    _for(b, "p", b.select(contiguous, blocks, I64(0)), kc, 1,
                         lambda p: copy(i, p, False))
                _for(b, "i", I64(0), whole, width, panel)
        with b.if_then(b.icmp_signed("<", whole, count)):
            _for(b, "p", I64(0), kc, 1, lambda p: copy(whole, p, True))
        b.ret_void()
        return fn

    def copy_transposed(self, b: ir.IRBuilder, src: ir.Value, step: ir.Value, i: ir.Value,
                        p: ir.Value, dst: ir.Value, kc: ir.Value, width: int) -> None:
        """Depths p..p+7 of the panel of lines i..i+width-1 whose elements are contiguous (the
        weight gradient's g and cols^T): 8 floats of each line loaded as one vector, 8 lines at
        a time transposed in registers, each depth's `width` floats stored together."""
        block = ir.VectorType(F32, BLOCK)
        out = b.gep(dst, [b.add(b.mul(i, kc), b.mul(p, I64(width)))])
        for first in range(0, width, BLOCK):
            lines = min(BLOCK, width - first)
            rows = [b.load(b.bitcast(b.gep(src, [b.add(b.mul(b.add(i, I64(first + r)), step), p)]),
                                     block.as_pointer()), align=4)
                    for r in range(lines)]
            rows += [ir.Constant(block, ir.Undefined)] * (BLOCK - lines)
            for q, column in enumerate(_transpose8(b, rows)):
                if lines < BLOCK:
                    column = b.shuffle_vector(column, column, ir.Constant(
                        ir.VectorType(I32, lines), list(range(lines))))
                at = b.gep(out, [I64(q * width + first)])
                b.store(column, b.bitcast(at, column.type.as_pointer()), align=4)

    def round_up(self, b: ir.IRBuilder, x: ir.Value, unit: int) -> ir.Value:
        return b.mul(b.sdiv(b.add(x, I64(unit - 1)), I64(unit)), I64(unit))

    def alloc(self, b: ir.IRBuilder, floats: ir.Value) -> ir.Value:
        slot = b.alloca(I8P)
        b.call(self.memalign, [slot, I64(ALIGN), b.mul(floats, I64(4))])
        return b.bitcast(b.load(slot), F32P)

    def serial(self, micro: ir.Function, pack_a: ir.Function, pack_b: ir.Function
               ) -> ir.Function:
        """The blocked product on this thread: BLIS's loops around the micro-kernel, the depth
        loop outermost so that an A of at most MC rows (a convolution's output channels) is
        packed once per depth block, or not at all when its rows are contiguous (the
        micro-kernel broadcasts from them in place: a batch of 64 rows copied for each thread
        cost a third of a linear layer's time) and not ALIASED_ROWS apart, and k cut into equal
        blocks of at most KC (k = 288 is one block, not 256 + 32: a thin last block would cost a
        pass over C for little work)."""
        bl = self.bl
        fn, b = _function(self.m, "dlg_gemm.serial", SGEMM_ARGS[:-1],
                          "m n k a rs_a cs_a b rs_b cs_b c rs_c cs_c accumulate")
        m, n, k, a, rs_a, cs_a, bm, rs_b, cs_b, c, rs_c, cs_c, accumulate = fn.args
        kc_max = b.sdiv(b.add(k, b.sub(b.sdiv(b.add(k, I64(bl.kc - 1)), I64(bl.kc)), I64(1))),
                        b.sdiv(b.add(k, I64(bl.kc - 1)), I64(bl.kc)))
        ap = self.alloc(b, b.mul(self.round_up(b, _min(b, m, I64(bl.mc)), bl.mr), kc_max))
        bp = self.alloc(b, b.mul(self.round_up(b, _min(b, n, I64(bl.nc)), bl.nr), kc_max))
        one_block = b.icmp_signed("<=", m, I64(bl.mc))
        aliased = b.icmp_signed("==", b.srem(rs_a, I64(ALIASED_ROWS)), I64(0))
        direct = b.and_(b.and_(one_block, b.icmp_signed("==", cs_a, I64(1))), b.not_(aliased))

        def depth(pc: ir.Value) -> None:
            kc = _min(b, b.sub(k, pc), kc_max)
            beta = b.or_(b.icmp_signed(">", pc, I64(0)), b.trunc(accumulate, I1))

            def pack_rows(ic: ir.Value, mc: ir.Value) -> None:
                b.call(pack_a, [mc, kc, b.gep(a, [b.add(b.mul(ic, rs_a), b.mul(pc, cs_a))]),
                                rs_a, cs_a, ap])
            with b.if_then(b.and_(one_block, b.not_(direct))):
                pack_rows(I64(0), m)

            def columns(jc: ir.Value) -> None:
                nc = _min(b, b.sub(n, jc), I64(bl.nc))
                b.call(pack_b, [nc, kc, b.gep(bm, [b.add(b.mul(pc, rs_b), b.mul(jc, cs_b))]),
                                cs_b, rs_b, bp])

                def rows(ic: ir.Value) -> None:
                    mc = _min(b, b.sub(m, ic), I64(bl.mc))
                    with b.if_then(b.not_(one_block)):
                        pack_rows(ic, mc)

                    def panel(jr: ir.Value) -> None:
                        def tile(ir_: ir.Value) -> None:
                            at = b.add(b.mul(b.add(ic, ir_), rs_c), b.mul(b.add(jc, jr), cs_c))
                            a_at = b.add(b.mul(b.add(ic, ir_), rs_a), b.mul(pc, cs_a))
                            a_tile = b.select(direct, b.gep(a, [a_at]),
                                              b.gep(ap, [b.mul(ir_, kc)]))
                            b.call(micro, [kc, a_tile, b.select(direct, rs_a, I64(1)),
                                           b.select(direct, cs_a, I64(bl.mr)),
                                           b.gep(bp, [b.mul(jr, kc)]), b.gep(c, [at]), rs_c, cs_c,
                                           _min(b, b.sub(mc, ir_), I64(bl.mr)),
                                           _min(b, b.sub(nc, jr), I64(bl.nr)), beta])
                        _for(b, "ir", I64(0), mc, bl.mr, tile)
                    _for(b, "jr", I64(0), nc, bl.nr, panel)
                _for(b, "ic", I64(0), m, bl.mc, rows)
            _for(b, "jc", I64(0), n, bl.nc, columns)
        _for(b, "pc", I64(0), k, kc_max, depth)
        b.call(self.free, [b.bitcast(ap, I8P)])
        b.call(self.free, [b.bitcast(bp, I8P)])
        b.ret_void()
        return fn

    def part(self, serial: ir.Function) -> ir.Function:
        """One thread's share, for the pool: words are dlg_sgemm's arguments as integers, then
        whether m is split (else n), then the share's first and last block of MR rows or NR
        columns."""
        bl = self.bl
        fn, b = _function(self.m, "dlg_gemm.part", [I8P], "words", result=I8P)
        words = b.bitcast(fn.args[0], I64.as_pointer())
        w = [b.load(b.gep(words, [I64(i)])) for i in range(16)]
        m, n, k, a, rs_a, cs_a, bm, rs_b, cs_b, c, rs_c, cs_c, accumulate, split_m, lo, hi = w
        a, bm, c = (b.inttoptr(x, F32P) for x in (a, bm, c))
        with b.if_else(b.trunc(split_m, I1)) as (then, otherwise):
            with then:
                i0, i1 = b.mul(lo, I64(bl.mr)), _min(b, b.mul(hi, I64(bl.mr)), m)
                with b.if_then(b.icmp_signed("<", i0, i1)):
                    b.call(serial, [b.sub(i1, i0), n, k, b.gep(a, [b.mul(i0, rs_a)]), rs_a, cs_a,
                                    bm, rs_b, cs_b, b.gep(c, [b.mul(i0, rs_c)]), rs_c, cs_c,
                                    accumulate])
            with otherwise:
                j0, j1 = b.mul(lo, I64(bl.nr)), _min(b, b.mul(hi, I64(bl.nr)), n)
                with b.if_then(b.icmp_signed("<", j0, j1)):
                    b.call(serial, [m, b.sub(j1, j0), k, a, rs_a, cs_a,
                                    b.gep(bm, [b.mul(j0, cs_b)]), rs_b, cs_b,
                                    b.gep(c, [b.mul(j0, cs_c)]), rs_c, cs_c, accumulate])
        b.ret(ir.Constant(I8P, None))
        return fn

    def entry(self, serial: ir.Function, part: ir.Function) -> None:
        bl = self.bl
        fn, b = _function(self.m, SGEMM, SGEMM_ARGS,
                          "m n k a rs_a cs_a b rs_b cs_b c rs_c cs_c accumulate threads")
        m, n, k, a, rs_a, cs_a, bm, rs_b, cs_b, c, rs_c, cs_c, accumulate, count = fn.args
        row_ = b.alloca(ir.ArrayType(I64, 16), name="words")
        empty = b.or_(b.icmp_signed("<=", m, I64(0)), b.icmp_signed("<=", n, I64(0)))
        with b.if_then(empty):
            b.ret_void()
        with b.if_then(b.icmp_signed("<=", k, I64(0))):
            with b.if_then(b.icmp_signed("==", accumulate, I64(0))):
                def row(i: ir.Value) -> None:
                    _for(b, "j", I64(0), n, 1, lambda j: b.store(F32(0.0), b.gep(
                        c, [b.add(b.mul(i, rs_c), b.mul(j, cs_c))])))
                _for(b, "i", I64(0), m, 1, row)
            b.ret_void()
        split_m = b.icmp_signed(">=", m, n)
        unit = b.select(split_m, I64(bl.mr), I64(bl.nr))
        blocks = b.sdiv(b.add(b.select(split_m, m, n), b.sub(unit, I64(1))), unit)
        count = _min(b, _min(b, count, blocks), I64(MAX_THREADS))
        work = b.mul(b.mul(m, n), k)
        spread = b.and_(b.icmp_signed(">", count, I64(1)),
                        b.icmp_signed(">=", work, I64(PARALLEL_WORK)))
        with b.if_else(spread) as (then, otherwise):
            with then:
                values = [m, n, k, b.ptrtoint(a, I64), rs_a, cs_a, b.ptrtoint(bm, I64), rs_b,
                          cs_b, b.ptrtoint(c, I64), rs_c, cs_c, accumulate, b.zext(split_m, I64)]
                for i, value in enumerate(values):
                    b.store(value, b.gep(row_, [I64(0), I64(i)]))
                b.call(threads.declare(self.m), [part, b.bitcast(row_, I64.as_pointer()), I64(16),
                                                 blocks, count])
            with otherwise:
                b.call(serial, [m, n, k, a, rs_a, cs_a, bm, rs_b, cs_b, c, rs_c, cs_c,
                                        accumulate])
        b.ret_void()


# ---- the call in a graph kernel ------------------------------------------------------------------
def emit_gemm(e: Emitter, s: Gemm, emit: Callable[[tuple[Stmt, ...]], None]) -> None:
    """`s` in a kernel: when m*n*k reaches its threshold, every side GEMM_MIN_SIDE, m its
    `min_rows` and B outgrows `tile_b_bytes`, the library call for each batch index and then
    the epilogue; else its fallback statements (a batch of one: packing a linear layer's
    weights for one row cost 6x the matrix-vector product). `emit` emits nested statements as
    the kernel's own (parallel loops on the pool)."""
    b = e.b
    sizes = [e.expr(x) for x in (s.m, s.n, s.k)]
    work = b.mul(b.mul(sizes[0], sizes[1]), sizes[2])
    threads_used = b.load(b.gep(e.dim_ptr, [I64(len(e.dims))]), name="threads")
    least = (max(GEMM_MIN_SIDE, s.min_rows), GEMM_MIN_SIDE, GEMM_MIN_SIDE)  # m, n, k
    wide = [b.icmp_signed(">=", side, I64(at_least)) for side, at_least in zip(sizes, least)]
    big = b.and_(b.icmp_signed(">=", work, I64(s.min_work)), b.and_(b.and_(*wide[:2]), wide[2]))
    if s.tile_b_bytes:
        b_bytes = b.mul(b.mul(sizes[1], sizes[2]), I64(4))
        big = b.and_(big, b.icmp_signed(">", b_bytes, I64(s.tile_b_bytes)))
    with b.if_else(big) as (then, otherwise):
        with then:
            e.scopes.append({})  # values computed in a branch do not dominate the other

            def call(level: int) -> None:
                if level < len(s.batch):
                    name, extent = s.batch[level]

                    def body(i: ir.Value) -> None:
                        e.vars[name] = i
                        call(level + 1)
                    return e.loop(name, e.expr(extent), body)
                args = [x for matrix in (s.a, s.b, s.c) for x in (
                    e.pointer(matrix.buffer, e.expr(matrix.offset))[0], e.expr(matrix.rows),
                    e.expr(matrix.cols))]
                b.call(declare(e.m), [*sizes, *args, I64(0), threads_used])
            call(0)
            emit(s.epilogue)
            e.scopes.pop()
        with otherwise:
            e.scopes.append({})
            emit(s.otherwise)
            e.scopes.pop()
