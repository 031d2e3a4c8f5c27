"""The rewrite-pattern matcher: what each pattern form matches (tables of rows), how a table is
checked when it is made, and how `graph_rewrite` reaches its fixpoint or says why it cannot."""

from __future__ import annotations

import pytest

from dlg.compiler.patterns import P, RewriteError, Rules, graph_rewrite
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.ops.elementwise import ADD, EXP, MUL, NEG, SUB
from dlg.ir.ops.opdef import Trait
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.shapes import parse_dim

X, Y = P(name="x"), P(name="y")
ONE, CONST = P(value=1), P(const=True)


def graph_with(fn, **types: str) -> Graph:
    g = Graph("g")
    b = Builder(g)
    args = {k: b.input(k, TensorType.parse(t)) for k, t in types.items()}
    for i, v in enumerate(fn(b, **args)):
        g.set_output(f"y{i}", v)
    return g


def one(b: Builder, value: float = 1.0, shape: tuple = ()):
    return b.full(shape=shape, value=value, dtype=DType.f32)


# (pattern, graph: (builder, x, y) -> root, captures as input names, or None: no match)
MATCHES = [
    (P(MUL, X, ONE), lambda b, x, y: b.mul(x, one(b)), {"x": "x"}),
    (P(MUL, X, ONE), lambda b, x, y: b.mul(one(b), x), {"x": "x"}),  # mul commutes
    (P(MUL, X, ONE), lambda b, x, y: b.mul(x, one(b, 2.0)), None),
    (P(MUL, X, ONE), lambda b, x, y: b.add(x, one(b)), None),
    (P(SUB, X, ONE), lambda b, x, y: b.sub(one(b), x), None),  # sub does not commute
    (P(ADD, X, X), lambda b, x, y: b.add(x, x), {"x": "x"}),
    (P(ADD, X, X), lambda b, x, y: b.add(x, y), None),  # one name, one value
    (P(ADD, X, P(NEG, Y)), lambda b, x, y: b.add(b.neg(y), x), {"x": "x", "y": "y"}),
    (P(Trait.ELEMENTWISE, X), lambda b, x, y: b.exp(x), {"x": "x"}),
    (P(Trait.ELEMENTWISE, X), lambda b, x, y: b.reduce_sum(x), None),
    (P(EXP), lambda b, x, y: b.exp(x), {}),  # no inputs given: any inputs
    (P(each=CONST), lambda b, x, y: b.add(one(b), b.constant(2.0, DType.f32)), {}),
    (P(each=CONST), lambda b, x, y: b.add(one(b), x), None),
    (P(each=CONST), lambda b, x, y: one(b), None),  # a source has no inputs to be constant
    (P(value=1), lambda b, x, y: b.constant([1.0, 1.0], DType.f32), {}),
    (P(value=1), lambda b, x, y: b.constant([1.0, 2.0], DType.f32), None),
    (P(value=1), lambda b, x, y: b.full(shape=(parse_dim("N"),), value=1.0), None),  # symbolic
]


@pytest.mark.parametrize("pattern, build, captures", MATCHES,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(MATCHES)])
def test_pattern_matches(pattern, build, captures):
    g = Graph("g")
    b = Builder(g)
    x, y = (b.input(n, TensorType.parse("f32[3]")) for n in ("x", "y"))
    got = pattern.match(g, g.node(build(b, x, y)), {})
    names = {n.out: n.name for n in g.inputs}
    assert (None if got is None else {k: names[v] for k, v in got.items()}) == captures


def test_rules_are_indexed_by_root_op_in_table_order():
    table = Rules([(P(MUL, X, ONE), lambda x: x), (P(ADD, X, X), lambda x: x),
                   (P(Trait.COMMUTATIVE, X, Y), lambda x, y: None), (P(each=CONST), lambda: None)])
    assert [repr(r.pattern) for r in table.for_op(MUL)] == [
        "mul(x, 1)", "COMMUTATIVE(x, y)", "_(const...)"]
    assert [repr(r.pattern) for r in table.for_op(REDUCE_SUM)] == ["_(const...)"]
    assert len((table + table).rules) == 8


def _closure():
    n = 1
    return lambda x: x if n else None


@pytest.mark.parametrize("pattern, fn, message", [
    (P(NEG, X), _closure(), "closure"),
    (P(NEG, X, name="n"), lambda x: x, "root is not captured"),
    (P(NEG, X), lambda y: y, "must take the captures"),
    (P(ADD, X, Y), lambda x: x, "must take the captures"),
    (P(NEG, X), lambda x, graph: x, "must take the captures"),
])
def test_bad_rules_are_refused_when_the_table_is_made(pattern, fn, message):
    with pytest.raises(TypeError, match=message):
        Rules([(pattern, fn)])


def test_a_replacement_is_matched_again():
    rules = Rules([(P(SUB, P(value=0), X), lambda b, x: b.neg(x)),  # 0 - x == -x
                   (P(NEG, P(NEG, X)), lambda x: x)])                 # -(-x) == x
    g = graph_with(lambda b, x: (b.exp(b.sub(b.full(shape=(), value=0.0), b.neg(x))),), x="f32[3]")
    assert graph_rewrite(g, rules).op_counts() == {"input": 1, "exp": 1}


def test_nodes_a_rule_builds_under_its_result_are_rewritten_too():
    rules = Rules([(P(SUB, X, Y), lambda b, x, y: b.add(x, b.neg(y))),  # x - y == x + -y
                   (P(NEG, P(NEG, X)), lambda x: x)])                    # -(-x) == x
    g = graph_with(lambda b, x, y: (b.sub(x, b.neg(y)),), x="f32[3]", y="f32[3]")
    assert graph_rewrite(g, rules).op_counts() == {"input": 2, "add": 1}


def test_equal_nodes_merge_and_dead_nodes_go():
    g = graph_with(lambda b, x: (b.add(b.exp(x), b.exp(x)),), x="f32[3]")
    b = Builder(g)
    b.neg(g.inputs[0].out)  # dead
    assert graph_rewrite(g, Rules([])).op_counts() == {"input": 1, "exp": 1, "add": 1}


@pytest.mark.parametrize("rules, message", [
    (Rules([(P(MUL, X, Y), lambda b, x, y: b.mul(y, x))]), r"mul\(x, y\), mul\(x, y\)"),
    (Rules([(P(NEG, X), lambda b, x: b.neg(b.neg(x)))]), r"neg\(x\)"),
])
def test_rules_that_keep_firing_stop_at_the_step_cap_naming_them(rules, message):
    g = graph_with(lambda b, x, y: (b.mul(b.neg(x), y),), x="f32[3]", y="f32[3]")
    with pytest.raises(RewriteError, match="no fixpoint after .* last rules fired: .*" + message):
        graph_rewrite(g, rules)


def test_a_rule_may_not_change_the_type():
    rules = Rules([(P(ADD, X, Y), lambda x, y: x)])
    g = graph_with(lambda b, x, y: (b.add(x, y),), x="f32[3]", y="f32[2, 3]")
    with pytest.raises(RewriteError,
                       match=r"add\(x, y\) replaced a f32\[2,3\] value by a f32\[3\]"):
        graph_rewrite(g, rules)


def test_rules_get_ctx():
    seen: list[str] = []
    rules = Rules([(P(EXP, X), lambda node, ctx, x: ctx.append(node.op.name))])
    graph_rewrite(graph_with(lambda b, x: (b.exp(x),), x="f32[3]"), rules, ctx=seen)
    assert seen == ["exp"]
