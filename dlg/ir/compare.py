"""Two graphs compared as structures (TVM's structural_equal): what golden tests and the IR text
round trip check.

Nodes are matched in printed order (arguments first, then computed nodes), and a value is known
by the position of its node in that order, so node ids do not matter: equal means the same ops,
types, attributes (arrays element for element, NaN equal to NaN, bodies recursively), wiring,
names (a value printed `%v7` has none), outputs and updates, and with `spans` the same spans
and backward marks of computed nodes (the printer shows none for arguments). Each difference
is reported with both nodes as the printer shows them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait
from dlg.ir.printer import format_marked, value_names

_UNNAMED = re.compile(r"%v\d+(_\d+)?")


def graph_diff(expected: Graph, actual: Graph, spans: bool = False, limit: int = 10
               ) -> list[str]:
    """The differences between two graphs (at most `limit`), each a few readable lines; empty
    when they are equal."""
    problems: list[str] = []
    _diff(expected, actual, spans, problems, f"graph {expected.name}")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more differences"]
    return problems


class _View:
    """A graph in printed order, with each value's position-based key and printed name."""

    def __init__(self, g: Graph, spans: bool):
        self.g = g
        self.spans = spans
        self.order = ([n for n in g if Trait.ARGUMENT in n.op.traits]
                      + [n for n in g if Trait.ARGUMENT not in n.op.traits])
        self.key = {v: (i, v.index) for i, n in enumerate(self.order) for v in n.outs}
        self.names = value_names(g)

    def ref(self, v: Value) -> tuple[int, int] | None:
        return self.key.get(v)

    def label(self, node: Node) -> str | None:
        name = self.names[node.outs[0]] if node.outs else None
        return None if name is None or _UNNAMED.fullmatch(name) else name

    def line(self, node: Node) -> str:
        return format_marked(self.g, {}, [node.id], self.spans).strip()


def _diff(a: Graph, b: Graph, spans: bool, out: list[str], where: str) -> None:
    if a.name != b.name:
        out.append(f"{where}: named {b.name!r}, expected {a.name!r}")
    va, vb = _View(a, spans), _View(b, spans)
    for i, (na, nb) in enumerate(zip(va.order, vb.order)):
        what = _node_diff(va, na, vb, nb)
        if what:
            out.append(f"{where}, node {i + 1}: {what}\n  expected {va.line(na)}\n"
                       f"  actual   {vb.line(nb)}")
        for key in sorted(k for k, v in na.attrs.items() if isinstance(v, Graph)):
            if isinstance(nb.attrs.get(key), Graph):
                _diff(na.attrs[key], nb.attrs[key], spans, out, f"{where}, node {i + 1} {key}")
    if len(va.order) != len(vb.order):
        common = min(len(va.order), len(vb.order))
        view, label = (va, "missing") if len(va.order) > common else (vb, "extra")
        rest = view.order[common:]
        out.append(f"{where}: {len(vb.order)} nodes, expected {len(va.order)}; {label}: "
                   + "; ".join(view.line(n) for n in rest[:3]) + (" ..." if len(rest) > 3 else ""))
    for kind, pa, pb in (("outputs", a.outputs, b.outputs), ("updates", a.updates, b.updates)):
        ka = [(name, va.ref(v)) for name, v in pa]
        kb = [(name, vb.ref(v)) for name, v in pb]
        if ka != kb:
            out.append(f"{where}: {kind} {_bindings(vb, pb)}, expected {_bindings(va, pa)}")


def _node_diff(va: _View, na: Node, vb: _View, nb: Node) -> str:
    """What differs between two nodes at the same position ('' if nothing)."""
    if na.op is not nb.op:
        return "op differs"
    if na.types != nb.types:
        return "types differ"
    if [va.ref(v) for v in na.inputs] != [vb.ref(v) for v in nb.inputs]:
        return "inputs differ"
    if va.label(na) != vb.label(nb):
        return "names differ"
    keys = sorted(set(na.attrs) | set(nb.attrs))
    changed = [k for k in keys if not isinstance(na.attrs.get(k), Graph)
               and not _equal(na.attrs.get(k), nb.attrs.get(k))]
    if changed:
        return f"attribute {changed[0]} differs"
    printed = Trait.ARGUMENT not in na.op.traits  # the header shows no spans
    if va.spans and printed and (str(na.span), na.backward) != (str(nb.span), nb.backward):
        return "spans differ"
    return ""


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                and x.shape == y.shape
                and bool(np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")))
    if isinstance(x, (tuple, list)) and isinstance(y, (tuple, list)):
        return len(x) == len(y) and all(_equal(p, q) for p, q in zip(x, y))
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True  # NaN
    return type(x) is type(y) and x == y


def _bindings(view: _View, pairs: list[tuple[str, Value]]) -> str:
    return "[" + ", ".join(f"{name} = {view.names.get(v, '?')}" for name, v in pairs) + "]"
