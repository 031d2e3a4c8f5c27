"""Elementwise, reduction and source ops against scalar math (Python's `math`, element by
element) and against PyTorch; plus the registry-wide check that infer agrees with the result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.ir import DType
from tests.ir.opcheck import run_op

RNG = np.random.default_rng(0)


def elementwise(fn, *arrays):
    """An independent oracle: apply a scalar function element by element in float64."""
    b = np.broadcast_arrays(*[np.asarray(a, np.float64) for a in arrays])
    return np.array([fn(*vals) for vals in zip(*(x.ravel() for x in b))]).reshape(b[0].shape)


def _gelu(v):
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def _gelu_tanh(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


UNARY = {
    "neg": lambda v: -v, "abs": abs, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
    "rsqrt": lambda v: 1 / math.sqrt(v), "tanh": math.tanh,
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)), "relu": lambda v: max(v, 0.0),
    "gelu": _gelu, "sin": math.sin, "cos": math.cos, "floor": math.floor, "ceil": math.ceil,
    "sign": lambda v: int(v > 0) - int(v < 0), "leaky_relu": lambda v: v if v >= 0 else 0.01 * v,
}
POSITIVE = {"log", "sqrt", "rsqrt"}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_against_scalar_math(name, dtype):
    x = RNG.uniform(0.1, 3, (3, 4)) if name in POSITIVE else RNG.uniform(-3, 3, (3, 4))
    x = x.astype(dtype)
    x[0, 0] = 0.1 if name in POSITIVE else 0.0
    (out,), (t,) = run_op(name, x)
    assert out.dtype == dtype and t.dtype.np == dtype and out.shape == tuple(t.shape)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, elementwise(UNARY[name], x), rtol=tol, atol=tol)


def test_gelu_tanh_and_leaky_relu_slope():
    x = np.linspace(-4, 4, 17)
    (out,), _ = run_op("gelu", x, approximate="tanh")
    np.testing.assert_allclose(out, elementwise(_gelu_tanh, x), rtol=1e-10)
    (out,), _ = run_op("leaky_relu", x, negative_slope=0.2)
    np.testing.assert_allclose(out, np.where(x >= 0, x, 0.2 * x))


def test_sigmoid_does_not_overflow():
    (out,), _ = run_op("sigmoid", np.array([-1000.0, 0.0, 1000.0], np.float32))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


BINARY = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
          "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "maximum": max, "minimum": min}
COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
           "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 2)), ((0, 3), (1, 3))]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_broadcasting(name, shapes):
    a = RNG.uniform(0.5, 2, shapes[0]).astype(np.float32)
    b = RNG.uniform(0.5, 2, shapes[1]).astype(np.float32)
    (out,), (t,) = run_op(name, a, b)
    assert out.shape == tuple(t.shape) == np.broadcast_shapes(a.shape, b.shape)
    np.testing.assert_allclose(out, elementwise(BINARY[name], a, b), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparisons_give_bool(name):
    a = np.array([[1, 2, 3]], np.int64)
    b = np.array([[2], [2]], np.int64)
    (out,), (t,) = run_op(name, a, b)
    assert out.dtype == np.bool_ and str(t) == "bool[2,3]"
    np.testing.assert_array_equal(out, elementwise(COMPARE[name], a, b).astype(bool))


def test_integer_arithmetic_keeps_dtype():
    a = np.array([5, -3], np.int32)
    (out,), _ = run_op("mul", a, np.array([2, 2], np.int32))
    assert out.dtype == np.int32 and list(out) == [10, -6]


def test_logical_ops_where_and_cast():
    p = np.array([True, False, True])
    q = np.array([True, True, False])
    assert list(run_op("logical_and", p, q)[0][0]) == [True, False, False]
    assert list(run_op("logical_or", p, q)[0][0]) == [True, True, True]
    assert list(run_op("logical_not", p)[0][0]) == [False, True, False]
    (out,), _ = run_op("where", p[:, None], np.ones((3, 2), np.float32),
                       np.zeros((1, 2), np.float32))
    np.testing.assert_array_equal(out, [[1, 1], [0, 0], [1, 1]])
    (out,), (t,) = run_op("cast", np.array([1.7, -1.7]), dtype=DType.i64)
    assert out.dtype == np.int64 and list(out) == [1, -1] and str(t) == "i64[2]"


@pytest.mark.parametrize("bad", [
    ("add", np.ones(3, np.float32), np.ones(3, np.int64), DlgTypeError, "dtypes differ"),
    ("add", np.ones(3, np.float32), np.ones(4, np.float32), DlgShapeError, r"\[3\] vs \[4\]"),
    ("div", np.ones(3, np.int64), np.ones(3, np.int64), DlgTypeError, "must be f16/f32/f64"),
    ("logical_and", np.ones(3, np.float32), np.ones(3, np.float32), DlgTypeError, "bool"),
])
def test_elementwise_errors(bad):
    name, a, b, cls, phrase = bad
    with pytest.raises(cls, match=phrase):
        run_op(name, a, b)


REDUCE = {"reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod}


def loop_reduce(fn, x, axes, keepdims):
    """Reduce by iterating over the kept index space with plain Python."""
    axes = tuple(sorted(a % x.ndim for a in (range(x.ndim) if axes is None else axes)))
    kept = [d for i, d in enumerate(x.shape) if i not in axes]
    out = np.empty(kept, np.float64)
    for idx in np.ndindex(*kept):
        it = iter(idx)
        sel = tuple(slice(None) if i in axes else next(it) for i in range(x.ndim))
        out[idx] = fn([float(v) for v in x[sel].ravel()])
    if keepdims:
        out = out.reshape([1 if i in axes else d for i, d in enumerate(x.shape)])
    return out


PY_REDUCE = {"reduce_sum": sum, "reduce_max": max, "reduce_min": min, "reduce_prod": math.prod}


@pytest.mark.parametrize("name", sorted(REDUCE))
@pytest.mark.parametrize("axes,keepdims", [(None, False), ((1,), False), ((-1,), True),
                                           ((0, 2), False), ((0, 2), True)])
def test_reductions_against_loops(name, axes, keepdims):
    x = RNG.uniform(0.5, 1.5, (2, 3, 4))
    (out,), (t,) = run_op(name, x, axes=axes, keepdims=keepdims)
    assert out.shape == tuple(t.shape)
    np.testing.assert_allclose(out, loop_reduce(PY_REDUCE[name], x, axes, keepdims), rtol=1e-12)


def test_mean_of_bools_and_ints_is_f32():
    (out,), (t,) = run_op("reduce_mean", np.array([True, False, True, True]))
    assert str(t) == "f32[]" and out == np.float32(0.75)
    (out,), _ = run_op("reduce_mean", np.arange(6, dtype=np.int64).reshape(2, 3), axes=(1,))
    np.testing.assert_allclose(out, [1, 4])


def test_sum_over_an_empty_axis_is_zero_and_max_is_an_error():
    (out,), _ = run_op("reduce_sum", np.zeros((0, 3), np.float32), axes=(0,))
    np.testing.assert_array_equal(out, [0, 0, 0])
    with pytest.raises(DlgShapeError, match="empty axis"):
        run_op("reduce_max", np.zeros((0, 3), np.float32), axes=(0,))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_first_index_of_ties(name):
    x = np.array([[1, 3, 3], [2, 2, 0]], np.float32)
    (out,), (t,) = run_op(name, x, axis=1)
    expected = [[1, 0], [0, 2]][name == "argmin"]
    assert str(t) == "i64[2]" and list(out) == expected
    (out,), _ = run_op(name, x, axis=None, keepdims=True)
    assert out.shape == (1, 1)


def test_sources_full_arange_numel_random():
    (out,), (t,) = run_op("full", shape=(2, 3), value=1.5)
    assert str(t) == "f32[2,3]" and (out == 1.5).all()
    (out,), _ = run_op("arange", start=1, stop=7, step=2)
    assert list(out) == [1, 3, 5]
    (out,), _ = run_op("numel", np.zeros((2, 3, 4)), axes=(0, 2))
    assert out == 8
    (u,), _ = run_op("random_uniform", shape=(4000,), seed=1)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.03
    (n,), _ = run_op("random_normal", shape=(4000,), mean=2.0, std=3.0, seed=1)
    assert abs(n.mean() - 2) < 0.2 and abs(n.std() - 3) < 0.2


def test_unary_and_binary_match_pytorch():
    torch = pytest.importorskip("torch")
    x = RNG.uniform(-2, 2, (5, 3)).astype(np.float32)
    y = RNG.uniform(0.5, 2, (5, 3)).astype(np.float32)
    t = torch.from_numpy
    cases = {"tanh": torch.tanh(t(x)), "sigmoid": torch.sigmoid(t(x)),
             "gelu": torch.nn.functional.gelu(t(x)), "relu": torch.relu(t(x)),
             "leaky_relu": torch.nn.functional.leaky_relu(t(x)), "sign": torch.sign(t(x)),
             "exp": torch.exp(t(x))}
    for name, expected in cases.items():
        np.testing.assert_allclose(run_op(name, x)[0][0], expected.numpy(), rtol=1e-6,
                                   atol=1e-7)
    np.testing.assert_allclose(run_op("pow", y, x)[0][0], torch.pow(t(y), t(x)).numpy(),
                               rtol=1e-6)
