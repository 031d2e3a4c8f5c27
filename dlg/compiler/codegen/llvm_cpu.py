"""Kernel IR -> one LLVM module for the host CPU, through llvmlite.

Every kernel becomes a function named after its fused ops, taking a typed `noalias` pointer per
buffer, the dims array and a random seed; one entry function, `dlg_entry(i8** buffers,
i64* dims, i64 seed)`, calls them in order with pointers from the buffer table. Scan bodies are
functions with the entry's signature, called once per step. A parallel loop with enough work
becomes a chunk function run on the process's thread pool (codegen/threads.py); register tiles
are emitted by codegen/vector.py. The module is optimised by LLVM's O3 pipeline for the host CPU's
name and features (AVX-512, AVX2 or NEON as available) and JIT-compiled with MCJIT.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import re
from collections.abc import Callable
from math import prod

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen import anomaly as checks
from dlg.compiler.codegen import gemm, half, threads
from dlg.compiler.codegen.cache import host
from dlg.compiler.codegen.parts import (
    O1,
    O2,
    O3,
    TIDY,
    Allocator,
    Linker,
    Modules,
    declared,
    tidy,
    unpack,
)
from dlg.compiler.codegen.gemm import emit_gemm
from dlg.compiler.codegen.scalar import (
    I1,
    I8,
    I64,
    SCALAR_FORMS,
    Scalar,
    llvm_type,
    memory_type,
)
from dlg.compiler.codegen.vector import emit_tile
from dlg.compiler.kernel_ir import (
    ARGMAX,
    ARGMIN,
    MAX,
    MIN,
    CallScan,
    Const,
    Copy,
    Expr,
    Fill,
    Gemm,
    IfFinite,
    Kernel,
    Load,
    Loop,
    Op,
    Random,
    Reduce,
    Stmt,
    Store,
    Tile,
    Var,
    canonical,
    independent,
    walk,
)
from dlg.compiler.lower import Program
from dlg.compiler.schedule import Target
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL

ENTRY = "dlg_entry"
PROFILE = "dlg_profile"  # with profiling: cycles spent in each top-level kernel, summed over calls
I8P = I8.as_pointer()
TABLE = I8P.as_pointer()
ENTRY_TYPE = ir.FunctionType(ir.VoidType(), [TABLE, I64.as_pointer(), I64])


KernelBuilder = Callable[[ir.Module, Program, Kernel, list[str], dict[str, ir.Function]],
                        ir.Function]


def build_module(program: Program, profile: bool = False, anomaly: bool = False,
                 kernel_function: KernelBuilder | None = None,
                 texts: Callable[[Program, Kernel], str] | None = None) -> Modules:
    """The LLVM IR of a program: kernels, scan bodies and the entry, in parts by optimisation
    level (`kernel_level`); with `profile`, the entry adds the cycle counter's advance over each
    kernel call to that kernel's slot of the `dlg_profile` array; with `anomaly`, each kernel's
    outputs are checked for new NaNs and Infs (codegen/anomaly.py). `kernel_function` emits one
    kernel's function (the CUDA grid emulation's, codegen/emulate.py), else the CPU's. `texts`
    gives each kernel's `structure` (a `KernelTexts` the cache key already filled)."""
    texts = texts or structure
    parts = Allocator(program.name, llvm.get_process_triple())
    make_kernel = kernel_function or functools.partial(_kernel_function, apart=parts.module)
    main = parts.main
    dims = program.dims
    functions: dict[str, ir.Function] = {}
    counters = None
    if profile:
        counters = ir.GlobalVariable(main, ir.ArrayType(I64, len(program.kernels)), PROFILE)
        counters.initializer = ir.Constant(counters.type.pointee, None)
        clock = main.declare_intrinsic("llvm.readcyclecounter", (), ir.FunctionType(I64, []))
    if anomaly:
        checks.flag(main)

    def define(p: Program, name: str) -> None:
        for body in p.bodies:
            define(body, body.name)
        entry = ir.Function(main, ENTRY_TYPE, name)
        b = ir.IRBuilder(entry.append_basic_block("entry"))
        table, dim_ptr, seed = entry.args
        index = {buf: i for i, buf in enumerate(p.order)}
        made: dict[str, tuple[ir.Module, ir.Function]] = {}
        for k, kernel in enumerate(p.kernels):
            key = texts(p, kernel)
            if key not in made:
                m = parts.module(kernel_level(kernel))
                made[key] = m, declared(main, make_kernel(m, p, kernel, dims, Linker(m, functions)))
            m, fn = made[key]
            args = []
            for buf in _kernel_buffers(kernel):
                raw = b.load(b.gep(table, [I64(index[buf])]), name=buf)
                args.append(b.bitcast(raw, memory_type(p.buffers[buf].dtype).as_pointer()))
            checked = anomaly and name == ENTRY
            if counters is None or name != ENTRY:
                b.call(fn, args + [dim_ptr, seed])
                if checked:
                    checks.check_after(b, m, main, p, k, kernel, args, dims, dim_ptr)
                continue
            start = b.call(clock, [])
            b.call(fn, args + [dim_ptr, seed])
            slot = b.gep(counters, [I64(0), I64(k)])
            b.store(b.add(b.load(slot), b.sub(b.call(clock, []), start)), slot)
            if checked:
                checks.check_after(b, m, main, p, k, kernel, args, dims, dim_ptr)
        b.ret_void()
        functions[name] = entry

    define(program, ENTRY)
    return parts.done()


def structure(p: Program, kernel: Kernel) -> str:
    """What a kernel's function is made of, its buffers named by position and its reduction
    variables by first use: kernels with equal structures (a network's repeated layers, a
    gradient's repeated pieces) share one function, compiled once."""
    buffers = _kernel_buffers(kernel)
    names = {buf: f"<buffer {k}>" for k, buf in enumerate(buffers)}

    def rename(name: str) -> str:
        if name not in names and re.fullmatch(r"r\.\d+", name):
            names[name] = f"<r {len(names)}>"
        return names.get(name, name)
    shapes = [(p.buffers[buf].dtype, p.buffers[buf].shape) for buf in buffers]
    return f"{shapes}\n{canonical(kernel.body, rename)}"


class KernelTexts:
    """Each kernel's `structure`, made once a compile: the disk cache's key (`cache.program_key`)
    and the sharing of equal functions both read it (ResNet-18's training step: 0.14 s each)."""

    def __init__(self) -> None:
        self.made: dict[int, tuple[Kernel, str]] = {}

    def __call__(self, p: Program, kernel: Kernel) -> str:
        hit = self.made.get(id(kernel))
        if hit is None or hit[0] is not kernel:
            hit = self.made[id(kernel)] = (kernel, structure(p, kernel))
        return hit[1]


SMALL_WORK = 4096  # iterations: below this, O3's unrolled and vectorised loops save microseconds


SMALL_ROW = 64  # iterations per unit of the symbolic dims: a [N, 10] loss's kernels
# rows of these constant lengths O3 vectorises, then unrolls fully with the loops around them,
# and optimises for seconds (measured on a layer norm's mean over [N, 32, rows]: 31 terms 0.02 s,
# 33 terms 0.44 s, 64 1.2 s, 96 2.2 s, 112 0.01 s); at O2 0.01 s, and the code is no slower
UNROLLED_ROWS = range(32, 112)
SHORT_ROW = 16  # constant terms after a batch sum's symbolic axis: `_short_rows`
ARITHMETIC_ROW = 32  # elements: `_arithmetic_rows`
UNROLLED_WINDOW = 16  # terms: an argmax over at most these many is emitted unrolled


def kernel_level(kernel: Kernel) -> int:
    """O1 for a kernel whose whole work is plain loops of known, small size; O3 for the rest,
    but O2 for plain loops whose constant work per unit of the symbolic dims is small (a
    [N, classes] kernel: O3 would unroll its rows into pages of code) or that reduce rows of a
    length in UNROLLED_ROWS, and for sums over the batch of short rows (`_short_rows`). Longer
    rows (a convolution's C*K*K) and pooling windows keep O3: at O2 they ran up to 5x slower."""
    work = _static_work(kernel.body)
    if work is not None and work <= SMALL_WORK:
        return O1
    if _only_tiles(kernel.body):
        return TIDY
    if _short_rows(kernel.body) or _arithmetic_rows(kernel.body, ()):
        return O2
    row = _static_work(kernel.body, symbols=1)
    if row is None:
        return O3
    return O2 if row <= SMALL_ROW or _longest_reduction(kernel.body) in UNROLLED_ROWS else O3


def _only_tiles(stmts: tuple[Stmt, ...]) -> bool:
    """Whether every statement here is a register tile, in loops, or a GEMM call whose
    small-size fallback is too and whose epilogue is, or runs apart (`_epilogue_apart`): code
    written as it runs."""
    return all(_only_tiles(s.body) if isinstance(s, Loop)
               else _only_tiles(s.otherwise) and (_only_tiles(s.epilogue) or all(
                   _epilogue_apart(e) for e in s.epilogue)) if isinstance(s, Gemm)
               else isinstance(s, Tile) for s in stmts)


def _epilogue_apart(s: Stmt) -> bool:
    """Whether a GEMM's epilogue statement is a parallel loop big enough for the pool, which is
    emitted as a function of its own in a part at its own level (`_kernel_function`): the
    GEMM's kernel can then compile at TIDY, its epilogue still vectorised (a transformer's
    training step: 11 GEMM kernels with a bias epilogue, 70 KB of tile code each at O3)."""
    return isinstance(s, Loop) and s.parallel and not _small(s)


def _short_rows(stmts: tuple[Stmt, ...]) -> bool:
    """Whether every store here is a sum over a symbolic axis (the batch) whose constant axes
    after it are at most SHORT_ROW terms: a batch norm's gradient over [N, C, 4, 4]. O3 unrolls
    those rows into the loops around and optimises them for 0.2-0.9 s a kernel (ResNet-18's
    training step has 25 such); at O2 they compile in 0.03 s and run as fast."""
    for s in stmts:
        if isinstance(s, Loop):
            if not _short_rows(s.body):
                return False
        elif isinstance(s, Store):
            axes = [_constant(axis) for e in walk(s.value) if isinstance(e, Reduce)
                    for _, axis in e.axes]
            if None not in axes:
                return False
            trailing = list(itertools.takewhile(lambda a: a is not None, reversed(axes)))
            if prod(trailing) > SHORT_ROW:  # type: ignore[arg-type]
                return False
        else:
            return False
    return True


def _arithmetic_rows(stmts: tuple[Stmt, ...], loops: tuple[Loop, ...]) -> bool:
    """Whether every store here is arithmetic on unguarded loads (no sums; the loop variables
    only in addresses) in an innermost loop of at most ARITHMETIC_ROW iterations: a softmax's
    division by its row sums over [N, heads, 32, 32]. O3 unrolls such a row fully before its
    loop vectoriser runs and the SLP vectoriser then leaves the copies scalar (32 `vdivss`); O2
    keeps the loop and vectorises it (one core, b64: 0.23 -> under 0.09 ms). Index-dependent
    values (padding, masks, im2col) stay at O3, whose full unroll folds their bounds tests."""
    if not stmts:
        return False
    for s in stmts:
        if isinstance(s, Loop):
            if not _arithmetic_rows(s.body, (*loops, s)):
                return False
        elif not (isinstance(s, Store) and not s.accumulate and loops
                  and (_constant(loops[-1].extent) or ARITHMETIC_ROW + 1) <= ARITHMETIC_ROW
                  and _addresses_only(s.value, {lp.var for lp in loops})):
            return False
    return True


def _addresses_only(e: Expr, names: set[str]) -> bool:
    """Whether `e` reads memory without guards, uses the variables `names` only in addresses
    and has no inner loop or random draw."""
    if isinstance(e, Load):
        return e.guard is None
    if isinstance(e, Var):
        return e.name not in names
    if isinstance(e, Const):
        return True
    return isinstance(e, Op) and all(_addresses_only(x, names) for x in e.args)


def _longest_reduction(stmts: tuple[Stmt, ...]) -> int:
    """The most terms one reduction in these plain loops adds up (their extents are constant)."""
    longest = 0
    for s in stmts:
        if isinstance(s, Loop):
            longest = max(longest, _longest_reduction(s.body))
        elif isinstance(s, Store):
            for e in walk(s.value):
                if isinstance(e, Reduce):
                    longest = max(longest, prod(_constant(axis, 1) or 0 for _, axis in e.axes))
    return longest


def _static_work(stmts: tuple[Stmt, ...], symbols: int | None = None) -> int | None:
    """Iterations of plain loops, stores, fills and copies with constant extents (symbolic dims
    taken as `symbols` when given); None when anything is symbolic or is not a plain loop (tiles,
    GEMMs, scans, branches)."""
    total = 0
    for s in stmts:
        if isinstance(s, Loop):
            extent, inner = _constant(s.extent, symbols), _static_work(s.body, symbols)
            if extent is None or inner is None:
                return None
            total += extent * inner
        elif isinstance(s, (Fill, Copy)):
            count = _constant(s.count, symbols)
            if count is None:
                return None
            total += count
        elif isinstance(s, Store):
            work = 1
            for e in walk(s.value):
                for _, axis in e.axes if isinstance(e, Reduce) else ():
                    size = _constant(axis, symbols)
                    if size is None:
                        return None
                    work *= size
            total += work
        else:
            return None
    return total


def _kernel_buffers(kernel: Kernel) -> list[str]:
    return list(dict.fromkeys(kernel.reads + kernel.writes))


def _kernel_function(m: ir.Module, p: Program, kernel: Kernel, dims: list[str],
                     functions: dict[str, ir.Function],
                     apart: Callable[[int], ir.Module] | None = None) -> ir.Function:
    """The kernel's function in `m`; with `apart` (the part for a level), the parallel loops of
    a GEMM's epilogue in TIDY code go to the part for their own level (`_epilogue_apart`)."""
    buffers = _kernel_buffers(kernel)
    types = [memory_type(p.buffers[buf].dtype).as_pointer() for buf in buffers]
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), types + [I64.as_pointer(), I64]),
                     f"{p.name}.{kernel.name}")  # external: the entry may sit in another part
    for arg, buf in zip(fn.args, buffers):
        arg.name = buf
        arg.add_attribute("noalias")
    *pointers, dim_ptr, seed = fn.args
    emitter = Emitter(m, fn, {buf: (ptr, p.buffers[buf].dtype)
                              for buf, ptr in zip(buffers, pointers)}, dims, dim_ptr, seed,
                      functions)
    count = itertools.count()
    at_tidy = apart is not None and kernel_level(kernel) == TIDY

    def top(stmts: tuple[Stmt, ...], elsewhere: bool = False) -> None:
        for s in stmts:
            k = next(count)
            if isinstance(s, Loop) and s.parallel and not _small(s) \
                    and len(buffers) + 4 <= threads.MAX_WORDS:
                inner = _collapsible(s)
                home = apart(kernel_level(Kernel.over(kernel.name, (s,)))) if (
                    elsewhere and apart is not None) else m
                chunk = _chunk_function(home, p, kernel, s, inner, f"{fn.name}.part{k}", dims,
                                        functions if home is m else Linker(home, functions))
                if home is not m:
                    chunk.linkage = ""  # external: called from the kernel's part
                    chunk = declared(m, chunk)
                spread = s if inner is None else Loop(
                    s.var, Op(DType.i64, MUL, (s.extent, inner.extent)), inner.body, True)
                emitter.parallel(spread, chunk, _trampoline(m, chunk), len(dims))
            elif isinstance(s, Gemm):
                emit_gemm(emitter, s, functools.partial(top, elsewhere=at_tidy))
            elif isinstance(s, IfFinite):  # an update written in place: its loops stay parallel
                emitter.if_finite(s.buffer, functools.partial(top, s.body))
            else:
                emitter.stmt(s)
    top(kernel.body)
    emitter.b.ret_void()
    return fn


COLLAPSED_WORK = 256  # iterations per inner iteration: its division and remainder are noise


def _collapsible(loop: Loop) -> Loop | None:
    """The loop inside a parallel loop that the threads share it with: its only statement, when
    that has independent iterations, an extent of its own and work enough in each (a register
    tile's rows, not one element). Over the batch alone, a batch of one ran on one thread; over
    batch x channels, every thread has rows."""
    inner = loop.body[0] if len(loop.body) == 1 else None
    if not (isinstance(inner, Loop) and independent(inner)):
        return None
    work = _constant(_work(inner.body), symbols=1)
    own_extent = not any(isinstance(e, Var) and e.name == loop.var for e in walk(inner.extent))
    return inner if own_extent and work is not None and work >= COLLAPSED_WORK else None


def _chunk_function(m: ir.Module, p: Program, kernel: Kernel, loop: Loop, inner: Loop | None,
                    name: str, dims: list[str], functions: dict[str, ir.Function]
                    ) -> ir.Function:
    """The iterations [start, end) of a kernel's parallel loop, as a function of their own; with
    `inner`, of the two loops as one (iteration k is loop's k / extent, inner's k % extent)."""
    buffers = _kernel_buffers(kernel)
    types = [memory_type(p.buffers[buf].dtype).as_pointer() for buf in buffers]
    fn = ir.Function(m, ir.FunctionType(ir.VoidType(), types + [I64.as_pointer(), I64, I64, I64]),
                     name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # called from two places: optimise and emit its loop once
    for arg, buf in zip(fn.args, buffers):
        arg.name = buf
        arg.add_attribute("noalias")
    *pointers, dim_ptr, seed, start, end = fn.args
    e = Emitter(m, fn, {buf: (ptr, p.buffers[buf].dtype) for buf, ptr in zip(buffers, pointers)},
                dims, dim_ptr, seed, functions)

    def body(i: ir.Value) -> None:
        if inner is None:
            e.vars[loop.var] = i
            stmts = loop.body
        else:
            extent = e.expr(inner.extent)
            e.vars[loop.var], e.vars[inner.var] = e.b.sdiv(i, extent), e.b.srem(i, extent)
            stmts = inner.body
        for s in stmts:
            e.stmt(s)
    e.loop(loop.var, end, body, start=start)
    e.b.ret_void()
    return fn


def _trampoline(m: ir.Module, chunk: ir.Function) -> ir.Function:
    """`void *run(void *args)` for the thread pool: args is an i64 array holding the chunk's
    arguments (pointers as integers)."""
    fn = ir.Function(m, ir.FunctionType(I8P, [I8P]), f"{chunk.name}.thread")
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    words = b.bitcast(fn.args[0], I64.as_pointer())
    args = []
    for k, arg in enumerate(chunk.args):
        word = b.load(b.gep(words, [I64(k)]))
        args.append(b.inttoptr(word, arg.type) if isinstance(arg.type, ir.PointerType) else word)
    b.call(chunk, args)
    b.ret(ir.Constant(I8P, None))
    return fn


class Emitter:
    """Emits statements and expressions into one function; common subexpressions are computed
    once per scope (a loop body is a scope). Its scalar ops come from `scalar` (a subclass
    changes how math functions are reached: libdevice on the GPU, codegen/nvptx.py); with
    `dim_values` the symbolic dims are those values (a GPU kernel's arguments), else they are
    loaded from `dim_ptr`."""

    scalar: type[Scalar] = Scalar

    def __init__(self, m: ir.Module, fn: ir.Function, buffers: dict[str, tuple[ir.Value, DType]],
                 dims: list[str], dim_ptr: ir.Value | None, seed: ir.Value,
                 functions: dict[str, ir.Function],
                 dim_values: dict[str, ir.Value] | None = None):
        self.m, self.fn = m, fn
        entry = fn.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(entry)
        self.s = self.scalar(m, self.b)
        self.buffers = buffers
        self.seed = seed
        self.dim_ptr = dim_ptr
        self.functions = functions
        self.vars: dict[str, ir.Value] = {}
        self.dims = dim_values if dim_values is not None else {
            name: self.b.load(self.b.gep(dim_ptr, [I64(i)]), name=name)
            for i, name in enumerate(dims)}
        self.scopes: list[dict[Expr, ir.Value]] = [{}]

    # -- structure --------------------------------------------------------------------------------
    def loop(self, name: str, extent: ir.Value, body: Callable[[ir.Value], None],
             start: ir.Value | None = None, step: ir.Value | None = None,
             vectorize: bool = False) -> None:
        """for name in [start, extent) by step: body(name); with `vectorize`, LLVM is told to
        vectorise it whatever its cost model says (`_pooled_windows`)."""
        b = self.b
        before = b.block
        head = self.fn.append_basic_block(f"{name}.head")
        inner = self.fn.append_basic_block(f"{name}.body")
        done = self.fn.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(I64(0) if start is None else start, before)
        b.cbranch(b.icmp_signed("<", i, extent), inner, done)
        b.position_at_end(inner)
        self.scopes.append({})
        body(i)
        self.scopes.pop()
        i.add_incoming(b.add(i, I64(1) if step is None else step, name=f"{name}.next"),
                       b.block)
        latch = b.branch(head)
        if vectorize:
            latch.set_metadata("llvm.loop", _LoopID(self.m, "llvm.loop.vectorize.enable"))
        b.position_at_end(done)

    def parallel(self, loop: Loop, chunk: ir.Function, trampoline: ir.Function,
                 threads_slot: int) -> None:
        """Run `loop` on up to dims[threads_slot] threads when it has enough work (its
        iterations times the work in each); otherwise, or for small work, on this thread."""
        b = self.b
        *pointers, dim_ptr, seed = self.fn.args
        args = list(pointers) + [dim_ptr, seed]
        extent = self.expr(loop.extent)
        work = b.mul(extent, self.expr(_work(loop.body)))
        available = b.load(b.gep(dim_ptr, [I64(threads_slot)]), name="threads")
        count = b.select(b.icmp_signed("<", available, extent), available, extent)
        count = b.select(b.icmp_signed("<", count, I64(MAX_THREADS)), count, I64(MAX_THREADS))
        spread = b.and_(b.icmp_signed(">", count, I64(1)),
                        b.icmp_signed(">=", work, I64(PARALLEL_WORK)))
        with b.if_else(spread) as (then, otherwise):
            with then:
                words = self.alloca_builder.alloca(ir.ArrayType(I64, len(args) + 2), name="args")
                for k, a in enumerate(args):
                    value = b.ptrtoint(a, I64) if isinstance(a.type, ir.PointerType) else a
                    b.store(value, b.gep(words, [I64(0), I64(k)]))
                b.call(threads.declare(self.m), [trampoline, b.bitcast(words, I64.as_pointer()),
                                                  I64(len(args) + 2), extent, count])
            with otherwise:
                b.call(chunk, args + [I64(0), extent])

    def local(self, t: ir.Type, name: str, init: ir.Value) -> ir.Value:
        slot = self.alloca_builder.alloca(t, name=name)
        self.b.store(init, slot)
        return slot

    def pointer(self, buffer: str, index: ir.Value) -> tuple[ir.Value, DType]:
        ptr, dtype = self.buffers[buffer]
        return self.b.gep(ptr, [index], inbounds=True), dtype

    def load(self, buffer: str, index: ir.Value) -> ir.Value:
        ptr, dtype = self.pointer(buffer, index)
        value = self.b.load(ptr)
        return self.b.icmp_unsigned("!=", value, I8(0)) if dtype == DType.bool else value

    def store(self, buffer: str, index: ir.Value, value: ir.Value) -> None:
        ptr, dtype = self.pointer(buffer, index)
        self.b.store(self.b.zext(value, I8) if dtype == DType.bool else value, ptr)

    # -- statements -------------------------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Loop):
            def body(i: ir.Value) -> None:
                self.vars[s.var] = i
                for inner in s.body:
                    self.stmt(inner)
            self.loop(s.var, self.expr(s.extent), body, vectorize=_pooled_windows(s))
        elif isinstance(s, Store):
            index, value = self.expr(s.index), self.expr(s.value)
            if s.accumulate:
                dtype = self.buffers[s.buffer][1]
                value = self.s.op(ADD, dtype, [self.load(s.buffer, index), value],
                                  [dtype, dtype])
            self.store(s.buffer, index, value)
        elif isinstance(s, Fill):
            dtype = self.buffers[s.buffer][1]
            self.loop("fill", self.expr(s.count),
                      lambda i: self.store(s.buffer, i, self.s.const(dtype, s.value)))
        elif isinstance(s, Copy):
            self.loop("copy", self.expr(s.count),
                      lambda i: self.store(s.dst, i, self.load(s.src, i)))
        elif isinstance(s, IfFinite):
            def body() -> None:
                for inner in s.body:
                    self.stmt(inner)
            self.if_finite(s.buffer, body)
        elif isinstance(s, CallScan):
            self.call_scan(s)
        elif isinstance(s, Tile):
            emit_tile(self, s)
        else:
            raise TypeError(s)

    def if_finite(self, buffer: str, then: Callable[[], object]) -> None:
        """`then()`'s code, run only when the scalar in `buffer` is finite."""
        x = self.load(buffer, I64(0))
        finite = self.b.fcmp_ordered("<", self.b.call(self.s.intrinsic("llvm.fabs", x.type), [x]),
                                     ir.Constant(x.type, float("inf")))
        with self.b.if_then(finite):
            then()

    def call_scan(self, s: CallScan) -> None:
        """The body called once per step with a table of its buffers' pointers at that step. A
        carry's two buffers trade roles after each step (the one just written is read next), so
        no step copies its state; the final state is copied once, when it ends in the other."""
        b = self.b
        table = self.alloca_builder.alloca(ir.ArrayType(I8P, len(s.slots)), name="body.table")
        steps = self.expr(s.steps)
        slot_of = {slot.buffer: k for k, slot in enumerate(s.slots) if slot.elements is None}
        carries = [(self.local(I8P, "carry.now", self._raw(state)),
                    self.local(I8P, "carry.next", self._raw(nxt)))
                   for state, nxt, _ in s.carry_copies]
        swapped = {slot_of[state]: now for (state, _, _), (now, _) in zip(s.carry_copies, carries)}
        swapped |= {slot_of[nxt]: new for (_, nxt, _), (_, new) in zip(s.carry_copies, carries)}

        def step(t: ir.Value) -> None:
            at = b.sub(b.sub(steps, I64(1)), t) if s.reverse else t
            for k, slot in enumerate(s.slots):
                if k in swapped:
                    ptr = b.load(swapped[k])
                else:
                    ptr, _ = self.buffers[slot.buffer]
                    if slot.elements is not None:
                        ptr = b.gep(ptr, [b.mul(at, self.expr(slot.elements))], inbounds=True)
                    ptr = b.bitcast(ptr, I8P)
                b.store(ptr, b.gep(table, [I64(0), I64(k)]))
            seed = b.add(b.mul(self.seed, I64(6364136223846793005)), b.add(at, I64(1)))
            dims = self.fn.args[-2]
            b.call(self.functions[s.function], [b.bitcast(table, TABLE), dims, seed])
            for now, new in carries:
                written = b.load(new)
                b.store(b.load(now), new)
                b.store(written, now)
        self.loop("step", steps, step)
        for (state, nxt, count), (now, _) in zip(s.carry_copies, carries):
            with b.if_then(b.icmp_unsigned("!=", b.load(now), self._raw(state))):
                self.loop("carry", self.expr(count),
                          lambda i, st=state, nx=nxt: self.store(st, i, self.load(nx, i)))

    def _raw(self, buffer: str) -> ir.Value:
        return self.b.bitcast(self.buffers[buffer][0], I8P)

    # -- expressions ------------------------------------------------------------------------------
    def expr(self, e: Expr) -> ir.Value:
        for scope in reversed(self.scopes):
            if e in scope:
                return scope[e]
        value = self._expr(e)
        self.scopes[-1][e] = value
        return value

    def _expr(self, e: Expr) -> ir.Value:
        if isinstance(e, Const):
            return self.s.const(e.dtype, e.value)
        if isinstance(e, Var):
            return self.vars[e.name] if e.name in self.vars else self.dims[e.name]
        if isinstance(e, Load):
            index = self.expr(e.index)
            if e.guard is None:
                return self.load(e.buffer, index)
            guard = self.expr(e.guard)
            safe = self.b.select(guard, index, I64(0))
            return self.b.select(guard, self.load(e.buffer, safe), self.s.const(e.dtype, e.other))
        if isinstance(e, Op):
            args = [self.expr(a) for a in e.args]
            return self.s.op(e.op, e.dtype, args, [a.dtype for a in e.args])
        if isinstance(e, Reduce):
            return self.reduce(e)
        if isinstance(e, Random):
            return self.random(e)
        raise TypeError(e)

    def reduce(self, e: Reduce) -> ir.Value:
        body_type = e.body.dtype
        t = llvm_type(body_type)
        arg = e.combine in (ARGMAX, ARGMIN)
        if arg and _small_window(e):
            return self._unrolled_arg(e)
        extreme = e.combine in (MAX, MIN) and body_type.is_float
        acc = self.local(t, f"{e.combine.name}.acc", self.s.const(body_type, e.init))
        where = self.local(I64, "arg.at", I64(0)) if arg else None
        flat = self.local(I64, "arg.pos", I64(0)) if arg else None

        def nest(level: int) -> None:
            if level == len(e.axes):
                value = self.expr(e.body)
                if arg:
                    best = self.b.load(acc)
                    take = self.s.greater(value, best, body_type, less=e.combine is ARGMIN)
                    pos = self.b.load(flat)
                    self.b.store(self.b.select(take, value, best), acc)
                    self.b.store(self.b.select(take, pos, self.b.load(where)), where)
                    self.b.store(self.b.add(pos, I64(1)), flat)
                elif e.combine is ADD and body_type.is_float:
                    # reassociation lets LLVM vectorise the sum (partial sums per lane)
                    self.b.store(self.b.fadd(self.b.load(acc), value, flags=("reassoc",)), acc)
                elif extreme:  # a fold LLVM vectorises; the select chain was scalar
                    maximum = "llvm.maximum" if e.combine is MAX else "llvm.minimum"
                    self.b.store(self.b.call(self.s.intrinsic(maximum, t, 2),
                                             [self.b.load(acc), value], fastmath=("nsz",)), acc)
                else:
                    self.b.store(self.s.op(e.combine, body_type, [self.b.load(acc), value],
                                           [body_type, body_type]), acc)
                return
            name, extent = e.axes[level]

            def body(i: ir.Value) -> None:
                self.vars[name] = i
                nest(level + 1)
            self.loop(name, self.expr(extent), body)
        nest(0)
        return self.b.load(where if arg else acc)

    def _unrolled_arg(self, e: Reduce) -> ir.Value:
        """An argmax/argmin over a small constant window (a max pool's gradient) as straight-line
        code, which the loop around it can vectorise (as loops with stack slots it could not)."""
        window = [_constant(extent) or 0 for _, extent in e.axes]
        best = where = None
        for pos, point in enumerate(itertools.product(*map(range, window))):
            self.scopes.append({})
            for (name, _), i in zip(e.axes, point):
                self.vars[name] = I64(i)
            value = self.expr(e.body)
            self.scopes.pop()
            if best is None:
                best, where = value, I64(0)
                continue
            take = self.s.greater(value, best, e.body.dtype, less=e.combine is ARGMIN)
            best = self.b.select(take, value, best)
            where = self.b.select(take, I64(pos), where)
        return where

    def random(self, e: Random) -> ir.Value:
        """splitmix64 of (seed, salt, index) -> 53 bits -> a double in [0, 1)."""
        b = self.b
        z = b.xor(b.add(self.seed, I64(e.salt * 0x9E3779B97F4A7C15 % 2**64)),
                  b.mul(self.expr(e.index), I64(0xD1B54A32D192ED03)))
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            z = b.mul(b.xor(z, b.lshr(z, I64(shift))), I64(mult))
        z = b.xor(z, b.lshr(z, I64(31)))
        bits = b.lshr(z, I64(11))
        return b.fmul(b.uitofp(bits, ir.DoubleType()), ir.Constant(ir.DoubleType(), 2.0 ** -53))


def _pooled_windows(loop: Loop) -> bool:
    """Whether `loop` is innermost and stores argmaxes over small constant windows (a max
    pool's gradient): emitted unrolled (`Emitter._unrolled_arg`), its body reads and writes
    every `stride`-th element, and LLVM's cost model keeps such loops of few iterations scalar
    (MNIST's 24x24 pool gradient: 6.3 ms a batch of 64, one thread; vectorised 0.8)."""
    if any(isinstance(s, Loop) for s in loop.body):
        return False
    return any(isinstance(e, Reduce) and e.combine in (ARGMAX, ARGMIN) and _small_window(e)
               for s in loop.body if isinstance(s, Store) for e in walk(s.value))


def _small_window(e: Reduce) -> bool:
    """Whether the reduction runs over constant axes of at most UNROLLED_WINDOW terms."""
    sizes = [_constant(extent) for _, extent in e.axes]
    return None not in sizes and prod(sizes) <= UNROLLED_WINDOW  # type: ignore[arg-type]


class _LoopID(ir.values.MDValue):
    """A loop's `llvm.loop` node with one option set: distinct and its own first operand, as
    LLVM requires of loop IDs (llvmlite's `add_metadata` makes neither)."""

    def __init__(self, m: ir.Module, option: str):
        flag = m.add_metadata([ir.MetaDataString(m, option), ir.Constant(ir.IntType(1), 1)])
        super().__init__(m, [flag], name=str(len(m.metadata)))

    def descr(self, buf: list[str]) -> None:
        buf += (f"distinct !{{ {self.get_reference()}, {self.operands[0].get_reference()} }}",
                "\n")


MAX_THREADS = 64
PARALLEL_WORK = 1 << 15  # loop iterations (inner loops and reductions included) worth a thread


def _small(loop: Loop) -> bool:
    """Work known at compile time to be below the threshold: no thread code at all."""
    work = _constant(Op(DType.i64, MUL, (loop.extent, _work(loop.body))))
    return work is not None and work < PARALLEL_WORK


def _constant(e: Expr, symbols: int | None = None) -> int | None:
    """The value of an extent (symbolic dims taken as `symbols` when given)."""
    if isinstance(e, Const):
        return int(e.value)
    if isinstance(e, Var) and symbols is not None:
        return symbols
    if isinstance(e, Op) and e.op in (ADD, MUL):
        a, b = (_constant(x, symbols) for x in e.args)
        if a is not None and b is not None:
            return a + b if e.op is ADD else a * b
    return None


def _work(stmts: tuple[Stmt, ...]) -> Expr:
    """Iterations inside one outer iteration: a rough cost for deciding to use threads."""
    total: Expr = Const(DType.i64, 1)
    for s in stmts:
        if isinstance(s, Loop):
            inner = Op(DType.i64, MUL, (s.extent, _work(s.body)))
            total = Op(DType.i64, ADD, (total, inner))
        elif isinstance(s, (Store, Tile)):
            if isinstance(s, Tile):
                cells = s.rows * s.cols * (s.lanes if s.along == "col" else 1)
                total = Op(DType.i64, MUL, (total, Const(DType.i64, cells)))
            extra = 0  # transcendentals' work (scalar.py's table)
            for e in walk(s.value):
                if isinstance(e, Reduce):
                    for _, extent in e.axes:
                        total = Op(DType.i64, MUL, (total, extent))
                if isinstance(e, Op) and e.op in SCALAR_FORMS:
                    extra += SCALAR_FORMS[e.op].work
            if extra:
                total = Op(DType.i64, MUL, (total, Const(DType.i64, 1 + extra)))
    return total


# ---- JIT -----------------------------------------------------------------------------------------
@functools.cache
def _initialize() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    libm = ctypes.util.find_library("m")
    if libm:
        llvm.load_library_permanently(libm)


@functools.cache
def target_machine() -> llvm.TargetMachine:
    """The host's target machine, for optimising and emitting code (kept, never given away)."""
    return new_target_machine()


X86_TUNING = ",+prefer-no-gather,+prefer-no-scatter"
# LLVM's vectoriser reads strided elements with gathers where the host has them, and they cost
# more than the scalar or interleaved loads they replace (microcoded on AMD, slowed by Intel's
# GDS mitigation): a stride-2 convolution's im2col copy ran 3.9-4.2 ms with them, 1.5-1.9 ms
# without; ResNet-18 at batch 16, one core, 209-217 -> 190-201 ms; CifarCNN b64 11.0-11.6 ->
# 10.0-10.6 ms; the other models even


def new_target_machine() -> llvm.TargetMachine:
    """A fresh one: an MCJIT engine takes ownership of the machine it is given."""
    _initialize()
    target = llvm.Target.from_default_triple()
    features = llvm.get_host_cpu_features().flatten()
    if llvm.get_default_triple().startswith(("x86_64", "i686", "i386")):
        features += X86_TUNING
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=features, opt=3,
                                        codemodel="jitdefault")


def optimize(module: ir.Module | str, level: int = O3) -> llvm.ModuleRef:
    """A module (or its text) parsed, verified and run through LLVM's pipeline at `level`."""
    tm = target_machine()
    mod = llvm.parse_assembly(module if isinstance(module, str) else str(module))
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    if level == TIDY:
        tidy(mod, tm)
        return mod
    pb = llvm.create_pass_builder(tm, pipeline_options(level))
    pb.getModulePassManager().run(mod, pb)
    return mod


def emit(text: str, level: int) -> bytes:
    """A module's text optimised at `level`, as the host's object code."""
    return target_machine().emit_object(optimize(text, level))


def pipeline_options(level: int) -> llvm.PipelineTuningOptions:
    """O3: LLVM's defaults (loops unrolled, interleaved, vectorised). O2: vectorised and
    interleaved, not unrolled (a loop of constant trip count inside a loop of unknown one is
    kept a loop, not pages of code). O1: none of these, so a loop stays one loop and the pipeline
    and code generation have little code to work on."""
    options = llvm.create_pipeline_tuning_options(speed_level=level)
    options.loop_unrolling = level >= O3
    options.loop_vectorization = options.loop_interleaving = level >= O2
    return options


EntryFunction = Callable[[ctypes.c_void_p, ctypes.c_void_p, int], None]


class Jitted:
    """Object code loaded into an MCJIT engine; its entry as a ctypes function (the object keeps
    the engine alive)."""

    def __init__(self, object_code: bytes):
        threads.start(threads.cores() - 1, new_target_machine)
        if gemm.SGEMM.encode() in object_code:  # named in its symbol table: code that calls it
            gemm.start(host_target(), new_target_machine)
        if half.TRUNCATE.encode() in object_code:
            half.start(new_target_machine)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), new_target_machine())
        for code in unpack(object_code):  # one object per part (codegen/parts.py)
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(code))
        self.engine.finalize_object()
        address = self.engine.get_function_address(ENTRY)
        proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
        self.entry: EntryFunction = proto(address)

    def profile_counters(self, kernels: int) -> ctypes.Array | None:
        """The `dlg_profile` array of a module built with profiling, else None."""
        address = self.engine.get_global_value_address(PROFILE)
        return (ctypes.c_int64 * kernels).from_address(address) if address else None


def host_target() -> Target:
    """The host's vector registers, for scheduling: AVX-512, AVX or 128-bit (SSE, NEON), and
    its L2 cache."""
    _initialize()
    features = llvm.get_host_cpu_features()
    l2 = gemm.cache_sizes()[1]
    if features.get("avx512f"):
        return Target(vector_bytes=64, registers=32, l2_bytes=l2)
    return Target(vector_bytes=32 if features.get("avx") else 16, registers=16, l2_bytes=l2)


__all__ = ["ENTRY", "I1", "Jitted", "build_module", "host", "optimize", "target_machine"]
