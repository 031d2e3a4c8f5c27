"""Which layer call each node of a graph belongs to, for drawing layers as boxes.

The IR keeps no layer scopes (a node is an op, its inputs and its source span), so membership is
read back from what the graph does keep:
- a node that reads a parameter `fc1.*` belongs to layer `fc1` (the called layer whose name
  prefixes the parameter's, else the parameter's name up to its last dot). Layers are the
  model's own: a layer called inside another (`res.norm`) is drawn inside it;
- a node belongs to layer `fc1` when its span locates a call of it (the source text there reads
  `fc1(...)`: layers without parameters, such as pools and activations), or when it shares a span
  with a node of `fc1` (the nearest such node: a call site inside a user-defined layer is one
  span for all its instances): the standard layers put every node at the user's call site.
  Only spans of an expression count, not whole Python lines (a traced module's spans), where
  one line may call several layers;
- a node on a path between two nodes of a layer that passes through no other layer's node
  belongs to it too (a user-defined layer's arithmetic between its parameter reads);
- a layer's nodes that come after another layer's (in creation order, where one call's nodes
  are contiguous) are its next call, a box of its own (`pool` twice in a CNN).
Nodes left over are drawn on their own: the model's ops between layers, and the ops of a
user-defined layer that come after its last parameter read (`x + norm(x @ T(weight))`'s add).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from dlg.errors import Span
from dlg.ir.graph import Graph, LayerCall, Node
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.source import CONSTANT
from dlg.ir.shapes import evaluate_dim, numel

_CALLEE = re.compile(r"([A-Za-z_][\w.]*)\s*\(")


@dataclass(frozen=True)
class Layer:
    """A layer call as drawn: the layer's name (`fc1`), its type (`Linear`, or '' when not
    recorded), the number of parameter and buffer elements it holds, and which call of it this
    is (a layer called twice is two boxes; its parameters are drawn with the first)."""

    name: str
    kind: str
    params: int
    call: int = 1

    @property
    def key(self) -> str:
        return self.name if self.call == 1 else f"{self.name}#{self.call}"


def layers_of(g: Graph, calls: Sequence[LayerCall]) -> tuple[list[Layer], dict[int, str]]:
    """The layer calls in `g`, in order, and the call every node that belongs to one is drawn
    in (node id -> `Layer.key`): computed nodes, the layer's parameters and the constants only
    its nodes read."""
    names = {c.name for c in calls}
    kinds = {c.name: c.layer for c in calls  # the model's own layers: `res`, not `res.norm`
             if not any(c.name.startswith(n + ".") for n in names)}
    owner_of_param = {n.id: _owner(n.name or "", kinds) for n in g.params}
    owner: dict[int, str] = {}
    for node in g:
        if Trait.BUFFER in node.op.traits:
            continue
        read = {owner_of_param[v.node] for v in node.inputs if v.node in owner_of_param}
        read.discard("")
        if len(read) == 1:
            owner[node.id] = read.pop()
    _by_span(g, kinds, owner)
    _fill_paths(g, owner)
    counts: dict[str, int] = {}
    for node in g.params:
        name = owner_of_param[node.id]
        counts[name] = counts.get(name, 0) + param_size(node)
    layers = _split_calls(g, owner)
    keys = set(owner.values())
    owner |= {n: name for n, name in owner_of_param.items() if name}
    for node in g.sources(CONSTANT):
        readers = {owner.get(u.id) for u in g.users(node.id)}
        if len(readers) == 1 and None not in readers:
            owner[node.id] = readers.pop()  # type: ignore[assignment]
    layers += [(name, 1) for name in dict.fromkeys(owner.values()) if name not in keys]
    return [Layer(name, kinds.get(name, ""), counts.get(name, 0), call)
            for name, call in layers], owner


def _split_calls(g: Graph, owner: dict[int, str]) -> list[tuple[str, int]]:
    """Number the calls of each layer: a layer's nodes after another layer's nodes are its next
    call (`pool` twice in a CNN). `owner` then maps to `Layer.key`s; returns (name, call)s."""
    calls: dict[str, int] = {}
    order: list[tuple[str, int]] = []
    last = None
    for node in g:
        name = owner.get(node.id)
        if name is None:
            continue
        if name != last:
            calls[name] = calls.get(name, 0) + 1
            order.append((name, calls[name]))
            last = name
        if calls[name] > 1:
            owner[node.id] = f"{name}#{calls[name]}"
    return order


def _owner(param: str, kinds: dict[str, str]) -> str:
    """The layer a parameter belongs to: the called layer prefixing its name, else its name up
    to the last dot ('' for a parameter of the model itself)."""
    called = [k for k in kinds if param.startswith(k + ".")]
    return called[0] if called else param.rpartition(".")[0]


def param_size(node: Node) -> int:
    """Elements of a parameter (its shape is static)."""
    return evaluate_dim(numel(node.types[0].shape), {})


def _expression(span: Span | None) -> bool:
    """A span that locates an expression (a .dlg call), not just a line of Python."""
    return span is not None and span.end_col is not None and (
        (span.end_line, span.end_col) != (span.line, span.col))


def _callee(span: Span) -> str | None:
    """The name called when a span's source text is one call: `fc1` for `fc1(flatten(x))`, None
    for `fc1(x) + b`."""
    text = _source_text(span) or ""
    match = _CALLEE.match(text)
    if match is None:
        return None
    depth = 0
    for i in range(match.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return None if text[i + 1:].strip() else match.group(1)
    return None


def _source_text(span: Span) -> str | None:
    if span.source is None or span.end_line is None or span.end_col is None:
        return None
    lines = span.source.splitlines()[span.line - 1:span.end_line]
    if len(lines) != span.end_line - span.line + 1:
        return None
    lines[-1] = lines[-1][:span.end_col - 1]
    lines[0] = lines[0][span.col - 1:]
    return "\n".join(lines)


def _by_span(g: Graph, kinds: dict[str, str], owner: dict[int, str]) -> None:
    """Nodes at a layer's call site join it (see the module's docstring). A call site inside a
    user-defined layer is one span for all its instances: a node joins the layer of the nearest
    node (in creation order, where one call's nodes are contiguous) at its span."""
    at_span: dict[Span, list[int]] = {}
    for node in g:
        if node.id in owner and node.span is not None and _expression(node.span):
            at_span.setdefault(node.span, []).append(node.id)
    for node in g:
        if node.id in owner or Trait.BUFFER in node.op.traits or node.span is None:
            continue
        callee = _callee(node.span) if _expression(node.span) else None
        if callee in kinds:
            owner[node.id] = callee  # type: ignore[assignment]
        elif node.span in at_span and _expression(node.span):
            nearest = min(at_span[node.span], key=lambda n: abs(n - node.id))
            owner[node.id] = owner[nearest]


def _fill_paths(g: Graph, owner: dict[int, str]) -> None:
    """Unowned nodes between two nodes of one layer, on paths through no other layer, join it."""
    for name in dict.fromkeys(owner.values()):
        mine = {n for n, o in owner.items() if o == name}
        free = g.nx.subgraph([n for n in g.nx if n in mine or (
            n not in owner and Trait.BUFFER not in g.nodes[n].op.traits)])
        after = set().union(*(nx.descendants(free, n) for n in mine))
        before = set().union(*(nx.ancestors(free, n) for n in mine))
        for n in (after & before) - mine:
            owner.setdefault(n, name)
