"""The math functions against torch: elementwise composites (values at the edges: halves, zeros,
infinities, nan), division modes, alpha, clamp, closeness; reductions (amax/amin, var/std,
norms, all/any, count_nonzero, dtypes, dims: negative, empty, out of range, 0-d tensors); mm,
bmm, mv, dot, outer, einsum. Gradients against torch.autograd, prod's with zeros (eager and
compiled); the .dlg door."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.ir import Builder, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)
X = R.standard_normal((3, 4)).astype(np.float32)
EDGES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.7, 3.7, 0.0, 1e-6, -1e-5,
                  8.0, 1000.0, np.inf, -np.inf, np.nan], np.float32)
POSITIVE = np.array([1e-30, 1e-6, 0.3, 1.0, 2.0, 8.0, 10.0, 1000.0, 1e30, np.inf, 0.0],
                    np.float32)


def same(ours, theirs, rtol=1e-6, atol=1e-6):
    """Values, shape and dtype of a dlg result equal torch's."""
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    ours = np.asarray(ours)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, equal_nan=True)


def both(fn, *arrays, **kwargs):
    """fn(dlg, *tensors) and fn(torch, *tensors) compared."""
    ours = fn(dlg, *(dlg.tensor(a) for a in arrays))
    theirs = fn(torch, *(torch.tensor(a) for a in arrays))
    same(ours, theirs, **kwargs)


def grads(fn, *arrays, rtol=1e-5):
    """d(sum(fn(xs) * w))/dxs from dlg's backward and torch.autograd.grad."""
    ours = [dlg.tensor(a, requires_grad=True) for a in arrays]
    out = fn(dlg, *ours)
    w = R.standard_normal(out.shape).astype(np.float32)
    (out * dlg.tensor(w)).sum().backward()
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    want = torch.autograd.grad((fn(torch, *theirs) * torch.tensor(w)).sum(), theirs)
    for o, t in zip(ours, want):
        np.testing.assert_allclose(o.grad.numpy(), t.numpy(), rtol=rtol, atol=1e-6)


# ---- elementwise composites -------------------------------------------------------------------
EXACT = ["trunc", "frac", "round", "square", "reciprocal", "exp2", "isnan", "isinf", "isfinite"]


@pytest.mark.parametrize("name", EXACT + ["sinh", "cosh"])
def test_elementwise_matches_torch_exactly_at_the_edges(name):
    # sinh and cosh: torch's float32 kernels differ by an ulp between CPUs (its AVX-512 sinh
    # gives 6.0502048 where the correctly rounded value, ours, is 6.0502043); the edges
    # (overflow to inf, signed zeros, NaN) must still be exactly torch's
    rtol = 0 if name in EXACT else 2.0 ** -23
    with np.errstate(all="ignore"):
        both(lambda m, x: getattr(m, name)(x), EDGES, rtol=rtol, atol=0)


@pytest.mark.parametrize("name", ["log2", "log10"])
def test_logarithms_are_exact_for_powers(name):
    with np.errstate(all="ignore"):
        both(lambda m, x: getattr(m, name)(x), POSITIVE, rtol=0, atol=0)


@pytest.mark.parametrize("decimals", [-2, -1, 1, 3])
def test_round_with_decimals(decimals):
    x = np.array([1.2345, 12345.678, -0.125, 0.5, 250.0, -2.5e-3], np.float32)
    both(lambda m, t: m.round(t, decimals=decimals), x, rtol=0, atol=0)


def test_integers_keep_their_dtype():
    i = np.array([7, -7, 0, 3], np.int64)
    for name in ("trunc", "round", "square", "isnan", "isinf", "isfinite"):
        both(lambda m, x, name=name: getattr(m, name)(x), i)


@pytest.mark.parametrize("name", ["trunc", "frac", "round", "square", "reciprocal", "exp2",
                                  "log2", "log10", "sinh", "cosh"])
def test_elementwise_gradients_match_torch(name):
    grads(lambda m, x: getattr(m, name)(x), np.abs(X) + 0.1)


# ---- division --------------------------------------------------------------------------------
A = np.array([7.0, -7.0, 1.0, -1.0, 5.5, 0.0, 1e30, -3.0], np.float32)
B = np.array([2.0, 2.0, 0.1, 0.3, -1.5, 3.0, 3.0, 0.0], np.float32)
IA, IB = np.array([7, -7, 7, -7, 0, 6]), np.array([2, 2, -2, -2, 3, 3])


@pytest.mark.parametrize("fn", [
    lambda m, x, y: m.div(x, y, rounding_mode="floor"),
    lambda m, x, y: m.div(x, y, rounding_mode="trunc"),
    lambda m, x, y: m.floor_divide(x, y), lambda m, x, y: m.remainder(x, y),
    lambda m, x, y: m.fmod(x, y), lambda m, x, y: x // y, lambda m, x, y: x % y,
    lambda m, x, y: m.true_divide(x, y), lambda m, x, y: x.div(y),
], ids=["floor", "trunc", "floor_divide", "remainder", "fmod", "//", "%", "true_divide", "div"])
def test_division_modes_match_torch(fn):
    with np.errstate(all="ignore"):
        both(fn, A, B, rtol=0, atol=0)
    both(fn, IA, IB, rtol=0, atol=0)  # integers stay integers, except true division


def test_division_by_a_number_and_remainder_gradients():
    both(lambda m, x: m.div(x, 3, rounding_mode="floor"), IA)
    both(lambda m, x: x.remainder(-2.5), A[:6])
    grads(lambda m, x, y: m.remainder(x, y), A[:6], B[:6] + 0.05)
    grads(lambda m, x, y: m.fmod(x, y), A[:6], B[:6] + 0.05)


def test_add_sub_alpha_and_rsub():
    both(lambda m, x, y: m.add(x, y, alpha=2.5), X, X[0])
    both(lambda m, x, y: x.sub(y, alpha=-3), X, X[1])
    both(lambda m, x: m.rsub(x, 1.5, alpha=2), X)
    both(lambda m, x: x.add(2, alpha=3), IA)
    grads(lambda m, x, y: m.add(x, y, alpha=2.5), X, X[0])
    with pytest.raises(DlgTypeError, match="float"):
        dlg.add(dlg.tensor(IA), 1, alpha=2.5)  # torch refuses a float alpha for ints too
    with pytest.raises(DlgTypeError, match="rounding_mode"):
        dlg.div(dlg.tensor(A), 2, rounding_mode="round")


# ---- clamp -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda m, x: m.clamp(x, -0.5, 0.5), lambda m, x: x.clamp(min=0.0),
    lambda m, x: x.clip(max=0.25), lambda m, x: m.clamp(x, 1.0, -1.0),  # min > max: max
    lambda m, x: m.clamp(x, x[0], x[1]), lambda m, x: x.clamp(min=x[:, :1]),
], ids=["both", "min", "max", "crossed", "tensors", "broadcast"])
def test_clamp_matches_torch_with_gradients(fn):
    x = np.round(X * 2) / 2  # values at the bounds: torch's gradient reaches x there
    both(fn, x)
    grads(fn, x)


def test_clamp_promotes_refuses_no_bounds_and_works_in_place():
    both(lambda m, x: m.clamp(x, min=0.5), IA)
    both(lambda m, x: m.clamp(x, 0, 3), IA)
    with pytest.raises(DlgValueError, match="min, max or both"):
        dlg.clamp(dlg.tensor(X))
    t = dlg.tensor(X.copy())
    assert t.clamp_(0, 1) is t
    same(t, torch.tensor(X).clamp(0, 1))


# ---- closeness -------------------------------------------------------------------------------
def test_isclose_allclose_equal():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 1e-9, 100.0], np.float32)
    b = np.array([1.0 + 1e-6, np.nan, np.inf, np.inf, 0.0, 100.01], np.float32)
    for kwargs in ({}, {"equal_nan": True}, {"rtol": 1e-3, "atol": 0.0}, {"rtol": 0, "atol": 0}):
        with np.errstate(invalid="ignore"):  # inf - inf
            both(lambda m, x, y, kw=kwargs: m.isclose(x, y, **kw), a, b)
    both(lambda m, x, y: m.isclose(x, y), IA, IA + 1)
    for a, b in [(X, X), (X, X + 1e-3), (X, X + 1e-7), (X, X[0])]:
        assert dlg.allclose(dlg.tensor(a), dlg.tensor(b)) is torch.allclose(
            torch.tensor(a), torch.tensor(b))
    assert dlg.equal(dlg.tensor(X), dlg.tensor(X)) is True
    assert dlg.tensor(IA).equal(dlg.tensor(IA.astype(np.float32))) is True  # any dtypes
    assert dlg.equal(dlg.tensor(X), dlg.tensor(X[0])) is False  # shapes differ
    assert dlg.equal(dlg.tensor(a), dlg.tensor(a)) is torch.equal(torch.tensor(a),
                                                                   torch.tensor(a))


# ---- logic and the binary max/min ------------------------------------------------------------
LOGIC = [np.array([0.0, -0.0, 2.5, np.nan, np.inf, 0.0], np.float32),
         np.array([3, 0, 0, -1, 7, 0]), np.array([True, False, True, True, False, False])]


@pytest.mark.parametrize("name", ["logical_and", "logical_or", "logical_xor"])
def test_logical_functions_read_nonzero_as_true(name):
    for a in LOGIC:
        for b in LOGIC:  # every pair of dtypes: each side is read as bools on its own
            both(lambda m, x, y: getattr(m, name)(x, y), a, b)
        both(lambda m, x: getattr(x, name)(x[:1]), a)  # the method, broadcast


def test_logical_not_and_the_boolean_operators():
    for a in LOGIC:
        both(lambda m, x: m.logical_not(x), a)
        both(lambda m, x: x.logical_not(), a)
    p, q = LOGIC[2], LOGIC[2][::-1].copy()
    for fn in (lambda m, x, y: x & y, lambda m, x, y: x | y, lambda m, x, y: x ^ y,
               lambda m, x, y: ~x, lambda m, x, y: True ^ x, lambda m, x, y: x & False):
        both(fn, p, q)
    with pytest.raises(DlgTypeError, match=r"bitwise_and: inputs must be u8/i8/i16/i32/i64/bool, "
                                           r"got f32\[3,4\]"):
        dlg.tensor(X) & 1  # torch has no bitwise float either
    with pytest.raises(DlgTypeError, match=r"bitwise_not: input must be u8/i8/i16/i32/i64/bool"):
        ~dlg.tensor(X)


SHIFTS = np.array([0, 1, 3, 31, 32, 63, 64, -1, 65, 7])  # past the bits and negative: torch's
WORDS = np.array([5, -5, 1, -1, 7, 123456789, -2**40, 0, 2**62, -9])


@pytest.mark.parametrize("fn", [
    lambda m, x, y: x & y, lambda m, x, y: x | y, lambda m, x, y: x ^ y, lambda m, x, y: ~x,
    lambda m, x, y: x << y, lambda m, x, y: x >> y, lambda m, x, y: 3 << y,
    lambda m, x, y: 12 & x, lambda m, x, y: x ^ -1, lambda m, x, y: x.int() >> y.int(),
    lambda m, x, y: x.int() << 40, lambda m, x, y: x.int() & y,
    lambda m, x, y: (x > 0) | y, lambda m, x, y: (x > 0) & True,
    lambda m, x, y: m.bitwise_and(x, y), lambda m, x, y: m.bitwise_or(x, 6),
    lambda m, x, y: m.bitwise_xor(x.int(), y.int()), lambda m, x, y: m.bitwise_not(x > 0),
    lambda m, x, y: m.bitwise_left_shift(x, y), lambda m, x, y: m.bitwise_right_shift(x, y),
    lambda m, x, y: x.bitwise_and(y), lambda m, x, y: x.bitwise_not(),
    lambda m, x, y: x.bitwise_right_shift(2), lambda m, x, y: x[:, None] & y,
], ids=["and", "or", "xor", "not", "lshift", "rshift", "rlshift", "rand", "xor_number",
        "rshift_i32", "lshift_i32_past_bits", "and_i32_i64", "or_bool_int", "and_bool_number",
        "bitwise_and", "bitwise_or", "bitwise_xor_i32", "bitwise_not_bool", "left_shift",
        "right_shift", "method_and", "method_not", "method_rshift", "broadcast"])
def test_bitwise_operators_and_functions_match_torch(fn):
    both(fn, WORDS, SHIFTS)


def bitwise_mix(x, s):
    return (((x << s) ^ ~x) | (x >> s)) & (x.int() << s.int()).long()


def test_bitwise_ops_trace_and_compile_and_read_from_dlg():
    """Compiled at other batch sizes (vector lanes too: 70 columns), against torch."""
    m = dlg.loads("""model M { input x: i64[N, 70]  input s: i64[70]
        output y = bitwise_and(bitwise_or(bitwise_xor(bitwise_left_shift(x, s), bitwise_not(x)),
                   bitwise_right_shift(x, s)), cast(bitwise_left_shift(cast(x, i32),
                   cast(s, i32)), i64)) }""")
    shifts = np.resize(SHIFTS, 70)
    traced = dlg.trace(bitwise_mix, dlg.tensor(np.resize(WORDS, (2, 70))), dlg.tensor(shifts),
                       dynamic={"s": {}})
    for n in (3, 5):
        x = np.random.default_rng(n).integers(-2**40, 2**40, (n, 70))
        want = bitwise_mix(torch.tensor(x), torch.tensor(shifts)).numpy()
        for run in (m, dlg.compile(m), traced, dlg.compile(traced)):
            np.testing.assert_array_equal(run(x, shifts), want)


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_of_two_tensors_are_maximum_and_minimum(name):
    both(lambda m, x, y: getattr(m, name)(x, y), X, X[1])
    both(lambda m, x, y: getattr(x, name)(y), X, X[:, :1])
    both(lambda m, x, y: getattr(m, name)(x, other=y), X[0], X[2])
    both(lambda m, x, y: getattr(m, name)(x, y), IA, X[0, :1].copy())  # promoted: f32
    both(lambda m, x, y: getattr(x, name)(y), IA, IB)
    grads(lambda m, x, y: getattr(m, name)(x, y), X, X[1])
    same(getattr(dlg.tensor(X), name)(1)[1], getattr(torch.tensor(X), name)(1)[1])  # dim stays


# ---- reductions ------------------------------------------------------------------------------
X3 = R.standard_normal((2, 3, 4)).astype(np.float32)
DIMS = [None, 0, -1, (0, 2), (-1, 0), ()]


@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "norm",
                                  "count_nonzero", "all", "any"])
def test_reductions_over_dims_match_torch(name, dim):
    def fn(m, x):
        kwargs = {} if dim is None else {"dim": dim}
        if name not in ("count_nonzero", "all", "any") and dim is not None:
            kwargs["keepdim"] = True
        x = x > 0 if name in ("all", "any") else x
        return getattr(m, name)(x, **kwargs)
    if name in ("all", "any") and isinstance(dim, tuple) and len(dim) > 1:
        pytest.skip("torch's all/any take one dim")
    both(fn, X3, rtol=1e-5)
    torch_inf = name in ("var", "std") and dim == ()  # torch's gradient there is inf
    if name not in ("count_nonzero", "all", "any") and not torch_inf:
        grads(fn, X3)


@pytest.mark.parametrize("kwargs", [{}, {"dim": 1}, {"dim": 1, "unbiased": False},
                                    {"dim": (0, 1), "correction": 0}, {"correction": 2.5},
                                    {"dim": 0, "correction": 5}], ids=str)
def test_var_std_corrections(kwargs):
    for name in ("var", "std"):
        both(lambda m, x, name=name: getattr(m, name)(x, **kwargs), X, rtol=1e-5)
    both(lambda m, x: m.var(x, True), X)  # torch's (input, unbiased) form
    ours, theirs = dlg.std_mean(dlg.tensor(X), 0), torch.std_mean(torch.tensor(X), 0)
    for o, t in zip(ours, theirs):
        same(o, t, rtol=1e-5)


def test_std_and_norm_gradients_are_zero_where_they_are_zero():
    flat = np.ones((2, 3), np.float32)
    grads(lambda m, x: m.std(x, 1, correction=0), flat)
    zero_row = np.concatenate([np.zeros((1, 3)), X[:1, :3]]).astype(np.float32)
    for p in (2, 3.0, 1.5):
        grads(lambda m, x, p=p: m.norm(x, p=p, dim=1), zero_row)


@pytest.mark.parametrize("p", [2, "fro", 1, 3.0, 0.5, 0, float("inf"), float("-inf")],
                         ids=str)
def test_norms_match_torch(p):
    both(lambda m, x: m.norm(x, p=p, dim=1), X, rtol=1e-5)
    both(lambda m, x: x.norm(p), X, rtol=1e-5)
    if not isinstance(p, str):
        both(lambda m, x: m.linalg.vector_norm(x, p, dim=(0, 1), keepdim=True), X, rtol=1e-5)
    if p != 0:
        grads(lambda m, x: m.norm(x, p=p, dim=0, keepdim=True), X)


def test_dtypes_of_reductions():
    i32, bools = IA.astype(np.int32), X > 0
    both(lambda m, x: m.sum(x), i32)  # int64, as torch
    both(lambda m, x: x.prod(), bools)
    both(lambda m, x: m.sum(x, 0, dtype=m.float64 if m is torch else dlg.ir.DType.f64), X)
    both(lambda m, x: m.mean(x.float() if m is torch else x, 0), i32.astype(np.float32))
    both(lambda m, x: m.logsumexp(x, 0), IA)
    with pytest.raises(DlgTypeError, match="mean"):
        dlg.tensor(IA).mean()
    with pytest.raises(DlgTypeError, match="var"):
        dlg.var(dlg.tensor(IA))


def test_empty_reductions_and_truth_values():
    empty = np.zeros((0, 3), np.float32)
    for fn in (lambda m, x: m.sum(x, 0), lambda m, x: m.prod(x, 0),
               lambda m, x: m.all(x > 0, 0), lambda m, x: m.any(x > 0, 0),
               lambda m, x: m.count_nonzero(x, 0), lambda m, x: m.norm(x, dim=0)):
        both(fn, empty)
    with pytest.raises(DlgShapeError, match="empty"):
        dlg.amax(dlg.tensor(empty), 0)
    both(lambda m, x: m.all(x), X)  # floats as truth values


@pytest.mark.parametrize("fn", [
    lambda m, x: x.sum(0), lambda m, x: x.sum(-1), lambda m, x: x.prod(0),
    lambda m, x: x.mean(-1), lambda m, x: m.argmax(x, 0), lambda m, x: x.argmin(-1),
    lambda m, x: x.max(0)[0], lambda m, x: x.max(-1)[1], lambda m, x: m.amax(x, -1),
    lambda m, x: m.logsumexp(x, 0), lambda m, x: x.softmax(-1), lambda m, x: x.softmax(0),
    lambda m, x: m.log_softmax(x, -1), lambda m, x: x.var(0), lambda m, x: x.std(0, correction=0),
    lambda m, x: x.norm(dim=0), lambda m, x: x.all(0), lambda m, x: x.any(-1),
    lambda m, x: x.transpose(0, -1), lambda m, x: m.squeeze(x, -1),
], ids=lambda f: "")
def test_zero_dim_tensors_reduce_over_dim_0_and_minus_1(fn):
    both(fn, np.float32(-2.0))


def test_softmax_of_empty_tensors_and_with_dtype():
    both(lambda m, x: m.softmax(x, -1), np.zeros((5, 0, 0), np.float32))
    f64 = {"dtype": torch.float64}, {"dtype": dlg.float64}
    for name in ("softmax", "log_softmax"):
        both(lambda m, x, name=name: getattr(m, name)(x, 1, **f64[m is dlg]), X, rtol=1e-6)


def test_dims_out_of_range_or_repeated_are_errors_naming_dim():
    x = dlg.tensor(X)
    for call in (lambda: x.sum(2), lambda: x.amax((0, -3)), lambda: x.var(5),
                 lambda: dlg.tensor(1.0).sum(1), lambda: x.norm(dim=-3), lambda: x.argmax(2),
                 lambda: x.all(7), lambda: dlg.count_nonzero(x, 9)):
        with pytest.raises(DlgShapeError, match="dim .* out of range"):
            call()
    with pytest.raises(DlgShapeError, match="dim 0 appears twice"):
        x.sum((0, -2))


# ---- prod's gradient with zeros ------------------------------------------------------------------
ZEROS = np.array([[0, 2, -3, 0.5], [2, -1, 0, 3], [0, 2, 0, -1], [1.5, -2, 0.5, 3]], np.float32)


@pytest.mark.parametrize("fn", [lambda m, x: x.prod(1), lambda m, x: x.prod(0),
                                lambda m, x: m.prod(x), lambda m, x: x.prod(-1, keepdim=True),
                                lambda m, x: x[0].prod()], ids=str)
def test_prod_gradient_is_exact_with_zeros(fn):
    grads(fn, ZEROS)


@pytest.mark.parametrize("axes", [(1,), (0,), None], ids=str)
def test_compiled_prod_gradient_matches_the_interpreter(axes):
    g = Graph("g")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 4]"))
    out = b.reduce_prod(x, axes=axes)
    w = b.input("w", b.type_of(out))
    g.set_output("loss", b.reduce_sum(b.mul(out, w)))
    gg = grad(g, "loss", wrt=["x"])
    inputs = {"x": ZEROS, "w": R.standard_normal((4,) if axes else ()).astype(np.float32)}
    want, _ = Interpreter().run(gg, inputs, {})
    got = NativeGraph(gg)(inputs, {})
    np.testing.assert_allclose(got["grad.x"], want["grad.x"], rtol=1e-6, atol=1e-6)
    x_t = torch.tensor(ZEROS, requires_grad=True)
    loss = (x_t.prod(axes[0]) if axes else x_t.prod()) * torch.tensor(inputs["w"])
    (expected,) = torch.autograd.grad(loss.sum(), x_t)
    np.testing.assert_allclose(got["grad.x"], expected.numpy(), rtol=1e-6, atol=1e-6)


# ---- products ----------------------------------------------------------------------------------
M, V = R.standard_normal((3, 4)).astype(np.float32), R.standard_normal(4).astype(np.float32)
B3 = R.standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("fn, arrays", [
    (lambda m, a, b: m.mm(a, b.T), (M, M)), (lambda m, a, b: a.mm(b), (M, M.T.copy())),
    (lambda m, a, b: m.bmm(a, b.transpose(1, 2)), (B3, B3)), (lambda m, a, b: m.mv(a, b), (M, V)),
    (lambda m, a, b: m.dot(a, b), (V, V)), (lambda m, a, b: a.outer(b), (V, M[0])),
], ids=["mm", "method", "bmm", "mv", "dot", "outer"])
def test_products_match_torch(fn, arrays):
    both(fn, *arrays, rtol=1e-5)
    grads(fn, *arrays)


def test_products_check_ranks_and_sizes():
    m, v, b = dlg.tensor(M), dlg.tensor(V), dlg.tensor(B3)
    for call, match in [(lambda: dlg.mm(m, v), "mat2 must be 2-d"),
                        (lambda: dlg.mm(b, m), "input must be 2-d"),
                        (lambda: dlg.mm(m, m), "inner dims differ"),
                        (lambda: dlg.bmm(b, m), "mat2 must be 3-d"),
                        (lambda: dlg.bmm(b, dlg.tensor(B3[:1].transpose(0, 2, 1))),
                         "batch sizes differ"),
                        (lambda: dlg.dot(v, dlg.tensor(V[:3])), "inner dims differ")]:
        with pytest.raises(DlgShapeError, match=match):
            call()
    with pytest.raises(DlgTypeError, match="dtypes differ"):
        dlg.dot(v, dlg.tensor(V.astype(np.float64)))


EINSUM = [("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]),
          ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]),
          ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("i,j->ij", [(3,), (4,)]), ("i,i->", [(4,), (4,)]),
          ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...j,j", [(2, 3, 4), (4,)]),
          ("bi,bj,bk->bijk", [(2, 3), (2, 4), (2, 5)]), ("ij,kj", [(3, 4), (5, 4)]),
          ("Ab,ba->Aa", [(3, 2), (2, 3)]), ("i,i->i", [(1,), (3,)]), ("iji->j", [(2, 3, 2)]),
          ("b i j , b j -> b i", [(2, 3, 4), (2, 4)])]


@pytest.mark.parametrize("equation, shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_matches_torch(equation, shapes):
    arrays = [R.standard_normal(s).astype(np.float32) for s in shapes]
    both(lambda m, *xs: m.einsum(equation, *xs), *arrays, rtol=1e-5, atol=1e-5)
    grads(lambda m, *xs: m.einsum(equation, *xs), *arrays)


SUBLISTS = [  # torch's sublist form: operand, sublist, ..., [output sublist]
    ([(2, 3, 4), (2, 4, 5)], [[0, 1, 2], [0, 2, 3], [0, 1, 3]]),
    ([(2, 3, 4), (2, 4, 5)], [[0, 1, 2], [0, 2, 3]]),  # implicit: labels in torch's letter order
    ([(2, 3, 4), (2, 3, 4)], [[..., 30, 3], [..., 30, 3], [...]]),
    ([(3, 3)], [[27, 27]]),
]


@pytest.mark.parametrize("shapes, sublists", SUBLISTS, ids=[str(s) for _, s in SUBLISTS])
def test_einsum_sublist_form_matches_torch(shapes, sublists):
    arrays = [R.standard_normal(s).astype(np.float32) for s in shapes]

    def call(m, *xs):
        args = [a for x, sub in zip(xs, sublists) for a in (x, sub)]
        return m.einsum(*args, *sublists[len(xs):])

    both(call, *arrays, rtol=1e-5, atol=1e-5)
    grads(call, *arrays)


def test_einsum_errors():
    m = dlg.tensor(M)
    with pytest.raises(DlgValueError, match="not in \\[0, 52\\)"):
        dlg.einsum(m, [0, 52])
    with pytest.raises(DlgTypeError, match="sublist must hold ints"):
        dlg.einsum(m, [0, 1], m, ["i", "j"])
    for args, error, match in [(("ij,jk", m), DlgValueError, "2 operand"),
                               (("ijk", m), DlgShapeError, "does not fit"),
                               (("ij->k", m), DlgValueError, "not in any input"),
                               (("ij,ij", m, dlg.tensor(M.T.copy())), DlgShapeError, "sizes"),
                               (("i1", m), DlgValueError, "bad subscripts")]:
        with pytest.raises(error, match=match):
            dlg.einsum(*args)


# ---- the .dlg door -------------------------------------------------------------------------------
def test_the_dlg_door_runs_the_same_functions():
    source = """model M {
        input x: f32[N, 4]
        output v = var(x, axis=1, correction=0)
        output n = norm(x, 3.0, axis=0, keepdims=true)
        output c = clamp(x, -0.5, 0.5)
        output e = einsum("ij,kj->ik", x, x)
        output r = round(remainder(x * 10.0, 3.0), decimals=1)
        output a = all(x > -10.0, axis=1)
    }"""
    got = dlg.loads(source, file="t.dlg")(x=X)
    t = torch.tensor(X)
    want = (t.var(1, correction=0), t.norm(3.0, dim=0, keepdim=True), t.clamp(-0.5, 0.5),
            torch.einsum("ij,kj->ik", t, t), torch.round(torch.remainder(t * 10, 3), decimals=1),
            (t > -10).all(1))
    for ours, theirs in zip(got, want):
        same(ours, theirs, rtol=1e-5, atol=1e-5)
