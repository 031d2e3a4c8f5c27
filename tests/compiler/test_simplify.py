"""The simplify pass: each rewrite on its own, and the whole pass leaves every model's results
unchanged (interpreter before vs after)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.compiler.passes.simplify import simplify
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.decompose import decompose
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
    folded = next(n for n in s if n.op.name == "constant").attrs["value"]
    np.testing.assert_array_equal(folded, np.exp(np.ones(3, np.float32)))


@pytest.mark.parametrize("fn, expected", [
    (lambda b, x: b.mul(x, b.full(shape=(), value=1.0)), {"input": 1}),
    (lambda b, x: b.add(b.full(shape=(), value=0.0), x), {"input": 1}),
    (lambda b, x: b.transpose(b.transpose(x, perm=(1, 0)), perm=(1, 0)), {"input": 1}),
    (lambda b, x: b.reshape(b.reshape(x, shape=(6,)), shape=(2, 3)), {"input": 1}),
    (lambda b, x: b.cast(x, dtype=DType.f32), {"input": 1}),
    (lambda b, x: b.mul(x, b.full(shape=(2, 3), value=2.0)),
     {"input": 1, "full": 1, "mul": 1}),  # not an identity
])
def test_identities(fn, expected):
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
