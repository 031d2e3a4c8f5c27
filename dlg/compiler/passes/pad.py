"""explicit_padding: a convolution's zero padding becomes a `pad` of its input.

The compiled convolution then reads memory without bounds checks: the padded copy costs one
pass over the input, while the checks cost a compare and a select on every multiply-add and keep
the loads from being vectors. Runs before simplify, so the forward convolution and its weight
gradient share one padded input.
"""

from __future__ import annotations

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.rewrite import copy_graph


def explicit_padding(g: Graph) -> Graph:
    if not any(_padding(node) for node in g):
        return g

    def pad(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        pads = _padding(node)
        if pads is None:
            return None
        x = b.pad(inputs[0], pads=((0, 0), (0, 0), *pads))
        attrs = {**node.attrs, "padding": tuple((0, 0) for _ in pads)}
        return b.graph.add_node(node.op, (x, *inputs[1:]), attrs, node.types, node.name,
                                node.span, node.backward).outs
    return copy_graph(g, pad)


def _padding(node: Node) -> tuple[tuple[int, int], ...] | None:
    """The node's zero padding, if it is a PADDED op (conv and its weight gradient) with some."""
    pads = node.attrs.get("padding") if Trait.PADDED in node.op.traits else None
    return pads if pads and any(lo or hi for lo, hi in pads) else None
