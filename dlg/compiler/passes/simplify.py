"""simplify: constant folding, algebraic identities, common subexpressions, dead code.

One forward walk rebuilds the graph; each node is first rewritten by the identity table (its
inputs already simplified), then folded if all its inputs are small constants (evaluated with
the op's own reference, never Python arithmetic), then merged with an earlier node computing the
same thing. Nodes that no output or update needs are dropped (the gradients of unused params,
the forward values a backward pass does not read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import Trait

FOLD_LIMIT = 4096  # elements: larger constants stay computed at run time (code size)
NEVER_FOLD = {"input", "param", "constant", "scan"}


def simplify(g: Graph) -> Graph:
    live = _live(g)
    out = Graph(g.name, span=g.span)
    b = Builder(out)
    mapping: dict[Value, Value] = {}
    seen: dict[tuple, Node] = {}
    for node in g:
        if node.id not in live:
            continue
        inputs = tuple(mapping[v] for v in node.inputs)
        replaced = _identity(out, node, inputs)
        if replaced is not None:
            mapping[node.out] = replaced
            continue
        folded = _fold(b, out, node, inputs)
        if folded is not None:
            mapping[node.out] = folded
            continue
        key = _key(node, inputs)
        twin = seen.get(key) if key is not None else None
        if twin is None:
            twin = out.add_node(node.op, inputs, node.attrs, node.types, node.name, node.span,
                                node.backward)
            if key is not None:
                seen[key] = twin
        for old, fresh in zip(node.outs, twin.outs):
            mapping[old] = fresh
    out.outputs = [(name, mapping[v]) for name, v in g.outputs]
    out.updates = [(name, mapping[v]) for name, v in g.updates]
    return _prune(out)


def _prune(g: Graph) -> Graph:
    """Only the nodes an output or update needs (rewrites leave their old inputs behind)."""
    live = _live(g)
    if len(live) == len(g):
        return g
    out = Graph(g.name, {i: n for i, n in g.nodes.items() if i in live}, span=g.span)
    out.outputs, out.updates = list(g.outputs), list(g.updates)
    return out


def _live(g: Graph) -> set[int]:
    """What outputs and updates need, and every input (they are the graph's signature)."""
    return g.ancestors([v for _, v in g.outputs + g.updates]) | {n.id for n in g.inputs}


def _key(node: Node, inputs: tuple[Value, ...]) -> tuple | None:
    """What makes two nodes compute the same value; None for sources and random draws."""
    if node.op.name in ("input", "param") or Trait.RANDOM in node.op.traits:
        return None
    attrs = []
    for k, v in sorted(node.attrs.items()):
        if isinstance(v, np.ndarray):
            v = (v.dtype.str, v.shape, v.tobytes())
        elif hasattr(v, "nodes"):  # a scan body: only the same object is the same body
            v = id(v)
        attrs.append((k, v))
    return node.op.name, inputs, tuple(attrs)


def _constant(g: Graph, v: Value) -> np.ndarray | None:
    node = g.node(v)
    if node.op.name == "constant":
        return node.attrs["value"]
    if node.op.name == "full" and all(isinstance(d, int) for d in node.attrs["shape"]):
        return np.full(node.attrs["shape"], node.attrs["value"], node.attrs["dtype"].np)
    return None


def _fold(b: Builder, g: Graph, node: Node, inputs: tuple[Value, ...]) -> Value | None:
    if node.op.name in NEVER_FOLD or node.op.ref is None or node.op.needs_ctx or not inputs:
        return None
    if len(node.types) != 1 or not all(isinstance(d, int) for d in node.types[0].shape):
        return None
    arrays = [_constant(g, v) for v in inputs]
    if any(a is None for a in arrays) or int(np.prod(node.types[0].shape)) > FOLD_LIMIT:
        return None
    value = np.asarray(node.op.ref(*arrays, **node.attrs))
    with b.at(node.span):
        return b.constant(value.astype(node.types[0].dtype.np), node.types[0].dtype)


# ---- identities: each rule gets the node and its (simplified) inputs, returns a value or None ----
def _scalar_equal(g: Graph, v: Value, number: float) -> bool:
    a = _constant(g, v)
    return a is not None and a.size > 0 and bool(np.all(a == number))


def _same_type(g: Graph, node: Node, v: Value) -> Value | None:
    return v if g.type_of(v) == node.types[0] else None


def _mul(g: Graph, node: Node, x: Value, y: Value) -> Value | None:
    if _scalar_equal(g, y, 1):
        return _same_type(g, node, x)  # x * 1 == x
    if _scalar_equal(g, x, 1):
        return _same_type(g, node, y)  # 1 * y == y
    return None


def _add(g: Graph, node: Node, x: Value, y: Value) -> Value | None:
    if _scalar_equal(g, y, 0):
        return _same_type(g, node, x)  # x + 0 == x
    if _scalar_equal(g, x, 0):
        return _same_type(g, node, y)  # 0 + y == y
    return None


def _sub(g: Graph, node: Node, x: Value, y: Value) -> Value | None:
    return _same_type(g, node, x) if _scalar_equal(g, y, 0) else None  # x - 0 == x


def _div(g: Graph, node: Node, x: Value, y: Value) -> Value | None:
    return _same_type(g, node, x) if _scalar_equal(g, y, 1) else None  # x / 1 == x


def _transpose(g: Graph, node: Node, x: Value) -> Value | None:
    perm = [p % len(node.attrs["perm"]) for p in node.attrs["perm"]]
    if perm == sorted(perm):
        return x  # the identity permutation
    inner = g.node(x)
    if inner.op.name == "transpose":
        first = [p % len(perm) for p in inner.attrs["perm"]]
        if [first[p] for p in perm] == sorted(perm):
            return inner.inputs[0]  # transpose(transpose(x, p), p^-1) == x
    return None


def _reshape(g: Graph, node: Node, x: Value) -> Value | None:
    if g.type_of(x).shape == node.types[0].shape:
        return x  # a reshape to the same shape
    inner = g.node(x)
    if inner.op.name == "reshape" and g.type_of(inner.inputs[0]).shape == node.types[0].shape:
        return inner.inputs[0]  # reshape(reshape(x, s), shape of x) == x
    return None


def _broadcast_to(g: Graph, node: Node, x: Value) -> Value | None:
    return x if g.type_of(x).shape == node.types[0].shape else None


def _cast(g: Graph, node: Node, x: Value) -> Value | None:
    return x if g.type_of(x).dtype == node.attrs["dtype"] else None


IDENTITIES: dict[str, Callable[..., Value | None]] = {
    "mul": _mul, "add": _add, "sub": _sub, "div": _div, "transpose": _transpose,
    "reshape": _reshape, "broadcast_to": _broadcast_to, "cast": _cast}


def _identity(g: Graph, node: Node, inputs: tuple[Value, ...]) -> Value | None:
    rule: Any = IDENTITIES.get(node.op.name)
    return rule(g, node, *inputs) if rule is not None else None
