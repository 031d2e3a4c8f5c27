"""When eager code runs compiled: a graph that a loop runs step after step (an optimizer's
update, a kept gradient graph) goes through the interpreter, a NumPy temporary per op, until
its interpreted runs have cost about what compiling it would (COMPILE_AFTER_S); then it is
compiled once (`NativeGraph`, ~0.1-1 s of LLVM, then the disk cache) and runs as fused loops.
That is the ski-rental rule: a graph run rarely (one of many sequence lengths, a short test)
never pays for a compile, and one run often pays at most twice what the compile costs before
it runs at compiled speed. Both tiers compute the same graph; the compiled one rounds as
compiled code does.

Eager ops tier alone (`TieredOp`): one op on inputs of one type, the same rule, and the compiled
op is kept only where a trial on the last inputs runs faster than the NumPy runs did (a
matrix product through BLAS stays; a one-channel convolution's NumPy columns do not).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from dlg.compiler.interpreted import interpreted_node
from dlg.compiler.lower import has_lowering
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.runtime.interp import Program
from dlg.runtime.native import NativeGraph

COMPILE_AFTER_S = 0.25  # seconds of interpreted runs of one graph before it is compiled


@dataclass
class Tier:
    """A graph's interpreted seconds so far and, once they pass COMPILE_AFTER_S, its compiled
    form."""

    graph: Graph
    spent: float = 0.0
    native: NativeGraph | None = None
    stays_interpreted: bool = False  # complex values: the compiler does not lower them yet

    def __post_init__(self) -> None:
        self.stays_interpreted = interpreted_node(self.graph) is not None

    def compiled(self) -> NativeGraph | None:
        """The compiled graph, compiling it now if the interpreted runs have cost enough."""
        if self.native is None and self.spent >= COMPILE_AFTER_S and not self.stays_interpreted:
            self.native = NativeGraph(self.graph)
        return self.native

    @contextmanager
    def interpreting(self) -> Iterator[None]:
        """Count the seconds of an interpreted run."""
        start = perf_counter()
        try:
            yield
        finally:
            self.spent += perf_counter() - start


def compilable(graph: Graph, program: Program) -> bool:
    """Whether the compiler takes this graph as eager computes it: float32 (eager's float64 is
    exact to the last digits, half types widen; complex values stay interpreted), every op the
    program runs lowered."""
    floats = [t.dtype for node in graph.inputs for t in node.types if t.dtype.is_inexact]
    return (all(d is DType.f32 for d in floats) and all(map(has_lowering, program.ops))
            and interpreted_node(graph) is None)


Run = Callable[[list[np.ndarray]], tuple[np.ndarray, ...]]
OP_COMPILE_AFTER_S = 0.05  # seconds of NumPy runs of one eager op (one op, types, attributes):
# about what compiling its one-node graph costs (20-85 ms cold, 5-22 ms from the disk cache)
TRIALS = 3  # compiled runs timed against the NumPy runs' average before the compiled op is kept
KEPT_UP_TO = 1.0  # the compiled op is kept when its best trial takes at most this times that


class TieredOp:
    """An eager op's run (`engine.plan`): its NumPy run until those runs have cost
    OP_COMPILE_AFTER_S, then its one-node graph (made by `make_graph` only then: most plans never
    get hot) compiled where it lowers, and kept where it is faster."""

    def __init__(self, make_graph: Callable[[], Graph], numpy_run: Run):
        self.make_graph = make_graph
        self.numpy_run = numpy_run
        self.spent = 0.0
        self.runs = 0
        self.native: NativeGraph | None = None
        self.lock = threading.Lock()

    def __call__(self, arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        native = self.native
        if native is not None:
            return native.run(tuple(arrays), ())
        if self.spent < 0.0:  # decided for NumPy (-inf): nothing more to count
            return self.numpy_run(arrays)
        start = perf_counter()
        out = self.numpy_run(arrays)
        self.spent = spent = self.spent + (perf_counter() - start)
        self.runs += 1
        if spent >= OP_COMPILE_AFTER_S:
            self._try_compiled(arrays)
        return out

    def _try_compiled(self, arrays: list[np.ndarray]) -> None:
        """Compile (where the graph lowers), time TRIALS runs on `arrays`, keep the compiled op
        where its best is at most KEPT_UP_TO times the NumPy average; either way the NumPy runs
        are no longer counted."""
        with self.lock:
            if self.spent < OP_COMPILE_AFTER_S:
                return  # another thread decided
            average, self.spent = self.spent / self.runs, float("-inf")
            graph = self.make_graph()
            program = Program.of(graph)
            if program is None or not compilable(graph, program):
                return
            native = NativeGraph(graph)
            args = tuple(arrays)
            best = float("inf")
            for _ in range(TRIALS):
                start = perf_counter()
                native.run(args, ())
                best = min(best, perf_counter() - start)
            if best <= KEPT_UP_TO * average:
                self.native = native
