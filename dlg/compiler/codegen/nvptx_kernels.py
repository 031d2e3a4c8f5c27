"""The body of one CUDA launch (codegen/nvptx_launch.py), emitted against a `Grid`: the one
piece that differs between the GPU (codegen/nvptx.py: thread and block indices from the NVVM
special registers, `bar.sync`, shared memory in address space 3) and the CPU grid emulation
(codegen/emulate.py: blocks as a loop, the threads of a block as an inner loop at each step
between barriers, shared memory as a per-block array). Everything else (the grid-stride loops,
index arithmetic, the tree of a block's sum) is this code, run by both.

A launch body is written in steps: block-uniform code (the same for every thread: the output a
block works on, loop bounds) may hold values across steps; code per thread runs inside
`Grid.each_thread` and hands values to other threads only through shared memory, across a
`Grid.barrier`. That is what lets the emulation run a block's threads one after another.
"""

from __future__ import annotations

from functools import partial

from llvmlite import ir

from dlg.compiler.codegen.llvm_cpu import Emitter
from dlg.compiler.codegen.nvptx_grid import Grid, at, when
from dlg.compiler.codegen.nvptx_launch import Launch, cooperative_sums, reduce_size
from dlg.compiler.codegen.nvptx_tiles import emit_tiled
from dlg.compiler.codegen.scalar import I64, llvm_type
from dlg.compiler.kernel_ir import Reduce, Store


def emit_launch(e: Emitter, grid: Grid, launch: Launch) -> None:
    """The launch's body for every thread of this block (skipped whole when a guard is not
    finite: the condition is the same for every thread, so barriers stay matched)."""
    if not launch.guards:
        return _body(e, grid, launch)
    finite = None
    for buf in launch.guards:
        x = e.load(buf, I64(0))
        size = e.b.call(e.s.intrinsic("llvm.fabs", x.type), [x])
        ok = e.b.fcmp_ordered("<", size, ir.Constant(x.type, float("inf")))
        finite = ok if finite is None else e.b.and_(finite, ok)
    when(e, finite, lambda: _body(e, grid, launch))


def _body(e: Emitter, grid: Grid, launch: Launch) -> None:
    if launch.kind == "serial":
        def alone(t: ir.Value) -> None:
            for s in launch.body:
                e.stmt(s)
        grid.each_thread(e, alone)
    elif launch.kind == "elementwise":
        _elementwise(e, grid, launch)
    elif launch.kind == "tiled":
        emit_tiled(e, grid, launch)
    else:
        _reduce(e, grid, launch)


def _elementwise(e: Emitter, grid: Grid, launch: Launch) -> None:
    """A grid-stride loop over the flattened nest: thread t of block k starts at k * threads + t
    and steps by the grid's thread count."""
    threads = I64(launch.threads)

    def thread(t: ir.Value) -> None:
        start = e.b.add(e.b.mul(grid.block(), threads), t, name="first")
        step = e.b.mul(grid.blocks(), threads, name="stride")

        def point(i: ir.Value) -> None:
            at(e, i, launch.loops)
            for s in launch.body:
                e.stmt(s)
        e.loop("i", e.expr(launch.points), point, start=start, step=step)
    grid.each_thread(e, thread)


def _reduce(e: Emitter, grid: Grid, launch: Launch) -> None:
    """One output per block at a time (grid-stride over outputs): each thread folds every
    `threads`-th element of each sum into its slot of shared memory, a tree halves the slots
    log2(threads) times (a barrier after each), and thread 0 stores the value with the sums
    read from slot 0."""
    store = launch.body[0]
    assert isinstance(store, Store)
    sums = cooperative_sums(store.value)
    n = launch.threads
    slots = [grid.shared(e, f"{launch.name}.sum{k}", r.body.dtype, n) for k, r in enumerate(sums)]

    def output(o: ir.Value) -> None:
        at(e, o, launch.loops)
        grid.each_thread(e, lambda t: _partial_sums(e, sums, slots, t, n))
        grid.barrier(e)
        half = n // 2
        while half:
            grid.each_thread(e, partial(_halve, e, sums, slots, half))
            grid.barrier(e)
            half //= 2

        def finish() -> None:
            for r, slot in zip(sums, slots):
                e.scopes[-1][r] = e.b.load(e.b.gep(slot, [I64(0)]), name="sum")
            e.stmt(store)
        grid.each_thread(e, lambda t: when(e, e.b.icmp_signed("==", t, I64(0)), finish))
        grid.barrier(e)  # slot 0 is read before the next output's sums overwrite it
    e.loop("o", e.expr(launch.points), output, start=grid.block(), step=grid.blocks())


def _partial_sums(e: Emitter, sums: list[Reduce], slots: list[ir.Value], t: ir.Value,
                  threads: int) -> None:
    for r, slot in zip(sums, slots):
        e.b.store(_partial_sum(e, r, t, threads), e.b.gep(slot, [t]))


def _partial_sum(e: Emitter, r: Reduce, t: ir.Value, threads: int) -> ir.Value:
    """Thread t's fold of elements t, t + threads, t + 2 * threads, ... of `r`."""
    dtype = r.body.dtype
    acc = e.local(llvm_type(dtype), "partial", e.s.const(dtype, r.init))

    def element(j: ir.Value) -> None:
        at(e, j, r.axes)
        value = e.expr(r.body)
        e.b.store(e.s.op(r.combine, dtype, [e.b.load(acc), value], [dtype, dtype]), acc)
    e.loop("j", e.expr(reduce_size(r)), element, start=t, step=I64(threads))
    return e.b.load(acc)


def _halve(e: Emitter, sums: list[Reduce], slots: list[ir.Value], half: int, t: ir.Value
           ) -> None:
    """Threads below `half` fold the slot `half` above theirs into their own."""
    when(e, e.b.icmp_signed("<", t, I64(half)), partial(_fold, e, sums, slots, half, t))


def _fold(e: Emitter, sums: list[Reduce], slots: list[ir.Value], half: int, t: ir.Value
          ) -> None:
    for r, slot in zip(sums, slots):
        dtype = r.body.dtype
        mine, other = e.b.gep(slot, [t]), e.b.gep(slot, [e.b.add(t, I64(half))])
        e.b.store(e.s.op(r.combine, dtype, [e.b.load(mine), e.b.load(other)], [dtype, dtype]),
                  mine)
