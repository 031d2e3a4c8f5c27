"""The tracer: traced modules give the same results as eager ones, the same graph as the .dlg
file of the same model, a symbolic batch size, and clear errors for untraceable code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.ir.decompose import decompose
from dlg.ir.ops.control import SCAN
from dlg.ir.shapes import Sym
from examples.mnist_convnet import ConvNet  # the reference PyTorch programs' modules
from examples.mnist_mlp import Net
from tests.frontend.test_recurrent import structure

MODELS = Path(__file__).resolve().parents[2] / "models"


def ops(g) -> list[tuple[str, str]]:
    return [(n.op.name, str(n.types[0])) for n in decompose(g)
            if n.op.name not in ("input", "param", "constant")]


@pytest.mark.parametrize("module, dlg_file", [(Net, "mlp.dlg"), (ConvNet, "convnet.dlg")])
def test_traced_module_is_the_dlg_models_graph(module, dlg_file):
    net = module()
    traced = dlg.trace(net, dlg.randn(2, 1, 28, 28))
    written = dlg.load(MODELS / dlg_file)
    assert list(traced.params) == list(written.params)
    assert ops(traced.graph) == ops(written.graph)
    written.load_state_dict(net.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(traced(x), written(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(traced(x), net(dlg.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


class RowClassifier(nn.Module):
    """models/rnn.dlg, gru.dlg and lstm.dlg as a dlg.nn module: an MNIST image read row by row."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind.lower()
        setattr(self, self.kind, getattr(nn, kind)(28, 128, batch_first=True))
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        seq, _ = getattr(self, self.kind)(x)
        return self.fc(seq[:, -1])


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_traced_recurrent_model_is_the_dlg_models_graph(kind):
    """One scan node, the .dlg model's graph op for op (scan bodies included)."""
    net = RowClassifier(kind)
    traced = dlg.trace(net, dlg.randn(2, 28, 28))
    written = dlg.load(MODELS / f"{kind.lower()}.dlg")
    assert [n.op for n in traced.graph].count(SCAN) == 1
    assert structure(traced.graph) == structure(written.graph)
    assert list(traced.params) == list(written.params)
    written.load_state_dict(net.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(traced(x), written(x))
    np.testing.assert_allclose(traced(x), net(dlg.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_batch_size_is_symbolic_and_layers_are_listed():
    m = dlg.trace(ConvNet(), dlg.randn(2, 1, 28, 28))
    assert str(m.inputs["x"]) == "f32[N,1,28,28]"
    assert [c.name for c in m.layer_calls] == ["conv1", "fc1", "fc2"]
    assert m(np.zeros((7, 1, 28, 28), np.float32)).shape == (7, 10)


def test_nodes_carry_the_python_line():
    m = dlg.trace(Net(), dlg.randn(2, 1, 28, 28))
    spans = {n.span.file for n in m.graph if n.span is not None}
    assert any(f.endswith("mnist_mlp.py") for f in spans)  # where Net.forward is written


def test_compile_a_module():
    net = Net()
    exe = dlg.compile(net, dlg.randn(4, 1, 28, 28))
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(exe(x), net(dlg.tensor(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-5)


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # branching on a value: not traceable
            return x
        return -x


class UsesItem(nn.Module):
    def forward(self, x):
        return x * x.mean().item()


class UsesNumpy(nn.Module):
    def forward(self, x):
        return x * float(x.numpy().max())


class SetsItem(nn.Module):
    def forward(self, x):
        x[0] = 1.0
        return x


@pytest.mark.parametrize("module", [DataDependent, UsesItem, UsesNumpy])
def test_value_dependent_code_is_reported_at_its_line(module):
    with pytest.raises(dlg.DlgValueError, match="needs a tensor's value") as info:
        dlg.trace(module(), dlg.randn(2, 3))
    assert info.value.span is not None and info.value.span.file.endswith("test_trace.py")


def test_setitem_traces_except_a_position_of_the_batch_axis():
    """x[:, 0] = v is traced (an in-place op rebinds x); x[0] = v would pick one row of the
    symbolic batch axis, an error at its line."""
    traced = dlg.trace(lambda x: x.__setitem__((slice(None), 0), 1.0) or x * 2, dlg.randn(2, 3))
    np.testing.assert_allclose(np.asarray(traced(np.zeros((4, 3), np.float32)))[:, 0], 2.0)
    with pytest.raises(dlg.DlgValueError, match="symbolic") as info:
        dlg.trace(SetsItem(), dlg.randn(2, 3))
    assert info.value.span is not None and info.value.span.file.endswith("test_trace.py")


def test_batch_norm_statistics_passed_in_are_refused_by_name():
    """F.batch_norm(training=True) moves the running statistics in place: a module's buffers
    become graph updates, a traced function's inputs cannot be written back, so the trace
    names them (it raised a KeyError)."""
    def f(x, mean, var):
        return nn.functional.batch_norm(x, mean, var, training=True, momentum=0.5, eps=0.6)
    args = [dlg.randn(4, 3), dlg.zeros(3), dlg.ones(3)]
    with pytest.raises(dlg.DlgValueError, match="running_mean .* input 'mean'") as info:
        dlg.trace(f, *args, dynamic={"x": {}, "mean": {}, "var": {}})
    assert info.value.span.file.endswith("test_trace.py")
    traced = dlg.trace(lambda x: nn.functional.batch_norm(x, None, None, training=True), *args[:1])
    np.testing.assert_allclose(traced(args[0].numpy()), nn.functional.batch_norm(
        args[0], None, None, training=True).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda x: dlg.zeros_like(x), lambda x: dlg.full_like(x, 2.5), lambda x: x.new_ones(x.shape)])
def test_a_constant_of_the_inputs_shape_traces_and_compiles(make):
    """A function whose output no input reaches traces to a constant (a static shape) or to a
    fill of the symbolic batch (it was refused as 'not computed from its inputs')."""
    x = dlg.randn(2, 3)
    for dynamic, batch in (({"x": {}}, 2), (None, 5)):
        m = dlg.trace(make, x, dynamic=dynamic)
        want = make(dlg.randn(batch, 3)).numpy()
        arg = np.ones((batch, 3), np.float32)
        for got in (m(arg), dlg.compile(m)(arg)):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_tracing_a_function_that_returns_no_tensor_is_an_error():
    with pytest.raises(dlg.DlgTypeError, match="returned int, not a tensor"):
        dlg.trace(lambda x: 3, dlg.randn(2, 3))


class ScalesByTheBatch(nn.Module):
    def forward(self, x):
        return x.sum(0) / x.shape[0] + x.size(0) * 2 - x


@pytest.mark.parametrize("n", [8, 3, 1])
def test_the_batch_size_used_as_a_number_follows_the_batch(n):
    """x.shape[0] while tracing is the symbolic N: as a number it is the graph's size of that
    axis, so the traced model computes what the eager code computes at every batch size."""
    x = np.arange(32, dtype=np.float32).reshape(8, 4)
    model = dlg.trace(ScalesByTheBatch(), x)
    assert model.inputs["x"].shape[0] == Sym.named("N")
    want = ScalesByTheBatch()(dlg.tensor(x[:n])).numpy()
    np.testing.assert_allclose(model(x[:n]), want, rtol=1e-6)
    np.testing.assert_allclose(dlg.compile(model)(x[:n]), want, rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda x: x + dlg.arange(x.shape[1]).expand(x.shape[0], -1),  # position ids
    lambda x: x * dlg.arange(x.shape[0]).unsqueeze(1) + dlg.arange(1, x.shape[0] + 1)[:, None],
], ids=["expand-to-batch", "arange-of-batch"])
def test_ranges_and_expands_to_the_batch_follow_it(make):
    """A constant expanded to the symbolic batch, and an arange as long as it, trace to graph
    ops of N (the expand crashed in NumPy; arange refused the dim)."""
    model = dlg.trace(make, np.zeros((2, 5), np.float32))
    assert model.inputs["x"].shape[0] == Sym.named("N")
    exe = dlg.compile(model)
    for n in (3, 1):
        x = np.random.default_rng(n).standard_normal((n, 5)).astype(np.float32)
        want = make(dlg.tensor(x)).numpy()
        np.testing.assert_allclose(model(x), want, rtol=1e-6)
        np.testing.assert_allclose(exe(x), want, rtol=1e-6)


def test_an_arange_of_the_batch_with_a_step_is_refused_at_its_line():
    with pytest.raises(dlg.DlgTypeError, match=r"arange to a symbolic size takes integer bounds "
                                               r"and step 1, got arange\(0, N, 2\)") as info:
        dlg.trace(lambda x: x + dlg.arange(0, x.shape[0], 2), np.zeros(4, np.float32))
    assert info.value.span.file.endswith("test_trace.py")
