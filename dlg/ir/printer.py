"""The IR as readable text (STYLE §7): one line per node, typed, attributes sorted, spans as
comments. Deterministic, so it serves `dlgc check --emit graph`, pipeline dumps, golden tests
and the verifier's failure reports; `dlg.ir.parse_ir` reads it back (print -> parse -> print is
the identity).

    graph MLP(%x: f32[N,784], %fc.weight: param f32[10,784]) -> (logits: f32[N,10]) {
      %logits: f32[N,10] = matmul(%x, %v2)  # mlp.dlg:9:21
      %v3: f32[] = constant() {value=f32[]{1.0}}
      updates {
        bn.running_mean = %v7
      }
      return logits = %logits
    }

Graph inputs and params are the arguments (`param` trainable, `buffer` not); the graph of a
graph-valued attribute (a scan's `body`) is printed nested under its node; arrays are printed
with their type and every element, except those over `ARRAY_LIMIT` elements (`f32[64,64]{...}`;
JSON keeps them). The span comment says `backward` for nodes a VJP rule made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.source import PARAM
from dlg.ir.shapes import Sym

ARRAY_LIMIT = 256  # elements: larger arrays print as `f32[64,64]{...}` (not parseable)
_PLAIN = re.compile(r"[A-Za-z_][\w.]*")  # names printed bare; others as JSON strings


def format_graph(g: Graph, spans: bool = True) -> str:
    """The whole graph, nested bodies included."""
    return "\n".join(_Printer(g, spans).graph_lines(""))


def format_marked(g: Graph, marks: Mapping[int, str], nodes: Iterable[int] | None = None,
                  spans: bool = True) -> str:
    """One line per node (all, or `nodes`), each after its mark (`marks[id]`, or blanks as wide
    as the marks): a verifier failure's `>>`, the fusion dump's stores. Bodies not expanded."""
    printer = _Printer(g, spans)
    width = max((len(m) for m in marks.values()), default=0)
    return "\n".join(f"{marks.get(nid, ''):<{width}} {printer.node_line(g.nodes[nid])}"
                     for nid in (g.nodes if nodes is None else nodes))


def format_around(g: Graph, node_id: int, context: int = 2, spans: bool = True) -> str:
    """Node `node_id` marked `>>` with up to `context` nodes either side: what a verifier
    failure shows."""
    order = list(g.nodes)
    at = order.index(node_id)
    return format_marked(g, {node_id: ">>"}, order[max(0, at - context):at + context + 1], spans)


def value_names(g: Graph) -> dict[Value, str]:
    """The printed name of every value of `g` (`%fc1.weight`, `%v7`, `%v9_1`)."""
    return _names(g)


def label(name: str) -> str:
    """A graph, output or update name as printed: bare when it is a plain name, else quoted."""
    return name if _PLAIN.fullmatch(name) else json.dumps(name)


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
        args = ", ".join(self.node_line(n) for n in g if _is_argument(n))
        results = ", ".join(f"{label(name)}: {self._type(v)}" for name, v in g.outputs)
        lines = [f"{indent}graph {label(g.name)}({args}) -> ({results}) {{"]
        inner = indent + "  "
        for node in g:
            if _is_argument(node):
                continue
            lines.append(inner + self.node_line(node))
            for _, body in _bodies(node):
                lines.extend(_Printer(body, self.spans).graph_lines(inner + "  "))
        if g.updates:
            lines.append(f"{inner}updates {{")
            lines.extend(f"{inner}  {label(name)} = {self.name(v)}" for name, v in g.updates)
            lines.append(f"{inner}}}")
        lines.append(f"{inner}return " + ", ".join(f"{label(name)} = {self.name(v)}"
                                                   for name, v in g.outputs))
        lines.append(f"{indent}}}")
        return lines

    def node_line(self, node: Node) -> str:
        """`%a: f32[2] = op(%b) {k=v}  # span`, or `%x: [param ]f32[2]` for an argument."""
        if _is_argument(node):
            kind = ""
            if node.op is PARAM:
                kind = "param " if node.attrs.get("trainable", True) else "buffer "
            return ", ".join(f"{self.name(v)}: {kind}{t}" for v, t in zip(node.outs, node.types))
        lhs = ", ".join(f"{self.name(v)}: {t}" for v, t in zip(node.outs, node.types))
        operands = ", ".join(self.name(v) for v in node.inputs)
        text = f"{lhs} = {node.op.name}({operands})"
        bodies = dict(_bodies(node))
        attrs = sorted((kv for kv in node.attrs.items() if kv[0] not in bodies),
                       key=lambda kv: kv[0])
        if attrs:
            text += " {" + ", ".join(f"{k}={_attr(v)}" for k, v in attrs) + "}"
        comment = [str(node.span)] if self.spans and node.span is not None else []
        if self.spans and node.backward:
            comment.append("backward")
        if comment:
            text += "  # " + " ".join(comment)
        return text

    def _type(self, v: Value) -> str:
        node = self.g.nodes.get(v.node)
        if node is None or v.index >= len(node.types):
            return "?"
        return str(node.types[v.index])


def _is_argument(node: Node) -> bool:
    return Trait.ARGUMENT in node.op.traits


def _bodies(node: Node) -> list[tuple[str, Graph]]:
    """The graph-valued attributes of a node, by name: printed nested, in this order."""
    return sorted((k, v) for k, v in node.attrs.items() if isinstance(v, Graph))


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
        return _array(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Sym):
        return f"({v})" if len(v.terms) > 1 else str(v)
    return str(v)


def _array(a: np.ndarray) -> str:
    """`f32[2,2]{1.0, 2.5, -inf, nan}`: type, then the elements in row-major order, each the
    shortest text that reads back as the same value of its dtype; a complex element is its real
    and imaginary parts (`c64[1]{1.0, 2.0}` is 1+2j)."""
    try:
        dtype = str(DType.of(a))
    except KeyError:  # not a dlg dtype: only in a broken graph the verifier is showing
        dtype = a.dtype.name
    head = f"{dtype}[{','.join(str(d) for d in a.shape)}]"
    if a.size > ARRAY_LIMIT:
        return head + "{...}"
    if a.dtype.kind == "c":
        a = np.ascontiguousarray(a).view(a.real.dtype)
    return head + "{" + ", ".join(_attr(x) for x in a.reshape(-1)) + "}"
