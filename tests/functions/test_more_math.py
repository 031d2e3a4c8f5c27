"""torch's roll, rot90, repeat_interleave, diff, meshgrid, diag/diagonal/diag_embed/trace,
tensordot, addmm/addmv/baddbmm/addbmm, kron, cross, cdist, lerp, hypot, atan/atan2, logaddexp(2),
xlogy, heaviside, signbit, sgn, clamp_min/max, float_power, nansum/nanmean, median/nanmedian,
diagflat, linalg.diagonal, cummax/cummin, aminmax, logcumsumexp, block_diag, histc, histogram,
bucketize, searchsorted, renorm, trapezoid/trapz, cumulative_trapezoid and pdist against torch:
values, dtypes and gradients on odd shapes and negative dims, an error each, the .dlg door and a
few compiled."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)


def arr(*shape, dtype=np.float32):
    return R.standard_normal(shape).astype(dtype)


def _flat(out):
    return list(out) if isinstance(out, tuple) else [out]


def same(ours, theirs, rtol=1e-5, atol=1e-6):
    ours, theirs = _flat(ours), _flat(theirs)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        o = np.asarray(o.detach().numpy() if isinstance(o, dlg.Tensor) else o)
        t = t.detach().numpy()
        assert o.shape == t.shape and o.dtype == t.dtype, (o, t)
        np.testing.assert_allclose(o, t, rtol=rtol, atol=atol, equal_nan=True)


def check(fn, *arrays, grad=True, rtol=1e-5):
    """fn(dlg, *tensors) against fn(torch, *tensors): the values, then the gradients of every
    float input for a random cotangent of the first output."""
    ours = [dlg.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    got, want = fn(dlg, *ours), fn(torch, *theirs)
    same(got, want, rtol)
    out, ref = _flat(got)[0], _flat(want)[0]
    wrt = [i for i, a in enumerate(arrays) if grad and a.dtype.kind == "f"]
    if not wrt or not ref.requires_grad:
        return
    w = R.standard_normal(ref.shape).astype(np.float32)
    (out * dlg.tensor(w)).sum().backward()
    expect = torch.autograd.grad((ref * torch.tensor(w)).sum(), [theirs[i] for i in wrt],
                                 allow_unused=True)
    for i, e in zip(wrt, expect):
        e = np.zeros(arrays[i].shape, np.float32) if e is None else e.numpy()
        have = ours[i].grad
        have = np.zeros(arrays[i].shape, np.float32) if have is None else have.numpy()
        np.testing.assert_allclose(have, e, rtol=rtol, atol=1e-5)


# ---- arrangement ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shifts, dims", [(1, None), (-7, None), (2, 1), (-1, -1),
                                          ((1, -2), (0, 2)), ((3, 5), (-1, 0)), (0, 1)])
def test_roll(shifts, dims):
    check(lambda m, x: m.roll(x, shifts, dims), arr(2, 3, 5))
    check(lambda m, x: x.roll(shifts, dims), arr(2, 3, 5))


@pytest.mark.parametrize("k", [-3, -1, 0, 1, 2, 3, 6])
@pytest.mark.parametrize("dims", [(0, 1), (1, 0), (-1, 0), (2, 1)])
def test_rot90(k, dims):
    check(lambda m, x: m.rot90(x, k, dims), arr(2, 3, 4))


def test_repeat_interleave():
    x = arr(2, 3)
    check(lambda m, t: m.repeat_interleave(t, 2), x)
    check(lambda m, t: t.repeat_interleave(3, dim=-1), x)
    check(lambda m, t: m.repeat_interleave(t, m.tensor([1, 0, 2]), dim=1), x)
    check(lambda m, t: m.repeat_interleave(t, m.tensor(2), dim=0), x)
    check(lambda m, t: m.repeat_interleave(t, m.tensor([2, 1]), dim=0, output_size=3), x)
    assert dlg.repeat_interleave(dlg.tensor(x), [2, 1], 0).shape == (3, 3)
    i = np.arange(4, dtype=np.int64)
    check(lambda m, t: m.repeat_interleave(t, 2), i)


@pytest.mark.parametrize("n, dim", [(1, -1), (2, 0), (3, 1), (0, -1), (7, -1)])
def test_diff(n, dim):
    check(lambda m, x: m.diff(x, n, dim), arr(3, 5))


def test_diff_prepend_append_and_bools():
    x, p, a = arr(2, 4), arr(2, 1), arr(2, 3)
    check(lambda m, t, u, v: m.diff(t, 2, -1, u, v), x, p, a)
    check(lambda m, t, u, v: m.diff(t, 0, -1, u, v), x, p, a)
    check(lambda m, t, v: t.diff(append=v, dim=0), x, arr(3, 4))
    b = np.array([True, False, False, True])
    check(lambda m, t: m.diff(t), b)
    check(lambda m, t, u: m.diff(t, prepend=u), x, np.ones((2, 1), np.int64))


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing):
    check(lambda m, a, b, c: m.meshgrid(a, b, c, indexing=indexing), arr(2), arr(3), arr(4))
    check(lambda m, a, b: m.meshgrid([a, b], indexing=indexing), arr(3), arr())


# ---- diagonals -------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [-3, -1, 0, 2, 5])
def test_diag(offset):
    check(lambda m, x: m.diag(x, offset), arr(4))
    check(lambda m, x: x.diag(offset), arr(3, 5))


@pytest.mark.parametrize("offset, dim1, dim2", [(0, 0, 1), (1, -1, 0), (-2, 2, 0), (4, 1, 2),
                                                (-9, 0, 2)])
def test_diagonal(offset, dim1, dim2):
    check(lambda m, x: m.diagonal(x, offset, dim1, dim2), arr(3, 4, 5))
    check(lambda m, x: x.diagonal(offset=offset, dim1=dim1, dim2=dim2), arr(3, 4, 5))


@pytest.mark.parametrize("offset, dim1, dim2", [(0, -2, -1), (1, 0, 2), (-2, 2, 0), (3, -1, 1)])
def test_diag_embed(offset, dim1, dim2):
    check(lambda m, x: m.diag_embed(x, offset, dim1, dim2), arr(2, 3))


def test_diagflat_and_linalg_diagonal():
    check(lambda m, x: m.diagflat(x, -1), arr(2, 3))
    check(lambda m, x: x.diagflat(2), arr(4))
    check(lambda m, x: m.linalg.diagonal(x, offset=1), arr(2, 3, 4))


def test_trace():
    """The matrix trace: .dlg's trace, dlg.nn.functional.trace, x.trace() and dlg.trace(x), as
    torch.trace(x) (dlg.trace of a function is the tracer)."""
    def fn(m, x):
        return dlg.nn.functional.trace(x) if m is dlg else torch.trace(x)
    check(fn, arr(3, 5))
    check(fn, np.arange(12, dtype=np.int32).reshape(4, 3))
    check(lambda m, x: m.trace(x), arr(4, 3))
    check(lambda m, x: x.trace(), arr(3, 3))
    with pytest.raises(dlg.DlgTypeError, match="matrix trace and takes no other argument"):
        dlg.trace(dlg.tensor(arr(2, 2)), arr(2, 2))


# ---- products ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [0, 2, ([2, 1], [1, 0]), ([-1], [1]), ((1,), (0,))])
def test_tensordot(dims):
    check(lambda m, a, b: m.tensordot(a, b, dims), arr(3, 4, 2), arr(4, 2, 5))
    check(lambda m, a, b: m.tensordot(a, b, 1), arr(3, 4, 2), arr(2, 5))
    check(lambda m, a, b: m.tensordot(a, b, 1), arr(3, 1), arr(2, 5))  # a 1 broadcasts


@pytest.mark.parametrize("beta, alpha", [(1, 1), (0.5, -2.0), (0, 3)])
def test_add_products(beta, alpha):
    check(lambda m, x, a, b: m.addmm(x, a, b, beta=beta, alpha=alpha), arr(3), arr(2, 4),
          arr(4, 3))
    check(lambda m, x, a, b: x.addmv(a, b, beta=beta, alpha=alpha), arr(2), arr(2, 4), arr(4))
    check(lambda m, x, a, b: m.baddbmm(x, a, b, beta=beta, alpha=alpha), arr(5, 2, 3),
          arr(5, 2, 4), arr(5, 4, 3))
    check(lambda m, x, a, b: m.addbmm(x, a, b, beta=beta, alpha=alpha), arr(2, 1), arr(5, 2, 4),
          arr(5, 4, 3))


def test_beta_zero_ignores_nan_in_input():
    x = np.full((2, 3), np.nan, np.float32)
    check(lambda m, t, a, b: m.addmm(t, a, b, beta=0), x, arr(2, 4), arr(4, 3), grad=False)


def test_kron():
    check(lambda m, a, b: m.kron(a, b), arr(2, 3), arr(4, 1, 2))
    check(lambda m, a, b: a.kron(b), arr(3), arr(2))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cross(dim):
    a, b = arr(3, 3, 3), arr(3, 3)
    check(lambda m, x, y: m.cross(x, y, dim=dim), a, np.broadcast_to(b, a.shape).copy())
    other = b.reshape(1, 3, 3) if dim else np.broadcast_to(b, a.shape).copy()
    check(lambda m, x, y: m.linalg.cross(x, y, dim=dim), a, other)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 0.5, 0.0, math.inf])
def test_cdist(p):
    check(lambda m, a, b: m.cdist(a, b, p=p), arr(2, 4, 3), arr(5, 3), rtol=1e-4)


def test_cdist_gradient_at_zero_distance():
    x = arr(3, 2)
    check(lambda m, a, b: m.cdist(a, b), x, x.copy(), rtol=1e-4)


# ---- pointwise ---------------------------------------------------------------------------------
EDGES = np.array([-np.inf, -3.0, -1.0, -0.0, 0.0, 0.5, 2.0, np.inf, np.nan], np.float32)
GRID = np.stack(np.meshgrid(EDGES, EDGES), 0).reshape(2, -1)


@pytest.mark.parametrize("name", ["atan2", "arctan2", "hypot", "logaddexp", "logaddexp2",
                                  "xlogy"])
def test_binary_at_the_edges(name):
    with np.errstate(all="ignore"):
        check(lambda m, a, b: getattr(m, name)(a, b), GRID[0], GRID[1], grad=False)


@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp", "logaddexp2", "xlogy"])
def test_binary_gradients_and_broadcasting(name):
    y = np.abs(arr(4)) + 0.1 if name == "xlogy" else arr(4)
    check(lambda m, a, b: getattr(m, name)(a, b), arr(3, 1), y)
    check(lambda m, a, b: getattr(a, name)(b), arr(3, 4), y)


def test_logaddexp_splits_a_tie():
    x = np.array([1.0, -2.0], np.float32)
    check(lambda m, a, b: m.logaddexp(a, b), x, x.copy())


def test_atan_and_integers_promote():
    check(lambda m, x: m.atan(x), EDGES, grad=False)
    check(lambda m, x: m.arctan(x), arr(5))
    i = np.array([1, -2, 0], np.int64)
    check(lambda m, a, b: m.atan2(a, b), i, np.array([0.5, 1.0, -1.0], np.float32))


def test_lerp():
    check(lambda m, a, b: m.lerp(a, b, 0.3), arr(2, 3), arr(3))
    check(lambda m, a, b, w: a.lerp(b, w), arr(2, 3), arr(2, 3), np.float32([-1, 0.5, 0.7, 2]
                                                                             ).reshape(4, 1, 1))
    check(lambda m, a, b, w: m.lerp(a, b, w), arr(3), arr(3), np.float64(0.75))


def test_xlogy_gradient_where_x_is_zero():
    """The value is 0 there, the gradient in x still log(y), as torch's."""
    x, y = np.float32([0.0, 0.0, 1.5]), np.float32([0.5, 2.0, 3.0])
    check(lambda m, a, b: m.xlogy(a, b), x, y)


def test_float_power_xlogy_heaviside_signbit_sgn_clamps():
    x = np.abs(arr(2, 3)) + 0.1
    check(lambda m, a, b: m.float_power(a, b), x, arr(3))
    check(lambda m, a: a.float_power(2), x)
    check(lambda m, a: m.xlogy(2.0, a), x)
    check(lambda m, a, b: m.heaviside(a, b), EDGES, np.float32([7.0]), grad=False)
    check(lambda m, a: m.signbit(a), EDGES)
    check(lambda m, a: a.signbit(), np.array([-1, 0, 2], np.int64))
    check(lambda m, a: a.sgn(), EDGES, grad=False)
    check(lambda m, a: m.sign(a), EDGES, grad=False)  # NaN and -0.0 give +0 in torch too
    check(lambda m, a: m.abs(a), EDGES)  # whose gradient at NaN is sign's: 0
    check(lambda m, a: m.clamp_min(a, 0.2), arr(2, 3))
    check(lambda m, a, b: a.clamp_max(b), arr(2, 3), arr(3))


# ---- reductions, order statistics, searches --------------------------------------------------
WITH_NAN = np.array([[1.0, np.nan, 3.0, -2.0], [np.nan, np.nan, 0.5, 4.0],
                     [1.5, 2.5, -1.0, 0.0]], np.float32)


@pytest.mark.parametrize("name", ["nansum", "nanmean"])
@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (-1, True), ((0, 1), False)])
def test_nan_reductions(name, dim, keepdim):
    kwargs = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    check(lambda m, x: getattr(m, name)(x, **kwargs), WITH_NAN)


def test_nansum_of_integers_and_nanmean_dtype():
    check(lambda m, x: x.nansum(), np.arange(5, dtype=np.int32))
    check(lambda m, x: m.nanmean(x, 1, dtype=m.float64), WITH_NAN)


@pytest.mark.parametrize("shape", [(7,), (2, 5), (3, 4, 2)])
def test_median(shape):
    x = R.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32)
    check(lambda m, t: m.median(t), x)
    check(lambda m, t: t.median(-1), x)
    check(lambda m, t: m.median(t, 0, keepdim=True), x)
    check(lambda m, t: t.median(0), x.astype(np.int64))


def test_median_with_nan():
    check(lambda m, t: m.median(t, 1), WITH_NAN)
    check(lambda m, t: m.median(t), WITH_NAN)
    check(lambda m, t: m.median(t), np.float32([3.0, 1.0, 2.0, 9.0]))


def test_nanmedian():
    rows = np.float32([[np.nan, np.nan, 1.0], [np.nan] * 3, [3.0, 1.0, 2.0], [4, np.nan, 0]])
    check(lambda m, t: m.nanmedian(t, 1), rows)
    check(lambda m, t: t.nanmedian(-1, keepdim=True), rows)
    check(lambda m, t: m.nanmedian(t), rows)
    check(lambda m, t: m.nanmedian(t), np.full(3, np.nan, np.float32))


@pytest.mark.parametrize("name", ["cummax", "cummin"])
@pytest.mark.parametrize("dim", [0, -1])
def test_running_extremes(name, dim):
    x = np.float32([[1, 3, 3, np.nan, 2, np.nan], [0, -1, 4, 4, -5, 6]])
    check(lambda m, t: getattr(m, name)(t, dim), x, grad=False)
    check(lambda m, t: getattr(t, name)(dim), R.permutation(12).reshape(2, 6).astype(np.float32))
    check(lambda m, t: getattr(m, name)(t, dim), np.int64([[3, 1, 3], [2, 2, 0]]))


@pytest.mark.parametrize("kwargs", [{}, {"dim": 0}, {"dim": -1, "keepdim": True},
                                    {"keepdim": True}, {"dim": 1}])
def test_aminmax(kwargs):
    ties = np.float32([[1, 3, 3, -2], [0, 0, 0, 0], [5, -1, -1, 2]])
    for x in (ties, arr(3, 4), arr(1, 4)):
        check(lambda m, t: tuple(m.aminmax(t, **kwargs)), x)
        check(lambda m, t: tuple(t.aminmax(**kwargs)[::-1]), x)
    got, want = dlg.aminmax(dlg.tensor(ties), dim=1), torch.aminmax(torch.tensor(ties), dim=1)
    same((got.min, got.max), (want.min, want.max))
    check(lambda m, t: tuple(m.aminmax(t, **kwargs)), np.int64([[3, -1, 7, 2], [0, 5, 5, 1]]))
    check(lambda m, t: tuple(m.aminmax(t, **kwargs)), np.array([[True, False]] * 2))
    check(lambda m, t: tuple(m.aminmax(t, dim=1)), np.zeros((0, 3), np.float32))
    check(lambda m, t: tuple(m.aminmax(t)), np.float32(2.5))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_logcumsumexp(dim):
    for x in (arr(3, 5, 7), arr(1, 9, 1) * 30, arr(4, 1, 2)):
        check(lambda m, t: m.logcumsumexp(t, dim), x)
        check(lambda m, t: t.logcumsumexp(dim=dim), x.astype(np.float64))
    check(lambda m, t: m.logcumsumexp(t, dim), np.zeros((2, 0, 3), np.float32))


def test_logcumsumexp_is_stable_where_a_running_sum_is_not():
    x = np.float32([-1000, 0, 90, -np.inf, 200, -200, 1e-3, 89])
    check(lambda m, t: m.logcumsumexp(t, 0), x, grad=False)
    check(lambda m, t: m.logcumsumexp(t, 0), np.float32([-1000, 0, 90, 200, -200, 89]))
    check(lambda m, t: m.logcumsumexp(t, 0), np.float32(3.0))


def test_block_diag():
    check(lambda m, a, b, c: m.block_diag(a, b, c), arr(2, 3), arr(4), np.float32(1.5))
    check(lambda m, a, b: m.block_diag(a, b), arr(1, 1), arr(3, 2))
    check(lambda m, a, b, c: m.block_diag(a, b, c), arr(0, 2), arr(1, 0), arr(2, 2))
    check(lambda m, a, b: m.block_diag(a, b), np.int64([[1, 2]]), arr(2, 1))  # promoted
    check(lambda m, a, b: m.block_diag(a, b), np.int32([1, 2]), np.int64([[3], [4]]))
    check(lambda m, a: m.block_diag(a), arr(3, 2))
    same(dlg.block_diag(), torch.block_diag())


HISTC = [({}, arr(50)), ({"bins": 7}, arr(4, 9)), ({"bins": 4, "min": 0, "max": 3},
                                                   np.float32([0, 1, 2, 3, 3.5, -1, np.nan, 1.5])),
         ({"bins": 3, "min": -1, "max": 1}, np.float32([-np.inf, -1, 1, np.inf, 0.999])),
         ({"bins": 4}, np.float32([2, 2, 2])), ({"bins": 5, "min": 2, "max": 2}, arr(6)),
         ({"bins": 1}, arr(3, 1, 2)), ({"bins": 6}, np.zeros(0, np.float32)),
         ({"bins": 10, "min": -2.5, "max": 2.5}, arr(200).astype(np.float64)),
         ({"bins": 4, "min": 1, "max": 1}, np.zeros(0, np.float32))]


@pytest.mark.parametrize("kwargs, x", HISTC, ids=range(len(HISTC)))
def test_histc(kwargs, x):
    check(lambda m, t: m.histc(t, **kwargs), x, grad=False)
    check(lambda m, t: t.histc(**kwargs), x, grad=False)


def test_histc_bins_edges_as_torch():
    """Elements on and next to the bin edges fall where torch's division puts them."""
    edges = np.linspace(-1, 1, 8, dtype=np.float32)
    x = np.concatenate([edges, np.nextafter(edges, np.float32(2)),
                        np.nextafter(edges, np.float32(-2))])
    check(lambda m, t: m.histc(t, 7, -1, 1), x, grad=False)
    check(lambda m, t: m.histc(t, 13, -1, 1), x, grad=False)


@pytest.mark.parametrize("right", [False, True])
def test_bucketize_and_searchsorted(right):
    b = np.float32([-1.0, 0.0, 0.0, 2.0])
    x = np.float32([[-3, -1, 0], [1, 2, np.nan]])
    check(lambda m, t, u: m.bucketize(t, u, right=right), x, b)
    check(lambda m, t, u: m.bucketize(t, u, right=right, out_int32=True), x, b)
    check(lambda m, u, t: m.searchsorted(u, t, right=right), b, x)
    rows = np.sort(arr(2, 5), -1)
    check(lambda m, u, t: m.searchsorted(u, t, side="right" if right else "left"), rows, arr(2, 3))
    perm = np.int64([3, 0, 2, 1])
    check(lambda m, u, s, t: m.searchsorted(u, t, sorter=s), b[[1, 3, 2, 0]],
          np.argsort(b[[1, 3, 2, 0]], kind="stable"), x)
    assert perm.shape == (4,)


class Interleave(dlg.nn.Module):
    def forward(self, x, repeats):
        return x.repeat_interleave(repeats)


def test_traced_tensor_repeats_are_refused_and_a_list_compiles():
    x = arr(2, 3)
    with pytest.raises(dlg.DlgValueError, match="give repeats as a list"):
        dlg.trace(Interleave(), x, np.int64([1, 2]), dynamic={})
    model = dlg.trace(lambda t: dlg.repeat_interleave(t, [2, 0, 1], dim=1), x)
    want = torch.tensor(x).repeat_interleave(torch.tensor([2, 0, 1]), dim=1)
    np.testing.assert_array_equal(dlg.compile(model)(x), want.numpy())


def test_bucketize_a_number():
    assert dlg.bucketize(0.5, dlg.tensor([0.0, 1.0])).item() == 1


# ---- renorm, the trapezoidal rule ----------------------------------------------------------------
@pytest.mark.parametrize("p, dim, maxnorm", [(2, 0, 1.0), (1, -1, 0.5), (3.5, 1, 2.0),
                                             (2, 1, 100.0), (2, 2, 0.0)])
def test_renorm(p, dim, maxnorm):
    check(lambda m, x: m.renorm(x, p, dim, maxnorm), arr(3, 4, 2))
    check(lambda m, x: x.renorm(p, dim, maxnorm) * 1.0, arr(3, 4, 2))


def test_renorm_in_place_as_arcfaces_kernel_init():
    """InsightFace's ArcFace head: kernel.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
    gives unit columns."""
    kernel = dlg.empty(6, 4).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
    np.testing.assert_allclose(np.linalg.norm(kernel.numpy(), axis=0), 1.0, rtol=1e-5)


@pytest.mark.parametrize("p", [2.0, 1.0, 0.5, 0.0, math.inf, 3.0])
def test_pdist(p):
    x = arr(5, 3)
    x[3] = x[1]  # a zero distance: gradient 0 there, as torch's
    check(lambda m, t: m.pdist(t, p), x, rtol=1e-4)
    check(lambda m, t: m.nn.functional.pdist(t, p) * 1.0, x[:1], rtol=1e-4)


@pytest.mark.parametrize("fn", [
    lambda m, y, x: m.trapezoid(y), lambda m, y, x: m.trapezoid(y, dx=0.5, dim=0),
    lambda m, y, x: m.trapezoid(y, x[0]), lambda m, y, x: m.trapezoid(y, x),
    lambda m, y, x: m.trapz(y, x[1], dim=-1), lambda m, y, x: m.trapz(y, dx=2.0),
    lambda m, y, x: m.cumulative_trapezoid(y), lambda m, y, x: m.cumulative_trapezoid(y, x[2]),
    lambda m, y, x: m.cumulative_trapezoid(y, dx=0.3, dim=0),
    lambda m, y, x: m.trapezoid(y[:, :1]), lambda m, y, x: m.trapezoid(y[:, :0], x[0, :0]),
    lambda m, y, x: m.cumulative_trapezoid(y[:, :0]),
], ids=["unit", "dx_dim0", "x_1d", "x_2d", "trapz_x", "trapz_dx", "cumulative",
        "cumulative_x", "cumulative_dx", "one_sample", "no_samples", "cumulative_none"])
def test_trapezoid(fn):
    check(fn, arr(3, 5), np.sort(R.random((3, 5)), 1).astype(np.float32))


def test_trapezoid_of_integers_is_a_float_and_an_auc():
    same(dlg.trapezoid(dlg.tensor([[1, 2, 4]]), dlg.tensor([0, 1, 3])),
         torch.trapezoid(torch.tensor([[1, 2, 4]]), torch.tensor([0, 1, 3])))
    fpr, tpr = np.array([0.0, 0.1, 0.4, 1.0], np.float32), np.array([0, 0.6, 0.9, 1], np.float32)
    same(dlg.trapezoid(dlg.tensor(tpr), dlg.tensor(fpr)),
         torch.trapezoid(torch.tensor(tpr), torch.tensor(fpr)))


H = np.random.default_rng(10)  # histogram's data: R's draws stay the other tests'


def hist_arr(*shape):
    return H.standard_normal(shape).astype(np.float32)


HISTOGRAM = [((), {}, hist_arr(50)), ((7,), {}, hist_arr(4, 9)),
             ((4,), {"range": (0.0, 3.0)}, np.float32([0, 1, 2, 3, 3.5, -1, np.nan, 1.5])),
             ((4,), {}, np.float32([2, 2, 2])), ((3,), {"range": (1, 1)}, hist_arr(6)),
             ((6,), {}, np.zeros(0, np.float32)), ((5,), {"density": True}, hist_arr(30)),
             ((10,), {"range": (-2.5, 2.5), "density": True}, hist_arr(200).astype(np.float64))]


@pytest.mark.parametrize("bins, kwargs, x", HISTOGRAM, ids=range(len(HISTOGRAM)))
def test_histogram(bins, kwargs, x):
    """torch.histogram's counts and edges (makemore part 3 plots its activations with it)."""
    check(lambda m, t: m.histogram(t, *bins, **kwargs), x, grad=False)
    check(lambda m, t: t.histogram(*bins, **kwargs), x, grad=False)


def test_histogram_edges_weights_and_density_as_torch():
    """Elements on and next to the bin edges fall where torch puts them; weights are summed;
    a tensor of edges gives uneven bins."""
    edges = np.linspace(-1, 1, 8, dtype=np.float32)
    x = np.concatenate([edges, np.nextafter(edges, np.float32(2)),
                        np.nextafter(edges, np.float32(-2))])
    check(lambda m, t: m.histogram(t, 7, range=(-1.0, 1.0)), x, grad=False)
    check(lambda m, t: m.histogram(t, 13), x, grad=False)
    check(lambda m, t, w: m.histogram(t, 3, weight=w, density=True), hist_arr(3, 4), hist_arr(3, 4),
          grad=False)
    check(lambda m, t, e: m.histogram(t, e), np.float32([1, 2, 1, 4, 5, 0]),
          np.float32([0, 1.5, 2, 5]), grad=False)
    check(lambda m, t, e: m.histogram(t, bins=e, density=True), hist_arr(20).astype(np.float64),
          np.float64([-1, 0, 0.5, 2]), grad=False)
    hist, bin_edges = dlg.histogram(dlg.tensor([1.0, 2.0]), 2)
    assert dlg.histogram(dlg.ones(2), 2).hist.tolist() == [0.0, 2.0]
    assert bin_edges.tolist() == [1.0, 1.5, 2.0] and hist.tolist() == [1.0, 1.0]


# ---- errors --------------------------------------------------------------------------------------
ERRORS = [
    (lambda: dlg.roll(dlg.ones(3), (1, 2)), dlg.DlgValueError, "without dims"),
    (lambda: dlg.rot90(dlg.ones(3, 3), 1, (0, 0)), dlg.DlgValueError, "dims must differ"),
    (lambda: dlg.repeat_interleave(dlg.ones(3), [1, 2]), dlg.DlgShapeError, "2 repeats for 3"),
    (lambda: dlg.diff(dlg.ones(3), n=-1), dlg.DlgValueError, "non-negative"),
    (lambda: dlg.meshgrid(dlg.ones(2), dlg.ones(2, 2)), dlg.DlgTypeError, "0-d or 1-d"),
    (lambda: dlg.diag(dlg.ones(2, 2, 2)), dlg.DlgShapeError, "1-d or 2-d"),
    (lambda: dlg.diagonal(dlg.ones(2, 2), 0, 1, -1), dlg.DlgValueError, "must differ"),
    (lambda: dlg.diag_embed(dlg.ones(2), 0.5), dlg.DlgTypeError, "offset must be an int"),
    (lambda: dlg.nn.functional.trace(dlg.ones(3)), dlg.DlgShapeError, "2-d tensor"),
    (lambda: dlg.tensordot(dlg.ones(2, 3), dlg.ones(2, 3), 1), dlg.DlgShapeError, "differ"),
    (lambda: dlg.addmm(dlg.ones(4), dlg.ones(2, 3), dlg.ones(3, 3)), dlg.DlgShapeError,
     "broadcast"),
    (lambda: dlg.kron(dlg.ones(2), 3), dlg.DlgTypeError, "must be a tensor"),
    (lambda: dlg.cross(dlg.ones(2, 2), dlg.ones(2, 2)), dlg.DlgShapeError, "size 3"),
    (lambda: dlg.cdist(dlg.ones(2, 3), dlg.ones(2, 4)), dlg.DlgShapeError, r"\(\.\.\., P, M\)"),
    (lambda: dlg.lerp(dlg.ones(2), dlg.ones(2, dtype=dlg.float64), 0.5), dlg.DlgTypeError,
     "one float dtype"),
    (lambda: dlg.heaviside(dlg.ones(2), dlg.ones(1, dtype=dlg.int64)), dlg.DlgTypeError,
     "one dtype"),
    (lambda: dlg.hypot(dlg.ones(2), "a"), dlg.DlgTypeError, "tensor or a number"),
    (lambda: dlg.atan2(dlg.ones(2), [1.0]), dlg.DlgTypeError, "atan2's other"),
    (lambda: dlg.logaddexp(dlg.ones(2), dlg.ones(3)), dlg.DlgShapeError, "broadcast"),
    (lambda: dlg.xlogy(None, dlg.ones(2)), dlg.DlgTypeError, "xlogy's input"),
    (lambda: dlg.signbit(1.0), dlg.DlgTypeError, "signbit's argument must be a tensor"),
    (lambda: dlg.clamp_min(dlg.ones(2), None), dlg.DlgValueError, "give min"),
    (lambda: dlg.float_power(dlg.ones(2), "2"), dlg.DlgTypeError, "exponent"),
    (lambda: dlg.nansum(dlg.ones(2), 2), dlg.DlgShapeError, "out of range"),
    (lambda: dlg.nanmedian(dlg.ones(2), 0.5), dlg.DlgTypeError, "dim must be an int"),
    (lambda: dlg.nanmean(dlg.ones(2, dtype=dlg.int64)), dlg.DlgTypeError, "float tensor"),
    (lambda: dlg.median(dlg.ones(2, 0), 1), dlg.DlgShapeError, "empty"),
    (lambda: dlg.cummax(dlg.ones(2), 1), dlg.DlgShapeError, "out of range"),
    (lambda: dlg.bucketize(dlg.ones(2), dlg.ones(2, 2)), dlg.DlgShapeError, "1-d"),
    (lambda: dlg.aminmax(dlg.ones(2, 0), dim=1), dlg.DlgShapeError, "aminmax: dim 1 .* empty"),
    (lambda: dlg.aminmax(dlg.ones(0, 2)), dlg.DlgShapeError, "aminmax: the input .* empty"),
    (lambda: dlg.aminmax(dlg.ones(2), dim=(0,)), dlg.DlgTypeError, "dim must be an int"),
    (lambda: dlg.logcumsumexp(dlg.ones(2, dtype=dlg.int64), 0), dlg.DlgTypeError, "float"),
    (lambda: dlg.logcumsumexp(dlg.ones(2), 1), dlg.DlgShapeError, "out of range"),
    (lambda: dlg.block_diag(dlg.ones(1, 1, 1)), dlg.DlgShapeError, "0, 1 or 2 dims"),
    (lambda: dlg.block_diag(dlg.ones(1), [1.0]), dlg.DlgTypeError, "tensor 1"),
    (lambda: dlg.histc(dlg.ones(2, dtype=dlg.int64)), dlg.DlgTypeError, "float"),
    (lambda: dlg.histc(dlg.ones(2), 0), dlg.DlgValueError, "bins must be a positive int"),
    (lambda: dlg.histc(dlg.ones(2), 3, 2, 1), dlg.DlgValueError, "max must be larger"),
    (lambda: dlg.histc(dlg.ones(2), 3, 0, math.inf), dlg.DlgValueError, "finite"),
    (lambda: dlg.histogram(dlg.ones(2, dtype=dlg.int64)), dlg.DlgTypeError, "float32 or"),
    (lambda: dlg.histogram(dlg.ones(2), 0), dlg.DlgValueError, "bins must be a positive int"),
    (lambda: dlg.histogram(dlg.ones(2), 3, range=(2.0, 1.0)), dlg.DlgValueError,
     "min should not exceed max"),
    (lambda: dlg.histogram(dlg.ones(2), 3, range=(0.0, math.inf)), dlg.DlgValueError, "finite"),
    (lambda: dlg.histogram(dlg.ones(2), dlg.ones(3, dtype=dlg.float64)), dlg.DlgTypeError,
     "same dtype"),
    (lambda: dlg.histogram(dlg.ones(2), dlg.ones(1)), dlg.DlgShapeError, "at least 2"),
    (lambda: dlg.histogram(dlg.ones(2), 2, weight=dlg.ones(3)), dlg.DlgShapeError,
     "the weight"),
    (lambda: dlg.histogram(dlg.ones(2), dlg.ones(2), range=(0.0, 1.0)), dlg.DlgTypeError,
     "range goes with a number"),
    (lambda: dlg.searchsorted(dlg.ones(2, 3), dlg.ones(3, 1)), dlg.DlgShapeError,
     "leading dims"),
    (lambda: dlg.searchsorted(dlg.ones(3), dlg.ones(1), right=True, side="left"),
     dlg.DlgValueError, "contradict"),
    (lambda: dlg.pdist(dlg.ones(2, 2, 2)), dlg.DlgShapeError, "only supports 2D"),
    (lambda: dlg.pdist(dlg.ones(2, 2), -1.0), dlg.DlgValueError, "non-negative p"),
    (lambda: dlg.renorm(dlg.ones(2, 2), 0, 0, 1.0), dlg.DlgValueError, "non-positive-norm"),
    (lambda: dlg.renorm(dlg.ones(2, 2), 2, 0, -1.0), dlg.DlgValueError, "maxnorm to be >= 0"),
    (lambda: dlg.renorm(dlg.ones(2, dtype=dlg.int64), 2, 0, 1.0), dlg.DlgTypeError, "floating"),
    (lambda: dlg.trapezoid(dlg.ones(3), dlg.ones(2)), dlg.DlgShapeError,
     "one `x` value for each sample point"),
    (lambda: dlg.trapezoid(dlg.ones(3), dlg.ones(3), dx=1.0), dlg.DlgTypeError, "not both"),
    (lambda: dlg.trapezoid(dlg.ones(3, dtype=dlg.bool)), dlg.DlgTypeError, "bool"),
]


@pytest.mark.parametrize("make, error, words", ERRORS, ids=range(len(ERRORS)))
def test_errors_name_the_function(make, error, words):
    with pytest.raises(error, match=words):
        make()


# ---- the .dlg door and compiled ------------------------------------------------------------------
def test_dlg_door_and_compiled():
    src = """model M {
        input x: f32[3, 4]
        input y: f32[4]
        output a = roll(x, 1, 1) + diag_embed(y)[:3]
        output b = logaddexp(x, y) * atan2(x, y)
        output c = cummax(x, 1)[0] + median(x, 0)[0]
        output d = tensordot(x, y, 1) + trace(x)
        output e = bucketize(x, sort(y)[0])
        output f = logcumsumexp(x, 1) + aminmax(x, axis=0)[1]
        output g = block_diag(x, y) * 2.0
        output h = histc(x, 5) + histc(y, 5, -1, 1)
        output i = renorm(x, 2, 0, 1.0)
        output j = trapezoid(x, y) + trapz(x, dx=0.5)
        output k = cumulative_trapezoid(x, y)
    }"""
    x, y = arr(3, 4), arr(4)
    tx, ty = torch.tensor(x), torch.tensor(y)
    want = {"a": tx.roll(1, 1) + torch.diag_embed(ty)[:3],
            "b": torch.logaddexp(tx, ty) * torch.atan2(tx, ty),
            "c": tx.cummax(1).values + tx.median(0).values,
            "d": torch.tensordot(tx, ty, 1) + torch.trace(tx),
            "e": torch.bucketize(tx, ty.sort().values),
            "f": torch.logcumsumexp(tx, 1) + torch.aminmax(tx, dim=0).max,
            "g": torch.block_diag(tx, ty) * 2.0,
            "h": torch.histc(tx, 5) + torch.histc(ty, 5, -1, 1),
            "i": torch.renorm(tx, 2, 0, 1.0),
            "j": torch.trapezoid(tx, ty) + torch.trapz(tx, dx=0.5),
            "k": torch.cumulative_trapezoid(tx, ty)}
    model = dlg.loads(src)
    for run in (model, dlg.compile(model)):
        for (k, v), got in zip(want.items(), run(x=x, y=y)):
            np.testing.assert_allclose(got, v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


class Net(dlg.nn.Module):
    def forward(self, x, y):
        steps = dlg.lerp(x, y, 0.25).cumsum(1).diff(dim=1) + dlg.hypot(x, y)[:, 1:]
        low, high = x.aminmax(dim=1)
        return (steps.nansum(-1) + dlg.cdist(x, y).sum(-1) + y.logcumsumexp(1)[:, -1]
                + (high - low) + x.histc(3).sum())


def test_traced_and_compiled_over_a_symbolic_batch():
    x, y = arr(3, 4), arr(3, 4)
    model = dlg.trace(Net(), x, y)  # a symbolic batch
    exe = dlg.compile(model)
    for n in (3, 5):
        x, y = arr(n, 4), arr(n, 4)
        tx, ty = torch.tensor(x), torch.tensor(y)
        steps = torch.lerp(tx, ty, 0.25).cumsum(1).diff(dim=1) + torch.hypot(tx, ty)[:, 1:]
        low, high = tx.aminmax(dim=1)
        want = (steps.nansum(-1) + torch.cdist(tx, ty).sum(-1) + ty.logcumsumexp(1)[:, -1]
                + (high - low) + tx.histc(3).sum())
        np.testing.assert_allclose(exe(x, y), want.numpy(), rtol=1e-5, atol=1e-5)
