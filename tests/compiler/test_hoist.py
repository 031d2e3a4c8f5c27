"""hoist: a scan body's carry-independent matmuls (and the elementwise work over them) run once
over the whole sequence. The graph changes as intended (projections leave the loop, nothing
carry-dependent does), and the interpreter on the unhoisted graph is the oracle for the hoisted
one, compiled and interpreted, forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.compiler.passes.hoist import hoist
from dlg.compiler.pipeline import compile_graph
from dlg.ir.compare import graph_diff
from dlg.ir.graph import Graph, Node
from dlg.ir.ops.control import SCAN
from dlg.ir.ops.elementwise import SIGMOID
from dlg.ir.ops.linalg import MATMUL
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from dlg.runtime.training import build_train_step
from tests.compiler.gradcheck import check_gradients, to_f64
from tests.test_models import MODELS

RTOL, ATOL = 1e-4, 1e-5


def scans(g: Graph) -> list[Node]:
    return [n for n in g if n.op is SCAN]


def step_matmuls(scan: Node) -> list[Node]:
    """The matmuls of `scan`'s body that depend on no carry: what hoist moves out."""
    body = scan.attrs["body"]
    dependent = {p.id for p in body.inputs[:scan.attrs["n_carry"]]}
    for n in body:
        if any(v.node in dependent for v in n.inputs):
            dependent.add(n.id)
    return [n for n in body if n.op is MATMUL and n.id not in dependent]


def reads_param(g: Graph, node: Node, name: str) -> bool:
    return any(g.node(v).name == name for v in node.inputs)


def whole_sequence_matmuls(g: Graph) -> list[Node]:
    """The matmuls outside the loops over all 28 steps' rows of the batch at once."""
    return [n for n in g if n.op is MATMUL
            and any(str(d) == "28*N" for v in n.inputs for d in g.type_of(v).shape)]


# ---- the recurrent layers ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_the_input_projection_is_one_matmul_before_the_loop(name):
    g = dlg.load(MODELS / f"{name}.dlg").graph
    (before,) = scans(g)
    assert len(step_matmuls(before)) == 1
    hoisted = hoist(g)
    (scan,) = scans(hoisted)
    assert step_matmuls(scan) == []
    assert [n.op for n in scan.attrs["body"]].count(MATMUL) == 1  # h @ W_hh^T only
    weight = f"{name}.weight_ih_l0"
    assert not reads_param(hoisted, scan, weight)
    assert not reads_param(hoisted, scan, f"{name}.bias_ih_l0")  # its bias went with it
    (projection,) = whole_sequence_matmuls(hoisted)  # every step's rows in one GEMM
    assert hoisted.node(projection.inputs[1]).inputs[0] == hoisted.params[0].out  # W_ih^T


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_the_projections_gradient_is_one_matmul_after_the_reverse_scan(name):
    m = dlg.load(MODELS / f"{name}.dlg")
    step, _ = build_train_step(m.train_graph, m.train_spec)
    forward, backward = scans(step)
    assert backward.attrs["reverse"]
    weight = f"{name}.weight_ih_l0"
    for scan in (forward, backward):  # no per-step accumulation of d W_ih in the loop
        assert not reads_param(step, scan, weight)
    # forward projection, d x and d W_ih: three GEMMs over all 28*N rows, outside the loops
    assert len(whole_sequence_matmuls(step)) == 3


def test_the_scan_reads_the_projection_where_its_gemm_wrote_it():
    program = compile_graph(dlg.load(MODELS / "lstm.dlg").graph).program
    (gemm,) = [k for k in program.kernels if "matmul" in k.name and "bias_ih" in str(k.reads)]
    (scan,) = [k for k in program.kernels if k.name.endswith("_scan")]
    assert gemm.writes[0] in (*scan.reads, *scan.writes)  # no copy from [28*N, 512] to [28, N, 512]


def test_a_graph_without_hoistable_work_is_unchanged():
    m = dlg.loads(USER_SCAN.replace("x_t @ w + b", "h @ w + b"))
    assert graph_diff(hoist(m.graph), m.graph) == []


# ---- a user-written scan ----------------------------------------------------------------------
USER_SCAN = """
model M {
    input x: f32[T, N, 4]
    param w: f32[4, 4] = normal(0, 0.5)
    param u: f32[4, 4] = normal(0, 0.5)
    param b: f32[4] = normal(0, 0.5)
    scan (x_t in x, reverse=true) carry (h = zeros(shape(x, 1), 4), k = zeros(4)) {
        p = x_t @ w + b             # a projection and its bias: hoisted
        q = (h + x_t) @ u           # reads the carry: stays
        s = sigmoid(x_t)            # a slice's elementwise alone: stays (no gain outside)
        h = tanh(p + q * s)
        k = k + sum(p, axis=0)      # a carry fed by hoisted work
        emit y = h
    }
    output ys = y
    output loss = mean(y * y) + sum(k)
}
"""


def test_user_scan_hoists_only_carry_independent_work():
    g = hoist(dlg.loads(USER_SCAN).graph)
    (scan,) = scans(g)
    body = scan.attrs["body"]
    assert step_matmuls(scan) == []
    (kept,) = [n for n in body if n.op is MATMUL]  # (h + x_t) @ u
    assert body.node(kept.inputs[0]).inputs[0] == body.inputs[0].out  # reads the carry h
    assert any(n.op is SIGMOID for n in body)
    assert [p.name for p in body.inputs[:4]] == ["h", "k", "x_t", "p_t"]  # p is a sequence
    assert [g.node(v).name for v in scan.inputs[4:]] == ["u"]  # w and b are read outside
    assert scan.attrs["n_seq"] == 2 and scan.attrs["reverse"]


def user_inputs(n: int, seed: int, dtype=np.float32) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((5, n, 4)).astype(dtype)}


@pytest.mark.parametrize("n", [1, 7])
def test_user_scan_hoisted_computes_the_same_interpreted_and_compiled(n):
    m = dlg.loads(USER_SCAN)
    want, _ = Interpreter().run(m.graph, user_inputs(n, n), m.params)
    got, _ = Interpreter().run(hoist(m.graph), user_inputs(n, n), m.params)
    compiled = NativeGraph(m.graph)(user_inputs(n, n), dict(m.params))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(compiled[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize("n", [1, 7])
def test_user_scan_gradients_through_the_hoisted_graph(n):
    m = dlg.loads(USER_SCAN)
    wrt = list(m.params)
    want, _ = Interpreter().run(grad(m.graph, "loss", wrt=wrt), user_inputs(n, n), m.params)
    hoisted = grad(hoist(m.graph), "loss", wrt=wrt)
    compiled = NativeGraph(hoisted)(user_inputs(n, n), dict(m.params))
    for k in want:
        np.testing.assert_allclose(compiled[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)
    params = {k: v.astype(np.float64) for k, v in m.params.items()}
    check_gradients(to_f64(hoist(m.graph)), user_inputs(n, n, np.float64), params, wrt=wrt,
                    loss="loss")


# ---- stacked, bidirectional, projected layers ---------------------------------------------------
LAYERS = {  # the layer, its scans (layers x directions)
    "lstm": ("LSTM(3, 5, num_layers=2, bidirectional=true, proj_size=2)", 4),
    "gru": ("GRU(3, 5, num_layers=2, bidirectional=true, batch_first=true)", 4),
    "rnn": ("RNN(3, 5, num_layers=2, nonlinearity=\"relu\", bias=false)", 2),
}


def layer_model(layer: str) -> dlg.Model:
    return dlg.loads(f"""
    model M {{
        input x: f32[A, B, 3]
        layer rnn = {layer}
        seq, state = rnn(x)
        output y = seq
        output loss = mean(seq * seq)
    }}
    """)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_every_scan_of_a_deep_layer_is_hoisted(kind):
    layer, count = LAYERS[kind]
    g = hoist(layer_model(layer).graph)
    assert len(scans(g)) == count
    assert all(step_matmuls(s) == [] for s in scans(g))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_deep_layers_compile_and_differentiate_like_the_interpreter(kind):
    m = layer_model(LAYERS[kind][0])
    wrt = list(m.params)
    compiled = NativeGraph(grad(hoist(m.graph), "loss", wrt=wrt))
    oracle = grad(m.graph, "loss", wrt=wrt)
    for shape in ((1, 7, 3), (7, 1, 3)):  # one step of 7 (batch 1 when batch_first), and back
        x = {"x": np.random.default_rng(shape[0]).standard_normal(shape).astype(np.float32)}
        want, _ = Interpreter().run(oracle, x, m.params)
        got = compiled(x, dict(m.params))
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)
