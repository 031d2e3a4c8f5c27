"""Copying a graph node by node with a value map: the one walk that every graph rewrite shares
(decompose, explicit_padding, simplify, autodiff's forward copy, inlining a body graph)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value

# (builder on the new graph, the old node, its inputs in the new graph) -> the node's outputs
# in the new graph (a value or a tuple of them), or None to copy the node as it is
Replace = Callable[[Builder, Node, tuple[Value, ...]], "Value | tuple[Value, ...] | None"]


def copy_nodes(b: Builder, g: Graph, replace: Replace | None = None,
               inputs: Sequence[Value] | None = None) -> dict[Value, Value]:
    """Copy `g`'s nodes in order into `b.graph`; returns old value -> new value.

    Each node is either replaced (`replace` runs at the node's span) or copied, keeping its
    span and backward mark (the builder's where it has none). With `inputs`, `g`'s input nodes
    are not copied: they stand for these values (inlining a body graph).
    """
    wired = g.inputs if inputs is not None else []
    mapping = {node.out: v for node, v in zip(wired, inputs or (), strict=True)}
    skip = {node.id for node in wired}
    for node in g:
        if node.id in skip:
            continue
        new_inputs = tuple(mapping[v] for v in node.inputs)
        new_outs = None
        if replace is not None:
            with b.at(node.span):
                new_outs = replace(b, node, new_inputs)
        if new_outs is None:
            new_outs = b.graph.add_node(node.op, new_inputs, node.attrs, node.types, node.name,
                                        node.span or b.span, node.backward or b.backward).outs
        mapping.update(zip(node.outs, new_outs if isinstance(new_outs, tuple) else (new_outs,)))
    return mapping


def copy_graph(g: Graph, replace: Replace | None = None) -> Graph:
    """A new graph like `g` (its outputs and updates follow) made by `copy_nodes`."""
    out = Graph(g.name, span=g.span)
    mapping = copy_nodes(Builder(out), g, replace)
    out.outputs = [(name, mapping[v]) for name, v in g.outputs]
    out.updates = [(name, mapping[v]) for name, v in g.updates]
    return out
