"""ONNX export (`dlg.onnx.export`, `dlgc export`) against the interpreter, through onnxruntime:
every model in models/, traced dlg.nn modules and hand-written scans, each at two sizes (the
batch dim is a named dynamic dim, so one file serves both), and every registry op on its
registry case; every file passes `check_model(full_check=True)`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import dlg  # noqa: E402
import dlg.nn as nn  # noqa: E402
import dlg.nn.functional as F  # noqa: E402
from dlg.cli import main  # noqa: E402
from dlg.compiler.interpreted import interpreted_node  # noqa: E402
from dlg.ir import Builder, DType, Graph, TensorType  # noqa: E402
from dlg.ir.ops.opdef import REGISTRY  # noqa: E402
from dlg.ir.shapes import evaluate_shape  # noqa: E402
from dlg.onnx import export  # noqa: E402
from dlg.runtime.interp import Interpreter  # noqa: E402
from tests.ir.test_registry import CASES  # noqa: E402

MODELS = sorted((Path(__file__).resolve().parents[2] / "models").glob("*.dlg"))


def session(proto_or_path) -> ort.InferenceSession:
    data = proto_or_path if isinstance(proto_or_path, str) else proto_or_path.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def random_inputs(m, dims: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for every model input at the given symbolic dims: normal floats, small ints
    (valid indices for the models' embeddings), a quarter of the bools set."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, t in m.inputs.items():
        shape = evaluate_shape(t.shape, dims)
        if t.dtype.is_float:
            feeds[name] = rng.standard_normal(shape).astype(t.dtype.np)
        elif t.dtype.is_int:
            feeds[name] = rng.integers(0, 7, shape).astype(t.dtype.np)
        else:
            feeds[name] = rng.random(shape) < 0.25
    return feeds


def assert_same(m, sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> None:
    want = m(**feeds)
    want = want if isinstance(want, tuple) else (want,)
    got = sess.run(None, feeds)
    assert [o.name for o in sess.get_outputs()] == list(m.outputs)
    for name, w, g in zip(m.outputs, want, got):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


def checked(m, opset: int = 17, rnn_ops: bool = True):
    proto = export(m, opset=opset, rnn_ops=rnn_ops)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def dim_params(value_info) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_every_model_exports_and_matches_the_interpreter(path, tmp_path):
    m = dlg.load(path, seed=0)
    out = tmp_path / f"{path.stem}.onnx"
    export(m, out)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    # inputs and outputs keep their names and the batch dim its symbol; weights are initializers
    # under their PyTorch names
    assert [i.name for i in proto.graph.input] == list(m.inputs)
    for info, t in zip(proto.graph.input, m.inputs.values()):
        assert dim_params(info) == [str(d) if not isinstance(d, int) else d for d in t.shape]
    assert all(dim_params(o)[0] == "N" for o in proto.graph.output)
    params = {i.name for i in proto.graph.initializer} & set(m.params)
    assert params and all(np.array_equal(onnx.numpy_helper.to_array(i), m.params[i.name])
                          for i in proto.graph.initializer if i.name in params)
    sess = session(str(out))
    for batch in (1, 2):
        assert_same(m, sess, random_inputs(m, {"N": batch}, seed=batch))


@pytest.mark.parametrize("name, op", [("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "RNN")])
def test_recurrent_layers_become_onnx_recurrent_ops_or_scans(name, op):
    m = dlg.load(f"models/{name}.dlg", seed=0)  # models/ ran at opset 17, so these at 23
    for rnn_ops, expected in ((True, op), (False, "Scan")):
        proto = checked(m, opset=23, rnn_ops=rnn_ops)
        ops = [n.op_type for n in proto.graph.node]
        assert expected in ops and ({"Scan", op} - {expected}).isdisjoint(ops)
        sess = session(proto)
        for batch in (1, 2):
            assert_same(m, sess, random_inputs(m, {"N": batch}, seed=batch))


# ---- traced modules ---------------------------------------------------------------------------
class ConvNet(nn.Module):
    """Strided, dilated, grouped and 'same' convolutions, both batch norms, the pools (ceil_mode
    too)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4)
        self.bn = nn.BatchNorm2d(8)
        self.c3 = nn.Conv1d(8, 4, 3, padding="same")
        self.bn1 = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        h = F.relu(self.bn(self.c2(self.c1(x))))
        h = (F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False)
             + F.max_pool2d(h, 3, stride=2, padding=1))
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)[:, :, None].expand(-1, -1, 5)
        h = self.drop(self.bn1(self.c3(h)))
        edges = (F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False)
                 + F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True))  # partial windows
        return (F.softmax(h, dim=1), F.log_softmax(h, dim=-1), F.silu(h) + F.hardswish(h),
                edges)


class Recurrent(nn.Module):
    """Stacked bidirectional LSTM, a bidirectional GRU over time-major input, a relu RNN
    without bias (ONNX ops), and a bidirectional LSTM with projections (Scans, forwards and
    backwards: ONNX's LSTM has no projection)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(10, 4, bidirectional=True)
        self.rnn = nn.RNN(8, 3, nonlinearity="relu", bias=False, batch_first=True)
        self.proj = nn.LSTM(3, 4, proj_size=2, bidirectional=True, batch_first=True)

    def forward(self, x):
        y, _ = self.lstm(x)
        z, h = self.gru(y.transpose(0, 1))
        r, _ = self.rnn(z.transpose(0, 1))
        p, (hp, cp) = self.proj(x)
        return r, h, p, hp, cp


class Mixed(nn.Module):
    """Embedding, LayerNorm, GELU and a spread of elementwise, reduction and movement ops."""

    def __init__(self):
        super().__init__()
        self.emb, self.ln, self.fc = nn.Embedding(7, 6), nn.LayerNorm(6), nn.Linear(6, 6)

    def forward(self, idx):
        h = self.ln(self.emb(idx))
        h = F.gelu(self.fc(h)) + h.abs().sqrt() * h.exp().log1p()
        h = dlg.where(h > 0, h, -h).clamp(-1, 2)
        h = dlg.cat([h, h.flip(1), h.cumsum(1)], dim=-1)
        ties = h.round(decimals=1)
        return (h.mean(dim=1), h.amax(dim=(1, 2)), h.argmax(dim=-1), F.pad(h, (1, 2)),
                h.std(1), ties.sort(dim=1, descending=True)[1], ties.topk(3, dim=-1)[1])


def _traced(module: nn.Module, example: np.ndarray, **dynamic):
    module.eval()
    return dlg.trace(module, example, **dynamic)


@pytest.fixture(scope="module")
def mixed():
    return _traced(Mixed(), np.zeros((2, 5), np.int64))


@pytest.mark.parametrize("make, shapes", [
    (lambda: _traced(ConvNet(), np.zeros((2, 3, 9, 9), np.float32)), ({"N": 2}, {"N": 3})),
    (lambda: _traced(Recurrent(), np.zeros((2, 6, 3), np.float32),
                     dynamic={"x": {0: "N", 1: "T"}}), ({"N": 2, "T": 6}, {"N": 3, "T": 4})),
    (lambda: dlg.trace(lambda x, i: (x.scatter_add(1, i, x[:, :3]), x.scatter(1, i, 7.0),
                                     x.gather(1, i)),
                       np.zeros((2, 8), np.float32), np.zeros((2, 3), np.int64)),
     ({"N": 2}, {"N": 3})),
], ids=["conv", "recurrent", "gather-scatter"])
def test_traced_modules_match_at_two_sizes(make, shapes):
    m = make()
    sess = session(checked(m))
    for seed, dims in enumerate(shapes):
        assert_same(m, sess, random_inputs(m, dims, seed))


@pytest.mark.parametrize("opset", [17, 23])
def test_opsets_at_both_ends_of_the_range(mixed, opset):
    proto = checked(mixed, opset)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == {17: 8, 23: 11}[opset]  # the oldest each allows
    sess = session(proto)
    for batch in (2, 4):
        assert_same(mixed, sess, random_inputs(mixed, {"N": batch}, seed=batch))


def test_hand_written_scans_are_onnx_scans():
    """Scans that are no prelude cell: backwards with carries of two ranks, and over axis 1."""
    m = dlg.loads("""
        model Scans {
            input x: f32[T, N, 3]
            input w: f32[3, 3]
            scan (x_t in x, axis=0, reverse=true) carry (h = zeros(shape(x, 1), 3), s = zeros(3)) {
                h = tanh(x_t @ w + h)
                s = s + sum(h, axis=0)
                emit out = h * 2
                emit total = s
            }
            scan (x_t in x, axis=1) carry (c = zeros(shape(x, 0), 3)) {
                c = c + x_t
                emit running = c
            }
            output y = out
            output z = total
            output last = h
            output sums = s
            output r = running
        }""")
    proto = checked(m)
    assert [n.op_type for n in proto.graph.node].count("Scan") == 2
    sess = session(proto)
    for seed, dims in enumerate(({"N": 2, "T": 4}, {"N": 3, "T": 5})):
        assert_same(m, sess, random_inputs(m, dims, seed))


def test_outputs_that_repeat_pass_through_or_are_constants():
    """Each graph output is a node's (ONNX tools expect it), whatever the dlg output is."""
    m = dlg.loads("""
        model Outputs {
            input x: f32[N, 3]
            input k: i32[N, 2, 3]
            layer fc = Linear(3, 2)
            y = fc(x)
            output a = y
            output b = y
            output c = x
            output d = reshape(x, 3, -1)
            output e = k[:, 1:, ::-1]
            output f = zeros(2, 2)
        }""")
    proto = checked(m)
    written = {name for node in proto.graph.node for name in node.output}
    assert {o.name for o in proto.graph.output} <= written
    assert_same(m, session(proto), random_inputs(m, {"N": 3}))


# ---- every op of the registry, on its registry case -------------------------------------------
# op -> the op the export names as having no ONNX form
NO_ONNX = {
    "random_uniform": "random_uniform", "random_normal": "random_normal",  # ONNX's RNG is not
    "dropout": "random_uniform",  # dlg's: the registry case is in training mode
    "cumprod": "cumprod",  # ONNX has CumSum only
    # ONNX's Bitwise* come at opset 18 and its BitShift takes unsigned ints only
    **{op: op for op in ("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                         "bitwise_left_shift", "bitwise_right_shift")},
    # the compiler's own primitives, in gradients and rewritten graphs, never in inference
    "conv_weight_grad": "conv_weight_grad", "max_pool_grad": "max_pool_grad",
    "avg_pool_grad": "avg_pool_grad", "im2col": "im2col",
}


def one_op(name: str, arrays, attrs: dict):
    """A model of one `name` node on `arrays` (its inputs `in0`, `in1`...) and its feeds."""
    g = Graph(name)
    b = Builder(g)
    feeds = {f"in{i}": np.asarray(a) for i, a in enumerate(arrays)}
    out = b.emit(REGISTRY[name], *(b.input(k, TensorType(DType.of(a), a.shape))
                                   for k, a in feeds.items()), **attrs)
    for i, v in enumerate(out if isinstance(out, tuple) else (out,)):
        g.set_output(f"out{i}", v)
    return SimpleNamespace(graph=g, params={}), feeds


def assert_op_matches(m, feeds: dict[str, np.ndarray], opset: int = 17) -> None:
    want, _ = Interpreter(0).run(m.graph, feeds, {})
    for (key, w), got in zip(want.items(), session(checked(m, opset)).run(None, feeds)):
        assert got.dtype == w.dtype and got.shape == w.shape, key
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_op_exports_and_matches_the_interpreter(name):
    """One node on the registry's case (tests/ir/test_registry.py): through its mapping or its
    decomposition, onnxruntime gives the interpreter's values and dtypes."""
    m, feeds = one_op(name, *CASES[name])
    if interpreted_node(m.graph) is not None:  # complex values: named, not a KeyError
        with pytest.raises(dlg.DlgTypeError, match=rf"ONNX export: {name}\(.*complex values"):
            export(m)
        return
    if name in NO_ONNX:
        with pytest.raises(dlg.DlgError, match=rf"no ONNX mapping for {NO_ONNX[name]}$"):
            export(m)
        return
    assert_op_matches(m, feeds)


@pytest.mark.parametrize("opset", [17, 18])  # axes as an attribute, then as an input
def test_reductions_over_no_axes_change_nothing(opset):
    for name in ("reduce_sum", "reduce_max"):
        assert_op_matches(*one_op(name, (np.ones((2, 3), np.float32),), {"axes": ()}), opset)


# ---- errors and the command line --------------------------------------------------------------
def test_ops_without_a_mapping_are_reported_together():
    m = dlg.trace(lambda x: (x.cumprod(1), dlg.randn_like(x), x.cumprod(0)),
                  np.ones((2, 3), np.float32))
    with pytest.raises(dlg.DlgError, match=r"no ONNX mapping for cumprod, random_normal$"):
        export(m)


def test_a_module_needs_example_arguments():
    with pytest.raises(dlg.DlgError, match=r"traces the Linear module on example arguments, as "
                                           r"torch.onnx.export does"):
        export(nn.Linear(2, 3))
    with pytest.raises(dlg.DlgError, match=r"takes a dlg.nn.Module with example arguments .* "
                                           r"got str"):
        export("model.dlg")


@pytest.mark.parametrize("opset", [16, 24])
def test_unsupported_opset_is_a_clear_error(mixed, opset):
    with pytest.raises(dlg.DlgError, match=rf"opset {opset} is not supported; choose one of "
                                           r"17\.\.23"):
        export(mixed, opset=opset)


def test_without_the_onnx_package(mixed, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an uninstalled package imports as
    with pytest.raises(dlg.DlgError,
                       match=r"needs the onnx Python package: pip install 'dlg\[onnx\]'"):
        export(mixed)


def test_dlgc_export(tmp_path, capsys):
    out = tmp_path / "mlp.onnx"
    assert main(["export", "models/mlp.dlg", "-o", str(out), "--opset", "18"]) == 0
    assert "x: f32[N,1,28,28] -> log_probs: f32[N,10]" in capsys.readouterr().out
    m = dlg.load("models/mlp.dlg", seed=0)
    assert_same(m, session(str(out)), random_inputs(m, {"N": 2}))
    assert main(["export", "models/rnn.dlg", "-o", str(out), "--scan"]) == 0
    assert "Scan" in {n.op_type for n in onnx.load(str(out)).graph.node}
    assert main(["export", "models/mlp.dlg", "-o", str(out), "--opset", "9"]) == 1
    err = capsys.readouterr().err
    assert "error: ONNX export: opset 9 is not supported" in err and "Traceback" not in err
