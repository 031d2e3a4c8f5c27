"""Floating-point operations of a dlg graph at concrete dims, for the table's GFLOP/s columns.

The count is read from the graph's ops (by identity and traits), so it is the same arithmetic
for every peer: a multiply-add counts as 2 (matmul 2·M·N·K, conv 2·N·O·P·C·KH·KW/groups, the
weight gradient of a conv likewise), an elementwise op 1 per output element, a reduction 1 per
input element, a pooling window 1 per element it reads, a scan its body times its length.
Movement, views and sources compute nothing, nor do nodes no output or update reads (the
compiler drops them). Composite ops are counted through their
decompositions, so `model.graph` (inference) and `TrainStep(...).graph` (training) both work.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np

from dlg.ir.decompose import decompose
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.conv import CONV, CONV_WEIGHT_GRAD
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.pool import AVG_POOL_GRAD, MAX_POOL_GRAD
from dlg.ir.shapes import bind_dims, evaluate_shape

Shape = tuple[int, ...]
FREE = {Trait.MOVEMENT, Trait.VIEW, Trait.SOURCE}


def count_flops(graph: Graph, dims: Mapping[str, int]) -> int:
    """FLOPs of one run of `graph` with its symbolic dims bound (`{"N": 64}`)."""
    return sum(flops_by_op(graph, dims).values())


def flops_by_op(graph: Graph, dims: Mapping[str, int]) -> Counter[OpDef]:
    """`count_flops` per op (a scan's body counted as the scan's)."""
    graph = decompose(graph)
    counts: Counter[OpDef] = Counter()
    for i in graph.ancestors([v for _, v in graph.outputs + graph.updates]):
        node = graph.node(i)
        counts[node.op] += _node_flops(graph, node, dims)
    return counts


def bind_dims_of(graph: Graph, arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The graph's symbolic dims, bound by the shapes of the arrays given for its inputs."""
    dims: dict[str, int] = {}
    for node in graph.inputs:
        if node.name in arrays:
            error = bind_dims(node.types[0].shape, arrays[node.name].shape, dims)
            assert error is None, f"input {node.name}: {error}"
    return dims


def _node_flops(graph: Graph, node: Node, dims: Mapping[str, int]) -> int:
    if node.op in RULES:
        ins = [evaluate_shape(graph.type_of(v).shape, dims) for v in node.inputs]
        outs = [evaluate_shape(t.shape, dims) for t in node.types]
        return RULES[node.op](node, ins, outs, dims)
    traits = node.op.traits
    if traits & FREE:
        return 0
    if Trait.REDUCTION in traits:
        return sum(math.prod(evaluate_shape(graph.type_of(v).shape, dims)) for v in node.inputs)
    if Trait.WINDOW in traits:
        out = math.prod(evaluate_shape(node.types[0].shape, dims))
        return out * math.prod(node.attrs["kernel"])
    return sum(math.prod(evaluate_shape(t.shape, dims)) for t in node.types)  # ~1 per element


def _matmul(node: Node, ins: list[Shape], outs: list[Shape], dims: Mapping[str, int]) -> int:
    return 2 * math.prod(outs[0]) * ins[0][-1]


def _conv(node: Node, ins: list[Shape], outs: list[Shape], dims: Mapping[str, int]) -> int:
    return 2 * math.prod(outs[0]) * math.prod(ins[1][1:])  # w: [O, C/groups, KH, KW]


def _conv_weight_grad(node: Node, ins: list[Shape], outs: list[Shape],
                      dims: Mapping[str, int]) -> int:
    return 2 * math.prod(ins[1]) * math.prod(outs[0][1:])  # g: [N, O, P...], out: w's shape


def _pool_grad(node: Node, ins: list[Shape], outs: list[Shape], dims: Mapping[str, int]) -> int:
    return math.prod(ins[-1]) * math.prod(node.attrs["kernel"])  # each window of g, once


def _scan(node: Node, ins: list[Shape], outs: list[Shape], dims: Mapping[str, int]) -> int:
    first_seq = node.attrs["n_carry"]
    length = ins[first_seq][node.attrs["axis"]]
    return length * count_flops(node.attrs["body"], dims)


Rule = Callable[[Node, list[Shape], list[Shape], Mapping[str, int]], int]
RULES: dict[OpDef, Rule] = {
    MATMUL: _matmul, CONV: _conv, CONV_WEIGHT_GRAD: _conv_weight_grad,
    MAX_POOL_GRAD: _pool_grad, AVG_POOL_GRAD: _pool_grad, SCAN: _scan,
}
