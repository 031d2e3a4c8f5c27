"""Anomaly checks in compiled code (`CompileOptions(anomaly=True)`, dlg/ir/anomaly.py).

After each top-level kernel the entry calls that kernel's check: true when every float buffer the
kernel read is finite and one it wrote is not. Then the entry stores the kernel's index + 1 in
`dlg_anomaly` and returns at once, and the runtime names the kernel's ops. A read buffer is not
written by its kernel (`Kernel.reads` excludes writes, and the arena keeps buffers live through
their last kernel), so checking it after the call sees what the kernel read. Built only with the
option: a normal module has no check code, and the option changes the module's text, so the disk
cache keys differ.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from dlg.compiler.codegen.parts import declared
from dlg.compiler.codegen.scalar import I1, I64, llvm_type
from dlg.compiler.kernel_ir import Kernel
from dlg.compiler.lower import Buffer, Program
from dlg.ir.dtypes import DType
from dlg.ir.shapes import Dim, Sym

ANOMALY = "dlg_anomaly"  # index + 1 of the kernel whose finite inputs gave a NaN or Inf, else 0
CHECKED = (DType.f32, DType.f64)


def flag(main: ir.Module) -> ir.GlobalVariable:
    """The module's `dlg_anomaly` cell."""
    cell = ir.GlobalVariable(main, I64, ANOMALY)
    cell.initializer = I64(0)
    return cell


def check_after(b: ir.IRBuilder, m: ir.Module, main: ir.Module, p: Program, k: int,
                kernel: Kernel, args: Sequence[ir.Value], dims: list[str],
                dim_ptr: ir.Value) -> None:
    """After kernel `k`'s call: if its check fails, record `k` and return from the entry."""
    buffers = list(dict.fromkeys(kernel.reads + kernel.writes))
    read = [(a, p.buffers[buf]) for a, buf in zip(args, buffers) if buf in kernel.reads]
    written = [(a, p.buffers[buf]) for a, buf in zip(args, buffers) if buf not in kernel.reads]
    read = [(a, buf) for a, buf in read if buf.dtype in CHECKED]
    written = [(a, buf) for a, buf in written if buf.dtype in CHECKED]
    if not written:
        return
    check = ir.Function(m, ir.FunctionType(I1, [a.type for a, _ in read + written]
                                           + [I64.as_pointer()]), f"{p.name}.{kernel.name}.check")
    _define_check(check, m, [buf for _, buf in read], [buf for _, buf in written], dims)
    failed = b.call(declared(main, check), [a for a, _ in read + written] + [dim_ptr])
    stop = b.function.append_basic_block(f"k{k}.anomaly")
    go_on = b.function.append_basic_block(f"k{k}.finite")
    b.cbranch(failed, stop, go_on)
    b.position_at_end(stop)
    cell = main.globals[ANOMALY]
    first = b.load(cell)  # a loop's later steps keep the first step's kernel
    b.store(b.select(b.icmp_signed("==", first, I64(0)), I64(k + 1), first), cell)
    b.ret_void()
    b.position_at_end(go_on)


def _define_check(fn: ir.Function, m: ir.Module, read: list[Buffer], written: list[Buffer],
                  dims: list[str]) -> None:
    """`fn(read..., written..., dims) = all reads finite and some write not`."""
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    *pointers, dim_ptr = fn.args
    values = {name: b.load(b.gep(dim_ptr, [I64(i)]), name=name) for i, name in enumerate(dims)}
    flags = [b.call(_scan(m, buf.dtype), [ptr, _count(b, buf.shape, values)])
             for ptr, buf in zip(pointers, read + written)]
    bad_in = _any(b, flags[:len(read)])
    bad_out = _any(b, flags[len(read):])
    b.ret(b.and_(b.not_(bad_in), bad_out))


def _any(b: ir.IRBuilder, flags: list[ir.Value]) -> ir.Value:
    out: ir.Value = I1(0)
    for f in flags:
        out = b.or_(out, f)
    return out


def _count(b: ir.IRBuilder, shape: tuple[Dim, ...], dims: dict[str, ir.Value]) -> ir.Value:
    """A buffer's element count at run time (symbolic dims read from the dims array)."""
    total: ir.Value = I64(1)
    for d in shape:
        if not isinstance(d, Sym):
            total = b.mul(total, I64(int(d)))
            continue
        size: ir.Value = I64(0)
        for monomial, coefficient in d.terms:
            term: ir.Value = I64(coefficient)
            for name in monomial:
                term = b.mul(term, dims[name])
            size = b.add(size, term)
        total = b.mul(total, size)
    return total


def _scan(m: ir.Module, dtype: DType) -> ir.Function:
    """`dlg.nonfinite.<dtype>(ptr, n)`: whether any of n values is a NaN or an Inf (x - x is
    NaN exactly for those), one per module."""
    name = f"dlg.nonfinite.{dtype}"
    if name in m.globals:
        return m.globals[name]
    t = llvm_type(dtype)
    fn = ir.Function(m, ir.FunctionType(I1, [t.as_pointer(), I64]), name)
    fn.linkage = "internal"
    ptr, n = fn.args
    entry = fn.append_basic_block("entry")
    loop = fn.append_basic_block("i.loop")
    done = fn.append_basic_block("i.done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, I64(0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(I64, name="i")
    acc = b.phi(I1, name="bad")
    x = b.load(b.gep(ptr, [i], inbounds=True))
    bad = b.or_(acc, b.fcmp_unordered("uno", b.fsub(x, x), ir.Constant(t, 0.0)))
    nxt = b.add(i, I64(1), name="i.next")
    i.add_incoming(I64(0), entry)
    i.add_incoming(nxt, loop)
    acc.add_incoming(I1(0), entry)
    acc.add_incoming(bad, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    result = b.phi(I1, name="result")
    result.add_incoming(I1(0), entry)
    result.add_incoming(bad, loop)
    b.ret(result)
    return fn
