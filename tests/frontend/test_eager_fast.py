"""The eager engine's fast paths against its general ones: kept output types, kept gradient
graphs, flattened composite programs, operators that skip promotion and eager's working
precision (products in the inputs' dtype) must give what the slow paths give."""

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.errors import DlgError
from dlg.frontend import autograd, engine
from dlg.frontend.methods import promote
from dlg.ir.dtypes import DType
from dlg.ir.graph import Graph
from dlg.ir.builder import Builder
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.elementwise import ADD
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter, Program

RNG = np.random.default_rng(7)


def _t(shape, dtype=np.float32, requires_grad=False):
    return dlg.tensor(RNG.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


# ---- kept output types: no leaks between dtypes, shapes, attributes --------------------------
def test_inferred_types_follow_dtype_and_shape():
    for shape, dtype in [((3, 4), np.float32), ((3, 4), np.float64), ((5, 1), np.float32),
                         ((2, 3), np.float16)]:
        out = _t(shape, dtype) + _t(shape, dtype)
        assert out.shape == shape and out.dtype == DType.of(np.zeros(0, dtype))
        assert out.numpy().dtype == dtype


def test_inferred_types_follow_attributes():
    x = _t((2, 3, 4))
    assert x.sum(dim=1).shape == (2, 4)
    assert x.sum(dim=2).shape == (2, 3)
    assert x.sum(dim=2, keepdim=True).shape == (2, 3, 1)
    assert x.sum(dim=1).shape == (2, 4)  # asked again after the others


def test_bad_call_still_fails_after_a_good_one():
    """An error is never kept: the same op on other types raises each time."""
    a, b = _t((2, 3)), _t((3, 2))
    _ = a + a
    for _ in range(2):
        with pytest.raises(DlgError):
            engine.apply(ADD, (a, b), {})


def test_attribute_kinds_do_not_share_a_key():
    """A bool attribute given 1 is refused even after True was accepted (1 == True)."""
    x = _t((2, 3))
    engine.apply(REGISTRY["reduce_sum"], (x,), {"axes": (1,), "keepdims": True})
    with pytest.raises(DlgError):
        engine.apply(REGISTRY["reduce_sum"], (x,), {"axes": (1,), "keepdims": 1})


# ---- kept plans (engine.Planned) and replayed calls ---------------------------------------------
def test_index_replays_follow_the_bounds():
    """x[...] replays the ops its first call with the same key emitted: slices key by their
    bounds (and classes), so neighbouring bounds never share a recording."""
    a = RNG.standard_normal((3, 5)).astype(np.float32)
    x = dlg.tensor(a)
    items = [np.s_[:, :2], np.s_[:, :3], np.s_[1], np.s_[-1], np.s_[::2], np.s_[1:], np.s_[:, 4],
             np.s_[0, 1:4], np.s_[..., 1], np.s_[None, 2], np.s_[:]]
    for _ in range(2):  # recorded, then replayed
        for item in items:
            np.testing.assert_array_equal(x[item].numpy(), a[item], err_msg=str(item))


def test_kept_plans_step_aside_for_anomaly_mode_and_the_profiler():
    """A call run often enough to have kept plans (direct, replayed, indexed) is still checked
    in anomaly mode and still timed by the profiler."""
    x = dlg.tensor([[-1.0, 2.0]])
    for _ in range(3):
        dlg.log(x), F.log_softmax(x, 1), x[:, :1].sqrt(), x.sum()
    with dlg.detect_anomaly():
        for call in (lambda: dlg.log(x), lambda: x[:, :1].sqrt()):
            with pytest.raises(dlg.DlgNumericError, match="produced nan"):
                call()
    with dlg.profiler.profile() as prof:
        dlg.log(x), F.log_softmax(x, 1), x.sum()
    names = {e.key.split("::")[-1] for e in prof.key_averages()}
    assert {"log", "log_softmax", "reduce_sum"} <= names, names


def test_numpy_warns_again_after_eager_ops():
    """Eager ops turn NumPy's floating-point warnings off only while they run (runtime/quiet.py),
    also when an op fails."""
    import warnings
    x = dlg.tensor([0.0, -1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            dlg.log(x), F.log_softmax(x, 0), x / x
        with pytest.raises(DlgError):
            dlg.tensor([[1.0, 2.0]]) @ dlg.tensor([[1.0, 2.0]])
        with pytest.raises(RuntimeWarning):
            np.log(np.array([-1.0]))


# ---- operators without promotion give what promotion gives ------------------------------------
@pytest.mark.parametrize("other", [2, 0.5, -3.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_operator_with_a_number_matches_promotion(dtype, other):
    x = _t((3, 4), dtype)
    for name, fast in (("add", x + other), ("mul", other * x), ("sub", other - x),
                       ("div", x / other), ("pow", (x.abs() + 0.5) ** other)):
        base = x.abs() + 0.5 if name == "pow" else x
        args = (other, base) if name == "sub" else (base, other)
        slow = dlg.frontend.tensor.call(name, *promote(REGISTRY[name], *args))
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast.numpy(), slow.numpy())


def test_mixed_dtypes_still_promote():
    i, f = dlg.tensor([1, 2, 3]), dlg.tensor([0.5, 1.5, 2.5])
    assert (i + f).dtype == DType.f32
    assert (i / i).dtype == DType.f32  # true division makes floats of ints
    assert (i + i).dtype == DType.i64
    assert (i * 2.5).dtype == DType.f32


# ---- grad modes, in-place ops --------------------------------------------------------------------
def test_records_follow_grad_mode():
    w = _t((3,), requires_grad=True)
    assert (w * w).requires_grad
    with dlg.no_grad():
        assert not (w * w).requires_grad and (w * w).grad_fn is None
    assert (w * w).grad_fn == "mul"


def test_in_place_updates_are_seen_by_later_ops():
    x = _t((2, 2))
    before = (x + x).numpy().copy()
    x.add_(1.0)
    np.testing.assert_allclose((x + x).numpy(), before + 2, rtol=1e-6)
    w = _t((2,), requires_grad=True)
    with pytest.raises(DlgError):
        w.mul_(2.0)


# ---- kept gradient graphs ------------------------------------------------------------------------
def _mlp_grads(x, y, w1, w2):
    for w in (w1, w2):
        w.grad = None
    loss = F.cross_entropy(F.relu(x @ w1) @ w2, y)
    loss.backward()
    return w1.grad.numpy().copy(), w2.grad.numpy().copy()


def test_kept_gradient_graph_sees_new_values():
    w1, w2 = _t((5, 4), requires_grad=True), _t((4, 3), requires_grad=True)
    y = dlg.tensor(np.array([0, 2, 1, 1]))
    x1, x2 = _t((4, 5)), _t((4, 5))
    first = _mlp_grads(x1, y, w1, w2)
    other = _mlp_grads(x2, y, w1, w2)  # same tape, kept graph, new values
    again = _mlp_grads(x1, y, w1, w2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_gradient_graph_reads_recorded_values_instead_of_recomputing():
    """The kept gradient graph of a two-layer MLP whose input wants no gradient runs three
    products (dW2 = h^T g, dh = g W2^T, dW1 = x^T dh): the forward's two are read from the
    recorded values; a value written in place after it was recorded (an in-place op's input)
    is computed again."""
    w1, w2 = _t((5, 4), requires_grad=True), _t((4, 3), requires_grad=True)
    y = dlg.tensor(np.array([0, 2, 1, 1]))
    autograd._state.__dict__.pop("plans", None)
    _mlp_grads(_t((4, 5)), y, w1, w2)
    (plan,) = autograd._state.plans.values()
    assert sum(name == "matmul" for _, name, *_ in plan.program.steps) == 3
    a, b = _t((3,), requires_grad=True), _t((3,), requires_grad=True)
    h = a * 2
    h.mul_(b)  # h's memory now holds 2ab; d/db reads the 2a mul_ read, so 2a is made again
    h.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), 2 * a.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), 2 * b.detach().numpy(), rtol=1e-6)


def test_gradient_graph_key_follows_shapes_and_wrt():
    a, b = _t((3,), requires_grad=True), _t((3,), requires_grad=True)
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.detach().numpy(), rtol=1e-6)
    c = _t((3,))  # same ops, but only a wants a gradient now
    a.grad = None
    (a * c).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), c.numpy(), rtol=1e-6)
    d, e = _t((2, 2), requires_grad=True), _t((2, 2))
    (d * e).sum().backward()  # same ops on other shapes
    np.testing.assert_allclose(d.grad.numpy(), e.numpy(), rtol=1e-6)


def test_gradients_match_finite_differences():
    x = _t((3, 4)).double()
    w = dlg.tensor(RNG.standard_normal((4, 2)), requires_grad=True)
    for _ in range(2):  # the second run uses the kept graph
        w.grad = None
        F.log_softmax(x @ w, dim=1).sum().backward()
    eps, wv = 1e-6, w.detach().numpy().copy()

    def f(m):
        z = x.numpy() @ m
        return (z - np.log(np.exp(z).sum(1, keepdims=True))).sum()
    num = np.zeros_like(wv)
    for idx in np.ndindex(*wv.shape):
        step = np.zeros_like(wv)
        step[idx] = eps
        num[idx] = (f(wv + step) - f(wv - step)) / (2 * eps)
    np.testing.assert_allclose(w.grad.numpy(), num, rtol=1e-5, atol=1e-7)


def test_kept_graphs_are_bounded():
    w = _t((1,), requires_grad=True)
    for n in range(autograd.KEPT + 5):
        (w * _t((n + 1, 1))).sum().backward()
    assert len(autograd._state.plans) <= autograd.KEPT


# ---- programs equal the interpreter; working precision ---------------------------------------
@pytest.mark.parametrize("name,attrs", [("softmax", {"axis": 1}), ("log_softmax", {"axis": 0}),
                                        ("logsumexp", {"axes": (1,), "keepdims": False})])
def test_program_matches_interpreter(name, attrs):
    g = Graph(name)
    b = Builder(g)
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    g.set_output("out0", b.emit(REGISTRY[name], b.input("in0", TensorType(DType.f32, (3, 5))),
                                **attrs))
    expected, _ = Interpreter().run(g, {"in0": x}, {})
    (got,) = Program.of(g).run([x])
    np.testing.assert_array_equal(got, expected["out0"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_working_precision_products(dtype):
    """exact=False keeps the result's dtype and stays within its rounding of the oracle."""
    conv = {"stride": (2, 1), "padding": ((1, 0), (0, 1)), "dilation": (1, 2), "groups": 1}
    tol = {np.float16: 1e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    cases = [("matmul", (RNG.standard_normal((3, 7)), RNG.standard_normal((7, 5))), {}),
             ("conv", (RNG.standard_normal((2, 3, 9, 7)), RNG.standard_normal((4, 3, 3, 2))),
              conv),
             ("conv_weight_grad", (RNG.standard_normal((2, 3, 9, 7)),
                                   RNG.standard_normal((2, 4, 4, 6))), {**conv, "kernel": (3, 2)})]
    for name, arrays, attrs in cases:
        args = [a.astype(dtype) for a in arrays]
        ref = REGISTRY[name].ref
        fast, exact = ref(*args, **attrs, exact=False), ref(*args, **attrs)
        assert fast.dtype == exact.dtype == dtype
        np.testing.assert_allclose(fast, exact, rtol=tol, atol=tol)


def test_eager_conv_matches_the_oracle():
    """Eager's f32 products stay within float32 rounding of the float64 oracle."""
    x, w = _t((2, 3, 8, 8), requires_grad=True), _t((4, 3, 3, 3), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    oracle = REGISTRY["conv"].ref(x.detach().numpy(), w.detach().numpy(), stride=(1, 1),
                                  padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    np.testing.assert_allclose(out.detach().numpy(), oracle, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert w.grad.shape == w.shape and x.grad.shape == x.shape
