"""The IR as readable text (STYLE §7): one line per node, typed, attributes sorted, spans as
comments. Deterministic, so it serves `dlgc check --emit graph`, golden tests and the verifier's
failure reports.

    graph MLP(%x: f32[N,784], %fc.weight: param f32[10,784]) -> (logits: f32[N,10]) {
      %logits: f32[N,10] = matmul(%x, %v2)  # mlp.dlg:9:21
      updates {
        bn.running_mean = %v7
      }
      return logits = %logits
    }

Graph inputs and params are the arguments (`param` trainable, `buffer` not); a scan's `body`
is printed as a nested graph under its node; large constants are elided (JSON keeps them).
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.shapes import Sym

_ARGUMENTS = ("input", "param")


def format_graph(g: Graph, spans: bool = True) -> str:
    """The whole graph, nested bodies included."""
    return "\n".join(_Printer(g, spans).graph_lines(""))


def format_around(g: Graph, node_id: int, context: int = 2, spans: bool = True) -> str:
    """Node `node_id` marked `>>` with up to `context` nodes either side (bodies not expanded):
    what a verifier failure shows."""
    printer = _Printer(g, spans)
    order = list(g.nodes)
    at = order.index(node_id)
    lines = []
    for nid in order[max(0, at - context):at + context + 1]:
        mark = ">> " if nid == node_id else "   "
        lines.append(mark + printer.node_line(g.nodes[nid]))
    return "\n".join(lines)


class _Printer:
    def __init__(self, g: Graph, spans: bool):
        self.g = g
        self.spans = spans
        self.names = _names(g)

    def name(self, v: Value) -> str:
        # Only a broken graph (shown by the verifier) refers to a value that does not exist.
        return self.names.get(v, f"%<missing {v.node}:{v.index}>")

    def graph_lines(self, indent: str) -> list[str]:
        g = self.g
        args = ", ".join(self.node_line(n) for n in g if n.op.name in _ARGUMENTS)
        results = ", ".join(f"{name}: {self._type(v)}" for name, v in g.outputs)
        lines = [f"{indent}graph {g.name}({args}) -> ({results}) {{"]
        inner = indent + "  "
        for node in g:
            if node.op.name in _ARGUMENTS:
                continue
            lines.append(inner + self.node_line(node))
            if "body" in node.attrs:
                lines.extend(_Printer(node.attrs["body"], self.spans).graph_lines(inner + "  "))
        if g.updates:
            lines.append(f"{inner}updates {{")
            lines.extend(f"{inner}  {name} = {self.name(v)}" for name, v in g.updates)
            lines.append(f"{inner}}}")
        lines.append(f"{inner}return " + ", ".join(f"{name} = {self.name(v)}"
                                                   for name, v in g.outputs))
        lines.append(f"{indent}}}")
        return lines

    def node_line(self, node: Node) -> str:
        """`%a: f32[2] = op(%b) {k=v}  # span`, or `%x: [param ]f32[2]` for an argument."""
        if node.op.name in _ARGUMENTS:
            kind = ""
            if node.op.name == "param":
                kind = "param " if node.attrs.get("trainable", True) else "buffer "
            return ", ".join(f"{self.name(v)}: {kind}{t}" for v, t in zip(node.outs, node.types))
        lhs = ", ".join(f"{self.name(v)}: {t}" for v, t in zip(node.outs, node.types))
        operands = ", ".join(self.name(v) for v in node.inputs)
        text = f"{lhs} = {node.op.name}({operands})"
        attrs = sorted((kv for kv in node.attrs.items() if kv[0] != "body"), key=lambda kv: kv[0])
        if attrs:
            text += " {" + ", ".join(f"{k}={_attr(v)}" for k, v in attrs) + "}"
        if self.spans and node.span is not None:
            text += f"  # {node.span}"
        return text

    def _type(self, v: Value) -> str:
        node = self.g.nodes.get(v.node)
        if node is None or v.index >= len(node.types):
            return "?"
        return str(node.types[v.index])


def _names(g: Graph) -> dict[Value, str]:
    """Unique printable names: source names where known (`%fc1.weight`), else `%v<id>`; a clash
    gets `_1`, `_2`...; outputs of a multi-output node get `_0`, `_1`... after the base."""
    names: dict[Value, str] = {}
    used: set[str] = set()
    for node in g:
        base = re.sub(r"[^\w.]", "_", node.name) if node.name else f"v{node.id}"
        for i, v in enumerate(node.outs):
            first = f"{base}_{i}" if len(node.outs) > 1 else base
            name, k = first, 1
            while name in used:
                name, k = f"{first}_{k}", k + 1
            used.add(name)
            names[v] = "%" + name
    return names


def _attr(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if v is None:
        return "None"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_attr(x) for x in v) + "]"
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _attr(v[()])
        shape = ",".join(str(d) for d in v.shape)
        return f"<{_dtype_name(v)}[{shape}] array>"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Sym):
        return f"({v})" if len(v.terms) > 1 else str(v)
    return str(v)


def _dtype_name(a: np.ndarray) -> str:
    try:
        return str(DType.of(a))
    except KeyError:  # not a dlg dtype: only in a broken graph the verifier is showing
        return a.dtype.name
