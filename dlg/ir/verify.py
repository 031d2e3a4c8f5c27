"""Well-formedness of a graph (STYLE §6): what every builder and pass must keep true.

Insertion order is a topological order, every input names an existing output, each node's
attributes pass its op's schema and its types are what `infer` gives again, the networkx edges
agree with the inputs, output and update names are unique and refer to existing values, updates
give a parameter a value of its type, and scan bodies are well formed too. A failure is our bug,
not the user's, so it is an `IRVerifyError` (not a DlgError) that prints the offending node with
its neighbours, marked `>>`.
"""

from __future__ import annotations

from typing import NoReturn

from dlg.errors import DlgError
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.printer import format_around


class IRVerifyError(AssertionError):
    """The IR broke an invariant: a bug in dlg."""


def verify(g: Graph) -> None:
    """Raise IRVerifyError at the first broken invariant of `g` or of a nested body."""
    seen: set[int] = set()
    for key, node in g.nodes.items():
        if node.id != key:
            raise IRVerifyError(f"graph {g.name}: node %{node.id} is stored under id {key}")
        _check_node(g, node, seen)
        seen.add(node.id)
    if set(g.nx.nodes) != seen:
        raise IRVerifyError(f"graph {g.name}: the networkx graph has other nodes than the graph")
    for kind, pairs in (("output", g.outputs), ("update", g.updates)):
        names = [n for n, _ in pairs]
        if len(set(names)) != len(names):
            raise IRVerifyError(f"graph {g.name}: duplicate {kind} names {names}")
        for name, v in pairs:
            if not _exists(g, v):
                raise IRVerifyError(f"graph {g.name}: {kind} {name} refers to a missing value "
                                    f"{v.node}:{v.index}")
    params = {n.name: n for n in g.params}
    if len(params) != len(g.params):
        raise IRVerifyError(f"graph {g.name}: duplicate parameter names")
    for name, v in g.updates:
        if name not in params:
            raise IRVerifyError(f"graph {g.name}: update {name} names no parameter")
        if params[name].types[0] != g.type_of(v):
            raise IRVerifyError(f"graph {g.name}: update {name} gives {g.type_of(v)} to a "
                                f"parameter of type {params[name].types[0]}")


def _check_node(g: Graph, node: Node, seen: set[int]) -> None:
    for v in node.inputs:
        if v.node not in seen or not _exists(g, v):
            _fail(g, node, f"input {v.node}:{v.index} is not defined before its use")
    edges = sorted((src, data["slot"], data["index"])
                   for src, _, data in g.nx.in_edges(node.id, data=True))
    if edges != sorted((v.node, slot, v.index) for slot, v in enumerate(node.inputs)):
        _fail(g, node, "its networkx in-edges disagree with its inputs")
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
        try:
            verify(node.attrs["body"])
        except IRVerifyError as e:
            _fail(g, node, f"its body is broken: {e}")


def _exists(g: Graph, v: Value) -> bool:
    return v.node in g.nodes and 0 <= v.index < len(g.nodes[v.node].types)


def _fail(g: Graph, node: Node, problem: str) -> NoReturn:
    raise IRVerifyError(f"graph {g.name}: node %{node.id} ({node.op.name}): {problem}\n"
                        + format_around(g, node.id))
