"""The simplify pass: each rule on its own, the table to its fixpoint, and the whole pass leaves
every model's results unchanged (interpreter before vs after)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.compiler.passes.simplify import SIMPLIFY, simplify
from dlg.compiler.patterns import Rules, graph_rewrite
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.decompose import decompose
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.source import CONSTANT
from dlg.runtime.interp import Interpreter
from tests.compiler.test_native import random_batch
from tests.test_models import ALL, MODELS


def graph_with(fn, **types: str) -> Graph:
    g = Graph("g")
    b = Builder(g)
    args = {k: b.input(k, TensorType.parse(t)) for k, t in types.items()}
    out = fn(b, **args)
    for i, v in enumerate(out if isinstance(out, tuple) else (out,)):
        g.set_output(f"y{i}", v)
    return g


def test_cse_merges_duplicate_subgraphs():
    g = graph_with(lambda b, x: b.add(b.exp(b.neg(x)), b.exp(b.neg(x))), x="f32[3]")
    assert simplify(g).op_counts() == {"input": 1, "neg": 1, "exp": 1, "add": 1}


def test_dce_removes_what_no_output_needs():
    g = Graph("g")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[3]"))
    used, unused = (b.param(n, TensorType.parse("f32[3]")) for n in ("used", "unused"))
    g.set_output("loss", b.reduce_sum(b.mul(x, used)))
    b.tanh(unused)  # dead
    gg = grad(g, wrt=["used", "unused"])
    gg.outputs = [(k, v) for k, v in gg.outputs if k != "grad.unused"]
    counts = simplify(gg).op_counts()
    assert "tanh" not in counts and counts["param"] == 1


def test_constants_fold_with_the_ops_reference():
    g = graph_with(lambda b, x: b.mul(x, b.exp(b.full(shape=(3,), value=1.0, dtype=DType.f32))),
                   x="f32[3]")
    s = simplify(g)
    assert "exp" not in s.op_counts() and s.op_counts()["constant"] == 1
    folded = next(n for n in s if n.op is CONSTANT).attrs["value"]
    np.testing.assert_array_equal(folded, np.exp(np.ones(3, np.float32)))


def full(b, value, shape=()):
    return b.full(shape=shape, value=value, dtype=DType.f32)


# Each rule of SIMPLIFY, alone, on a graph of its pattern: (graph on x: f32[2,3], op counts after)
EACH_RULE = {
    "mul(x, 1)": (lambda b, x: b.mul(x, full(b, 1.0)), {"input": 1}),
    "add(x, 0)": (lambda b, x: b.add(x, full(b, 0.0)), {"input": 1}),
    "sub(x, 0)": (lambda b, x: b.sub(x, full(b, 0.0)), {"input": 1}),
    "div(x, 1)": (lambda b, x: b.div(x, full(b, 1.0)), {"input": 1}),
    "pow(x, 1)": (lambda b, x: b.pow(x, full(b, 1.0)), {"input": 1}),
    "pow(x, 2)": (lambda b, x: b.pow(x, full(b, 2.0)), {"input": 1, "mul": 1}),
    "cast(x)": (lambda b, x: b.cast(x, dtype=DType.f32), {"input": 1}),
    "reshape(x)": (lambda b, x: b.reshape(x, shape=(2, 3)), {"input": 1}),
    "reshape(reshape(x))": (lambda b, x: b.reshape(b.reshape(x, shape=(6,)), shape=(2, 3)),
                            {"input": 1}),
    "broadcast_to(x)": (lambda b, x: b.broadcast_to(x, shape=(2, 3)), {"input": 1}),
    "transpose(x)": (lambda b, x: b.transpose(x, perm=(0, 1)), {"input": 1}),
    "transpose(transpose(x))": (lambda b, x: b.transpose(b.transpose(x, perm=(1, 0)),
                                                         perm=(1, 0)), {"input": 1}),
    "_(const...)": (lambda b, x: b.mul(x, b.exp(full(b, 0.0))),
                    {"input": 1, "mul": 1, "constant": 1}),
}


def test_every_rule_has_a_row():
    assert sorted(EACH_RULE) == sorted(repr(r.pattern) for r in SIMPLIFY.rules)


@pytest.mark.parametrize("rule", SIMPLIFY.rules, ids=lambda r: repr(r.pattern))
def test_each_rule_fires_on_its_pattern(rule):
    fn, expected = EACH_RULE[repr(rule.pattern)]
    assert graph_rewrite(graph_with(fn, x="f32[2, 3]"), Rules([rule])).op_counts() == expected


# The whole table: commuted forms, look-alikes that are no identity, rules enabling others
@pytest.mark.parametrize("fn, expected", [
    (lambda b, x: b.mul(full(b, 1.0), x), {"input": 1}),  # 1 * x: mul commutes
    (lambda b, x: b.add(full(b, 0.0), x), {"input": 1}),  # 0 + x: add commutes
    (lambda b, x: b.sub(full(b, 0.0), x), {"input": 1, "full": 1, "sub": 1}),
    (lambda b, x: b.div(full(b, 1.0), x), {"input": 1, "full": 1, "div": 1}),
    (lambda b, x: b.mul(x, full(b, 2.0, (2, 3))), {"input": 1, "full": 1, "mul": 1}),
    (lambda b, x: b.pow(full(b, 2.0), x), {"input": 1, "full": 1, "pow": 1}),  # 2 ** x
    (lambda b, x: b.pow(x, full(b, 3.0)), {"input": 1, "full": 1, "pow": 1}),
    (lambda b, x: b.transpose(b.transpose(b.reshape(x, shape=(1, 2, 3)), perm=(1, 2, 0)),
                              perm=(1, 2, 0)), {"input": 1, "reshape": 1, "transpose": 2}),
    (lambda b, x: b.transpose(b.transpose(b.reshape(x, shape=(1, 2, 3)), perm=(1, 2, 0)),
                              perm=(2, 0, 1)), {"input": 1, "reshape": 1}),
    (lambda b, x: b.reshape(b.reshape(x, shape=(6,)), shape=(3, 2)), {"input": 1, "reshape": 2}),
    # folding exp(0) makes the 1 that removes the mul
    (lambda b, x: b.mul(x, b.exp(full(b, 0.0))), {"input": 1}),
    # two folds make the 0 and the 1 that remove the add and the mul: (x + (1 - e^0)) * (2 - e^0)
    (lambda b, x: b.mul(b.add(x, b.sub(full(b, 1.0), b.exp(full(b, 0.0)))),
                        b.sub(full(b, 2.0), b.exp(full(b, 0.0)))), {"input": 1}),
    # removing the casts leaves two equal exps, which merge
    (lambda b, x: b.add(b.exp(b.cast(x, dtype=DType.f32)), b.exp(x)),
     {"input": 1, "exp": 1, "add": 1}),
])
def test_simplify_reaches_the_fixpoint(fn, expected):
    assert simplify(graph_with(fn, x="f32[2, 3]")).op_counts() == expected


def test_broadcasting_identities_keep_the_type():
    g = graph_with(lambda b, x: b.mul(x, b.full(shape=(4, 3), value=1.0)), x="f32[3]")
    assert simplify(g).type_of(simplify(g).outputs[0][1]) == TensorType.parse("f32[4, 3]")


def test_random_draws_are_never_merged():
    g = graph_with(lambda b: (b.random_uniform(shape=(3,)), b.random_uniform(shape=(3,))))
    assert simplify(g).op_counts()["random_uniform"] == 2


@pytest.mark.parametrize("name", ALL)
def test_models_training_graphs_compute_the_same_after_simplify(name):
    m = dlg.load(MODELS / name)
    g = decompose(grad(m.train_graph))
    s = simplify(g)
    assert len(s) < len(g)
    batch = random_batch(m, g, 3, 0)
    before, _ = Interpreter(0).run(g, batch, m.params)
    after, _ = Interpreter(0).run(s, batch, m.params)
    for k in before:
        np.testing.assert_allclose(after[k], before[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_scan_bodies_are_simplified_too():
    """A reverse scan's body is a whole gradient: its identities go as the graph's do (a reshape
    to the same shape was a copy kernel at every step of an LSTM's backward pass)."""
    m = dlg.loads("""model S {
    input x: f32[T, N, 4]
    scan (x_t in x, axis=0) carry (h = zeros(shape(x, 1), 4)) {
        h = reshape(h + x_t, (shape(x, 1), 4)) * 1.0
        emit out = h
    }
    output y = out
}""")
    body = next(n for n in simplify(m.graph) if n.op is SCAN).attrs["body"]
    assert body.op_counts() == {"input": 2, "add": 1}
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(dlg.compile(m)(x), np.cumsum(x, axis=0), rtol=1e-6)
