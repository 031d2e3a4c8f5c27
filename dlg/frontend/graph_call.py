"""Calling an IR graph on dlg tensors: how `dlg.nn`'s recurrent modules run the graph of their
prelude.dlg layer (`dlg.grammar.layer_graph`).

Eagerly, each node is applied through the eager front door (`tensor.run_graph`, which draws
dropout masks as data), so values come from the ops' references and backward differentiates
the graph's own ops (a scan as one reverse scan). While tracing, the nodes are copied into the
trace as they are, so the traced model holds the layer's graph op for op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, run_graph
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.source import PARAM
from dlg.ir.rewrite import copy_nodes


def call_graph(graph: Graph, inputs: Sequence[Tensor], params: Mapping[str, Tensor]
               ) -> list[Tensor]:
    """`graph`'s outputs, its inputs bound in order to `inputs` and its params by name."""
    tracer = engine.current_tracer()
    if tracer is not None and any(t.graph_value is not None for t in inputs):
        return _copy_into_trace(tracer, graph, inputs, params)
    return run_graph(graph, inputs, params)


def _copy_into_trace(tracer: engine.Tracer, graph: Graph, inputs: Sequence[Tensor],
                     params: Mapping[str, Tensor]) -> list[Tensor]:
    def param(b: Builder, node: Node, _: tuple[Value, ...]) -> Value | None:
        return tracer.read(params[node.name or ""]) if node.op is PARAM else None

    mapping = copy_nodes(tracer.builder, graph, param, [tracer.read(t) for t in inputs])
    return [Tensor.traced(mapping[v], graph.type_of(v)) for _, v in graph.outputs]
