"""Where a CUDA launch body runs (`Grid`: the GPU, codegen/nvptx.py, or its emulation,
codegen/emulate.py) and the helpers the bodies share (codegen/nvptx_kernels.py, nvptx_tiles.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import Emitter
from dlg.compiler.kernel_ir import Expr
from dlg.ir.dtypes import DType


class Grid(Protocol):
    """Where a launch body runs: the indices of its block and threads, barriers, shared
    memory."""

    def block(self) -> ir.Value:
        """This block's index (i64)."""

    def blocks(self) -> ir.Value:
        """The grid's size in blocks (i64)."""

    def each_thread(self, e: Emitter, body: Callable[[ir.Value], None]) -> None:
        """Run `body(thread index)` for every thread of the block."""

    def barrier(self, e: Emitter) -> None:
        """Every thread of the block waits here for the others (`__syncthreads`)."""

    def shared(self, e: Emitter, name: str, dtype: DType, count: int) -> ir.Value:
        """A pointer to `count` elements of block-shared memory."""

    def private(self, e: Emitter, name: str, dtype: DType, count: int
                ) -> Callable[[ir.Value], ir.Value]:
        """Thread-private memory that keeps its values across barriers (a register tile): for
        a thread's index, a pointer to its `count` elements."""


def when(e: Emitter, condition: ir.Value, body: Callable[[], None]) -> None:
    """`body` under a condition, in a scope of its own (values it computes stay inside)."""
    with e.b.if_then(condition):
        e.scopes.append({})
        body()
        e.scopes.pop()


def at(e: Emitter, flat: ir.Value, axes: tuple[tuple[str, Expr], ...]) -> None:
    """The loop variables of a flat row-major position in `axes`."""
    b = e.b
    for k in reversed(range(len(axes))):
        name, extent = axes[k]
        if k == 0:
            e.vars[name] = flat
            break
        size = e.expr(extent)
        e.vars[name] = b.srem(flat, size, name=name)
        flat = b.sdiv(flat, size)
