"""simplify: algebraic identities and constant folding as one rewrite table (`SIMPLIFY`), applied
to a fixpoint by `graph_rewrite`, which also merges nodes computing the same value and drops the
nodes no output or update needs (the gradients of unused params, the forward values a backward
pass does not read).

Each rule's comment is its identity. Mul and add commute, so the matcher also tries `1 * x` and
`0 + x`. An identity whose result would have another type than the node's (`x * 1` where the 1
broadcasts x) declines. Folding evaluates the op's own reference at the node's dtype, never
Python arithmetic, and only for results up to FOLD_LIMIT elements.
"""

from __future__ import annotations

import numpy as np

from dlg.compiler.patterns import P, Rules, constant_value, graph_rewrite
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.elementwise import ADD, CAST, DIV, MUL, POW, SUB
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, TRANSPOSE
from dlg.ir.rewrite import copy_graph

FOLD_LIMIT = 4096  # elements: larger constants stay computed at run time (code size)


def simplify(g: Graph) -> Graph:
    """`g` and its scan bodies (a reverse scan's body is a whole gradient) simplified."""
    return graph_rewrite(_bodies_simplified(g), SIMPLIFY)


def _bodies_simplified(g: Graph) -> Graph:
    if not any(n.op is SCAN for n in g):
        return g

    def replace(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if node.op is not SCAN:
            return None
        return b.emit(SCAN, *inputs, **{**node.attrs, "body": simplify(node.attrs["body"])})
    return copy_graph(g, replace)


def same_type(b: Builder, node: Node, x: Value) -> Value | None:
    """`x` itself, where it has the type of the node it replaces."""
    return x if b.type_of(x) == node.types[0] else None


def identity_perm(node: Node, x: Value) -> Value | None:
    perm = _perm(node)
    return x if perm == sorted(perm) else None


def inverse_perms(b: Builder, node: Node, inner: Value, x: Value) -> Value | None:
    first, then = _perm(b.graph.node(inner)), _perm(node)
    return x if [first[p] for p in then] == sorted(then) else None


def _perm(transpose: Node) -> list[int]:
    perm = transpose.attrs["perm"]
    return [p % len(perm) for p in perm]


def square(b: Builder, node: Node, x: Value) -> Value | None:
    """x * x, where it has the node's type: one multiply, where pow is a libm call."""
    return b.mul(x, x) if b.type_of(x) == node.types[0] else None


def fold(b: Builder, node: Node) -> Value | None:
    """The node's value, computed now by its op's reference from its constant inputs."""
    t = node.types[0]
    if node.op.ref is None or node.op.needs_ctx or not all(isinstance(d, int) for d in t.shape):
        return None  # ops run by the caller or drawing random numbers, symbolic shapes
    if int(np.prod(t.shape)) > FOLD_LIMIT:
        return None
    arrays = [constant_value(b.graph.node(v)) for v in node.inputs]
    value = np.asarray(node.op.ref(*arrays, **node.attrs))
    return b.constant(value.astype(t.dtype.np), t.dtype)


X = P(name="x")
ONE, TWO, ZERO, CONST = P(value=1), P(value=2), P(value=0), P(const=True)
INNER = P(TRANSPOSE, X, name="inner")

SIMPLIFY = Rules([
    (P(MUL, X, ONE), same_type),                  # x * 1 == x
    (P(ADD, X, ZERO), same_type),                 # x + 0 == x
    (P(SUB, X, ZERO), same_type),                 # x - 0 == x
    (P(DIV, X, ONE), same_type),                  # x / 1 == x
    (P(POW, X, ONE), same_type),                  # x ** 1 == x
    (P(POW, X, TWO), square),                     # x ** 2 == x * x (batch norm's variance)
    (P(CAST, X), same_type),                      # cast(x, dtype of x) == x
    (P(RESHAPE, X), same_type),                   # reshape(x, shape of x) == x
    (P(RESHAPE, P(RESHAPE, X)), same_type),       # reshape(reshape(x, s), shape of x) == x
    (P(BROADCAST_TO, X), same_type),              # broadcast_to(x, shape of x) == x
    (P(TRANSPOSE, X), identity_perm),             # transpose(x, [0, 1, ..., n-1]) == x
    (P(TRANSPOSE, INNER), inverse_perms),         # transpose(transpose(x, p), p^-1) == x
    (P(each=CONST), fold),                        # op(constants) == op.ref(constants)
])
