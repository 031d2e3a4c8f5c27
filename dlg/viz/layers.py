"""Which layer call each node of a graph belongs to, for drawing layers as boxes.

The IR keeps no layer scopes (a node is an op, its inputs and its source span), so membership is
read back from what the graph does keep, in three steps:
- a node that reads a parameter `fc1.*` belongs to layer `fc1` (the called layer whose name
  prefixes the parameter's, else the parameter's name up to its last dot). Layers are the
  model's own: a layer called inside another (`res.norm`) is drawn inside it;
- a node belongs to layer `fc1` when its span locates a call of it (the source text there reads
  `fc1(`: layers without parameters, such as pools and activations), or when it shares a span
  with a node of `fc1`: the standard layers put every node they make at the user's call site.
  Only spans of an expression count, not whole Python lines (a traced module's spans), where
  one line may call several layers;
- a node on a path between two nodes of a layer that passes through no other layer's node
  belongs to it too (a user-defined layer's arithmetic between its parameter reads).
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
    """A layer as drawn: its name (`fc1`), its type (`Linear`, or '' when not recorded) and
    the number of parameter and buffer elements it holds."""

    name: str
    kind: str
    params: int


def layers_of(g: Graph, calls: Sequence[LayerCall]) -> tuple[list[Layer], dict[int, str]]:
    """The layers with parameters or calls in `g`, in order of first appearance, and the layer
    of every node that belongs to one (node id -> name): computed nodes, the layer's parameters
    and the constants only its nodes read."""
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
    owner |= {n: name for n, name in owner_of_param.items() if name}
    for node in g.sources(CONSTANT):
        readers = {owner.get(u.id) for u in g.users(node.id)}
        if len(readers) == 1 and None not in readers:
            owner[node.id] = readers.pop()  # type: ignore[assignment]
    order = list(dict.fromkeys([*kinds, *(owner[n.id] for n in g if n.id in owner)]))
    counts = dict.fromkeys(order, 0)
    for node in g.params:
        if owner_of_param[node.id] in counts:
            counts[owner_of_param[node.id]] += param_size(node)
    used = set(owner.values())
    return [Layer(n, kinds.get(n, ""), counts[n]) for n in order if n in used], owner


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
    """The name called at the start of a span's source text (`fc1` for `fc1(flatten(x))`)."""
    if span.source is None:
        return None
    lines = span.source.splitlines()
    if not 1 <= span.line <= len(lines):
        return None
    match = _CALLEE.match(lines[span.line - 1], span.col - 1)
    return match.group(1) if match else None


def _by_span(g: Graph, kinds: dict[str, str], owner: dict[int, str]) -> None:
    """Nodes at a layer's call site join it (see the module's docstring)."""
    at_span: dict[Span, str] = {}
    for node in g:
        if node.id in owner and _expression(node.span):
            at_span.setdefault(node.span, owner[node.id])  # type: ignore[arg-type]
    for node in g:
        if node.id in owner or Trait.BUFFER in node.op.traits or not _expression(node.span):
            continue
        assert node.span is not None
        callee = _callee(node.span)
        if callee in kinds:
            owner[node.id] = callee  # type: ignore[assignment]
            at_span.setdefault(node.span, callee)  # type: ignore[arg-type]
        elif node.span in at_span:
            owner[node.id] = at_span[node.span]


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
