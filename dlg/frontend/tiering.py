"""When eager code runs compiled: a graph that a loop runs step after step (an optimizer's
update, a kept gradient graph) goes through the interpreter, a NumPy temporary per op, until
it is hot; then it is compiled once (`NativeGraph`, ~0.1-1 s of LLVM, then the disk cache) and
runs as fused loops. Only graphs with NATIVE_MIN_ELEMENTS in their inputs tier up: below that
NumPy's ops cost microseconds and a compile would never pay (and tests of small models stay
interpreted). Both tiers compute the same graph; the compiled one rounds as compiled code does.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlg.ir.graph import Graph
from dlg.runtime.native import NativeGraph

NATIVE_AFTER = 3  # runs of a graph before it is compiled
NATIVE_MIN_ELEMENTS = 1 << 15  # elements of its inputs: below, its NumPy ops cost microseconds


@dataclass
class Tier:
    """A graph's runs so far and, once hot, its compiled form."""

    graph: Graph
    elements: int
    runs: int = 0
    native: NativeGraph | None = None

    def hot(self) -> NativeGraph | None:
        """Count a run; the compiled graph from run NATIVE_AFTER + 1 on when the graph is large
        enough, else None (interpret this run)."""
        self.runs += 1
        if (self.native is None and self.runs > NATIVE_AFTER
                and self.elements >= NATIVE_MIN_ELEMENTS):
            self.native = NativeGraph(self.graph)
        return self.native
