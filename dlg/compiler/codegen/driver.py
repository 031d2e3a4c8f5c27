"""The native training loop: many calls of a compiled entry per call from Python, as a small LLVM
module JIT-compiled once per process (like the thread pool, codegen/threads.py).

`dlg_loop(args)` (one array of words, named in ARGUMENTS, so a call from Python converts one
argument) runs steps [first, first + count) of a graph over batches of a data set. Step s reads
batch (s mod batches): rows order[b*rows : (b+1)*rows], or those rows in place when there is no
order. For each data array (its address, bytes per row, table slot) the rows are either gathered
into the buffer the table already points at, or, without an order, the slot is pointed at the
rows themselves (no copy). Then the entry runs with seed + s - first + 1 (the seeds one call
per step would pass), and each accumulated output (table slot, dtype code) adds value * rows to
its double total, in step order, so the totals are those a Python loop would sum. With `stop`,
a first output (the loss) that is not finite ends the loop before it is added: the compiled step
skips its updates then, so the parameters are those of the previous step. Returns the number of
steps completed.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen import cache
from dlg.compiler.codegen.llvm_cpu import ENTRY_TYPE, emit, new_target_machine
from dlg.compiler.codegen.parts import O3

I8, I64 = ir.IntType(8), ir.IntType(64)
I32, F32, F64 = ir.IntType(32), ir.FloatType(), ir.DoubleType()
I8P, I64P = I8.as_pointer(), I64.as_pointer()
LOOP = "dlg_loop"
# dlg_loop(i64* args) -> steps done; the words of args, each an integer or an address:
ARGUMENTS = {"entry": ENTRY_TYPE.as_pointer(), "table": I8P.as_pointer(), "dims": I64P,
             "seed": I64, "first": I64, "count": I64, "rows": I64, "batches": I64,
             "order": I64P, "arrays": I64P, "narrays": I64, "outputs": I64P, "noutputs": I64,
             "totals": F64.as_pointer(), "stop": I64}
SLOT = {name: k for k, name in enumerate(ARGUMENTS)}
ARRAY_WORDS = 3  # address, bytes per row, table slot
OUTPUT_WORDS = 2  # table slot, dtype code
DTYPE_CODES = {"float32": 0, "float64": 1, "int64": 2, "int32": 3, "bool": 4, "uint8": 4}

LoopFunction = Callable[[int], int]


@functools.cache
def loop_function() -> tuple[LoopFunction, object]:
    """`dlg_loop` as a ctypes function, and the engine that holds it: compiled on first use
    (its object code is kept in the disk cache, as a graph's is)."""
    engine = cache.library("training loop", _module, "O3", lambda text: emit(text, O3),
                           new_target_machine)
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)
    return proto(engine.get_function_address(LOOP)), engine


def _module() -> ir.Module:
    m = ir.Module("dlg_loop")
    m.triple = llvm.get_process_triple()
    memcpy = ir.Function(m, ir.FunctionType(I8P, [I8P, I8P, I64]), "memcpy")
    fabs = m.declare_intrinsic("llvm.fabs", [F64])
    fn = ir.Function(m, ir.FunctionType(I64, [I64P]), LOOP)
    fn.args[0].name = "args"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    a = {}
    for k, (name, t) in enumerate(ARGUMENTS.items()):
        word = b.load(b.gep(fn.args[0], [I64(k)]), name=name)
        a[name] = b.inttoptr(word, t) if isinstance(t, ir.PointerType) else word
    stopped = fn.append_basic_block("stopped")

    def step(k: ir.Value) -> None:
        s = b.add(a["first"], k, name="s")
        start = b.mul(b.srem(s, a["batches"]), a["rows"], name="start")
        with b.if_else(b.icmp_unsigned("==", a["order"], ir.Constant(I64P, None))) as (
                in_place, gather):
            with in_place:
                for_range(b, a["narrays"], lambda j: _point_at_rows(b, a, j, start))
            with gather:
                for_range(b, a["narrays"], lambda j: _gather_rows(b, a, j, start, memcpy))
        b.call(a["entry"], [a["table"], a["dims"], b.add(a["seed"], b.add(k, I64(1)))])

        def accumulate(j: ir.Value) -> None:
            value = _output_value(b, a, j, value_slot)
            first = b.icmp_signed("==", j, I64(0))
            finite = b.fcmp_ordered("<", b.call(fabs, [value]), F64(float("inf")))
            bad = b.and_(b.and_(first, b.icmp_signed("!=", a["stop"], I64(0))), b.not_(finite))
            with b.if_then(bad, likely=False):
                b.store(k, done)
                b.branch(stopped)
                b.position_at_start(b.append_basic_block("unreachable"))
            total = b.gep(a["totals"], [j])
            rows = b.sitofp(a["rows"], F64)
            b.store(b.fadd(b.load(total), b.fmul(value, rows)), total)
        for_range(b, a["noutputs"], accumulate)

    done = b.alloca(I64, name="done")
    value_slot = b.alloca(F64, name="value")
    b.store(a["count"], done)
    for_range(b, a["count"], step)
    b.branch(stopped)
    b.position_at_end(stopped)
    b.ret(b.load(done))
    return m


def _word(b: ir.IRBuilder, words: ir.Value, j: ir.Value, per: int, k: int) -> ir.Value:
    return b.load(b.gep(words, [b.add(b.mul(j, I64(per)), I64(k))]))


def _point_at_rows(b: ir.IRBuilder, a: dict[str, ir.Value], j: ir.Value, start: ir.Value
                   ) -> None:
    address, row_bytes, slot = (_word(b, a["arrays"], j, ARRAY_WORDS, k) for k in range(3))
    rows = b.inttoptr(b.add(address, b.mul(start, row_bytes)), I8P)
    b.store(rows, b.gep(a["table"], [slot]))


def _gather_rows(b: ir.IRBuilder, a: dict[str, ir.Value], j: ir.Value, start: ir.Value,
                 memcpy: ir.Function) -> None:
    address, row_bytes, slot = (_word(b, a["arrays"], j, ARRAY_WORDS, k) for k in range(3))
    source = b.inttoptr(address, I8P)
    target = b.load(b.gep(a["table"], [slot]))

    def row(r: ir.Value) -> None:
        index = b.load(b.gep(a["order"], [b.add(start, r)]))
        b.call(memcpy, [b.gep(target, [b.mul(r, row_bytes)]),
                        b.gep(source, [b.mul(index, row_bytes)]), row_bytes])
    for_range(b, a["rows"], row)


def _output_value(b: ir.IRBuilder, a: dict[str, ir.Value], j: ir.Value, result: ir.Value
                  ) -> ir.Value:
    """Output j's first element as a double, read by its dtype code (through `result`)."""
    slot, code = (_word(b, a["outputs"], j, OUTPUT_WORDS, k) for k in range(2))
    raw = b.load(b.gep(a["table"], [slot]))
    cases = ((0, F32, lambda v: b.fpext(v, F64)), (1, F64, lambda v: v),
             (2, I64, lambda v: b.sitofp(v, F64)), (3, I32, lambda v: b.sitofp(v, F64)),
             (4, I8, lambda v: b.uitofp(v, F64)))
    for number, t, convert in cases:
        with b.if_then(b.icmp_signed("==", code, I64(number))):
            b.store(convert(b.load(b.bitcast(raw, t.as_pointer()))), result)
    return b.load(result)


def for_range(b: ir.IRBuilder, count: ir.Value, body: Callable[[ir.Value], None]) -> None:
    """for (i = 0; i < count; i++) body(i)."""
    fn = b.function
    before = b.block
    head, inner, done = (fn.append_basic_block(s) for s in ("for.head", "for.body", "for.done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name="i")
    i.add_incoming(I64(0), before)
    b.cbranch(b.icmp_signed("<", i, count), inner, done)
    b.position_at_end(inner)
    body(i)
    i.add_incoming(b.add(i, I64(1)), b.block)
    b.branch(head)
    b.position_at_end(done)
