"""The autodiff pass: every differentiable op against float64 finite differences (driven by the
registry's own case table, so a new op without a gradient check fails here), PyTorch's choices at
non-differentiable points, fan-out, broadcasting, second derivatives and the pass's errors."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgNameError, DlgTypeError
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.ops.opdef import REGISTRY
from dlg.ir.printer import format_graph
from dlg.runtime.interp import Interpreter
from tests.compiler.gradcheck import check_gradients, scalar_loss
from tests.ir.test_registry import CASES

# ops whose outputs are never float or whose float inputs are absent: nothing to differentiate
NO_FLOAT_PATH = {"eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and", "logical_or",
                 "argmax", "argmin", "one_hot", "constant", "full", "arange",
                 "random_uniform", "random_normal",
                 "isnan", "isinf", "isfinite", "reduce_all", "reduce_any", "bitwise_and",
                 "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
                 "bitwise_right_shift"}
ATTR_OVERRIDES = {"cast": {"dtype": DType.f64}}  # an f16 result has no useful finite differences
# backward ops without a VJP of their own: second derivatives through them are refused
NO_VJP = {"max_pool_grad"}


def op_graph(name: str) -> tuple[Graph, dict[str, np.ndarray], list[str]]:
    """Op `name` on its registry case, in float64, with a random-weighted scalar loss."""
    arrays, attrs = CASES[name]
    attrs = {**attrs, **ATTR_OVERRIDES.get(name, {})}
    g = Graph(name)
    b = Builder(g)
    inputs, values = {}, []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.kind in "fc":
            a = a.astype(np.float64 if a.dtype.kind == "f" else np.complex128)
        values.append(b.input(f"in{i}", TensorType(DType.of(a), a.shape)))
        inputs[f"in{i}"] = a
    out = b.emit(REGISTRY[name], *values, **attrs)
    for i, v in enumerate(out if isinstance(out, tuple) else (out,)):
        g.set_output(f"out{i}", v)
    g, weights = scalar_loss(g)
    wrt = [k for k, a in inputs.items() if a.dtype.kind in "fc"]
    return g, {**inputs, **weights}, wrt


# ops whose gradient is zero by definition, not their value's: finite differences would see
# the identity (test_stop_gradient_passes_the_value_and_no_gradient)
STOPS = {"stop_gradient"}
DIFFERENTIABLE = sorted(set(CASES) - NO_FLOAT_PATH - NO_VJP - STOPS)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_op_gradient_matches_finite_differences(name):
    g, inputs, wrt = op_graph(name)
    check_gradients(g, inputs, {}, wrt, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(NO_FLOAT_PATH))
def test_non_differentiable_ops_are_listed_for_a_reason(name):
    """Each op skipped above really has no float input feeding a float output."""
    arrays, attrs = CASES[name]
    float_in = any(np.asarray(a).dtype.kind == "f" for a in arrays)
    g = Graph(name)
    b = Builder(g)
    ins = [b.input(f"in{i}", TensorType(DType.of(np.asarray(a)), np.shape(a)))
           for i, a in enumerate(arrays)]
    out = b.emit(REGISTRY[name], *ins, **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    float_out = any(g.type_of(v).dtype.is_float for v in outs)
    assert not (float_in and float_out)


def test_stop_gradient_passes_the_value_and_no_gradient():
    """loss = sum(x * stop_gradient(x)): the value is sum(x^2), the gradient x alone (torch's
    (x * x.detach()).sum()), not 2x; one stop_gradient only is a zero gradient."""
    g = graph_of(lambda b, x: b.reduce_sum(b.mul(x, b.emit(REGISTRY["stop_gradient"], x))),
                 x="f64[4]")
    x = np.array([1.0, -2.0, 0.5, 3.0])
    outs = run_grad(g, ["x"], x=x)
    np.testing.assert_allclose(outs["loss"], np.sum(x * x))
    np.testing.assert_allclose(outs["grad.x"], x)
    g = graph_of(lambda b, x: b.reduce_sum(b.emit(REGISTRY["stop_gradient"], x)), x="f64[4]")
    np.testing.assert_array_equal(run_grad(g, ["x"], x=x)["grad.x"], np.zeros(4))


def test_every_primitive_states_its_gradient():
    """A primitive has a VJP rule, or it is a source (no inputs), or it is listed in NO_VJP."""
    missing = [name for name, op in REGISTRY.items()
               if not op.is_composite and op.vjp is None and op.inputs and name not in NO_VJP]
    assert not missing, f"primitives without a vjp rule: {missing}"


# ---- the walk ---------------------------------------------------------------------------------
def graph_of(fn, **types: str) -> Graph:
    g = Graph("f")
    b = Builder(g)
    args = {k: b.input(k, TensorType.parse(t)) for k, t in types.items()}
    g.set_output("loss", fn(b, **args))
    return g


def run_grad(g: Graph, wrt, **inputs):
    outs, _ = Interpreter().run(grad(g, "loss", wrt=wrt), inputs, {})
    return outs


def test_fan_out_sums_gradients():
    g = graph_of(lambda b, x: b.reduce_sum(b.add(b.mul(x, x), x)), x="f64[3]")
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(run_grad(g, ["x"], x=x)["grad.x"], 2 * x + 1)


def test_broadcast_gradients_sum_back_to_each_shape():
    g = graph_of(lambda b, x, y: b.reduce_sum(b.mul(x, y)), x="f64[3, 1]", y="f64[4]")
    x, y = np.arange(3.0).reshape(3, 1), np.arange(4.0) + 1
    outs = run_grad(g, ["x", "y"], x=x, y=y)
    np.testing.assert_allclose(outs["grad.x"], np.full((3, 1), y.sum()))
    np.testing.assert_allclose(outs["grad.y"], np.full(4, x.sum()))


def test_symbolic_batch_dims_differentiate():
    g = graph_of(lambda b, x, w: b.reduce_mean(b.matmul(x, w)), x="f64[N, 3]", w="f64[3, 2]")
    x, w = np.ones((5, 3)), np.ones((3, 2))
    np.testing.assert_allclose(run_grad(g, ["w"], x=x, w=w)["grad.w"], np.full((3, 2), 0.5))


def test_second_derivatives_of_elementwise_and_matmul():
    """Hessian-vector products: grad of (grad f . v) against differences of grad f."""
    def f(b, x, w):
        return b.reduce_sum(b.mul(b.tanh(b.matmul(x, w)), b.exp(b.mul(x, x))))
    g = graph_of(f, x="f64[2, 3]", w="f64[3, 3]")
    first = grad(g, "loss", wrt=["x"])
    b = Builder(first)
    v = b.input("v", TensorType.parse("f64[2, 3]"))
    first.outputs = [("loss", b.reduce_sum(b.mul(dict(first.outputs)["grad.x"], v)))]
    second = grad(first, "loss", wrt=["x"])
    rng = np.random.default_rng(0)
    x, w, v = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)), rng.standard_normal((2, 3))
    hv = Interpreter().run(second, {"x": x, "w": w, "v": v}, {})[0]["grad.x"]
    gx = lambda x: run_grad(g, ["x"], x=x, w=w)["grad.x"]  # noqa: E731
    eps = 1e-6
    np.testing.assert_allclose(hv, (gx(x + eps * v) - gx(x - eps * v)) / (2 * eps), rtol=1e-6,
                               atol=1e-8)


def test_gradient_graph_prints_and_marks_backward_nodes():
    g = graph_of(lambda b, x: b.reduce_sum(b.sigmoid(x)), x="f32[N, 4]")
    gg = grad(g, "loss", wrt=["x"])
    assert any(n.backward for n in gg) and not all(n.backward for n in gg)
    assert "grad.x" in format_graph(gg)


# ---- PyTorch's choices at non-differentiable points --------------------------------------------
@pytest.mark.parametrize("case, x, expected", [
    ("relu", [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),              # 0 at 0
    ("abs", [-1.0, 0.0, 2.0], [-1.0, 0.0, 1.0]),              # sign(0) = 0
    ("leaky_relu", [-1.0, 0.0, 2.0], [0.01, 0.01, 1.0]),      # slope at 0
    ("reduce_max", [1.0, 3.0, 3.0], [0.0, 0.5, 0.5]),         # ties share evenly (amax)
    ("maximum_self", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0]),       # max(x, x): half + half
])
def test_gradients_at_kinks_follow_pytorch(case, x, expected):
    if case == "maximum_self":
        fn = lambda b, x: b.reduce_sum(b.maximum(x, x))  # noqa: E731
    else:
        fn = lambda b, x: b.reduce_sum(getattr(b, case)(x))  # noqa: E731
    g = graph_of(fn, x="f64[3]")
    np.testing.assert_allclose(run_grad(g, ["x"], x=np.array(x))["grad.x"], expected)


def test_kinks_agree_with_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, 0.0, 0.0, 2.0, 2.0])
    for name, tfn in [("relu", torch.relu), ("abs", torch.abs),
                      ("reduce_max", torch.amax)]:
        g = graph_of(lambda b, x, op=name: b.reduce_sum(getattr(b, op)(x)), x="f64[5]")
        t = torch.tensor(x, requires_grad=True)
        tfn(t).sum().backward()
        np.testing.assert_allclose(run_grad(g, ["x"], x=x)["grad.x"], t.grad.numpy(),
                                   err_msg=name)


# ---- what grad refuses ------------------------------------------------------------------------
def test_unknown_loss_output():
    g = graph_of(lambda b, x: b.reduce_sum(x), x="f32[3]")
    with pytest.raises(DlgNameError, match="no output 'cost'"):
        grad(g, "cost")


def test_loss_must_be_a_float_scalar():
    g = graph_of(lambda b, x: b.exp(x), x="f32[3]")
    with pytest.raises(DlgTypeError, match="float scalar"):
        grad(g, "loss", wrt=["x"])


def test_integer_inputs_have_no_gradient():
    g = graph_of(lambda b, x, i: b.reduce_sum(b.mul(x, b.cast(i, dtype=DType.f32))),
                 x="f32[3]", i="i64[3]")
    with pytest.raises(DlgTypeError, match="only float and complex values have gradients"):
        grad(g, "loss", wrt=["i"])
    with pytest.raises(DlgNameError, match="no parameter or input named 'z'"):
        grad(g, "loss", wrt=["z"])


def test_unused_params_get_no_gradient_unless_asked():
    g = Graph("f")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[3]"))
    used = b.param("used", TensorType.parse("f32[3]"))
    b.param("unused", TensorType.parse("f32[3]"))
    g.set_output("loss", b.reduce_sum(b.mul(x, used)))
    assert [k for k, _ in grad(g).outputs] == ["loss", "grad.used"]
    explicit = grad(g, wrt=["used", "unused"])
    outs, _ = Interpreter().run(explicit, {"x": np.ones(3, np.float32)},
                                {"used": np.ones(3, np.float32), "unused": np.ones(3, np.float32)})
    np.testing.assert_array_equal(outs["grad.unused"], np.zeros(3))


def test_buffers_are_not_trained_by_default():
    g = Graph("f")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[3]"))
    w = b.param("w", TensorType.parse("f32[3]"))
    s = b.param("scale", TensorType.parse("f32[3]"), trainable=False)
    g.set_output("loss", b.reduce_sum(b.mul(b.mul(x, w), s)))
    assert [k for k, _ in grad(g).outputs] == ["loss", "grad.w"]


def test_second_derivative_through_max_pooling_is_refused():
    g = graph_of(lambda b, x: b.reduce_sum(b.max_pool(b.mul(x, x), kernel=(2,), stride=(2,),
                                                      padding=(0,))), x="f64[1, 1, 4]")
    first = grad(g, "loss", wrt=["x"])
    b = Builder(first)
    first.outputs = [("loss", b.reduce_sum(dict(first.outputs)["grad.x"]))]
    with pytest.raises(DlgTypeError, match="max_pool_grad is not differentiable"):
        grad(first, "loss", wrt=["x"])


# ---- more shapes: broadcasting in every direction, scalars, rank 3 ------------------------------
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
UNARY = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "gelu",
         "leaky_relu", "sin", "cos", "erf"]
BROADCASTS = [((3, 1), (1, 4)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((5,), ())]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_gradients_under_broadcasting(name, shapes):
    g = Graph(name)
    b = Builder(g)
    x, y = (b.input(f"in{i}", TensorType(DType.f64, s)) for i, s in enumerate(shapes))
    g.set_output("out", getattr(b, name)(x, y))
    g, weights = scalar_loss(g)
    rng = np.random.default_rng(0)
    inputs = {f"in{i}": rng.uniform(0.5, 1.5, s) for i, s in enumerate(shapes)}
    check_gradients(g, {**inputs, **weights}, {}, ["in0", "in1"])


@pytest.mark.parametrize("shape", [(), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", UNARY)
def test_unary_gradients_on_scalars_and_rank_3(name, shape):
    g = Graph(name)
    b = Builder(g)
    g.set_output("out", getattr(b, name)(b.input("x", TensorType(DType.f64, shape))))
    g, weights = scalar_loss(g)
    x = np.random.default_rng(1).uniform(0.3, 1.7, shape)
    check_gradients(g, {"x": x, **weights}, {}, ["x"])
