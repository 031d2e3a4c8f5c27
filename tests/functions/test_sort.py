"""sort, argsort, msort, topk, kthvalue, cumsum, cumprod and flip against PyTorch: values,
indices (ties, NaN, descending, negative dims, 0-d and empty inputs, k=0), dtypes, gradients
(cumprod with zeros), errors; the .dlg door; traced + compiled against eager, and compiled
gradients against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.passes.autodiff import grad
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)
NAN = np.nan
TIES = np.array([[2, NAN, 1, NAN, 2, -0.0, 0], [3, 1, 2, 1, 3, 5, -1]], np.float32)
DISTINCT = R.permutation(24).reshape(2, 3, 4).astype(np.float32) / 4 - 3
TORCH_DTYPES = {DType.f32: torch.float32, DType.f64: torch.float64, DType.i64: torch.int64,
                DType.i32: torch.int32, DType.bool: torch.bool}


def same(ours, theirs) -> None:
    """Equal values (NaN where NaN) and the same dtype."""
    theirs = theirs.detach()
    assert TORCH_DTYPES[ours.dtype] == theirs.dtype
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


# ---- sort, argsort, msort ---------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_sort_is_torchs_stable_sort_with_nan_largest(axis, descending):
    values, indices = dlg.sort(dlg.tensor(TIES), dim=axis, descending=descending)
    want = torch.sort(torch.tensor(TIES), dim=axis, descending=descending, stable=True)
    same(values, want.values)
    same(indices, want.indices)


@pytest.mark.parametrize("array", [np.array([[3, -1, 3, 0], [2, 2, 9, -5]], np.int32),
                                   np.array([[3, -1, 3, 0]], np.int64),
                                   np.array([True, False, True, False])], ids=str)
def test_sort_integers_and_bools(array):
    for descending in (False, True):
        got = dlg.tensor(array).sort(descending=descending)
        want = torch.tensor(array).sort(descending=descending, stable=True)
        same(got.values, want.values)
        same(got.indices, want.indices)


@pytest.mark.parametrize("shape, axis", [((), 0), ((), -1), ((2, 0), 1), ((0, 3), 0), ((0,), 0)])
def test_sort_of_scalars_and_empty_tensors(shape, axis):
    x = R.standard_normal(shape).astype(np.float32)
    got, want = dlg.sort(dlg.tensor(x), axis), torch.sort(torch.tensor(x), axis)
    same(got.values, want.values)
    same(got.indices, want.indices)


def test_argsort_and_msort():
    x = dlg.tensor(TIES)
    same(dlg.argsort(x, dim=0, descending=True),
         torch.sort(torch.tensor(TIES), dim=0, descending=True, stable=True).indices)
    same(x.argsort(), torch.sort(torch.tensor(TIES), stable=True).indices)
    same(x.msort(), torch.msort(torch.tensor(TIES)))


# ---- topk, kthvalue ---------------------------------------------------------------------------
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("k, axis", [(0, -1), (1, 2), (3, -1), (4, 2), (2, 1), (2, 0)])
def test_topk_matches_torch(k, axis, largest):
    got = dlg.topk(dlg.tensor(DISTINCT), k, dim=axis, largest=largest)
    want = torch.topk(torch.tensor(DISTINCT), k, dim=axis, largest=largest)
    same(got.values, want.values)
    same(got.indices, want.indices)


def test_topk_with_ties_and_nan_picks_torchs_values():
    x = dlg.tensor(TIES)
    for largest in (True, False):
        got = x.topk(3, largest=largest)
        same(got.values, torch.tensor(TIES).topk(3, largest=largest).values)
        np.testing.assert_array_equal(np.take_along_axis(TIES, got.indices.numpy(), 1),
                                      got.values.numpy())


@pytest.mark.parametrize("k", [0, 1])
def test_topk_of_a_scalar(k):
    got, want = dlg.topk(dlg.tensor(np.float32(3)), k), torch.topk(torch.tensor(3.0), k)
    same(got.values, want.values)
    same(got.indices, want.indices)


@pytest.mark.parametrize("k", [-1, 5])
def test_topk_k_out_of_range_names_k(k):
    with pytest.raises(DlgValueError, match=f"k={k} is out of range"):
        dlg.topk(dlg.tensor(DISTINCT), k)
    with pytest.raises(DlgTypeError, match="k must be an int"):
        dlg.topk(dlg.tensor(DISTINCT), 2.0)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("k, axis", [(1, -1), (4, -1), (2, 1), (3, 1), (2, 0)])
def test_kthvalue_matches_torch(k, axis, keepdim):
    got = dlg.kthvalue(dlg.tensor(DISTINCT), k, dim=axis, keepdim=keepdim)
    want = torch.kthvalue(torch.tensor(DISTINCT), k, dim=axis, keepdim=keepdim)
    same(got.values, want.values)
    same(got.indices, want.indices)
    with pytest.raises(DlgValueError, match="k=0 is out of range"):
        dlg.kthvalue(dlg.tensor(DISTINCT), 0)


# ---- cumsum, cumprod --------------------------------------------------------------------------
SCANNED = [DISTINCT, np.array([[3, -1, 2], [0, 7, -4]], np.int32), np.array([True, False, True]),
           np.float32(2.5), np.zeros((2, 0), np.float32)]


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
@pytest.mark.parametrize("x", SCANNED, ids=lambda a: f"{a.dtype}{list(np.shape(a))}")
def test_scans_match_torch(name, x):
    for axis in range(-max(x.ndim, 1), max(x.ndim, 1)):
        same(getattr(dlg, name)(dlg.tensor(x), axis), getattr(torch, name)(torch.tensor(x), axis))
    same(getattr(dlg.tensor(x), name)(dim=0, dtype=dlg.float64),
         getattr(torch.tensor(x), name)(dim=0, dtype=torch.float64))


def test_cumsum_accumulates_float32_wider_as_torch():
    x = np.array([1e8, 1, -1e8, 1], np.float32)
    np.testing.assert_array_equal(dlg.cumsum(dlg.tensor(x), 0).numpy(), [1e8, 1e8, 1, 2])
    same(dlg.cumsum(dlg.tensor(x), 0), torch.cumsum(torch.tensor(x), 0))


def test_scan_errors():
    with pytest.raises(DlgShapeError, match="axis 2 is out of range"):
        dlg.cumsum(dlg.tensor(TIES), 2)
    with pytest.raises(DlgTypeError, match="dtype must be a dlg number dtype"):
        dlg.cumprod(dlg.tensor(TIES), 0, dtype=dlg.bool)


# ---- flip -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims", [0, (2,), (-1, 0), [0, 1, 2], ()], ids=str)
def test_flip_matches_torch(dims):
    want = torch.flip(torch.tensor(DISTINCT), dims=dims if isinstance(dims, (tuple, list))
                      else (dims,))
    same(dlg.flip(dlg.tensor(DISTINCT), dims), want)


def test_flip_spellings_scalars_and_errors():
    x = dlg.tensor(DISTINCT)
    same(x.flip(0, 2), torch.tensor(DISTINCT).flip(0, 2))
    same(dlg.flip(dlg.tensor(np.float32(4)), [0]), torch.flip(torch.tensor(4.0), [0]))
    with pytest.raises(DlgValueError, match="name an axis twice"):
        x.flip(0, -3)
    with pytest.raises(DlgShapeError, match="axis 3 is out of range"):
        x.flip(3)


# ---- gradients against torch ------------------------------------------------------------------
def _grads(fn_dlg, fn_torch, x: np.ndarray) -> None:
    """d(sum(out * w))/dx for fixed weights w, from dlg's backward and from torch.autograd."""
    ours = dlg.tensor(x, requires_grad=True)
    out = fn_dlg(ours)
    w = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)
    (out * dlg.tensor(w)).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    (want,) = torch.autograd.grad((fn_torch(theirs) * torch.tensor(w)).sum(), theirs)
    np.testing.assert_allclose(ours.grad.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


GRADIENTS = {
    "sort": (lambda x: x.sort(1, descending=True).values,
             lambda x: x.sort(dim=1, descending=True, stable=True).values),
    "sort_axis0": (lambda x: dlg.sort(x, 0).values,
                   lambda x: torch.sort(x, dim=0, stable=True).values),
    "topk": (lambda x: x.topk(2, dim=-1).values, lambda x: x.topk(2, dim=-1).values),
    "topk_smallest": (lambda x: dlg.topk(x, 3, 1, largest=False)[0],
                      lambda x: torch.topk(x, 3, 1, largest=False)[0]),
    "kthvalue": (lambda x: x.kthvalue(2, 1).values, lambda x: x.kthvalue(2, 1).values),
    "cumsum": (lambda x: x.cumsum(1), lambda x: x.cumsum(1)),
    "cumsum_axis0": (lambda x: dlg.cumsum(x, -3), lambda x: torch.cumsum(x, -3)),
    "cumprod": (lambda x: x.cumprod(-1), lambda x: x.cumprod(-1)),
    "flip": (lambda x: x.flip(0, 2), lambda x: x.flip(0, 2)),
}


@pytest.mark.parametrize("name", sorted(GRADIENTS))
def test_gradients_match_torch(name):
    _grads(*GRADIENTS[name], DISTINCT)


def test_sort_gradient_follows_torchs_stable_order_through_ties():
    _grads(lambda x: x.sort(1).values, lambda x: x.sort(dim=1, stable=True).values,
           np.array([[2, 1, 2, 1, 3], [0, 0, 0, 0, 0]], np.float32))


ZEROS = np.array([[0, 2, -3, 0.5, 4],   # first element zero
                  [2, -1, 0, 3, 5],      # one zero inside
                  [1, 2, 3, 4, 0],       # zero at the end
                  [0, 2, 0, -1, 3],      # two zeros
                  [1.5, -2, 0.5, 3, -1]], np.float32)  # none


@pytest.mark.parametrize("axis", [0, 1])
def test_cumprod_gradient_is_exact_with_zeros(axis):
    _grads(lambda x: x.cumprod(axis), lambda x: x.cumprod(axis), ZEROS)


# ---- the .dlg door ----------------------------------------------------------------------------
def test_the_dlg_door_runs_the_same_functions():
    source = """model M {
        input x: f32[N, 4]
        values, indices = sort(x, axis=1, descending=true)
        top, where = topk(x, 2, axis=0, largest=false)
        output v = values
        output i = indices
        output t = top
        output s = cumsum(flip(x, 1), axis=1)
        output p = cumprod(x, 0)
    }"""
    x = DISTINCT[0]
    got = dlg.loads(source, file="t.dlg")(x=x)
    t = dlg.tensor(x)
    want = (*t.sort(1, descending=True), t.topk(2, 0, largest=False).values,
            t.flip(1).cumsum(1), t.cumprod(0))
    for ours, theirs in zip(got, want):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)


def test_the_same_error_from_both_doors():
    with pytest.raises(DlgValueError) as python:
        dlg.topk(dlg.tensor(DISTINCT[0]), 9, 1)
    with pytest.raises(DlgValueError) as dlg_file:
        dlg.loads("model M { input x: f32[3, 4] output y = topk(x, 9, axis=1) }", file="t.dlg")
    assert str(python.value).split("error: ")[-1] in str(dlg_file.value)


# ---- compiled ---------------------------------------------------------------------------------
def _ordering(x):
    values, indices = dlg.sort(x, dim=1, descending=True)
    top = x.topk(2, dim=0)
    return (values, indices, top.values, top.indices, dlg.argsort(x, 1), x.cumsum(1),
            x.cumprod(0), x.flip(1), dlg.cumsum(x > 0, 0))


def test_traced_and_compiled_match_eager():
    exe = dlg.compile(dlg.trace(_ordering, dlg.randn(4, 6)))
    x = R.standard_normal((5, 6)).astype(np.float32)
    x[1, 2] = x[1, 4] = x[3, 0]  # ties
    x[2, 3] = NAN
    for got, want in zip(exe(x), _ordering(dlg.tensor(x))):
        assert got.dtype == want.numpy().dtype
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op, attrs", [
    ("sort", {"axis": 0, "descending": True}), ("topk", {"k": 2, "axis": 1}),
    ("cumsum", {"axis": 1}), ("cumsum", {"axis": 0, "reverse": True}), ("cumprod", {"axis": 1}),
], ids=str)
def test_compiled_gradients_match_the_interpreter(op, attrs):
    g = Graph("g")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 5]"))
    out = getattr(b, op)(x, **attrs)
    out = out[0] if isinstance(out, tuple) else out
    w = b.input("w", b.type_of(out))
    g.set_output("loss", b.reduce_sum(b.mul(out, w)))
    gg = grad(g, "loss", wrt=["x"])
    w_shape = (4, 2) if op == "topk" else (4, 5)
    inputs = {"x": ZEROS[:4].copy(), "w": R.standard_normal(w_shape).astype(np.float32)}
    want, _ = Interpreter().run(gg, inputs, {})
    got = NativeGraph(gg)(inputs, {})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
