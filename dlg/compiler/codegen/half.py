"""`__truncdfhf2`, the f64 -> f16 conversion LLVM calls for half-precision arithmetic, as a small
LLVM module JIT-compiled once per process.

x86 has no instruction from f64 to f16. LLVM computes some f16 ops in f64 (an f16 `fma`, which
a half-precision matmul's reduction is, is done as an f64 fma and rounded once) and emits a call
to the compiler-rt/libgcc helper `__truncdfhf2` for the rounding. The JIT does not link that
helper (the call jumped to address 0: a segfault), so dlg defines it, rounding to odd through f32
(`Scalar.f32_rounded_to_odd`) as dlg's own casts do, and publishes it with `llvm.add_symbol`
before code that names it is loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import llvmlite.binding as llvm
from llvmlite import ir

from dlg.compiler.codegen import cache
from dlg.compiler.codegen.scalar import Scalar
from dlg.compiler.codegen.threads import object_code_as_written

TRUNCATE = "__truncdfhf2"


@functools.cache
def start(machine: Callable[[], llvm.TargetMachine]) -> object:
    """Compile `__truncdfhf2` and make it resolvable; once per process (its object code kept in
    the disk cache). Returns the engine, which must stay alive."""
    engine = cache.library("half", _module, "no passes",
                           lambda text: object_code_as_written(text, machine()), machine)
    llvm.add_symbol(TRUNCATE, engine.get_function_address(TRUNCATE))
    return engine


def _module() -> ir.Module:
    m = ir.Module("dlg_half")
    m.triple = llvm.get_process_triple()
    fn = ir.Function(m, ir.FunctionType(ir.HalfType(), [ir.DoubleType()]), TRUNCATE)
    b = ir.IRBuilder(fn.append_basic_block())
    b.ret(b.fptrunc(Scalar(m, b).f32_rounded_to_odd(fn.args[0]), ir.HalfType()))
    return m

