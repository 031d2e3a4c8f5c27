"""The IR as readable text (STYLE §7): one line per node, typed, attributes sorted, spans as
comments. Deterministic, so it serves `dlgc check --emit graph` and golden tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.ir.graph import Graph, Node, Value
from dlg.ir.shapes import Sym


def format_graph(g: Graph, spans: bool = True) -> str:
    return "\n".join(_lines(g, spans, indent=""))


def _lines(g: Graph, spans: bool, indent: str) -> list[str]:
    names = _Names(g)
    args = []
    for node in g:
        if node.op.name in ("input", "param"):
            kind = ""
            if node.op.name == "param":
                kind = "param " if node.attrs["trainable"] else "buffer "
            args.append(f"{names[node.out]}: {kind}{node.types[0]}")
    results = ", ".join(f"{name}: {g.type_of(v)}" for name, v in g.outputs)
    lines = [f"{indent}graph {g.name}({', '.join(args)}) -> ({results}) {{"]
    inner = indent + "  "
    for node in g:
        if node.op.name in ("input", "param"):
            continue
        lhs = ", ".join(f"{names[v]}: {t}" for v, t in zip(node.outs, node.types))
        operands = ", ".join(names[v] for v in node.inputs)
        attrs = {k: v for k, v in node.attrs.items() if k != "body"}
        text = f"{inner}{lhs} = {node.op.name}({operands})"
        if attrs:
            text += " {" + ", ".join(f"{k}={_attr(v)}" for k, v in sorted(attrs.items())) + "}"
        if spans and node.span is not None:
            text += f"  # {node.span}"
        lines.append(text)
        if "body" in node.attrs:
            lines.extend(_lines(node.attrs["body"], spans, inner + "  "))
    for name, v in g.updates:
        lines.append(f"{inner}update {name} = {names[v]}")
    lines.append(f"{inner}return " + ", ".join(f"{name} = {names[v]}" for name, v in g.outputs))
    lines.append(f"{indent}}}")
    return lines


class _Names:
    """Unique printable names: source names where known (`%fc1.weight`), else `%v<id>`."""

    def __init__(self, g: Graph):
        self._names: dict[Value, str] = {}
        used: set[str] = set()
        for node in g:
            for i, v in enumerate(node.outs):
                base = node.name if node.name and i == 0 else f"v{node.id}" + (
                    f"_{i}" if len(node.outs) > 1 else "")
                name, k = base, 1
                while name in used:
                    name, k = f"{base}_{k}", k + 1
                used.add(name)
                self._names[v] = "%" + name

    def __getitem__(self, v: Value) -> str:
        return self._names[v]


def _attr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_attr(x) for x in v) + "]"
    if isinstance(v, np.ndarray):
        if v.ndim == 0 or v.size == 1:
            return f"{v.reshape(()).item()!r}"
        return f"<{v.dtype} array {list(v.shape)}>"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, Sym):
        return f"({v})" if len(v.terms) > 1 else str(v)
    return str(v)


__all__ = ["Node", "format_graph"]
