"""Fusion: choose which values are written to memory; everything else is computed inline, inside
the kernel of the value that reads it.

Every op is an expression over its output's index (elementwise math, movement as index
arithmetic, reductions and contractions as inner loops), so a kernel is the expression tree of
one materialized value, stopping at other materialized values. The choice, made in one forward
walk:
- graph outputs, state updates, and the inputs and outputs of ops with kernels of their own
  (scan, scatters) are materialized;
- a value read by several ops is materialized, unless it is a cheap view (reshape, transpose,
  broadcast, slice), a constant, or one or two arithmetic ops on values in memory (recomputing
  `x - max` costs less than a round trip through memory);
- an operand of a contraction (matmul, conv) is in memory or a view of memory: the contraction
  reads each operand element many times, so it must not recompute it;
- a value whose expression contains a reduction (matmul, conv, pooling, reduce_*) is
  materialized unless its only reader reads it element for element; so a bias add and an
  activation fuse into the matmul that feeds them (its epilogue), and elementwise producers
  fuse into the reductions that read them (their prologue), but a reduction is never
  recomputed inside another loop;
- a kernel holds at most one such sum: when an elementwise op would combine several (the input
  and hidden projections of a recurrent cell), all but the last are materialized, so every
  contraction gets a register-tiled kernel (schedule.py tiles a single sum).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait

BUFFERS = {"input", "param", "constant"}
REDUCTIONS = {"reduce_sum", "reduce_prod", "reduce_max", "reduce_min", "argmax", "argmin",
              "matmul", "conv", "conv_weight_grad", "max_pool", "avg_pool"}
OWN_KERNEL = {"scan", "scatter_add", "max_pool_grad", "avg_pool_grad"}
CHEAP = {"reshape", "transpose", "broadcast_to", "slice", "split", "full", "arange", "numel"}
VIEWS = {"reshape", "transpose", "broadcast_to", "slice", "split"}
CONTRACTIONS = {"matmul", "conv", "conv_weight_grad"}
ARITHMETIC = {"add", "sub", "mul", "neg", "cast", "maximum", "minimum", "where", "eq", "ne", "lt",
              "le", "gt", "ge"}
RECOMPUTE = 2  # at most this many arithmetic ops are recomputed per extra reader


@dataclass
class Fusion:
    materialized: set[Value]
    users: dict[Value, list[Node]]


def fuse(g: Graph) -> Fusion:
    users: dict[Value, list[Node]] = {}
    for node in g:
        for v in node.inputs:
            users.setdefault(v, []).append(node)
    materialized: set[Value] = {v for _, v in g.outputs} | {v for _, v in g.updates}
    for node in g:
        if node.op.name in OWN_KERNEL:
            materialized |= set(node.outs) | set(node.inputs)
    has_reduce: set[Value] = set()
    cost: dict[Value, int] = {}  # arithmetic ops computed inline to produce the value
    memory_views: set[Value] = set()  # views (reshape, transpose, ...) of values in memory
    for node in g:
        name = node.op.name
        if name in BUFFERS:
            materialized |= set(node.outs)
            continue
        inline_sums = [v for v in dict.fromkeys(node.inputs)
                       if v in has_reduce and v not in materialized]
        for v in inline_sums[:-1]:
            materialized.add(v)
            cost[v] = 0
        inner = name in REDUCTIONS or bool(inline_sums)
        own = (name not in CHEAP) + sum(cost.get(v, 0) for v in node.inputs
                                        if v not in materialized)
        for v in node.outs:
            readers = users.get(v, [])
            cheap = name in CHEAP or (name in ARITHMETIC and own <= RECOMPUTE)
            if len(readers) > 1 and (not cheap or inner):
                materialized.add(v)
            view = name in VIEWS and all(u in materialized or u in memory_views
                                         for u in node.inputs)
            if view:
                memory_views.add(v)
            elif any(r.op.name in CONTRACTIONS for r in readers):
                materialized.add(v)
            elif inner and not all(_pointwise(g, r, v) for r in readers):
                materialized.add(v)
            if inner and v not in materialized:
                has_reduce.add(v)
            cost[v] = 0 if v in materialized else own
    return Fusion(materialized, users)


def _pointwise(g: Graph, reader: Node, v: Value) -> bool:
    """`reader` reads `v` element for element (same index, no broadcast)."""
    return Trait.ELEMENTWISE in reader.op.traits and reader.types[0].shape == g.type_of(v).shape
