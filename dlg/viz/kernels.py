"""The graph as the compiler leaves it (after the graph stages) and its kernels: which nodes
each fused kernel computes, for `dlgc viz --compiled`.

Fusion keeps some values in memory (`Fusion.materialized`); lowering makes one kernel per such
value, named after its fused ops (`k3_matmul_add_relu`), computing the value's expression tree
down to other values in memory. So a kernel's nodes are its root and the nodes it computes
inline. A cheap node (a view, a fill, a little arithmetic) read by several kernels is
recomputed in each; it is drawn in the first and counted in the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlg.compiler.lower import Lowering
from dlg.compiler.passes.fuse import Fusion, fuse
from dlg.compiler.pipeline import CompileCtx, CompileOptions, run_stages
from dlg.ir.graph import Graph, Value
from dlg.ir.ops.opdef import Trait


@dataclass
class Kernel:
    """One fused kernel: its name and the ids of the nodes it computes (its root last)."""

    name: str
    nodes: list[int] = field(default_factory=list)


@dataclass
class CompiledView:
    graph: Graph  # after the graph stages (decomposed, simplified)
    fusion: Fusion
    kernels: list[Kernel]
    shared: dict[int, int]  # node id -> how many kernels compute it (when more than one)


def compiled_view(g: Graph) -> CompiledView:
    """`g` through the compiler's graph stages, fused and lowered (no LLVM: nothing is built
    that a picture does not show)."""
    g = run_stages(g, CompileCtx(CompileOptions()))
    fusion = fuse(g)
    lowering = Lowering(g, g.name, fusion)
    program = lowering.run(None)
    value_of = {buf: v for v, buf in lowering.buffer_of.items()}
    kernels: list[Kernel] = []
    times: dict[int, int] = {}
    made: set[str] = set()  # a buffer is made by the first kernel writing it (a scan passes on
    for k in program.kernels:  # the buffers it reads to its body as written too)
        roots = [value_of[b] for b in k.writes if b in value_of and b not in made
                 and Trait.BUFFER not in g.node(value_of[b]).op.traits]
        made |= set(k.writes)
        if not roots:
            continue  # copies to a second output name, the state updates: no node of their own
        members = _inline(g, fusion, roots)
        for n in members:
            times[n] = times.get(n, 0) + 1
        kernels.append(Kernel(k.name, members))
    drawn: set[int] = set()
    for kernel in kernels:
        kernel.nodes = [n for n in kernel.nodes if n not in drawn]
        drawn |= set(kernel.nodes)
    return CompiledView(g, fusion, kernels, {n: c for n, c in times.items() if c > 1})


def _inline(g: Graph, fusion: Fusion, roots: list[Value]) -> list[int]:
    """The roots' nodes and what they compute inline (not read from memory), in graph order."""
    seen = {v.node for v in roots}
    stack = [v.node for v in roots]
    while stack:
        for v in g.node(stack.pop()).inputs:
            if v not in fusion.materialized and v.node not in seen:
                seen.add(v.node)
                stack.append(v.node)
    return sorted(seen)
