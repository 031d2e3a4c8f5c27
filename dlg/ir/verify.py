"""Well-formedness of a graph (STYLE §6): what every builder and pass must keep true.

A failure is our bug, not the user's, so it is an `IRVerifyError` (not a DlgError) that prints
the offending node with its neighbours marked `>>`.
"""

from __future__ import annotations

from dlg.errors import DlgError
from dlg.ir.graph import Graph, Node


class IRVerifyError(AssertionError):
    """The IR broke an invariant: a bug in dlg."""


def verify(g: Graph) -> None:
    seen: set[int] = set()
    for node in g:
        for v in node.inputs:
            if v.node not in seen:
                _fail(g, node, f"input %{v.node} is not defined before its use")
            if v.index >= len(g.nodes[v.node].types):
                _fail(g, node, f"input %{v.node} has no output {v.index}")
        try:
            attrs = node.op.check_attrs(dict(node.attrs))
            types = node.op.infer(*(g.type_of(v) for v in node.inputs), **attrs)
        except DlgError as e:
            _fail(g, node, f"its op rejects it: {e.message}")
        types = types if isinstance(types, tuple) else (types,)
        if types != node.types:
            _fail(g, node, f"types {[str(t) for t in node.types]} but infer gives "
                           f"{[str(t) for t in types]}")
        if "body" in node.attrs:
            verify(node.attrs["body"])
        seen.add(node.id)
    for kind, pairs in (("output", g.outputs), ("update", g.updates)):
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise IRVerifyError(f"graph {g.name}: duplicate {kind} names {names}")
        for name, v in pairs:
            if v.node not in g.nodes:
                raise IRVerifyError(f"graph {g.name}: {kind} {name} refers to a missing node")
    params = [n.name for n in g.params]
    if len(set(params)) != len(params):
        raise IRVerifyError(f"graph {g.name}: duplicate parameter names")


def _fail(g: Graph, node: Node, problem: str) -> None:
    order = list(g.nodes)
    at = order.index(node.id)
    context = []
    for nid in order[max(0, at - 2):at + 3]:
        n = g.nodes[nid]
        mark = ">>" if nid == node.id else "  "
        args = ", ".join(f"%{v.node}" for v in n.inputs)
        context.append(f"{mark} %{n.id} = {n.op.name}({args}) : "
                       + ", ".join(str(t) for t in n.types))
    raise IRVerifyError(f"graph {g.name}: node %{node.id} ({node.op.name}): {problem}\n"
                        + "\n".join(context))
