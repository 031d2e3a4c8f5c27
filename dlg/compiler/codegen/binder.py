"""The argument binder: checks a call's arrays against a prepared signature and runs the entry,
as a small LLVM module JIT-compiled once per process.

Reading an array's address from Python costs about a microsecond (`arr.ctypes.data`), more than
a small graph's whole native call, so the runtime hands this function the call's arrays as one
Python tuple and a signature block prepared per dims binding. For each array it compares the
object's type, dtype object, rank, dims, flags (C-contiguous, writeable for outputs) and the data
pointer's alignment with the block, writes the pointer into the buffer table, checks that no
output overlaps another array, then bumps the seed and calls `dlg_entry`. It reads NumPy's
array struct (`PyArrayObject_fields`) and CPython's tuple directly: `probe` checks those layouts
once against NumPy's own answers, and where they differ the runtime keeps its Python path.

`dlg_bind(tuple, block) -> status`: 0 when the entry ran; k + 1 when array k differs from the
signature in any way (nothing ran; the caller's Python path then says exactly how, or accepts
what this fast check does not, such as a list or an equal dtype object that is not NumPy's).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from dlg.compiler.codegen.driver import for_range
from dlg.compiler.codegen.llvm_cpu import new_target_machine

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
I8P, I64P = I8.as_pointer(), I64.as_pointer()
BIND = "dlg_bind"
HEADER = 6  # count, table, dims, seed cell, entry (0: none), the ndarray type
MAX_RANK = 8  # arrays of higher rank always take the Python path
RECORD = 6 + MAX_RANK  # slot, dtype object, rank, bytes, item bytes, is an output; dims
# CPython and NumPy struct offsets (64-bit): ob_type; a tuple's size and items; an array's data,
# nd, dimensions, descr and flags
OB_TYPE, TUPLE_SIZE, TUPLE_ITEMS = 8, 16, 24
DATA, NDIM, DIMENSIONS, DESCR, FLAGS = 16, 24, 32, 56, 64
C_CONTIGUOUS, WRITEABLE = 0x1, 0x400
Signature = tuple[int, np.dtype, tuple[int, ...], bool]  # slot, dtype, shape, is an output


class Block:
    """A call's signature as the binder reads it: one word array, kept alive by its owner."""

    def __init__(self, table: ctypes.Array, dims: ctypes.Array, seed: ctypes.Array,
                 entry: int, arrays: Sequence[Signature]):
        self.words = (ctypes.c_int64 * (HEADER + RECORD * len(arrays)))()
        self.words[:HEADER] = [len(arrays), ctypes.addressof(table), ctypes.addressof(dims),
                               ctypes.addressof(seed), entry, id(np.ndarray)]
        self.dtypes = [dtype for _, dtype, _, _ in arrays]  # the dtype objects compared by id
        for k, (slot, dtype, shape, output) in enumerate(arrays):
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            at = HEADER + RECORD * k
            self.words[at:at + 6 + len(shape)] = [slot, id(dtype), len(shape), nbytes,
                                                  dtype.itemsize, int(output), *shape]
        self.address = ctypes.addressof(self.words)


def fits(shapes: Sequence[tuple[int, ...]]) -> bool:
    """Whether every array has a rank the binder handles."""
    return all(len(s) <= MAX_RANK for s in shapes)


@functools.cache
def binder() -> Callable[[tuple, int], int] | None:
    """`dlg_bind` as a ctypes function (the GIL released while it runs), or None where the
    struct layouts it reads are not this process's."""
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(str(_module())),
                                        new_target_machine())
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.py_object, ctypes.c_void_p)
    bind = proto(engine.get_function_address(BIND))
    bind.engine = engine  # type: ignore[attr-defined]  # the code lives as long as the function
    return bind if probe(bind) else None


def probe(bind: Callable[[tuple, int], int]) -> bool:
    """The binder sees what NumPy reports: pointers of good arrays, refusals of bad ones."""
    table = (ctypes.c_void_p * 3)()
    dims, seed = (ctypes.c_int64 * 1)(), (ctypes.c_int64 * 1)()
    good: tuple[np.ndarray, ...] = (np.ones((3, 5), np.float32), np.ones(2, np.int64),
                                    np.empty((1, 3, 1, 2), np.float64))
    block = Block(table, dims, seed, 0, [(k, a.dtype, a.shape, k == 2) for k, a in
                                         enumerate(good)])
    if bind(good, block.address) != 0 or list(table) != [a.ctypes.data for a in good]:
        return False
    base = np.zeros(8, np.float64)  # an output sharing an input's bytes
    readonly = good[2].copy()
    readonly.flags.writeable = False
    bad = [(np.ones((3, 10), np.float32)[:, ::2], *good[1:]), (good[0].view(np.matrix), *good[1:]),
           (good[0], good[1].astype(np.int32), good[2]), (*good[:2], good[2][..., :1]),
           (good[0], np.zeros(17, np.uint8)[1:].view(np.int64), good[2]), (*good[:2], readonly),
           (good[0], base[:2].view(np.int64), base[:6].reshape(1, 3, 1, 2)), good[:2],
           (*good[:2], np.zeros_like(good[2]))]
    return [bind(b, block.address) for b in bad] == [1, 1, 2, 3, 2, 3, 3, 4, 0]


def _module() -> ir.Module:
    m = ir.Module("dlg_binder")
    m.triple = llvm.get_process_triple()
    entry_type = ir.FunctionType(ir.VoidType(), [I8P, I8P, I64])
    fn = ir.Function(m, ir.FunctionType(I64, [I8P, I64]), BIND)
    tup, address = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    block = b.inttoptr(address, I64P, name="block")

    def word(base: ir.Value, k: int | ir.Value, name: str) -> ir.Value:
        return b.load(b.gep(base, [k if isinstance(k, ir.Value) else I64(k)]), name=name)

    def field(obj: ir.Value, offset: int, t: ir.Type, name: str) -> ir.Value:
        return b.load(b.bitcast(b.gep(obj, [I64(offset)]), t.as_pointer()), name=name)

    def fail(condition: ir.Value, status: ir.Value) -> None:
        with b.if_then(condition, likely=False):
            b.ret(status)

    count, table = word(block, 0, "count"), b.inttoptr(word(block, 1, "table"), I64P)
    fail(b.icmp_signed("!=", field(tup, TUPLE_SIZE, I64, "given"), count), b.add(count, I64(1)))
    items = b.bitcast(b.gep(tup, [I64(TUPLE_ITEMS)]), I8P.as_pointer())

    def record(k: ir.Value) -> ir.Value:
        return b.gep(block, [b.add(I64(HEADER), b.mul(k, I64(RECORD)))], name="record")

    def check(k: ir.Value) -> None:
        rec, obj, status = record(k), b.load(b.gep(items, [k]), name="array"), b.add(k, I64(1))
        fail(b.icmp_unsigned("!=", b.ptrtoint(field(obj, OB_TYPE, I8P, "type"), I64),
                             word(block, 5, "ndarray")), status)
        fail(b.icmp_unsigned("!=", field(obj, DESCR, I64, "descr"), word(rec, 1, "dtype")), status)
        rank = word(rec, 2, "rank")
        fail(b.icmp_signed("!=", b.sext(field(obj, NDIM, I32, "nd"), I64), rank), status)
        shape = b.bitcast(field(obj, DIMENSIONS, I8P, "shape"), I64P)
        for_range(b, rank, lambda j: fail(b.icmp_signed("!=", word(shape, j, "dim"),
                                                   word(b.gep(rec, [I64(6)]), j, "want")), status))
        output = word(rec, 5, "output")
        need = b.select(b.icmp_signed("!=", output, I64(0)), I64(C_CONTIGUOUS | WRITEABLE),
                        I64(C_CONTIGUOUS))
        flags = b.sext(field(obj, FLAGS, I32, "flags"), I64)
        fail(b.icmp_signed("!=", b.and_(flags, need), need), status)
        data = field(obj, DATA, I64, "data")
        fail(b.icmp_signed("!=", b.urem(data, word(rec, 4, "itemsize")), I64(0)), status)
        b.store(data, b.gep(table, [word(rec, 0, "slot")]))
    for_range(b, count, check)

    def no_overlap(k: ir.Value) -> None:
        rec = record(k)
        start, size = word(table, word(rec, 0, "slot"), "start"), word(rec, 3, "bytes")

        def against(j: ir.Value) -> None:
            other = record(j)
            begin, length = word(table, word(other, 0, "slot"), "begin"), word(other, 3, "len")
            overlap = b.and_(b.icmp_unsigned("<", start, b.add(begin, length)),
                             b.icmp_unsigned("<", begin, b.add(start, size)))
            empty = b.or_(b.icmp_signed("==", size, I64(0)), b.icmp_signed("==", length, I64(0)))
            fail(b.and_(b.and_(overlap, b.not_(empty)), b.icmp_signed("!=", j, k)),
                 b.add(k, I64(1)))
        with b.if_then(b.icmp_signed("!=", word(rec, 5, "output"), I64(0))):
            for_range(b, count, against)
    for_range(b, count, no_overlap)

    cell = b.inttoptr(word(block, 3, "seed_cell"), I64P)
    # an atomic add: calls on several threads at once each draw a seed of their own
    seed = b.add(b.atomic_rmw("add", cell, I64(1), "monotonic"), I64(1), name="seed")
    entry = word(block, 4, "entry")
    with b.if_then(b.icmp_signed("!=", entry, I64(0))):
        b.call(b.inttoptr(entry, entry_type.as_pointer()),
               [b.bitcast(table, I8P), b.inttoptr(word(block, 2, "dims"), I8P), seed])
    b.ret(I64(0))
    return m


__all__ = ["BIND", "Block", "binder", "fits", "probe"]
