"""Fusion: choose which values are written to memory; everything else is computed inline, inside
the kernel of the value that reads it.

Every op is an expression over its output's index (elementwise math, movement as index
arithmetic, reductions and contractions as inner loops), so a kernel is the expression tree of
one materialized value, stopping at other materialized values. The choice, made in one forward
walk over the ops' traits (never their names):
- graph outputs, state updates, buffers (inputs, parameters, constants), and the inputs and
  outputs of OWN_KERNEL ops (scan, scatters) are materialized; a scan reads a reshape of a value
  in memory in place (a hoisted projection's rows, [T*N, P], as T steps of [N, P]);
- a value read by several ops is materialized, unless it is CHEAP (a view: reshape, transpose,
  broadcast, slice, split; a fill: full, arange, numel) or one or two ARITHMETIC ops on values in
  memory (recomputing `x - max` costs less than a round trip through memory);
- an operand of a CONTRACTION (matmul, conv) is in memory or a VIEW of memory: the contraction
  reads each operand element many times, so it must not recompute it (a reshape is a view of
  memory only when its input is in memory: rows merged across a transpose, the whole sequence
  of a time-major scan over batch-first data, are copied, so the GEMM reads strided rows);
- a value whose expression contains an inner loop (a REDUCTION, CONTRACTION or WINDOW op:
  reduce_*, argmax, matmul, conv, pooling) is materialized unless its only reader reads it
  element for element; so a bias add and an activation fuse into the matmul that feeds them (its
  epilogue), and elementwise producers fuse into the reductions that read them (their
  prologue), but a reduction is never recomputed inside another loop;
- a kernel holds at most one such sum: when an elementwise op would combine several (the input
  and hidden projections of a recurrent cell), all but the last are materialized, so every
  contraction gets a register-tiled kernel (schedule.py tiles a single sum).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.shape import RESHAPE

INNER_LOOP = frozenset({Trait.REDUCTION, Trait.CONTRACTION, Trait.WINDOW})
RECOMPUTE = 2  # at most this many arithmetic ops are recomputed per extra reader


@dataclass
class Fusion:
    materialized: set[Value]
    users: dict[Value, list[Node]]


def fuse(g: Graph) -> Fusion:
    users: dict[Value, list[Node]] = {}
    for node in g:
        for v in node.inputs:
            if Trait.SHAPE_ONLY not in node.op.traits:  # numel(v) reads no element of v
                users.setdefault(v, []).append(node)
    materialized: set[Value] = {v for _, v in g.outputs} | {v for _, v in g.updates}
    in_place: set[Value] = set()  # reshapes a scan reads from their input's memory, if it has one
    for node in g:
        if Trait.OWN_KERNEL in node.op.traits:
            materialized |= set(node.outs)
            for v in node.inputs:
                if node.op is SCAN and g.node(v).op is RESHAPE:
                    in_place.add(v)
                else:
                    materialized.add(v)
    has_reduce: set[Value] = set()
    cost: dict[Value, int] = {}  # arithmetic ops computed inline to produce the value
    memory_views: set[Value] = set()  # views (reshape, transpose, ...) of values in memory
    for node in g:
        traits = node.op.traits
        if Trait.BUFFER in traits:
            materialized |= set(node.outs)
            continue
        inline_sums = [v for v in dict.fromkeys(node.inputs)
                       if v in has_reduce and v not in materialized]
        for v in inline_sums[:-1]:
            materialized.add(v)
            cost[v] = 0
        inner = bool(traits & INNER_LOOP) or bool(inline_sums)
        own = (Trait.CHEAP not in traits) + sum(cost.get(v, 0) for v in node.inputs
                                                if v not in materialized)
        for v in node.outs:
            readers = users.get(v, [])
            cheap = Trait.CHEAP in traits or (Trait.ARITHMETIC in traits and own <= RECOMPUTE)
            if len(readers) > 1 and (not cheap or inner):
                materialized.add(v)
            view = Trait.VIEW in traits and all(u in materialized or u in memory_views
                                                for u in node.inputs)
            if node.op is RESHAPE and not all(u in materialized for u in node.inputs):
                view = False  # merging a transpose's axes is no strided view: a GEMM reads a copy
            if view:
                memory_views.add(v)
            elif any(Trait.CONTRACTION in r.op.traits for r in readers):
                materialized.add(v)
            elif inner and not all(_pointwise(g, r, v) for r in readers):
                materialized.add(v)
            if inner and v not in materialized:
                has_reduce.add(v)
            cost[v] = 0 if v in materialized else own
    materialized |= {v for v in in_place if g.node(v).inputs[0] not in materialized}
    return Fusion(materialized, users)


def _pointwise(g: Graph, reader: Node, v: Value) -> bool:
    """`reader` reads `v` element for element (same index, no broadcast)."""
    return Trait.ELEMENTWISE in reader.op.traits and reader.types[0].shape == g.type_of(v).shape
