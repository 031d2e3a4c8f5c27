"""torch's elementwise math names that dlg composes from its primitives (dlg/functions/special.py
and pointwise.py) and its other spellings, against torch: domain edges and infinities, integer
inputs, float64, gradients, and what OpInfo does not sample (gcd/lcm are integer-only,
polygamma's function form, the in-place methods). OpInfo covers the float32 samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

EDGES = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-6, -1e-6, 0.999999, -0.999999, 1.0000001,
                  2.0, -2.5, -3.0, 7.3, 30.0, 1e10, -1e30, math.inf, -math.inf, math.nan])
UNARY = ["tan", "asin", "acos", "atanh", "asinh", "acosh", "arcsin", "arccos", "arctanh",
         "arcsinh", "arccosh", "sinc", "deg2rad", "rad2deg", "expm1", "erfc", "erfinv", "logit",
         "lgamma", "digamma", "i0", "absolute", "negative", "fix", "positive"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", UNARY)
def test_unary_values_at_the_edges(name, dtype):
    x = np.concatenate([EDGES, np.linspace(-9, 9, 37)]).astype(dtype)
    got = getattr(dlg, name)(dlg.tensor(x)).numpy()
    want = getattr(torch, name)(torch.tensor(x)).numpy()
    assert got.dtype == want.dtype
    # float64: erfc and i0 keep float32's precision (DESIGN), the rest float64's to a few ulps
    rtol = 1e-5 if dtype == np.float32 or name in ("erfc", "i0") else 1e-9
    if name == "i0":
        x, got, want = x[np.abs(x) < 50], got[np.abs(x) < 50], want[np.abs(x) < 50]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["tan", "asin", "acos", "atanh", "asinh", "acosh", "sinc",
                                  "expm1", "erfc", "erfinv", "lgamma", "digamma", "i0",
                                  "deg2rad"])
def test_unary_gradients_and_integers(name):
    lo, hi = {"asin": (-0.95, 0.95), "acos": (-0.95, 0.95), "atanh": (-0.95, 0.95),
              "erfinv": (-0.95, 0.95), "acosh": (1.05, 9.0), "tan": (-1.4, 1.4)}.get(name, (-6, 6))
    x = np.random.default_rng(1).uniform(lo, hi, 40).astype(np.float32)
    ours, theirs = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    getattr(dlg, name)(ours).sum().backward()
    getattr(torch, name)(theirs).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
    ints = np.array([0, 1, 2, 5]) if name != "acosh" else np.array([1, 2, 3])
    got, want = getattr(dlg, name)(dlg.tensor(ints)), getattr(torch, name)(torch.tensor(ints))
    assert got.dtype == dlg.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("n", [0, 1, 2, 4])
def test_polygamma_and_mvlgamma(n):
    x = np.concatenate([np.linspace(-9.7, 9.7, 30), [0.25, 40.0, -15.5]]).astype(np.float64)
    got = dlg.polygamma(n, dlg.tensor(x)).numpy()
    np.testing.assert_allclose(got, torch.polygamma(n, torch.tensor(x)).numpy(), rtol=1e-9)
    assert np.allclose(dlg.tensor(x).polygamma(n).numpy(), got, equal_nan=True)
    y = np.linspace(2.1, 9, 7)
    np.testing.assert_allclose(dlg.mvlgamma(dlg.tensor(y), p=n + 1).numpy(),
                               torch.mvlgamma(torch.tensor(y), p=n + 1).numpy(), rtol=1e-12)


def test_logit_eps_and_gradient():
    x = np.array([0.0, 0.01, 0.3, 0.5, 0.99, 1.0], np.float32)
    for eps in (None, 0.05):
        ours, theirs = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        a, b = dlg.logit(ours, eps), torch.logit(theirs, eps)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6)
        if eps:
            a.sum().backward()
            b.sum().backward()
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_gcd_lcm(dtype):
    a = np.array([12, 0, -8, 7, 0, 2**20 * 3, 1836311903, -5], dtype)
    b = np.array([18, 0, 12, 3, -9, 2**18 * 9, 1134903170, 0], dtype)
    for name in ("gcd", "lcm"):
        got = getattr(dlg, name)(dlg.tensor(a), dlg.tensor(b))
        want = getattr(torch, name)(torch.tensor(a), torch.tensor(b))
        assert got.dtype.np == want.numpy().dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(dlg.tensor(a).gcd(dlg.tensor(4)).numpy(),
                                  torch.tensor(a).gcd(torch.tensor(4)).numpy())
    with pytest.raises(dlg.DlgTypeError, match="integer"):
        dlg.gcd(dlg.tensor([1.0]), dlg.tensor([2.0]))


def test_binary_names_promote_and_take_torchs_keywords():
    i, f = np.array([1, 2, 3]), np.array([0.5, math.nan, -0.0], np.float32)
    for name in ("multiply", "subtract", "greater", "greater_equal", "less", "less_equal",
                 "not_equal", "copysign", "fmax", "fmin", "ldexp"):
        scalar = 2 if name not in ("fmax", "fmin", "ldexp", "copysign") else np.float32(2)
        for a, b in ((i, f), (f, i), (f, np.array(scalar))):
            da, ta = (dlg.tensor(a), torch.tensor(a)) if isinstance(a, np.ndarray) else (a, a)
            db, tb = (dlg.tensor(b), torch.tensor(b)) if isinstance(b, np.ndarray) else (b, b)
            got, want = getattr(dlg, name)(da, db), getattr(torch, name)(ta, tb)
            assert got.dtype.np == want.numpy().dtype, name
            np.testing.assert_allclose(got.numpy(), want.numpy(), equal_nan=True)
            assert np.array_equal(getattr(da, name)(db).numpy(), got.numpy(), equal_nan=True)
    assert dlg.subtract(dlg.tensor([5.0]), dlg.tensor([1.0]), alpha=2).item() == 3.0
    assert dlg.isposinf(dlg.tensor([1, 2])).dtype == dlg.bool
    x = np.array([math.inf, -math.inf, 1.0, math.nan], np.float32)
    for name in ("isposinf", "isneginf", "isreal"):
        np.testing.assert_array_equal(getattr(dlg, name)(dlg.tensor(x)).numpy(),
                                      getattr(torch, name)(torch.tensor(x)).numpy())


def test_fmax_fmin_gradients_at_ties_and_nans():
    a = np.array([1.0, 2.0, math.nan, 3.0], np.float32)
    b = np.array([1.0, math.nan, 0.0, 4.0], np.float32)
    for name in ("fmax", "fmin", "copysign"):
        if name == "copysign":  # torch's gradient at a NaN input is NaN, dlg's 0
            a[2] = -2.0
        da, db = (dlg.tensor(v, requires_grad=True) for v in (a, b))
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
        getattr(dlg, name)(da, db).sum().backward()
        getattr(torch, name)(ta, tb).sum().backward()
        for d, t in ((da, ta), (db, tb)):
            want = np.zeros(4, np.float32) if t.grad is None else t.grad.numpy()
            got = np.zeros(4, np.float32) if d.grad is None else d.grad.numpy()
            np.testing.assert_array_equal(got, want)


def test_addcmul_addcdiv_and_in_place():
    x, t1, t2 = (np.random.default_rng(i).standard_normal((3, 1, 4)).astype(np.float32)
                 for i in range(3))
    t2 = t2[0]  # broadcasts
    for name in ("addcmul", "addcdiv"):
        got = getattr(dlg, name)(dlg.tensor(x), dlg.tensor(t1), dlg.tensor(t2), value=-0.5)
        want = getattr(torch, name)(torch.tensor(x), torch.tensor(t1), torch.tensor(t2),
                                    value=-0.5)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
        ours, theirs = dlg.tensor(x), torch.tensor(x)
        assert getattr(ours, f"{name}_")(dlg.tensor(t1), dlg.tensor(t2), value=2) is ours
        getattr(theirs, f"{name}_")(torch.tensor(t1), torch.tensor(t2), value=2)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    assert dlg.addcmul(dlg.tensor([1]), dlg.tensor([2]), dlg.tensor([3]), value=2).item() == 13
    with pytest.raises(dlg.DlgTypeError, match="integer division"):
        dlg.addcdiv(dlg.tensor([1]), dlg.tensor([2]), dlg.tensor([3]))
    with pytest.raises(dlg.DlgTypeError, match="bool"):
        dlg.positive(dlg.tensor([True]))


def test_in_place_math_methods():
    x = np.array([0.1, 0.4, 0.7], np.float32)
    for name in ("tan", "asin", "expm1", "erfinv", "lgamma", "digamma", "i0", "logit"):
        ours = dlg.tensor(x)
        getattr(ours, f"{name}_")()
        np.testing.assert_allclose(ours.numpy(), getattr(torch, name)(torch.tensor(x)).numpy(),
                                   rtol=1e-6)


def test_special_functions_compile():
    """A few composites traced and compiled (f64 inside, Newton's steps, Euclid's)."""
    def fn(x, n):
        return (dlg.lgamma(x) + dlg.erfinv(x * 0.1) + dlg.digamma(x) + dlg.asinh(x)
                + dlg.expm1(x) + dlg.i0(x), dlg.gcd(n, n * 3 + 6))
    x = np.linspace(0.5, 4, 8, dtype=np.float32)
    n = np.arange(8)
    model = dlg.trace(fn, dlg.tensor(x), dlg.tensor(n))
    got = dlg.compile(model)(x, n)
    want = fn(dlg.tensor(x), dlg.tensor(n))
    np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-5)
    np.testing.assert_array_equal(got[1], want[1].numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_frexp_and_nextafter_are_bit_exact(dtype):
    info = np.finfo(dtype)
    x = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 0.75, 3.0, 1e-3, -7.5, info.tiny, info.tiny / 4,
                  info.smallest_subnormal, info.max, -info.max, math.inf, -math.inf, math.nan,
                  2.0 ** 20, 1 - info.eps / 2, 123.456], dtype)
    (m, e), (tm, te) = dlg.frexp(dlg.tensor(x)), torch.frexp(torch.tensor(x))
    np.testing.assert_array_equal(m.numpy(), tm.numpy())
    np.testing.assert_array_equal(e.numpy(), te.numpy())
    assert e.dtype == dlg.int32
    for y in (np.zeros_like(x), np.full_like(x, math.inf), np.full_like(x, -math.inf), x,
              np.full_like(x, math.nan), x[::-1].copy()):
        np.testing.assert_array_equal(dlg.nextafter(dlg.tensor(x), dlg.tensor(y)).numpy(),
                                      torch.nextafter(torch.tensor(x), torch.tensor(y)).numpy())
    model = dlg.trace(lambda v, w: (dlg.nextafter(v, w), *dlg.frexp(v)), dlg.tensor(x),
                      dlg.tensor(x[::-1].copy()))
    got = dlg.compile(model)(x, x[::-1].copy())
    np.testing.assert_array_equal(got[0], torch.nextafter(torch.tensor(x),
                                                          torch.tensor(x[::-1].copy())).numpy())
    np.testing.assert_array_equal(got[1], tm.numpy())
    np.testing.assert_array_equal(got[2], te.numpy())


def test_dlg_door_and_compiled():
    """The new names as .dlg builtins (the functions layer serves both doors), compiled too."""
    src = """model M {
        input x: f32[3, 4]
        input y: f32[4]
        output a = asin(x * 0.3) + lgamma(x + 5.0) + erfinv(x * 0.2) + copysign(x, y)
        output b = hstack([x, x]) + 1.0
        output c = quantile(x, 0.25, 1) + addcmul(y, x, x, value=0.5)[:, 0]
        output d = inner(x, y) + dist(x, y)
        output e = logit(sigmoid(x)) * expm1(x) + fmax(x, y)
    }"""
    R = np.random.default_rng(3)
    x, y = R.standard_normal((3, 4)).astype(np.float32), R.standard_normal(4).astype(np.float32)
    tx, ty = torch.tensor(x), torch.tensor(y)
    want = {"a": torch.asin(tx * 0.3) + torch.lgamma(tx + 5.0) + torch.erfinv(tx * 0.2)
            + torch.copysign(tx, ty),
            "b": torch.hstack([tx, tx]) + 1.0,
            "c": torch.quantile(tx, 0.25, 1) + torch.addcmul(ty, tx, tx, value=0.5)[:, 0],
            "d": torch.inner(tx, ty) + torch.dist(tx, ty),
            "e": torch.logit(torch.sigmoid(tx)) * torch.expm1(tx) + torch.fmax(tx, ty)}
    model = dlg.loads(src)
    for run in (model, dlg.compile(model)):
        for (k, v), got in zip(want.items(), run(x=x, y=y)):
            np.testing.assert_allclose(got, v.numpy(), rtol=1e-5, atol=1e-5, err_msg=k)
