"""Expanding composite ops into primitives with their `decompose` rules.

`expand_node` gives the primitive subgraph of one composite node (the interpreter runs it);
`decompose` rewrites a whole graph (the compiler's first pass), recursively, since a
decomposition may itself use composites.
"""

from __future__ import annotations

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.rewrite import copy_graph, copy_nodes
from dlg.ir.types import TensorType


def inline_composite(b: Builder, op: OpDef, inputs: tuple[Value, ...], attrs: dict
                     ) -> tuple[Value, ...]:
    """Emit `op`'s decomposition into `b`, expanding nested composites; returns its outputs."""
    sub = Graph(op.name, span=b.span)
    sb = Builder(sub, b.span, b.backward)
    args = [sb.input(f"in{i}", b.type_of(v)) for i, v in enumerate(inputs)]
    outs = op.decompose(sb, *args, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for i, v in enumerate(outs):
        sub.set_output(f"out{i}", v)
    return tuple(copy_into(b, decompose(sub), list(inputs)))


def copy_into(b: Builder, sub: Graph, args: list[Value]) -> list[Value]:
    """Copy `sub`'s nodes into `b.graph`, wiring sub's inputs to `args`; returns its outputs."""
    mapping = copy_nodes(b, sub, inputs=args)
    return [mapping[v] for _, v in sub.outputs]


def decompose(g: Graph, keep: Trait | None = None) -> Graph:
    """A copy of `g` where every composite node is replaced by its primitives, but those whose
    op has the trait `keep` (autodiff keeps `OWN_GRADIENT` ones: their VJP is the user's)."""
    if not any(n.op.is_composite and keep not in n.op.traits for n in g):
        return g

    def expand(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if not node.op.is_composite or keep in node.op.traits:
            return None
        return inline_composite(b, node.op, inputs, dict(node.attrs))
    return copy_graph(g, expand)


def expand_node(node: Node, input_types: list[TensorType]) -> Graph:
    """A standalone primitive graph computing one composite node from positional inputs."""
    sub = Graph(node.op.name, span=node.span)
    b = Builder(sub, node.span)
    args = tuple(b.input(f"in{i}", t) for i, t in enumerate(input_types))
    for i, v in enumerate(inline_composite(b, node.op, args, dict(node.attrs))):
        sub.set_output(f"out{i}", v)
    return sub
