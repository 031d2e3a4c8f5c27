"""widen_half: half-precision sums accumulate in f32.

An f16 accumulator stops growing once the sum's ulp passes the terms (at 1024 it is 1): a
matmul over 4,096 f16 products in [0, 1] came out 6 % short, summed in f16. NumPy (the
interpreter) and PyTorch accumulate half sums in f32, so every reduction, contraction and
window op on f16 operands runs in f32 between casts: the f16 result is then the f32 sum rounded
once. Runs after decompose, so composites (softmax, layer_norm, the losses) are widened through
their reductions.
"""

from __future__ import annotations

from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.rewrite import copy_graph

SUMMING = frozenset({Trait.REDUCTION, Trait.CONTRACTION, Trait.WINDOW})


def widen_half(g: Graph) -> Graph:
    if not any(_sums_half(g, node) for node in g):
        return g

    def widen(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if not _sums_half(g, node):
            return None
        wide = [b.cast(v, dtype=DType.f32) if b.type_of(v).dtype == DType.f16 else v
                for v in inputs]
        outs = b.graph.add_node(node.op, tuple(wide), node.attrs,
                                tuple(t.with_dtype(DType.f32) if t.dtype == DType.f16 else t
                                      for t in node.types), node.name, node.span,
                                node.backward).outs
        return tuple(b.cast(v, dtype=DType.f16) if t.dtype == DType.f16 else v
                     for v, t in zip(outs, node.types, strict=True))
    return copy_graph(g, widen)


def _sums_half(g: Graph, node: Node) -> bool:
    return bool(node.op.traits & SUMMING) and any(g.type_of(v).dtype == DType.f16
                                                  for v in node.inputs)
