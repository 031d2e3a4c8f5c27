"""Rewrite rules as data (STYLE §4): patterns over IR nodes, tables of (pattern, function) rules
indexed by root op, and `graph_rewrite`, which applies a table to a fixpoint.

Anchors: tinygrad's `UPat`, `PatternMatcher` and `graph_rewrite`; TVM's dataflow pattern
rewrites. A pattern names an op (an `OpDef`, by identity), a `Trait` of ops, or nothing (any
value); its inputs are patterns too. Ops with `Trait.COMMUTATIVE` match both operand orders, so
a table writes `x * 1 == x` once. A rule's function gets the values its pattern names as keyword
arguments and, if its signature asks, `node` (the node being rewritten: its op, attributes, types
and inputs, which are in the new graph while it is not yet), `b` (a `Builder` on the new graph,
at the node's span) and `ctx` (the caller's state: rules are plain functions, never closures, so
each can be tested alone); it returns the replacement value, of the node's type, or None.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.opdef import OpDef, Trait
from dlg.ir.ops.source import CONSTANT, FULL
from dlg.ir.rewrite import copy_graph
from dlg.ir.types import TensorType

Captures = dict[str, Value]
STEPS_PER_NODE = 8  # rule applications a walk may make per node before it is called a runaway
EXTRA = ("b", "node", "ctx")  # what a rule's function may ask for besides its captures


class RewriteError(RuntimeError):
    """Rules that keep firing (two undoing each other) or change a value's type: a compiler bug,
    not a user error."""


class P:
    """A pattern. `P(MUL, P(name="x"), P(value=1))` matches `x * 1` and `1 * x`.

    `op`: an OpDef, a Trait, or None for any op. `inputs`: one pattern per input (none given:
    any inputs). `each`: a pattern every input matches (at least one input). `const`: the value
    is a constant; `value`: a constant equal to `value` everywhere. `name`: capture the value
    (a name used twice must capture the same value).
    """

    def __init__(self, op: OpDef | Trait | None = None, *inputs: P, name: str | None = None,
                 each: P | None = None, const: bool = False, value: float | None = None):
        assert not (inputs and each), "a pattern gives its inputs or `each`, not both"
        self.op, self.inputs, self.name, self.each = op, inputs, name, each
        self.const, self.value = const or value is not None, value

    def accepts(self, op: OpDef) -> bool:
        return self.op is None or self.op is op or (
            isinstance(self.op, Trait) and self.op in op.traits)

    def names(self) -> set[str]:
        """Every name this pattern and its sub-patterns capture."""
        subs = [*self.inputs, *([self.each] if self.each is not None else [])]
        return ({self.name} if self.name else set()).union(*(p.names() for p in subs))

    def match(self, g: Graph, node: Node, caps: Captures) -> Captures | None:
        """`caps` extended by what this pattern captures in `node` (its inputs read from `g`), or
        None if it does not match. The node itself need not be in `g` yet."""
        if not self.accepts(node.op) or (self.const and not _is_constant(node, self.value)):
            return None
        if self.each is not None:
            got: Captures | None = caps if node.inputs else None
            for v in node.inputs:
                got = self.each.match_value(g, v, got) if got is not None else None
            return got
        if not self.inputs:
            return caps
        if len(node.inputs) != len(self.inputs):
            return None
        orders = [node.inputs]
        if Trait.COMMUTATIVE in node.op.traits:
            orders.append(node.inputs[::-1])
        for order in orders:
            got = caps
            for p, v in zip(self.inputs, order):
                got = p.match_value(g, v, got) if got is not None else None
            if got is not None:
                return got
        return None

    def match_value(self, g: Graph, v: Value, caps: Captures) -> Captures | None:
        if self.name is not None and caps.get(self.name, v) != v:
            return None
        wildcard = self.op is None and not self.inputs and self.each is None and not self.const
        got = caps if wildcard else self.match(g, g.node(v), caps)
        return {**got, self.name: v} if got is not None and self.name is not None else got

    def __repr__(self) -> str:  # how errors name a rule: mul(x, 1)
        if self.const:
            head = "const" if self.value is None else f"{self.value:g}"
        else:
            head = self.op.name if self.op is not None else self.name or "_"
        args = [repr(p) for p in self.inputs] or ([f"{self.each!r}..."] if self.each else [])
        return f"{head}({', '.join(args)})" if args else head


def constant_value(node: Node) -> np.ndarray | None:
    """A constant's value (its op's reference at its attributes), None for any other node and
    for a fill of symbolic shape."""
    return node.op.ref(**node.attrs) if _is_constant(node) else None


def _is_constant(node: Node, value: float | None = None) -> bool:
    if node.op not in (CONSTANT, FULL) or not all(isinstance(d, int) for d in node.types[0].shape):
        return False
    if value is None:
        return True
    a = node.op.ref(**node.attrs)
    return a.size > 0 and bool(np.all(a == value))


@dataclass(frozen=True)
class Rule:
    pattern: P
    fn: Callable[..., Value | None]
    params: tuple[str, ...]  # what fn is called with: captures and any of EXTRA

    @classmethod
    def of(cls, pattern: P, fn: Callable[..., Value | None]) -> Rule:
        if getattr(fn, "__closure__", None):
            raise TypeError(f"rule {pattern}: its function is a closure; pass state in ctx")
        if pattern.name is not None:
            raise TypeError(f"rule {pattern}: the root is not captured (the function gets node)")
        params = tuple(inspect.signature(fn).parameters)
        captures = pattern.names()
        if set(params) != captures | (set(EXTRA) & set(params)):
            raise TypeError(f"rule {pattern}: the function takes {', '.join(params)}; it must "
                            f"take the captures ({', '.join(sorted(captures))}) and may take "
                            f"{', '.join(EXTRA)}")
        return cls(pattern, fn, params)


class Rules:
    """A rewrite table: rules tried in order, the first to return a value wins; `+` joins."""

    def __init__(self, table: Iterable[tuple[P, Callable[..., Value | None]] | Rule]):
        self.rules = tuple(r if isinstance(r, Rule) else Rule.of(*r) for r in table)
        self._by_op: dict[OpDef, tuple[Rule, ...]] = {}

    def __add__(self, other: Rules) -> Rules:
        return Rules(self.rules + other.rules)

    def for_op(self, op: OpDef) -> tuple[Rule, ...]:
        """The rules whose root can match a node of `op` (the table indexed by root op)."""
        if op not in self._by_op:
            self._by_op[op] = tuple(r for r in self.rules if r.pattern.accepts(op))
        return self._by_op[op]

    def apply(self, b: Builder, node: Node, ctx: Any = None) -> tuple[Value, Rule] | None:
        """The first rule's replacement of `node` (whose inputs are in `b.graph`), or None."""
        for rule in self.for_op(node.op):
            caps = rule.pattern.match(b.graph, node, {})
            if caps is not None:
                args = {"b": b, "node": node, "ctx": ctx, **caps}
                value = rule.fn(**{k: args[k] for k in rule.params})
                if value is not None:
                    return value, rule
        return None


def graph_rewrite(g: Graph, rules: Rules, ctx: Any = None) -> Graph:
    """`g` rewritten by `rules` to a fixpoint. Bottom-up, as tinygrad's: a node's inputs are
    final before its rules run, and a replacement is matched again; a node equal to an earlier
    one (same op, inputs and attributes) is that node; nodes no output or update needs are
    dropped. When a rule builds more than the node it returns, those nodes get another walk."""
    walk = _Walk(rules, ctx, STEPS_PER_NODE * (len(g) + 1))
    g = _prune(g)
    while True:
        walk.unsettled, walk.seen = False, {}
        g = _prune(copy_graph(g, walk.visit))
        if not walk.unsettled:
            return g


class _Walk:
    """One rewrite's state: the nodes made so far by key (value numbering), the steps taken."""

    def __init__(self, rules: Rules, ctx: Any, max_steps: int):
        self.rules, self.ctx, self.max_steps = rules, ctx, max_steps
        self.seen: dict[tuple, Node] = {}
        self.fired: deque[str] = deque(maxlen=5)
        self.steps = 0
        self.unsettled = False

    def visit(self, b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...]:
        """`node`'s value(s) in the new graph once no rule applies (copy_graph's Replace)."""
        g = b.graph
        node, pending, index = replace(node, inputs=inputs), True, 0  # not in g yet
        while len(node.types) == 1:
            first = len(g)  # nodes are only appended in a walk: ids from `first` on are new
            hit = self.rules.apply(b, node, self.ctx)
            if hit is None:
                break
            value, rule = hit
            self._step(rule, g.type_of(value), node.types[0])
            if value.node < first:  # a value already rewritten
                self.unsettled |= len(g) > first
                return (value,)
            self.unsettled |= len(g) > first + 1
            node, pending, index = g.node(value), False, value.index
        key = _key(node)
        twin = self.seen.get(key) if key is not None else None
        if twin is None:
            twin = g.add_node(node.op, node.inputs, node.attrs, node.types, node.name,
                              node.span, node.backward) if pending else node
            if key is not None:
                self.seen[key] = twin
        return twin.outs if pending else (twin.outs[index],)

    def _step(self, rule: Rule, new: TensorType, old: TensorType) -> None:
        self.steps += 1
        self.fired.append(repr(rule.pattern))
        if new != old:
            raise RewriteError(f"rule {rule.pattern} replaced a {old} value by a {new} one")
        if self.steps > self.max_steps:
            raise RewriteError(f"no fixpoint after {self.max_steps} rewrites; the last rules "
                               f"fired: {', '.join(self.fired)}")


def _key(node: Node) -> tuple | None:
    """What makes two nodes compute the same value; None for arguments and random draws."""
    if Trait.ARGUMENT in node.op.traits or Trait.RANDOM in node.op.traits:
        return None
    attrs = []
    for k, v in sorted(node.attrs.items()):
        if isinstance(v, np.ndarray):
            v = (v.dtype.str, v.shape, v.tobytes())
        elif isinstance(v, Graph):  # a scan body: only the same object is the same body
            v = id(v)
        attrs.append((k, v))
    return node.op, node.inputs, tuple(attrs)


def _prune(g: Graph) -> Graph:
    """Only the nodes an output or update needs, every input (the graph's signature) and every
    param an update writes (its storage, though no node reads it: a statistic that moved to the
    batch's alone, momentum 1)."""
    written = {name for name, _ in g.updates}
    live = (g.ancestors([v for _, v in g.outputs + g.updates]) | {n.id for n in g.inputs}
            | {n.id for n in g.params if n.name in written})
    if len(live) == len(g):
        return g
    out = Graph(g.name, {i: n for i, n in g.nodes.items() if i in live}, span=g.span)
    out.outputs, out.updates = list(g.outputs), list(g.updates)
    return out
