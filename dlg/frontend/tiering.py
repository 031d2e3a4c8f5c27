"""When eager code runs compiled: a graph that a loop runs step after step (an optimizer's
update, a kept gradient graph) goes through the interpreter, a NumPy temporary per op, until
its interpreted runs have cost about what compiling it would (COMPILE_AFTER_S); then it is
compiled once (`NativeGraph`, ~0.1-1 s of LLVM, then the disk cache) and runs as fused loops.
That is the ski-rental rule: a graph run rarely (one of many sequence lengths, a short test)
never pays for a compile, and one run often pays at most twice what the compile costs before
it runs at compiled speed. Both tiers compute the same graph; the compiled one rounds as
compiled code does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dlg.compiler.interpreted import interpreted_node
from dlg.ir.graph import Graph
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
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent += time.perf_counter() - start
