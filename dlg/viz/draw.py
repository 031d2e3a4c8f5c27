"""A graph as a `graphviz.Digraph`: inputs and outputs as distinct shapes, ops as boxes, every
edge labelled with the type of the tensor it carries (`f32[N,128]`, symbolic dims as written),
and groups of nodes (layers, or fused kernels) as boxes of their own.

A group is drawn either collapsed, as one box whose edges are the tensors that enter and leave
it (a layer with its name, type and parameter count), or as a cluster around its nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.source import CONSTANT, INPUT, PARAM
from dlg.viz.render import graphviz_module

FONT = {"fontname": "Helvetica", "fontsize": "10"}
STYLE = {
    "input": {"shape": "invhouse", "style": "filled", "fillcolor": "#d5e8d4"},
    "output": {"shape": "house", "style": "filled", "fillcolor": "#dae8fc"},
    "update": {"shape": "house", "style": "filled,dashed", "fillcolor": "#f5f5f5"},
    "param": {"shape": "note", "fontsize": "8", "fillcolor": "#fff2cc", "style": "filled"},
    "constant": {"shape": "plaintext", "fontsize": "8"},
    "op": {"shape": "box", "style": "rounded"},
    "layer": {"shape": "box", "style": "rounded,filled,bold", "fillcolor": "#ffe6cc"},
}
CLUSTER = {"style": "rounded,dashed", "color": "#888888", "fontsize": "10"}


@dataclass
class Groups:
    """Node id -> group key; each group's label; whether groups are drawn as one box each.
    `edge_style(v)` gives the style of an edge carrying `v` ('' for a plain line)."""

    of: dict[int, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    collapsed: bool = False
    notes: Mapping[int, str] = field(default_factory=dict)  # node id -> a line under its label
    edge_style: Callable[[Value], str] = lambda v: ""


def draw(g: Graph, groups: Groups, title: str) -> Any:
    """The Digraph of `g` with `groups` (see the module's docstring)."""
    dot = graphviz_module().Digraph(g.name)
    dot.attr(rankdir="TB", label=_text(title), labelloc="t", **FONT)
    dot.attr("node", **FONT)
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    clusters: dict[str, list[tuple[str, str, dict[str, str]]]] = {k: [] for k in groups.labels}
    for node in g:
        key = groups.of.get(node.id)
        name, label, style = _node_id(node), _text(_label(node, groups.notes)), _style(node)
        if key is None:
            dot.node(name, label, **style)
        elif not groups.collapsed:
            clusters.setdefault(key, []).append((name, label, style))
    for i, (key, members) in enumerate((k, m) for k, m in clusters.items() if m):
        with dot.subgraph(name=f"cluster_{i}") as c:
            c.attr(label=_text(groups.labels.get(key, key)), **CLUSTER)
            for name, label, style in members:
                c.node(name, label, **style)
    boxes = {key: f"group_{i}" for i, key in enumerate(dict.fromkeys(groups.of.values()))}
    if groups.collapsed:
        for key, box in boxes.items():
            dot.node(box, _text(groups.labels.get(key, key)), **STYLE["layer"])

    def drawn(node_id: int) -> str:
        key = groups.of.get(node_id)
        return boxes[key] if groups.collapsed and key is not None else f"n{node_id}"

    seen: set[tuple[str, str, Value]] = set()
    for node in g:
        for v in dict.fromkeys(node.inputs):
            edge = (drawn(v.node), drawn(node.id), v)
            if edge[0] != edge[1] and edge not in seen:
                seen.add(edge)
                _edge(dot, g, groups, *edge)
    for kind, named in (("output", g.outputs), ("update", g.updates)):
        for i, (name, v) in enumerate(named):
            sink = f"{kind}_{i}"
            dot.node(sink, _text(f"{kind} {name}\n{g.type_of(v)}"), **STYLE[kind])
            _edge(dot, g, groups, drawn(v.node), sink, v)
    return dot


def _edge(dot: Any, g: Graph, groups: Groups, src: str, dst: str, v: Value) -> None:
    style = groups.edge_style(v)
    dot.edge(src, dst, label=str(g.type_of(v)), **({"style": style} if style else {}))


def _text(label: str) -> str:
    """A label's line breaks as DOT's `\\n` escapes (one line of source per node)."""
    return label.replace("\n", "\\n")


def _node_id(node: Node) -> str:
    return f"n{node.id}"


def _style(node: Node) -> dict[str, str]:
    kind = {INPUT: "input", PARAM: "param", CONSTANT: "constant"}.get(node.op, "op")
    style = dict(STYLE[kind])
    if node.span is not None:
        style["tooltip"] = str(node.span)
    return style


def _label(node: Node, notes: Mapping[int, str]) -> str:
    if node.op is INPUT:
        text = f"input {node.name}\n{node.types[0]}"
    elif node.op is PARAM:
        text = f"{node.name}\n{node.types[0]}"
    elif node.op is CONSTANT:
        value = node.attrs["value"]
        text = str(value.item()) if value.size == 1 else f"constant {node.types[0]}"
    else:
        text = node.op.name if node.name is None else f"{node.name} = {node.op.name}"
        if node.op is SCAN:
            text += f"\n(body: {len(node.attrs['body'])} ops a step)"
    note = notes.get(node.id)
    return f"{text}\n{note}" if note else text
