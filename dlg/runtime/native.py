"""Running compiled graphs: argument checks, the buffer table, arenas shared by batch sizes.

`NativeGraph` compiles a graph once (graph passes -> fuse and lower -> LLVM -> object code, or
the object code from the disk cache) and then runs it with one native call. Before the call
every input is checked (dtype, shape with its symbolic dims bound consistently, C-contiguity,
alignment), so native code never sees a buffer of the wrong size. Intermediate buffers are laid
out by liveness (a buffer's bytes are reused once its last kernel has run) once per binding of
the symbolic dims (a `Layout`, a few kept); the memory is an arena from a pool (`arenas.py`),
one per call in flight and grown to the largest layout it ran, so calls from several threads
run at once and memory stays a few arenas of the largest batch whatever the mix of sizes.
"""

from __future__ import annotations

import ctypes
import itertools
import operator
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlg.compiler.codegen import cache
from dlg.compiler.codegen.binder import Block, Signature, binder, fits
from dlg.compiler.codegen.llvm_cpu import Jitted
from dlg.compiler.codegen.parts import Modules
from dlg.compiler.codegen.threads import cores
from dlg.compiler.lower import Program
from dlg.compiler.pipeline import CompileOptions, compile_graph, object_code
from dlg.errors import DlgValueError
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.ops.opdef import Trait
from dlg.ir.shapes import evaluate_shape
from dlg.ir.types import TensorType
from dlg.runtime.anomaly import kernel_check
from dlg.runtime.arenas import Arena, ArenaPool
from dlg.runtime.interp import check_input, check_input_names

ALIGN = 64
COMPILES = itertools.count()  # graphs this process compiled to machine code (not cache hits)
BUILDS = itertools.count()  # NativeGraphs this process made (compiled or from the cache)


SHAPE = operator.attrgetter("shape")


KEPT = 8  # layouts (dims bindings) kept; calls at a forgotten batch size lay it out again
GRAPHS: weakref.WeakSet[NativeGraph] = weakref.WeakSet()  # live graphs: set_num_threads
_chosen_threads: int | None = None  # set_num_threads's count, over DLG_NUM_THREADS


@dataclass
class Layout:
    """One binding of the symbolic dims: the buffers' shapes, the intermediates' arena offsets
    and size, the dims array native code reads, and the binder's signature (None where the
    binder cannot check these arrays). `recent` is set by every call that uses it, so the
    layouts in use outlive the others (second chance)."""

    key: tuple[int, ...]
    dims: Any
    shapes: dict[str, tuple[int, ...]]
    outputs: list[tuple[tuple[int, ...], np.dtype]]
    offsets: dict[str, int]
    nbytes: int
    signature: list[Signature] | None
    recent: bool = True


@dataclass
class Plan:
    """A layout placed in one arena: the pointer table filled with the arena's addresses and
    the constants', and the binder's block (None: the Python path fills the table)."""

    layout: Layout
    table: Any
    block: Block | None


class NativeGraph:
    """A compiled graph and its call path.

    `run(args, params, out)` is the fast path: arrays in declaration order, the layout found by
    the inputs' shapes, an arena taken from the pool, and one native call (`codegen/binder.py`)
    that checks every array against the plan's prepared signature, fills the pointer table and
    runs the entry with the GIL released. Anything that call refuses goes through
    `_run_checked`, the Python path that binds dims, converts lists and numbers, and raises the
    detailed DlgValueError. Calls from several threads run at once, each in its own arena; no
    lock is held across a native call.
    """

    def __init__(self, graph: Graph, loss: str | None = None,
                 options: CompileOptions | None = None,
                 prebuilt: tuple[bytes, str] | None = None, seed: int | None = None):
        """With `prebuilt` (object code and its cache key, from an artifact) nothing is
        compiled: the graph is lowered again and must give the module the code was built from.
        `seed` fixes the random draws (dropout masks) of the calls, in order."""
        self.options = options or CompileOptions()
        compiled = self.compiled = compile_graph(graph, loss, self.options)
        self.key = compiled.key
        if prebuilt is not None and prebuilt[1] != self.key:
            raise DlgValueError("its code was built from a different module than this dlg "
                                "makes of its graph (another dlg version?); recompile it")
        code = (prebuilt[0] if prebuilt is not None  # dumping the last stages makes them run
                else None if self.options.dumps_object_code else cache.load(self.key))
        self.cache_hit = code is not None
        if code is None:
            code = object_code(compiled.module, self.options)
            cache.store(self.key, code)
            next(COMPILES)
        self.object_code = code
        next(BUILDS)
        start = time.perf_counter()
        self.jit = Jitted(code)
        self.options.seconds["load"] = time.perf_counter() - start
        self.graph = graph
        self.anomaly = kernel_check(self.jit, compiled.graph, compiled.program.kernels)
        self.optimized_graph = compiled.graph
        self.program: Program = compiled.program
        self.index = {buf: i for i, buf in enumerate(self.program.order)}
        buffers = self.program.buffers
        self.input_types = [(name, buf, TensorType(buffers[buf].dtype, buffers[buf].shape))
                            for name, buf in self.program.inputs]  # checked at every call
        self.input_names = [name for name, _ in self.program.inputs]
        self.param_names = [name for name, _ in self.program.params]
        self.output_names = [name for name, _ in self.program.outputs]
        self.dim_names = self.program.dims
        self.constants = {name: np.array(b.value, order="C")
                          for name, b in self.program.buffers.items() if b.kind == "constant"}
        self.layouts: dict[tuple[int, ...], Layout] = {}  # at most KEPT
        self.by_shapes: dict[tuple[tuple[int, ...], ...], Layout] = {}  # the inputs' shapes
        self.arenas = ArenaPool()
        self.seed_cell = (ctypes.c_int64 * 1)(int(np.random.default_rng(seed).integers(2**62)))
        self.lock = threading.Lock()  # layouts, by_shapes and the Python path's seed; never
        # held across a call's native code
        self.checking = threading.Lock()  # with anomaly checks: the module's one dlg_anomaly
        # cell belongs to one call at a time, from the native code to reading it
        GRAPHS.add(self)

    @property
    def module(self) -> Modules:
        """The LLVM module the object code was made from, made again if the disk cache gave
        the code (`--emit llvm`, `--emit asm`)."""
        return self.compiled.module

    @property
    def seconds(self) -> dict[str, float]:
        return dict(self.options.seconds)

    def layout(self, env: Mapping[str, int]) -> Layout:
        """The layout of a dims binding, made (and a layout not used lately forgotten, with its
        by_shapes entries) when new."""
        key = tuple(env.get(d, -1) for d in self.dim_names)
        with self.lock:
            layout = self.layouts.get(key)
            if layout is None:
                if len(self.layouts) >= KEPT:
                    self._forget_one()
                layout = self.layouts[key] = self._make_layout(env, key)
            layout.recent = True
            return layout

    def _forget_one(self) -> None:
        """Forget the oldest layout no call used since the last sweep (second chance)."""
        while True:
            for key, layout in list(self.layouts.items()):
                if not layout.recent:
                    del self.layouts[key]
                    self.by_shapes = {s: v for s, v in self.by_shapes.items() if v is not layout}
                    return
                layout.recent = False

    def _make_layout(self, env: Mapping[str, int], key: tuple[int, ...]) -> Layout:
        p = self.program
        shapes = {name: evaluate_shape(b.shape, env) for name, b in p.buffers.items()}
        sizes = {name: int(np.prod(shapes[name], dtype=np.int64)) * b.dtype.np.itemsize
                 for name, b in p.buffers.items() if b.kind == "temp"}
        offsets, total = _layout(p, sizes)
        dims = (ctypes.c_int64 * (len(self.dim_names) + 1))(*key, threads())
        signature = [(self.index[buf], p.buffers[buf].dtype.np, shapes[buf], kind == "out")
                     for kind, named in (("in", p.inputs), ("param", p.params),
                                         ("out", p.outputs)) for _, buf in named]
        usable = binder() is not None and fits([s for _, _, s, _ in signature])
        if self.anomaly is not None:  # every call through _run_checked, which reads the check
            usable = False
        outputs = [(shapes[buf], p.buffers[buf].dtype.np) for _, buf in p.outputs]
        return Layout(key, dims, shapes, outputs, offsets, total, signature if usable else None)

    def plan(self, layout: Layout, arena: Arena) -> Plan:
        """`layout` placed in `arena` (held by the caller): made once per arena and layout, and
        again after the arena grew."""
        plan = arena.plans.get(layout.key)
        if plan is not None and plan.layout is layout:
            return plan
        if len(arena.plans) >= KEPT:  # tables of forgotten layouts
            arena.plans = {k: v for k, v in arena.plans.items() if k in self.layouts}
        arena.fit(layout.nbytes)
        table = (ctypes.c_void_p * len(self.index))()
        for name, offset in layout.offsets.items():
            table[self.index[name]] = arena.base + offset
        for name, array in self.constants.items():
            table[self.index[name]] = array.ctypes.data
        entry = ctypes.cast(self.jit.entry, ctypes.c_void_p).value  # type: ignore[arg-type]
        block = (None if layout.signature is None else
                 Block(table, layout.dims, self.seed_cell, entry or 0, layout.signature))
        plan = arena.plans[layout.key] = Plan(layout, table, block)
        return plan

    def release(self) -> None:
        """Free every arena and forget every layout; the next call lays out and allocates
        again. Calls in flight finish in their arenas, which are then dropped."""
        with self.lock:
            self.layouts = {}
            self.by_shapes = {}
            self.arenas.drain()

    def __call__(self, inputs: Mapping[str, Any], params: Mapping[str, np.ndarray],
                 out: tuple[np.ndarray, ...] | None = None) -> dict[str, np.ndarray]:
        """Run on inputs and parameters by name; outputs by name."""
        check_input_names(self.input_names, inputs)
        args = tuple(inputs[name] for name in self.input_names)
        values = tuple(params.get(name) for name in self.param_names)
        return dict(zip(self.output_names, self.run(args, values, out)))

    def run(self, args: tuple[Any, ...], params: tuple[Any, ...],
            out: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, ...]:
        """Run on inputs and parameters in declaration order (`input_names`, `param_names`);
        the outputs in order, written into `out` when given."""
        try:
            layout = self.by_shapes[tuple(map(SHAPE, args))]
        except (KeyError, AttributeError):
            layout = None
        arena, idle = self.arenas.take()
        try:
            if layout is not None and layout.signature is not None:
                layout.recent = True
                plan = arena.plans.get(layout.key)
                if plan is None or plan.layout is not layout:
                    plan = self.plan(layout, arena)
                outs = (out if out is not None
                        else tuple([np.empty(s, d) for s, d in layout.outputs]))
                if not binder()(args + params + outs, plan.block.address):  # type: ignore
                    return outs
            return self._run_checked(args, params, out, arena)
        finally:
            idle.append(arena)

    def _run_checked(self, args: tuple[Any, ...], params: tuple[Any, ...],
                     out: tuple[np.ndarray, ...] | None, arena: Arena) -> tuple[np.ndarray, ...]:
        """The Python path: every check spelled out, lists and numbers converted, the table
        filled here; remembers the layout for these input shapes."""
        p = self.program
        if len(args) != len(self.input_names) or len(params) != len(self.param_names):
            raise DlgValueError(f"{self.graph.name}: expected {len(self.input_names)} inputs "
                                f"and {len(self.param_names)} parameters, got {len(args)} and "
                                f"{len(params)}")
        env: dict[str, int] = {}
        arrays = [np.require(check_input(name, t, value, env), requirements="CA")
                  for (name, _, t), value in zip(self.input_types, args)]  # strided: a copy
        layout = self.layout(env)
        if all(isinstance(a, np.ndarray) for a in args):
            with self.lock:
                self.by_shapes[tuple(map(SHAPE, args))] = layout
        for (name, buf), value in zip(p.params, params):
            if value is None:
                raise DlgValueError(f"no value for parameter {name!r}")
            b = p.buffers[buf]
            if value.shape != layout.shapes[buf] or value.dtype != b.dtype.np:
                raise DlgValueError(f"parameter {name!r}: expected "
                                    f"{b.dtype}{list(layout.shapes[buf])}, got "
                                    f"{value.dtype}{list(value.shape)}")
            arrays.append(native_array(name, value))
        if out is None:
            outs = tuple(np.empty(s, d) for s, d in layout.outputs)
        else:
            outs = tuple(check_out(self.output_names, layout.outputs, out, arrays))
        table = self.plan(layout, arena).table
        for (_, buf), array in zip(p.inputs + p.params + p.outputs, arrays + list(outs)):
            table[self.index[buf]] = array.ctypes.data
        with self.lock:
            self.seed_cell[0] += 1
            seed = self.seed_cell[0]
        call = (ctypes.c_void_p(ctypes.addressof(table)),
                ctypes.c_void_p(ctypes.addressof(layout.dims)), seed)
        if self.anomaly is None:
            self.jit.entry(*call)
            return outs
        with self.checking:
            self.jit.entry(*call)
            self.anomaly(dict(zip(self.input_names, arrays)), dict(zip(self.param_names, params)))
        return outs


def check_out(names: Sequence[str], expected: Sequence[tuple[tuple[int, ...], np.dtype]],
              out: Sequence[Any], others: Sequence[np.ndarray]) -> list[np.ndarray]:
    """`out=` arrays: one per output, its exact dtype and shape, C-contiguous, aligned,
    writeable, sharing no memory with the inputs, parameters or another output."""
    if len(out) != len(names):
        raise DlgValueError(f"out: expected {len(names)} arrays ({', '.join(names)}), got "
                            f"{len(out)}")
    checked: list[np.ndarray] = []
    for name, (shape, dtype), array in zip(names, expected, out):
        if not isinstance(array, np.ndarray) or array.dtype != dtype or array.shape != shape:
            got = (f"{_dtype_name(array)}{list(array.shape)}" if isinstance(array, np.ndarray)
                   else type(array).__name__)
            raise DlgValueError(f"out {name!r}: expected {_dtype_name(np.empty(0, dtype))}"
                                f"{list(shape)}, got {got}")
        if not array.flags.writeable:
            raise DlgValueError(f"out {name!r} is read-only")
        native_array(f"out {name}", array)
        if any(np.may_share_memory(array, other) for other in (*others, *checked)):
            raise DlgValueError(f"out {name!r} shares memory with an input, a parameter or "
                                f"another output; give it memory of its own")
        checked.append(array)
    return checked


def _dtype_name(array: np.ndarray) -> str:
    """dlg's name of an array's dtype (f32), NumPy's where dlg has none."""
    try:
        return str(DType.of(array))
    except KeyError:
        return str(array.dtype)


def threads() -> int:
    """Threads for parallel loops: set_num_threads's count, else DLG_NUM_THREADS, else every
    core this process may use."""
    if _chosen_threads is not None:
        return _chosen_threads
    configured = os.environ.get("DLG_NUM_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return cores()


def set_num_threads(count: int) -> None:
    """Threads each compiled call's parallel loops may use from now on (torch.set_num_threads):
    a server whose threads call a model at once gives each call 1 and each caller a core.
    Results do not depend on it; calls in flight finish with the count they started with."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DlgValueError(f"set_num_threads: expected a positive int, got {count!r}")
    global _chosen_threads
    _chosen_threads = count
    for graph in list(GRAPHS):
        with graph.lock:
            for layout in graph.layouts.values():
                layout.dims[len(graph.dim_names)] = count


def get_num_threads() -> int:
    """Threads each compiled call's parallel loops may use (torch.get_num_threads)."""
    return threads()


def native_array(name: str, array: np.ndarray) -> np.ndarray:
    """The array itself when native code may use it: C-contiguous and aligned to its item."""
    if not array.flags.c_contiguous:
        raise DlgValueError(f"{name!r} is not C-contiguous (strides {array.strides} for shape "
                            f"{list(array.shape)}); pass np.ascontiguousarray({name})")
    if array.ctypes.data % array.dtype.itemsize:
        raise DlgValueError(f"{name!r} is not aligned to its {array.dtype.itemsize}-byte items; "
                            f"pass a copy (np.array({name}))")
    return array


def _layout(p: Program, sizes: dict[str, int]) -> tuple[dict[str, int], int]:
    """Arena offsets by liveness: a temp buffer's bytes are free once the last kernel that uses
    it has run; first fit over the free blocks, 64-byte aligned."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for k, kernel in enumerate(p.kernels):
        for buf in kernel.reads + kernel.writes:
            if buf in sizes:
                first.setdefault(buf, k)
                last[buf] = k
    offsets: dict[str, int] = {}
    live: list[tuple[int, int, str]] = []  # (offset, size, name)
    total = 0
    for buf in sorted(first, key=lambda b: (first[b], b)):
        live = [blk for blk in live if last[blk[2]] >= first[buf]]
        size = -(-max(sizes[buf], 1) // ALIGN) * ALIGN
        offset = 0
        for start, length, _ in sorted(live):
            if start - offset >= size:
                break
            offset = max(offset, start + length)
        offsets[buf] = offset
        live.append((offset, size, buf))
        total = max(total, offset + size)
    for buf in sizes:
        offsets.setdefault(buf, 0)
    return offsets, total


def profile_kernels(native: NativeGraph, run: Callable[[], object], repeat: int
                    ) -> list[tuple[str, float]]:
    """Milliseconds per call spent in each kernel of a graph compiled with profiling, slowest
    first: the wall time of `repeat` calls of `run`, shared out by the kernels' cycle counts."""
    counters = native.jit.profile_counters(len(native.program.kernels))
    if counters is None:
        raise DlgValueError("this graph was compiled without profiling "
                            "(CompileOptions(profile=True))")
    run()  # warm: the arena is planned and pages are touched
    ctypes.memset(counters, 0, ctypes.sizeof(counters))
    start = time.perf_counter()
    for _ in range(repeat):
        run()
    ms = (time.perf_counter() - start) * 1000 / repeat
    cycles = max(sum(counters), 1)
    rows = [(k.name, ms * c / cycles) for k, c in zip(native.program.kernels, counters)]
    return sorted(rows, key=lambda row: -row[1])


def compile_report(native: NativeGraph, batch: int) -> str:
    """One screen: ops before and after the graph passes, kernels, buffers, peak arena bytes
    at a batch size, seconds per pass."""
    p = native.program
    layout = native.layout({d: batch for d in native.dim_names})
    temps = [b for b in p.buffers.values() if b.kind == "temp"]
    lines = [f"{native.graph.name}: {_computed(native.graph)} ops -> "
             f"{_computed(native.optimized_graph)} primitive ops after the graph passes -> "
             f"{len(p.kernels)} kernels"
             + (f" (+ {sum(len(b.kernels) for b in p.bodies)} in scan bodies)"
                if p.bodies else ""),
             f"buffers: {len(p.inputs)} inputs, {len(p.params)} params, {len(p.outputs)} "
             f"outputs, {len(temps)} intermediates in an arena of {layout.nbytes:,} bytes "
             f"at batch {batch}",
             "kernels:"]
    lines += [f"  {k.name}" for k in p.kernels[:12]]
    if len(p.kernels) > 12:
        lines.append(f"  ... {len(p.kernels) - 12} more (--emit kernels shows them all)")
    seconds = native.seconds
    lines.append("seconds per pass: " + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items())
                 + f" (total {sum(seconds.values()):.2f}"
                 + (", machine code from the cache)" if native.cache_hit else ")"))
    return "\n".join(lines)


def _computed(g: Graph) -> int:
    """Nodes that compute something (not inputs, parameters, constants)."""
    return sum(Trait.BUFFER not in node.op.traits for node in g)
