"""sink: a scan carry that only adds a per-step matmul or sum to itself is summed once after the
loop. The graph changes as intended (the running sums leave the loop, nothing else does), and
the interpreter on the unsunk graph is the oracle for the sunk one, interpreted and compiled."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.sink import sink
from dlg.compiler.pipeline import compile_graph
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.linalg import MATMUL
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import build_train_step
from tests.test_models import MODELS

USER_SCAN = """
model M {
    input x: f32[T, N, 4]
    input y: f32[T, N, 3]
    param u: f32[4, 4] = normal(0, 0.5)
    scan (x_t in x, y_t in y) carry (h = zeros(shape(x, 1), 4), w = zeros(3, 4), k = zeros(3),
                                     r = zeros(shape(x, 1)), m = zeros(4), q = zeros(4)) {
        h = tanh(h @ u + x_t)
        w = w + transpose(transpose(h, 0, 1) @ y_t, 0, 1)  # a weight's gradient: sunk
        k = k + sum(y_t * 2.0, axis=0)     # a bias's: sunk
        r = sum(h, axis=1) + r             # summed along another axis: sunk too
        m = m + sum(h, axis=0)             # its running value is emitted: stays
        q = q * 0.5 + sum(h, axis=0)       # not a plain sum: stays
        emit z = h
        emit running = m
    }
    output zs = z
    output ms = running
    output sums = sum(w) + sum(k) + sum(r) + sum(q)
    output w_final = w
    output r_final = r
}
"""


def scans(g: Graph) -> list[Node]:
    return [n for n in g if n.op is SCAN]


def inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((5, n, 4)).astype(np.float32),
            "y": rng.standard_normal((5, n, 3)).astype(np.float32)}


def test_only_the_plain_running_sums_leave_the_loop():
    g = dlg.loads(USER_SCAN).graph
    (before,) = scans(g)
    (after,) = scans(sink(g))
    assert before.attrs["n_carry"] == 6
    assert after.attrs["n_carry"] == 3  # h, m and q stay
    body = after.attrs["body"]
    assert [p.name for p in body.inputs[:3]] == ["h", "m", "q"]
    assert [n.op for n in body].count(MATMUL) == 1  # h @ u only


def test_a_scan_without_running_sums_is_left_as_it_is():
    once = sink(dlg.loads(USER_SCAN).graph)
    assert sink(once) is once


@pytest.mark.parametrize("n", [1, 7])
def test_sunk_sums_compute_the_same_interpreted_and_compiled(n):
    m = dlg.loads(USER_SCAN)
    want, _ = Interpreter().run(m.graph, inputs(n, n), m.params)
    sunk = sink(m.graph)
    got, _ = Interpreter().run(sunk, inputs(n, n), m.params)
    compiled = NativeGraph(m.graph)(inputs(n, n), dict(m.params))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(compiled[k], want[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_the_recurrent_weights_gradient_is_one_gemm_after_the_reverse_scan(name):
    m = dlg.load(MODELS / f"{name}.dlg")
    step, _ = build_train_step(m.train_graph, m.train_spec)
    final = compile_graph(step, loss="loss").graph
    forward, backward = scans(final)
    assert backward.attrs["reverse"]
    nc = backward.attrs["n_carry"]
    carried = [tuple(map(str, final.type_of(v).shape)) for v in backward.inputs[:nc]]
    assert carried == [("N", "128")] * nc  # only the state's cotangents: no d W_hh, no d b_hh
    body = backward.attrs["body"]
    assert all(str(body.type_of(n.out).shape[0]) == "N" for n in body if n.op is MATMUL)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_the_backward_reads_the_forward_recurrent_products_instead_of_a_gemm(name):
    m = dlg.load(MODELS / f"{name}.dlg")
    step, _ = build_train_step(m.train_graph, m.train_spec)
    final = compile_graph(step, loss="loss").graph
    weight = f"{name}.weight_hh_l0"
    outside = [n for n in final if n.op is MATMUL and any(
        final.node(v).op.name == "transpose" and final.node(final.node(v).inputs[0]).name == weight
        for v in n.inputs)]
    assert outside == []  # h W_hh^T is not recomputed for all steps before the reverse scan
    forward, backward = scans(final)
    assert [n.op for n in backward.attrs["body"]].count(MATMUL) == 1  # d h = d gates W_hh only
