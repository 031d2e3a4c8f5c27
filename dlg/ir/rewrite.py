"""Rewriting a graph node by node: the copy-with-replacements walk that graph passes share."""

from __future__ import annotations

from collections.abc import Callable

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value

# (builder on the new graph, the old node, its inputs in the new graph) -> the node's outputs
# in the new graph, or None to copy the node as it is
Replace = Callable[[Builder, Node, tuple[Value, ...]], "tuple[Value, ...] | None"]


def rewrite(g: Graph, replace: Replace) -> Graph:
    """A copy of `g` in order, each node either replaced (nodes built under its span) or
    copied; outputs and updates follow."""
    out = Graph(g.name, span=g.span)
    b = Builder(out)
    mapping: dict[Value, Value] = {}
    for node in g:
        inputs = tuple(mapping[v] for v in node.inputs)
        with b.at(node.span):
            new_outs = replace(b, node, inputs)
        if new_outs is None:
            new_outs = out.add_node(node.op, inputs, node.attrs, node.types, node.name, node.span,
                                    node.backward).outs
        mapping.update(zip(node.outs, new_outs))
    out.outputs = [(name, mapping[v]) for name, v in g.outputs]
    out.updates = [(name, mapping[v]) for name, v in g.updates]
    return out
