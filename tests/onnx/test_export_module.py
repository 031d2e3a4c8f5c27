"""`dlg.onnx.export(module, args, f, input_names=, output_names=, dynamic_axes=)`, torch's call
on a dlg.nn module: the file runs in onnxruntime and gives what torch gives with the same
weights, at two sizes of each dynamic axis; names, static and dynamic dims are torch's."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

import dlg  # noqa: E402
import dlg.nn as nn  # noqa: E402
import dlg.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def session(path_or_bytes) -> ort.InferenceSession:
    return ort.InferenceSession(str(path_or_bytes) if isinstance(path_or_bytes, Path)
                                else path_or_bytes, providers=["CPUExecutionProvider"])


def copy_weights(net: nn.Module, twin: torch.nn.Module) -> torch.nn.Module:
    twin.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                          for k, v in net.state_dict().items()})
    return twin.eval()


def dims(value_info) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(self.drop(x.flatten(1)))


def test_a_cnn_exports_as_torch_exports_it(tmp_path):
    dlg.manual_seed(0)
    net = CNN()
    net.bn.running_mean.copy_(dlg.randn(4) * 0.1)  # eval-mode statistics that are not 0 and 1
    net.bn.running_var.copy_(dlg.rand(4) + 0.5)
    path = tmp_path / "cnn.onnx"
    proto = dlg.onnx.export(net, (dlg.randn(3, 1, 8, 8),), str(path), input_names=["img"],
                            output_names=["logits"], opset_version=18,
                            dynamic_axes={"img": {0: "batch"}, "logits": {0: "batch"}},
                            do_constant_folding=True, export_params=True, verbose=False,
                            dynamo=False)
    assert net.training and net.bn.training  # traced in eval mode, as torch's, then restored
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.opset_import[0].version == 18
    assert dims(proto.graph.input[0]) == ["batch", 1, 8, 8]
    assert dims(proto.graph.output[0]) == ["batch", 10]
    twin = copy_weights(net, TorchCNN())
    sess = session(path)
    for n in (2, 5):
        x = np.random.default_rng(n).standard_normal((n, 1, 8, 8)).astype(np.float32)
        (got,) = sess.run(["logits"], {"img": x})
        np.testing.assert_allclose(got, twin(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)


def tagger(base, lib):
    """An LSTM over [N, T, F] given its state, with a linear head; returns (scores, (h, c))."""

    class Tagger(base):
        def __init__(self):
            super().__init__()
            self.lstm = lib.LSTM(5, 6, num_layers=2, batch_first=True)
            self.head = lib.Linear(6, 3)

        def forward(self, x, state, log_probs=True):
            out, (h, c) = self.lstm(x, state)
            scores = self.head(out)
            return (scores.log_softmax(-1) if log_probs else scores), (h, c)
    return Tagger()


def test_an_lstm_exports_with_dynamic_batch_and_time_as_torch_runs_it():
    dlg.manual_seed(1)
    net = tagger(nn.Module, nn).eval()
    x, h0, c0 = dlg.randn(2, 4, 5), dlg.zeros(2, 2, 6), dlg.zeros(2, 2, 6)
    f = io.BytesIO()
    proto = dlg.onnx.export(net, (x, (h0, c0), {"log_probs": False}), f,
                            input_names=["x", "h0", "c0"], output_names=["scores", "h", "c"],
                            dynamic_axes={"x": {0: "batch", 1: "time"}, "h0": {1: "batch"},
                                          "c0": {1: "batch"}, "scores": {0: "batch"}})
    assert [i.name for i in proto.graph.input] == ["x", "h0", "c0"]
    assert dims(proto.graph.input[1]) == [2, "batch", 6]
    assert {n.op_type for n in proto.graph.node} >= {"LSTM"}
    twin = copy_weights(net, tagger(torch.nn.Module, torch.nn))
    sess = session(f.getvalue())
    for n, t in ((3, 7), (1, 2)):
        rng = np.random.default_rng(n)
        xs, hs, cs = (rng.standard_normal(s).astype(np.float32)
                      for s in ((n, t, 5), (2, n, 6), (2, n, 6)))
        got = sess.run(None, {"x": xs, "h0": hs, "c0": cs})
        scores, (h, c) = twin(torch.from_numpy(xs), (torch.from_numpy(hs), torch.from_numpy(cs)),
                              log_probs=False)
        for g, w in zip(got, (scores, h, c)):
            np.testing.assert_allclose(g, w.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_axes_are_static_unless_dynamic_axes_names_them_and_names_default_to_dlg_s():
    net = nn.Sequential(nn.Linear(4, 2))
    proto = dlg.onnx.export(net, dlg.randn(3, 4))
    assert [i.name for i in proto.graph.input] == ["x"]  # dlg.Sequential.forward(x)
    assert dims(proto.graph.input[0]) == [3, 4] and dims(proto.graph.output[0]) == [3, 2]
    proto = dlg.onnx.export(net, dlg.randn(3, 4), dynamic_axes={"x": [0]})
    assert dims(proto.graph.input[0]) == ["x_dynamic_axes_1", 4]  # torch's list form


def test_torch_export_s_dynamic_shapes_name_the_symbolic_dims():
    """dynamo's spelling: Dim objects or names per axis, AUTO dims of one size one symbol."""
    Dim = torch.export.Dim
    net = tagger(nn.Module, nn).eval()
    x, h0, c0 = dlg.randn(2, 4, 5), dlg.zeros(2, 2, 6), dlg.zeros(2, 2, 6)
    proto = dlg.onnx.export(net, (x, (h0, c0)), dynamo=True, input_names=["x", "h0", "c0"],
                            dynamic_shapes={"x": {0: Dim("batch"), 1: "time"},
                                            "state": ({1: Dim.AUTO}, (None, Dim.AUTO, None))})
    assert [dims(i) for i in proto.graph.input] == [["batch", "time", 5], [2, "batch", 6],
                                                    [2, "batch", 6]]  # AUTO: the batch's size
    assert dims(proto.graph.output[0]) == ["batch", "time", 3]
    feeds = {"x": np.ones((3, 7, 5), np.float32), "h0": np.zeros((2, 3, 6), np.float32),
             "c0": np.zeros((2, 3, 6), np.float32)}
    assert session(proto.SerializeToString()).run(None, feeds)[0].shape == (3, 7, 3)
    proto = dlg.onnx.export(net, (x, (h0, c0)),
                            dynamic_shapes=({0: Dim.AUTO, 1: Dim.DYNAMIC}, [{1: Dim.AUTO}] * 2))
    assert [dims(i) for i in proto.graph.input[:2]] == [["s0", "s1", 5], [2, "s0", 6]]
    proto = dlg.onnx.export(net, (x, (h0, c0)), dynamic_shapes=({0: Dim.STATIC}, None))
    assert dims(proto.graph.input[0]) == [2, 4, 5]


def test_dlg_models_keep_the_old_call(tmp_path):
    m = dlg.trace(nn.Linear(4, 2), dlg.randn(3, 4))
    dlg.onnx.export(m, tmp_path / "a.onnx", opset=17)
    dlg.onnx.export(m, f=str(tmp_path / "b.onnx"), opset_version=17)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert dlg.onnx.export(m, tmp_path / "c.onnx", 18).opset_import[0].version == 18
    assert dims(onnx.load(str(tmp_path / "a.onnx")).graph.input[0]) == ["N", 4]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"export_params": False}, dlg.DlgValueError, "export_params=False is not supported"),
    ({"keep_initializers_as_inputs": True}, dlg.DlgValueError, "keep_initializers_as_inputs"),
    ({"dynamic_shapes": {"y": {0: "N"}}}, dlg.DlgValueError, "dynamic_shapes names"),
    ({"dynamic_shapes": {"x": {0: "N"}}, "dynamic_axes": {"x": [0]}}, dlg.DlgValueError,
     "not both"),
    ({"input_names": ["a", "b"]}, dlg.DlgValueError, "input_names names 2 values"),
    ({"output_names": ["y", "y2"]}, dlg.DlgValueError, "output_names names 2 values"),
    ({"dynamic_axes": {"x": {3: "N"}}}, dlg.DlgValueError, "names axis 3"),
    ({"opset_version": 12}, dlg.DlgValueError, "opset 12 is not supported"),
    ({"training": "sometimes"}, dlg.DlgValueError, "not a TrainingMode"),
    ({"no_such_option": 1}, dlg.DlgTypeError, "no_such_option"),
])
def test_options_that_would_change_the_file_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        dlg.onnx.export(nn.Linear(4, 2), (dlg.randn(3, 4),), **kwargs)


def test_a_model_refuses_module_options_and_unknown_axis_names_warn():
    m = dlg.trace(nn.Linear(4, 2), dlg.randn(3, 4))
    with pytest.raises(dlg.DlgTypeError, match="input_names apply when exporting"):
        dlg.onnx.export(m, input_names=["x"])
    with pytest.warns(UserWarning, match="'inp', which is no input or output"):
        dlg.onnx.export(nn.Linear(4, 2), dlg.randn(3, 4), dynamic_axes={"inp": {0: "N"}})


def test_training_mode_traces_train_mode_as_torch_s_enum_asks():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)).eval()
    proto = dlg.onnx.export(net, dlg.randn(3, 4), training=torch.onnx.TrainingMode.TRAINING,
                            input_names=["input"], dynamic_axes={"input": {0: "N"}})
    assert not net.training  # restored
    twin = copy_weights(net, torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)))
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    (got,) = session(proto.SerializeToString()).run(None, {"input": x})
    np.testing.assert_allclose(got, twin.train()(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)  # batch statistics, as torch's train mode
    with pytest.raises(dlg.DlgValueError, match="no ONNX mapping for random"):
        dlg.onnx.export(nn.Dropout(0.5).eval(), dlg.randn(3, 4),
                        training=dlg.onnx.TrainingMode.TRAINING)
    dlg.onnx.export(nn.Dropout(0.5).train(), dlg.randn(3, 4))  # EVAL by default


def test_dlg_onnx_needs_no_import_and_a_missing_onnx_names_the_extra():
    script = ("import sys; sys.modules['onnx'] = None\n"
              "import dlg, dlg.nn as nn\n"
              "try:\n"
              "    dlg.onnx.export(nn.Linear(2, 2), dlg.randn(1, 2), 'x.onnx')\n"
              "except dlg.DlgImportError as e:\n"
              "    print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "pip install 'dlg[onnx]'" in proc.stdout
