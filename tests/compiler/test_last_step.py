"""last_step: a scan's per-step output read only at its last step is its final carry. The graph
changes as intended (the stacked output leaves the scan only when nothing else reads it), and
the interpreter on the graph before the pass is the oracle for the graph after it, compiled and
interpreted, forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.compiler.passes.last_step import last_step
from dlg.ir.compare import graph_diff
from dlg.ir.graph import Graph
from dlg.ir.ops.control import SCAN
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tests.test_models import MODELS

RTOL, ATOL = 1e-4, 1e-5


def stacked_outputs(g: Graph) -> list[int]:
    """Per scan, how many per-step outputs it stacks."""
    return [len(n.outs) - n.attrs["n_carry"] for n in g if n.op is SCAN]


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_a_classifier_reads_its_final_hidden_state(name):
    g = dlg.load(MODELS / f"{name}.dlg").graph
    assert stacked_outputs(g) == [1]
    assert stacked_outputs(last_step(g)) == [0]


def layer_model(layer: str, head: str) -> dlg.Model:
    return dlg.loads(f"""
    model M {{
        input x: f32[A, B, 3]
        layer rnn = {layer}
        seq, state = rnn(x)
        output y = {head}
        output loss = mean(y * y)
    }}
    """)


CASES = {  # (layer, how the output is read, stacked outputs left per scan)
    "batch-first-last": ("GRU(3, 5, batch_first=true)", "seq[:, -1]", [0]),
    "time-first-last": ("LSTM(3, 5)", "seq[-1]", [0]),
    "last-step-kept-dims": ("RNN(3, 5, batch_first=true)", "seq[:, -1:, :] * 2.0", [0]),
    "two-layers": ("LSTM(3, 5, num_layers=2, batch_first=true)", "seq[:, -1]", [1, 0]),
    "another-step": ("GRU(3, 5, batch_first=true)", "seq[:, -2]", [1]),
    "every-step-too": ("GRU(3, 5, batch_first=true)", "seq[:, -1] + mean(seq, axis=1)", [1]),
    "reverse-direction": ("GRU(3, 5, batch_first=true, bidirectional=true)", "seq[:, 0]", [1, 1]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_rewrite_agrees_with_the_interpreter_forward_and_gradients(case):
    layer, head, left = CASES[case]
    m = layer_model(layer, head)
    rewritten = last_step(m.graph)
    assert stacked_outputs(rewritten) == left
    wrt = list(m.params)
    oracle = grad(m.graph, "loss", wrt=wrt)
    compiled = NativeGraph(grad(rewritten, "loss", wrt=wrt))
    for shape in ((2, 4, 3), (6, 2, 3)):
        x = {"x": np.random.default_rng(shape[0]).standard_normal(shape).astype(np.float32)}
        want, _ = Interpreter().run(oracle, x, m.params)
        interpreted, _ = Interpreter().run(grad(rewritten, "loss", wrt=wrt), x, m.params)
        got = compiled(x, dict(m.params))
        for k in want:
            np.testing.assert_allclose(interpreted[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
            np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_a_graph_whose_stacked_output_is_returned_is_unchanged():
    m = layer_model("GRU(3, 5, batch_first=true)", "seq")
    assert graph_diff(last_step(m.graph), m.graph) == []


def test_a_traced_pytorch_classifier_loses_its_stacked_output():
    """nn.LSTM(batch_first=True) then out[:, -1, :], as PyTorch programs write it."""
    class Net(dlg.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = dlg.nn.LSTM(3, 6, batch_first=True)
            self.fc = dlg.nn.Linear(6, 2)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1, :])
    net = Net()
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    traced = dlg.trace(net, x)
    assert stacked_outputs(last_step(traced.graph)) == [0]
    want = net(dlg.tensor(x)).detach().numpy()
    np.testing.assert_allclose(dlg.compile(traced)(x), want, rtol=RTOL, atol=ATOL)


REVERSE_SCAN = """
model M {
    input x: f32[5, N, 4]
    param w: f32[4, 4] = normal(0, 0.5)
    scan (x_t in x, reverse=true) carry (h = zeros(shape(x, 1), 4)) {
        h = tanh(x_t @ w + h)
        emit y = h
    }
    output %s
    output loss = mean(y[%s] * y[%s])
}
"""


@pytest.mark.parametrize("step, left", [("0", [0]), ("4", [1])])
def test_a_reverse_scan_ends_at_its_first_step(step, left):
    m = dlg.loads(REVERSE_SCAN % (f"first = y[{step}]", step, step))
    rewritten = last_step(m.graph)
    assert stacked_outputs(rewritten) == left
    x = {"x": np.random.default_rng(1).standard_normal((5, 3, 4)).astype(np.float32)}
    want, _ = Interpreter().run(grad(m.graph, "loss", wrt=["w"]), x, m.params)
    got = NativeGraph(grad(rewritten, "loss", wrt=["w"]))(x, dict(m.params))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)
