"""scatter_reduce against torch: every reduction with and without x's own value, on floats (with
gradients, ties too) and ints, an index shorter than x off the axis, 0-d operands, the in-place
form, bad calls; the .dlg door compiled at two batch sizes."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")
REDUCTIONS = ["sum", "prod", "mean", "amax", "amin"]
R = np.random.default_rng(0)
X = R.uniform(0.5, 2.0, (3, 5)).astype(np.float32)  # no zeros and no ties: unique gradients
SRC = R.uniform(0.5, 2.0, (2, 4)).astype(np.float32)
INDEX = np.array([[0, 4, 0, 2], [1, 1, 1, 3]])


@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("axis", [1, -2])
def test_floats_and_gradients_match_torch(reduce, include_self, axis):
    index = INDEX % X.shape[axis]  # src (2, 4) and index cover x's leading part off the axis
    x, src = dlg.tensor(X, requires_grad=True), dlg.tensor(SRC, requires_grad=True)
    tx, tsrc = torch.tensor(X, requires_grad=True), torch.tensor(SRC, requires_grad=True)
    y = x.scatter_reduce(axis, dlg.tensor(index), src, reduce, include_self=include_self)
    ty = tx.scatter_reduce(axis, torch.tensor(index), tsrc, reduce, include_self=include_self)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    w = R.standard_normal(X.shape).astype(np.float32)
    (y * dlg.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(src.grad.numpy(), tsrc.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduce", REDUCTIONS[1:])
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("axis", [1, -2])
def test_index_reduce_and_its_in_place_form_match_torch(reduce, include_self, axis):
    """torch.index_reduce: source's slices along the axis reduced at a 1-d index's positions."""
    index = np.array([0, 2, 0, 1, 2, 2])[:4 if axis == 1 else 3] % X.shape[axis]
    source = R.uniform(0.5, 2.0, (3, 4) if axis == 1 else (3, 5)).astype(np.float32)
    w = R.standard_normal(X.shape).astype(np.float32)
    results = []
    for m in (dlg, torch):
        x, src = m.tensor(X, requires_grad=True), m.tensor(source, requires_grad=True)
        y = x.index_reduce(axis, m.tensor(index), src, reduce, include_self=include_self)
        (y * m.tensor(w)).sum().backward()
        z = m.tensor(X.copy())
        z.index_reduce_(axis, m.tensor(index), m.tensor(source), reduce,
                        include_self=include_self)
        results.append([y.detach().numpy(), x.grad.numpy(), src.grad.numpy(), z.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduce", ["amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_ties_share_the_gradient_evenly_as_torch(reduce, include_self):
    """Without x's value, x is apart from the results: torch would still count an x equal to
    one in the share (a quirk of its backward)."""
    x = np.float32([1, 5, -5] if include_self else [1, 0, 0])
    src = np.float32([5, 5, 2, -5, 5])
    index = np.array([1, 1, 0, 2, 2])
    grads = []
    for m in (dlg, torch):
        a, b = m.tensor(x, requires_grad=True), m.tensor(src, requires_grad=True)
        a.scatter_reduce(0, m.tensor(index), b, reduce, include_self=include_self).sum().backward()
        grads.append([a.grad.numpy(), b.grad.numpy()])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integers_match_torch(reduce, include_self, dtype):
    """mean rounds down, as torch divides integers."""
    x = np.array([[7, -3, 2, 9], [1, 4, -8, 5]], dtype)
    src = np.array([[3, -5, 4, 6, 1], [-2, 2, 7, 9, -4]], dtype)
    index = np.array([[0, 1, 0, 1, 3], [2, 2, 2, 0, 0]])
    y = dlg.scatter_reduce(dlg.tensor(x), 1, dlg.tensor(index), dlg.tensor(src), reduce,
                           include_self=include_self)
    want = torch.tensor(x).scatter_reduce(1, torch.tensor(index), torch.tensor(src), reduce,
                                          include_self=include_self)
    assert y.dtype == dlg.DType.of(want.numpy())
    np.testing.assert_array_equal(y.numpy(), want.numpy())


def test_0d_operands_and_the_in_place_form():
    x, t = dlg.tensor(2.0), torch.tensor(2.0)
    got = x.scatter_reduce(0, dlg.tensor(0), dlg.tensor(5.0), "amax")
    assert got.shape == () and got.item() == t.scatter_reduce(
        0, torch.tensor(0), torch.tensor(5.0), "amax").item()
    y, ty = dlg.tensor(X), torch.tensor(X)
    index = INDEX % 3
    assert y.scatter_reduce_(0, dlg.tensor(index), dlg.tensor(SRC), "prod") is y
    ty.scatter_reduce_(0, torch.tensor(index), torch.tensor(SRC), "prod")
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-6)


@pytest.mark.parametrize("call, pattern", [
    ("x.scatter_reduce(1, i, src, 'max')",
     r"scatter_reduce: reduce must be 'sum', 'prod', 'mean', 'amax' or 'amin', got str 'max'"),
    ("x.scatter_reduce(1, i, src.double(), 'sum')",
     r"scatter_reduce: src f64\[2,4\] must have x's dtype f32"),
    ("x.scatter_reduce(1, i.float(), src, 'sum')", r"index must be an int64 \(or int32\) tensor"),
    ("x.scatter_reduce(1, i[0], src, 'sum')", r"x f32\[3,5\], index i64\[4\] and src .* one rank"),
    ("x.scatter_reduce(1, i + 5, src, 'amax')", r"index 5 is out of range"),
    ("x.scatter_reduce(1, i, src, 'sum', include_self=1)", r"include_self must be true or false"),
    ("x.index_reduce(1, i[0], src, 'sum')", r"index_reduce: reduce must be 'prod', 'mean'"),
    ("x.index_reduce(1, i, src, 'prod')", r"index i64\[2,4\] must be 1-d"),
    ("x.index_reduce(0, i[0], src, 'prod')", r"source f32\[2,4\] must have index"),
])
def test_bad_calls_name_the_argument(call, pattern):
    env = {"x": dlg.tensor(X), "i": dlg.tensor(INDEX), "src": dlg.tensor(SRC)}
    with pytest.raises(dlg.DlgError, match=pattern):
        eval(call, env)


DLG_MODEL = """model M {
    input x: f32[N, 4]  input i: i64[N, 3]  input src: f32[N, 3]
    output a = scatter_reduce(x, 1, i, src, "amax", include_self=false)
    output m = scatter_reduce(x, 1, i, src, "mean")
}"""


def test_dlg_source_matches_torch_and_compiles():
    m = dlg.loads(DLG_MODEL)
    exe = dlg.compile(m)
    for n in (2, 5):
        rng = np.random.default_rng(n)
        feeds = {"x": rng.standard_normal((n, 4)).astype(np.float32),
                 "i": rng.integers(0, 4, (n, 3)),
                 "src": rng.standard_normal((n, 3)).astype(np.float32)}
        t = {k: torch.tensor(a) for k, a in feeds.items()}
        want = [t["x"].scatter_reduce(1, t["i"], t["src"], "amax", include_self=False),
                t["x"].scatter_reduce(1, t["i"], t["src"], "mean")]
        for got in (m(**feeds), exe(**feeds)):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
