"""`x[...]` (dlg.functions.indexing) through both front doors against NumPy's indexing of the same
data: a .dlg model, eager `dlg.Tensor`s and a trace; gradients against torch.autograd and finite
differences; compiled against the interpreter; the same error text from a .dlg file and Python."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgError, DlgShapeError, DlgTypeError, DlgValueError
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tests.compiler.gradcheck import check_gradients, scalar_loss, to_f64

X = np.arange(60, dtype=np.float32).reshape(3, 4, 5) * 0.5 - 7
I = np.array([[2, 0], [1, 1]], np.int64)  # noqa: E741  (the index tensor of the table)

# The comma-separated parts of x[...], written once and read by Python (NumPy, dlg.Tensor) and
# by .dlg (None, True and False spelled none, true and false there).
CASES = [
    "1", "-1", "1, 2", "-1, -2, -3", ":", "1:", ":-1", "::2", "::-1", "3:0:-1", "-1:0:-2", "::-3",
    "2:100", "-100:2", "5:1", "2:1:-1", ":, ::-1, 1:4:2", "1:3, ::-1, 2", "-2, 3::-2",
    "None", "None, 1, None", "..., 1", "1, ...", "..., None", "1, ..., -1", "..., ::-1",
    "i", ":, i", "..., i", ":, 1, i", "i, ..., 0", "-1, i, ::-2", "None, i", "1, i",
    "[0, 2]", ":, [-1, 0, -1]", ":, [True, False, True, False]", "..., []",
    "i, i", ":, i, i", "i, [-1, 0]", "[0, 2], [1, -1], i", "-i", ":, -i, i", "1, i, -i",
]
# On x: f32[N, T, 5] (a .dlg model) and f32[N, 4, 5] (a trace): symbolic axes, bounds from dims.
SYMBOLIC = [
    "-1", ":, -1", ":, :x.shape[1] - 1", ":, 1:-1", ":, ::-1", "::-1, -2:", ":, x.shape[1] - 1",
    "..., ::-1", ":, 0:4:2", ":, 3::-1", "None, ::-1, 1", "i", "-1, i", "1:, [0, 3]",
]


# Where NumPy moves the tensor index's dims to the front (an int apart from it), dlg keeps them
# in place, as PyTorch does: these rows are checked against torch.
TORCH_CASES = ["1, :, i", "1, None, i", ":, 0, ..., i", "0, ..., [1, 0]"]


def dlg_text(expr: str) -> str:
    return expr.replace("None", "none").replace("True", "true").replace("False", "false")


def numpy_result(expr: str, x: np.ndarray) -> np.ndarray:
    return eval(f"x[{expr}]", {"x": x, "i": I})


def torch_result(expr: str, x: np.ndarray) -> np.ndarray:
    torch = pytest.importorskip("torch")
    return eval(f"x[{expr}]", {"x": torch.tensor(x), "i": torch.tensor(I)}).numpy()


def dlg_model(expr: str, x_type: str = "f32[3, 4, 5]") -> dlg.Model:
    uses_i = re.search(r"\bi\b", expr) is not None
    return dlg.loads(f"model M {{ input x: {x_type} "
                     f"{'input i: i64[2, 2] ' if uses_i else ''}output y = x[{dlg_text(expr)}] }}")


def run_model(m: dlg.Model, x: np.ndarray) -> np.ndarray:
    return m(**{"x": x, **({"i": I} if "i" in m.inputs else {})})


@pytest.mark.parametrize("expr", CASES)
def test_dlg_source_indexes_like_numpy(expr):
    want = numpy_result(expr, X)
    got = run_model(dlg_model(expr), X)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("expr", CASES)
def test_eager_tensor_indexes_like_numpy(expr):
    want = numpy_result(expr, X)
    got = eval(f"x[{expr}]", {"x": dlg.tensor(X), "i": dlg.tensor(I)})
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("expr", TORCH_CASES)
def test_a_tensor_index_keeps_its_place_as_in_torch(expr):
    want = torch_result(expr, X)
    assert want.shape != numpy_result(expr, X).shape
    np.testing.assert_array_equal(run_model(dlg_model(expr), X), want)
    got = eval(f"x[{expr}]", {"x": dlg.tensor(X), "i": dlg.tensor(I)})
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("expr", SYMBOLIC)
def test_symbolic_dims_in_dlg_source(expr):
    m = dlg_model(expr, "f32[N, T, 5]")
    for shape in [(3, 6, 5), (4, 4, 5)]:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(run_model(m, x), numpy_result(expr, x))


@pytest.mark.parametrize("expr", [e for e in SYMBOLIC if "i" not in e])
def test_traced_indexing_matches_eager_at_another_batch_size(expr):
    traced = dlg.trace(eval(f"lambda x: x[{expr}]"), dlg.randn(3, 4, 5))
    assert str(traced.inputs["x"]) == "f32[N,4,5]"  # axis 0 is symbolic in the trace
    x = np.random.default_rng(1).standard_normal((5, 4, 5)).astype(np.float32)
    eager = eval(f"x[{expr}]", {"x": dlg.tensor(x)})
    np.testing.assert_array_equal(traced(x), eager.numpy())


def test_a_negative_step_is_one_slice_node():
    m = dlg_model("::-1, 1")
    assert [n.op.name for n in m.graph if n.op.name not in ("input", "constant")] == [
        "slice", "reshape"]


# ---- gradients --------------------------------------------------------------------------------
GRAD_CASES = ["1:, ::-1", "..., None, -1", ":, [0, 2, 0]", "::-2, i", "1, :, i", "-1:0:-2, 3::-3"]


@pytest.mark.parametrize("expr", ["1:, ::2", "..., None, -1", ":, [0, 2, 0]", "1, :, i"])
def test_eager_gradients_match_torch(expr):
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(2).standard_normal(torch_result(expr, X).shape).astype(np.float32)
    x = dlg.tensor(X, requires_grad=True)
    (eval(f"x[{expr}]", {"x": x, "i": dlg.tensor(I)}) * dlg.tensor(w)).sum().backward()
    tx = torch.tensor(X, requires_grad=True)
    (eval(f"x[{expr}]", {"x": tx, "i": torch.tensor(I)}) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("expr", GRAD_CASES + ["-1", ":, :x.shape[1] - 1"])
def test_gradients_match_finite_differences(expr):
    m = dlg_model(expr)
    g, weights = scalar_loss(to_f64(m.graph))
    inputs = {"x": X.astype(np.float64), **weights, **({"i": I} if "i" in m.inputs else {})}
    check_gradients(g, inputs, {}, wrt=["x"])


@pytest.mark.parametrize("expr, w_type", [(":, ::-1, -1", "f32[N, T]"),
                                          (":, :x.shape[1] - 1, 0", "f32[N, T - 1]"),
                                          ("-1, 1:, ::-2", "f32[T - 1, 3]")])
def test_gradients_on_symbolic_axes_compiled_and_interpreted(expr, w_type):
    m = dlg.loads(f"model M {{ input x: f32[N, T, 5] input w: {w_type} "
                  f"output y = sum(x[{expr}] * w) }}")
    gg = grad(m.graph, "y", wrt=["x"])
    for shape in [(2, 3, 5), (3, 6, 5)]:
        rng = np.random.default_rng(4)
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal(numpy_result(expr, x).shape).astype(np.float32)
        want = np.zeros_like(x)
        exec(f"want[{expr}] += w", {"want": want, "w": w, "x": x})
        interpreted, _ = Interpreter().run(gg, {"x": x, "w": w}, {})
        np.testing.assert_array_equal(interpreted["grad.x"], want)
        np.testing.assert_array_equal(NativeGraph(gg)({"x": x, "w": w}, {})["grad.x"], want)


# ---- compiled ---------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", ["::-1, 1, None", "-1:0:-2, i", "1, :, i", ":, [3, 0], ::-2"])
def test_compiled_indexing_and_its_gradient_match_the_interpreter(expr):
    m = dlg_model(expr)
    inputs = {"x": X, **({"i": I} if "i" in m.inputs else {})}
    np.testing.assert_array_equal(dlg.compile(m)(**inputs), run_model(m, X))
    g, weights = scalar_loss(m.graph)
    gg = grad(g, "check_loss", wrt=["x"])
    want, _ = Interpreter().run(gg, {**inputs, **weights}, {})
    got = NativeGraph(gg)({**inputs, **weights}, {})
    np.testing.assert_allclose(got["grad.x"], want["grad.x"], rtol=1e-6)


def test_compiled_reversal_on_a_symbolic_axis():
    m = dlg_model(":, ::-1, -1", "f32[N, T, 5]")
    exe = dlg.compile(m)
    for shape in [(2, 3, 5), (3, 7, 5)]:
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(exe(x=x), x[:, ::-1, -1])


# ---- errors: the same text from a .dlg file and from Python (STYLE §11) ------------------------
ERRORS = [
    ("5", DlgShapeError, r"^index 5 is out of range for axis 0 of f32\[3,4,5\]$"),
    (":, -5", DlgShapeError, r"^index -5 is out of range for axis 1 of f32\[3,4,5\]$"),
    ("0, 0, 0, 0", DlgShapeError, r"^too many indices for f32\[3,4,5\]: 4 given, it has 3 axes$"),
    ("..., 1, ...", DlgTypeError, r"^an index can have only one `\.\.\.`$"),
    ("::0", DlgValueError, r"^slice step cannot be zero$"),
    ("1.5", DlgTypeError, r"^an index must be an int, a slice, `\.\.\.`, a new axis or an integer "
                          r"tensor, got float 1\.5$"),
    (":2.0", DlgTypeError, r"^slice bounds must be static ints, got float 2\.0$"),
    ("x", DlgTypeError, r"^a tensor index must be i32/i64, got f32\[3,4,5\]$"),
    ("i, :, i", DlgTypeError, r"^tensor indices must be on neighbouring axes in x\[\.\.\.\]"),
    ("[0, 3]", DlgShapeError, r"^index 3 is out of range for axis 0 of f32\[3,4,5\]$"),
    ("[True, False]", DlgShapeError, r"^a boolean list index needs one bool per element of axis 0"),
]


@pytest.mark.parametrize("expr, cls, pattern", ERRORS, ids=[e for e, _, _ in ERRORS])
def test_bad_index_gives_the_same_error_from_dlg_and_python(expr, cls, pattern):
    with pytest.raises(DlgError) as from_dlg:
        dlg.loads(f"model M {{ input x: f32[3, 4, 5] input i: i64[2, 2]\n"
                  f"    output y = x[{dlg_text(expr)}] }}", file="t.dlg")
    with pytest.raises(DlgError) as from_python:
        eval(compile(f"x[{expr}]", __file__, "eval"), {"x": dlg.tensor(X), "i": dlg.tensor(I)})
    for info in (from_dlg, from_python):
        assert type(info.value) is cls and re.search(pattern, info.value.message), info.value
    assert from_dlg.value.message == from_python.value.message
    assert (from_dlg.value.span.file, from_dlg.value.span.line) == ("t.dlg", 2)
    assert Path(from_python.value.span.file).name == "test_indexing.py"


def test_a_boolean_mask_needs_data_so_only_eager_python_takes_it():
    with pytest.raises(DlgTypeError, match=r"a boolean mask bool\[3,4,5\] as an index gives a "
                                           r"shape that depends on its values"):
        dlg.loads("model M { input x: f32[3, 4, 5] output y = x[x > 0] }")
    x = dlg.tensor(X)
    np.testing.assert_array_equal(x[x > 0].numpy(), X[X > 0])


def test_symbolic_step_needs_int_bounds():
    with pytest.raises(DlgShapeError, match=r"a slice with step 2 on axis 1 of f32\[N,T\] needs "
                                            r"int bounds, got 0:T"):
        dlg.loads("model M { input x: f32[N, T] output y = x[:, ::2] }")


# ---- static tuples stay in the .dlg door (grammar.values.index_tuple) --------------------------
def test_static_tuples_index_and_slice_while_the_model_is_built():
    m = dlg.loads("model M { input x: f32[N, 3, 4] output y = reshape(x, x.shape[0], "
                  "x.shape[-1] * x.shape[1:][0]) + zeros(x.shape[::-1][1] * x.shape[2]) }")
    x = np.ones((2, 3, 4), np.float32)
    np.testing.assert_array_equal(m(x=x), x.reshape(2, 12))


@pytest.mark.parametrize("expr, pattern", [
    ("x.shape[3]", r"index 3 is out of range for a tuple of 3"),
    ("x.shape[::0]", r"a tuple slice takes int bounds and a nonzero step"),
    ("x.shape[0, 1]", r"a tuple takes one index or slice"),
])
def test_static_tuple_index_errors(expr, pattern):
    with pytest.raises(DlgError, match=pattern):
        dlg.loads(f"model M {{ input x: f32[N, 3, 4] output y = zeros({expr}) }}")
