"""The IR graph: nodes over a networkx MultiDiGraph.

A `Node` applies one `OpDef` to input `Value`s and produces one or more typed outputs. Graph
sources are nodes too: `input` (fed by the caller), `param` (a parameter or buffer, held by the
model) and `constant`. A graph also lists its named outputs and its state `updates` (new values
for buffers, e.g. batch-norm running stats; later, optimizer state). Nodes are only appended, and
a node's inputs always exist before it, so insertion order is a topological order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import networkx as nx

from dlg.errors import Span
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.source import INPUT, PARAM
from dlg.ir.types import TensorType


@dataclass(frozen=True)
class Value:
    """Output `index` of node `node`."""

    node: int
    index: int = 0


@dataclass(frozen=True, eq=False)
class Node:
    id: int
    op: OpDef
    inputs: tuple[Value, ...]
    attrs: Mapping[str, Any]
    types: tuple[TensorType, ...]
    name: str | None = None
    span: Span | None = None
    backward: bool = False  # made by a VJP rule (errors still point at the forward line)

    @property
    def out(self) -> Value:
        assert len(self.types) == 1, f"{self.op.name} has {len(self.types)} outputs"
        return Value(self.id, 0)

    @property
    def outs(self) -> tuple[Value, ...]:
        return tuple(Value(self.id, i) for i in range(len(self.types)))


@dataclass(frozen=True)
class ParamInfo:
    """What a `param` node stands for: trainable parameter or buffer (state, not trained)."""

    name: str
    type: TensorType
    trainable: bool = True


@dataclass(frozen=True)
class LayerCall:
    """One call of a layer while a graph was built (for model summaries)."""

    name: str  # fc1, encoder.lstm
    layer: str  # Linear
    outputs: tuple[TensorType, ...]


@dataclass
class Graph:
    name: str = "main"
    nodes: dict[int, Node] = field(default_factory=dict)
    outputs: list[tuple[str, Value]] = field(default_factory=list)
    updates: list[tuple[str, Value]] = field(default_factory=list)  # param name -> new value
    span: Span | None = None

    def __post_init__(self) -> None:
        self.nx = nx.MultiDiGraph()
        self._next_id = max(self.nodes, default=-1) + 1
        for node in self.nodes.values():
            self._link(node)

    # -- building -------------------------------------------------------------------------------
    def add_node(self, op: OpDef, inputs: tuple[Value, ...], attrs: Mapping[str, Any],
                 types: tuple[TensorType, ...], name: str | None = None,
                 span: Span | None = None, backward: bool = False) -> Node:
        for v in inputs:
            assert v.node in self.nodes and v.index < len(self.nodes[v.node].types), v
        node = Node(self._next_id, op, tuple(inputs), MappingProxyType(dict(attrs)), tuple(types),
                    name, span, backward)
        self._next_id += 1
        self.nodes[node.id] = node
        self._link(node)
        return node

    def _link(self, node: Node) -> None:
        self.nx.add_node(node.id)
        for slot, v in enumerate(node.inputs):
            self.nx.add_edge(v.node, node.id, index=v.index, slot=slot)

    def set_output(self, name: str, value: Value) -> None:
        self.outputs.append((name, value))

    def label(self, v: Value, name: str) -> None:
        """Give a computed value the source name it was assigned to (for readable IR text)."""
        node = self.nodes[v.node]
        if node.name is None and len(node.types) == 1 and Trait.SOURCE not in node.op.traits:
            self.nodes[v.node] = replace(node, name=name)

    # -- reading --------------------------------------------------------------------------------
    def node(self, v: Value | int) -> Node:
        return self.nodes[v.node if isinstance(v, Value) else v]

    def type_of(self, v: Value) -> TensorType:
        return self.nodes[v.node].types[v.index]

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes.values()))

    def __len__(self) -> int:
        return len(self.nodes)

    def sources(self, op: OpDef) -> list[Node]:
        """The nodes of `op` (a source: INPUT, PARAM), in insertion order."""
        return [n for n in self.nodes.values() if n.op is op]

    @property
    def inputs(self) -> list[Node]:
        """The `input` nodes, in declaration order (their `name` is the argument name)."""
        return self.sources(INPUT)

    @property
    def params(self) -> list[Node]:
        return self.sources(PARAM)

    def input_named(self, name: str) -> Node | None:
        return next((n for n in self.inputs if n.name == name), None)

    def users(self, node_id: int) -> list[Node]:
        return [self.nodes[u] for u in dict.fromkeys(self.nx.successors(node_id))]

    def ancestors(self, values: list[Value]) -> set[int]:
        """The nodes the values are made from, theirs included: one walk for all of them
        (a walk per value, as nx.ancestors is, revisits the shared nodes: 0.6 s of a small
        UNet's backward, whose interpreter asks for the nodes its many outputs need)."""
        out: set[int] = set()
        stack = [v.node for v in values]
        predecessors = self.nx.pred
        while stack:
            node = stack.pop()
            if node not in out:
                out.add(node)
                stack.extend(predecessors[node])
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes.values():
            counts[n.op.name] = counts.get(n.op.name, 0) + 1
        return counts
