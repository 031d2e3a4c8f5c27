"""dlg.onnx.load: the reference models' PyTorch twins exported by torch.onnx.export (the
TorchScript exporter, and the torch.export one) import and match PyTorch, interpreted and
compiled, for batch sizes other than the example's; `dlgc import` prints a model that loads
back; bad files, unknown domains and unsupported ops are DlgErrors naming what is wrong."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
torch_peer = pytest.importorskip("benchmarks.torch_peer")

import dlg  # noqa: E402
from dlg.cli import main  # noqa: E402
from dlg.errors import DlgImportError, DlgValueError  # noqa: E402
from dlg.ir.shapes import Sym  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

SHAPES = {"mlp": (1, 28, 28), "convnet": (1, 28, 28), "cnn": (3, 10, 10), "lstm": (28, 28)}
# (model, dynamo exporter); the torch.export exporter takes 2-10 s a model: the rest run with
# -m onnx_full
CASES = [("mlp", False), ("convnet", False), ("cnn", False), ("lstm", False), ("mlp", True),
         *(pytest.param((m, True), marks=pytest.mark.onnx_full) for m in SHAPES if m != "mlp")]


def export(net, x, path, dynamo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(net, (x,), path, dynamo=True, input_names=["x"], verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("N")},))
        else:
            torch.onnx.export(net, (x,), path, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "N"}})


def exported(name, folder, dynamo=False):
    """The twin of models/<name>.dlg (PyTorch's initialisation, seed 0) and its ONNX file."""
    torch.manual_seed(0)
    net = torch_peer.reference(name).eval()
    path = folder / f"{name}.onnx"
    export(net, torch.randn(2, *SHAPES[name]), path, dynamo)
    return net, path


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{'dynamo' if c[1] else 'ts'}")
def imported(request, tmp_path_factory):
    name, dynamo = request.param
    net, path = exported(name, tmp_path_factory.mktemp("onnx"), dynamo)
    return name, net, dlg.onnx.load(path)


def reference(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def test_exported_model_matches_torch(imported):
    name, net, model = imported
    assert model.inputs["x"].shape[0] == Sym.named("N")  # the dynamic axis stays a symbol
    x = np.random.default_rng(0).standard_normal((3, *SHAPES[name])).astype(np.float32)
    np.testing.assert_allclose(model(x=x), reference(net, x), rtol=1e-4, atol=1e-5)


def test_exported_model_compiled_matches_torch(imported):
    name, net, model = imported
    exe = dlg.compile(model)
    for batch in (1, 4):  # no recompile per batch size
        x = np.random.default_rng(batch).standard_normal((batch, *SHAPES[name]))
        x = x.astype(np.float32)
        np.testing.assert_allclose(exe(x=x), reference(net, x), rtol=1e-4, atol=1e-5)


def test_parameters_keep_pytorch_names(imported):
    """Initializers keep their names (an LSTM's weights are converted from ONNX's gate order
    into parameters named after the node)."""
    name, net, model = imported
    state = {k: v.numpy() for k, v in net.state_dict().items() if not k.startswith("lstm.")}
    assert state
    for key, value in state.items():
        np.testing.assert_array_equal(model.params[key], value)


def test_dlgc_import_prints_a_model_that_loads_back(tmp_path, capsys):
    name = "cnn"
    net, path = exported(name, tmp_path)
    out, weights = tmp_path / "cnn.dlg", tmp_path / "cnn.safetensors"
    assert main(["import", str(path), "-o", str(out), "-w", str(weights)]) == 0
    back = dlg.load(out)
    back.load_state_dict(dlg.load(weights))
    x = np.random.default_rng(1).standard_normal((2, *SHAPES[name])).astype(np.float32)
    np.testing.assert_allclose(back(x=x), reference(net, x), rtol=1e-4, atol=1e-5)
    assert main(["import", str(path)]) == 0
    assert "input x: f32[N, 3, 10, 10]" in capsys.readouterr().out


# ---- bad input ------------------------------------------------------------------------------
def model_of(nodes, inputs, outputs, opset=17, initializers=(), domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=imports)


def value(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def test_unsupported_ops_are_listed_together_by_node():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"),
             helper.make_node("Det", ["a"], ["b"], name="h1"),
             helper.make_node("Det", ["b"], ["c"], name="h2"),
             helper.make_node("NonZero", ["c"], ["d"], name="cs"),
             helper.make_node("Custom", ["d"], ["y"], name="mine", domain="com.example")]
    m = model_of(nodes, [value("x", [2])], [value("y", [2])], domains=["com.example"])
    with pytest.raises(DlgImportError) as info:
        dlg.onnx.load(m)
    message = str(info.value)
    assert "3 unsupported ONNX ops" in message
    assert "Det (nodes 'h1', 'h2')" in message and "NonZero (node 'cs')" in message
    assert "Custom of domain 'com.example' (opset 1) (node 'mine')" in message


def test_malformed_protobuf_and_missing_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf \xff\xff")
    with pytest.raises(DlgImportError, match="not a readable ONNX model"):
        dlg.onnx.load(bad)
    with pytest.raises(DlgImportError, match="no such ONNX file"):
        dlg.onnx.load(tmp_path / "absent.onnx")


def test_external_data_is_read_and_a_missing_file_named(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    init = onnx.numpy_helper.from_array(w, "w")
    m = model_of([helper.make_node("MatMul", ["x", "w"], ["y"])], [value("x", ["N", 3])],
                 [value("y", ["N", 4])], initializers=[init])
    path = tmp_path / "m.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.weights", size_threshold=0)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(dlg.onnx.load(path)(x=x), x @ w)
    (tmp_path / "m.weights").unlink()
    with pytest.raises(DlgImportError, match="external data file 'm.weights' of tensor 'w' is "
                       "missing"):
        dlg.onnx.load(path)


def test_a_shape_that_is_data_names_the_node():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape_it")]
    m = model_of(nodes, [value("x", [6]), value("s", [2], TensorProto.INT64)],
                 [value("y", [2, 3])])
    with pytest.raises(DlgValueError, match="ONNX node 'reshape_it' \\(Reshape\\): its shape "
                       "\\('s'\\) must be a constant"):
        dlg.onnx.load(m)


def test_dlgc_import_reports_errors_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert main(["import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "not a readable ONNX model" in err and "Traceback" not in err
