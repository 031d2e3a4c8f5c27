"""Tensor methods and functions that PyTorch programs reach for, against torch: x.mT/x.mH,
select, index_fill, nan_to_num, isin, the in-place scatter_, scatter_add_, masked_fill_,
index_fill_ and nan_to_num_ (refused where a gradient is recorded), and x.cuda() refused with
the way to the GPU. Gradients where there are any; traced and compiled at another batch size.
Then the layout and dtype queries, torch's take/put, sum_to_size, the in-place view ops and the
NumPy-style stacks (OpInfo covers their float32 samples)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)
X = R.standard_normal((2, 3, 4)).astype(np.float32)
NAN = np.array([[1.5, np.nan, np.inf], [-np.inf, -2.0, 0.0]], np.float32)


def both(fn, *arrays, grad: bool = True):
    """fn on dlg and torch tensors of `arrays`: values equal, and the gradients of a weighted
    sum when the output is a float."""
    xs = [dlg.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    y, ty = fn(dlg, *xs), fn(torch, *ts)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    if grad and ty.requires_grad:
        w = R.standard_normal(ty.shape).astype(np.float32)
        (y * dlg.tensor(w)).sum().backward()
        (ty * torch.tensor(w)).sum().backward()
        for x, t in zip(xs, ts):
            if t.grad is not None:
                np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("fn", [
    lambda m, x: x.mT, lambda m, x: x.mH, lambda m, x: x[0].mT,
    lambda m, x: x.select(1, -1), lambda m, x: m.select(x, -1, 2),
    lambda m, x: x[0, 0].select(0, 3),
    lambda m, x: x.index_fill(1, m.tensor([2, 0, 2]), -1.5),
    lambda m, x: x.index_fill(-1, m.tensor(-1), m.tensor(7.0)),
    lambda m, x: m.index_fill(x[0, 0, 0], 0, m.tensor([0]), 3.0),
], ids=["mT", "mH", "mT_matrix", "select", "select_fn", "select_1d", "index_fill",
        "index_fill_0d_index", "index_fill_0d_x"])
def test_views_and_fills_match_torch(fn):
    both(fn, X)


@pytest.mark.parametrize("m", [dlg, torch], ids=["dlg", "torch"])
def test_split_takes_torchs_keywords(m):
    """Tensor.split's keyword is split_size (mamba-minimal's x.split(split_size=[...], dim=-1)),
    torch.split's split_size_or_sections, as in torch."""
    x = m.arange(6.0)
    assert [p.tolist() for p in x.split(split_size=[2, 4], dim=-1)] == [[0, 1], [2, 3, 4, 5]]
    assert [p.tolist() for p in m.split(x, split_size_or_sections=4)] == [[0, 1, 2, 3], [4, 5]]


@pytest.mark.parametrize("fn", [
    lambda m, x: x.reshape(shape=(3, 4)), lambda m, x: m.reshape(x, shape=(-1,)),
    lambda m, x: x.view(size=(4, 3)), lambda m, x: x.permute(dims=(1, 0)),
    lambda m, x: m.permute(x, dims=(1, 0)), lambda m, x: x[:1].expand(size=(2, -1)),
    lambda m, x: x.repeat(repeats=(2, 1)), lambda m, x: x.tile(dims=(2,)),
    lambda m, x: m.tile(x, dims=(1, 2)),
], ids=["reshape", "reshape_fn", "view", "permute", "permute_fn", "expand", "repeat", "tile",
        "tile_fn"])
def test_shapes_given_by_torchs_keyword(fn):
    """The methods whose shape is *args take it by torch's keyword too (DiT's
    x.reshape(shape=(...)) in unpatchify)."""
    both(fn, np.arange(12.0, dtype=np.float32).reshape(3, 4))


def test_index_fill_of_a_tensor_value_passes_its_gradient():
    both(lambda m, x, v: x.index_fill(2, m.tensor([1, 3]), v.sum()), X, np.float32([0.5, 2.0]))


def test_index_fill_truncates_a_float_on_ints_as_torch():
    both(lambda m, x: x.index_fill(0, m.tensor([1]), 2.7), np.array([4, 5, 6]), grad=False)


@pytest.mark.filterwarnings("ignore:overflow")  # the float32 maximum times a weight
@pytest.mark.parametrize("kwargs", [{}, {"nan": 1.0}, {"posinf": 9.0, "neginf": -9.0}])
def test_nan_to_num_matches_torch(kwargs):
    both(lambda m, x: m.nan_to_num(x, **kwargs), NAN)
    both(lambda m, x: x.nan_to_num(**kwargs), NAN.astype(np.float16), grad=False)


def test_nan_to_num_leaves_integers_alone():
    both(lambda m, x: m.nan_to_num(x), np.array([1, -2]), grad=False)


@pytest.mark.parametrize("fn", [
    lambda m, e, t: m.isin(e, t), lambda m, e, t: m.isin(e, t, invert=True),
    lambda m, e, t: m.isin(e, 3), lambda m, e, t: m.isin(2, t),
    lambda m, e, t: m.isin(e.double(), t),
])
def test_isin_matches_torch(fn):
    both(fn, np.array([[1, 2, 3], [4, 3, 0]]), np.array([[3, 0], [9, 7]]), grad=False)


@pytest.mark.parametrize("fn", [
    lambda m, x: x.scatter_(1, m.tensor([[0, 2]]), m.tensor([[5.0, 6.0]])),
    lambda m, x: x.scatter_(0, m.tensor([[1]]), 2.5),
    lambda m, x: x.scatter_add_(1, m.tensor([[0, 0], [2, 1]]), m.ones(2, 2)),
    lambda m, x: x.scatter_reduce_(1, m.tensor([[0, 0]]), m.ones(1, 2), "sum"),
    lambda m, x: x.masked_fill_(x > 0, -1.0),
    lambda m, x: x.index_fill_(1, m.tensor([1]), 0.0),
    lambda m, x: x.nan_to_num_(posinf=1.0),
], ids=["scatter_", "scatter_value", "scatter_add_", "scatter_reduce_", "masked_fill_",
        "index_fill_", "nan_to_num_"])
def test_in_place_forms_write_into_x(fn):
    x, t = dlg.tensor(NAN), torch.tensor(NAN)
    assert fn(dlg, x) is x
    fn(torch, t)
    np.testing.assert_array_equal(x.numpy(), t.numpy())


def test_in_place_forms_are_refused_on_a_leaf_that_requires_grad():
    x = dlg.ones(2, 3, requires_grad=True)
    with pytest.raises(dlg.DlgError, match=r"leaf tensor that requires grad"):
        x.masked_fill_(x > 0, 0.0)
    with dlg.no_grad():
        x.index_fill_(1, dlg.tensor([0]), 2.0)
    np.testing.assert_array_equal(x.detach().numpy(), [[2, 1, 1], [2, 1, 1]])


@pytest.mark.parametrize("call", ["x.cuda()", "x.cuda(0)", "x.to('cuda')",
                                  "x.to(dlg.device('cuda:1'))", "dlg.zeros(2, device='cuda')"])
def test_cuda_says_where_the_gpu_is(call):
    with pytest.raises(dlg.DlgValueError, match=r"device 'cuda(:\d)?': eager dlg tensors live on "
                                                r"the CPU; dlg.compile\(model, example_input, "
                                                r"target=\"cuda\"\) is the GPU path"):
        eval(call, {"x": dlg.ones(2), "dlg": dlg})


@pytest.mark.parametrize("call, pattern", [
    ("x.select(3, 0)", r"select: dim must be an int in \[-3, 3\), got int 3"),
    ("x.select(1, 3)", r"index 3 is out of range for axis 1 of f32\[2,3,4\]"),
    ("dlg.tensor(1.0).select(0, 0)", r"select cannot be applied to a 0-d tensor"),
    ("x[0, 0].mT", r"x.mT needs a matrix or a batch of matrices, got f32\[4\]"),
    ("x.index_fill(1, dlg.tensor([[0]]), 1.0)", r"index must be a 0-d or 1-d int64 tensor"),
    ("x.index_fill(1, dlg.tensor([3]), 1.0)", r"index 3 is out of range"),
    ("dlg.nan_to_num(x, nan='0')", r"nan_to_num: nan must be a number, got str '0'"),
    ("dlg.isin(1, 2)", r"isin: elements or test_elements must be a tensor"),
    ("x.unfold(3, 2, 1)", r"unfold: dimension 3 is out of range for a tensor of 3 dims"),
    ("x.unfold(2, 5, 1)", r"maximum size for tensor at dimension 2 is 4 but size is 5"),
    ("x.unfold(2, 2, 0)", r"unfold: step is 0 but must be > 0"),
    ("x.unfold(2, 2.0, 1)", r"unfold: size must be an int, got float"),
])
def test_bad_calls_raise_dlg_errors(call, pattern):
    with pytest.raises(dlg.DlgError, match=pattern):
        eval(call, {"x": dlg.tensor(X), "dlg": dlg})


def traced_fn(x, i):
    return (x.mT.select(2, 0) + x.index_fill(2, i, 0.0).nan_to_num().sum(1)
            + dlg.isin(x, x[0, 0]).float().sum(1))


def test_traced_and_compiled_match_eager_at_another_batch_size():
    i = dlg.tensor([0, 3])
    traced = dlg.trace(traced_fn, dlg.tensor(X), i, dynamic={"i": {}})
    exe = dlg.compile(traced)
    x = R.standard_normal((5, 3, 4)).astype(np.float32)
    x[1, 2, 1] = np.nan
    want = traced_fn(dlg.tensor(x), i).numpy()
    np.testing.assert_allclose(traced(x, i.numpy()), want, rtol=1e-6)
    np.testing.assert_allclose(exe(x, i.numpy()), want, rtol=1e-5, atol=1e-6)


# Tensor.unfold (sliding windows, ViT's patchify; not F.unfold's im2col)
@pytest.mark.parametrize("fn", [
    lambda m, x: x.unfold(2, 2, 2), lambda m, x: x.unfold(-1, 3, 1),
    lambda m, x: x.unfold(1, 2, 1).unfold(3, 2, 2), lambda m, x: x.unfold(0, 2, 5),
    lambda m, x: x.unfold(2, 4, 3), lambda m, x: x.unfold(2, 0, 1),
    lambda m, x: x[0, 0, 0].unfold(0, 1, 1),
], ids=["patches", "negative_dim", "twice", "one_window", "step_past_end", "empty", "0d"])
def test_unfold_matches_torch(fn):
    both(fn, X)


def test_unfold_patchifies_an_image_traced_and_compiled():
    def patchify(img):
        b, c = img.shape[:2]
        p = img.unfold(2, 4, 4).unfold(3, 4, 4)  # b c h/4 w/4 4 4
        return p.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * 16)
    img = R.standard_normal((2, 3, 8, 12)).astype(np.float32)
    want = patchify(torch.tensor(img)).numpy()
    np.testing.assert_array_equal(patchify(dlg.tensor(img)).numpy(), want)
    exe = dlg.compile(patchify)
    np.testing.assert_array_equal(np.asarray(exe(dlg.tensor(img))), want)
    more = R.standard_normal((5, 3, 8, 12)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(exe(dlg.tensor(more))),
                                  patchify(torch.tensor(more)).numpy())


# x.fill_diagonal_ (SimCLR's similarity matrix, masking self-pairs)
@pytest.mark.parametrize("shape, wrap", [((4, 4), False), ((7, 3), False), ((7, 3), True),
                                         ((3, 7), True), ((3, 3, 3), False), ((2, 2, 2, 2), True)])
def test_fill_diagonal_matches_torch(shape, wrap):
    a = R.standard_normal(shape).astype(np.float32)
    x, t = dlg.tensor(a), torch.tensor(a)
    assert x.fill_diagonal_(-2.5, wrap=wrap) is x
    np.testing.assert_array_equal(x.numpy(), t.fill_diagonal_(-2.5, wrap=wrap).numpy())


def test_fill_diagonal_of_a_recorded_tensor_passes_the_other_gradients():
    both(lambda m, x: (x * 2).fill_diagonal_(-1.0) * 3, X[0, :, :3])


def test_fill_diagonal_traced_and_compiled_follow_the_batch():
    def masked_similarity(z):
        sim = z @ z.t()
        sim.fill_diagonal_(float("-inf"))
        return sim.softmax(1)
    exe = dlg.compile(masked_similarity, dlg.tensor(X[0]))
    z = R.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(exe(z), masked_similarity(torch.tensor(z)).numpy(), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("call", ["dlg.ones(3).fill_diagonal_(0)",
                                  "dlg.ones(2, 3, 3).fill_diagonal_(0)"])
def test_fill_diagonal_needs_a_matrix_or_equal_dims(call):
    with pytest.raises(dlg.DlgShapeError, match=r"fill_diagonal_: the tensor must have 2 "
                                                r"dimensions, or more all of equal length"):
        eval(call, {"dlg": dlg})


@pytest.mark.parametrize("sections", [3, 5, [1, 3], [3, 1], [-1], [0, 0, 9], []],
                         ids=["3", "more-than-dim", "indices", "decreasing", "negative", "clamped",
                              "none"])
def test_tensor_split_matches_torch(sections):
    """Sections differing by one (the first longer), or Python slices between indices: a
    decreasing index gives an empty part and an overlap, as torch's does."""
    def fn(lib, x):
        parts = lib.tensor_split(x, sections, dim=2)
        method = x.tensor_split(sections, dim=2)
        assert len(parts) == len(method)
        return lib.cat([p.flatten(1) * (i + 1) for i, p in enumerate(parts)], dim=1)
    both(fn, X)


def test_tensor_split_needs_a_positive_count_or_a_list_of_ints():
    with pytest.raises(dlg.DlgError, match="sections must be positive"):
        dlg.tensor_split(dlg.tensor(X), 0, dim=2)
    with pytest.raises(dlg.DlgError, match="int or a list of ints"):
        dlg.tensor_split(dlg.tensor(X), 1.5)


# ---- layout, dtype queries and the in-place view ops (frontend/tensor_info.py) -------------------
def test_layout_metadata_matches_torch():
    x, t = dlg.tensor(X), torch.tensor(X)
    assert x.stride() == t.stride() and x.stride(1) == t.stride(1) and x.stride(-1) == 1
    assert (x.storage_offset(), x.nbytes, x.itemsize, x.ndimension(), x.get_device()) == (
        t.storage_offset(), t.nbytes, t.itemsize, t.ndimension(), t.get_device())
    assert x.is_cpu and not x.is_cuda
    assert x.data_ptr() == x.view(-1).data_ptr() != dlg.tensor(X).data_ptr()
    assert x.new(2, 3).shape == (2, 3) and x.new([1, 2]).dtype == dlg.float32
    assert x.new().shape == t.new().shape


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_storage_as_torch():
    """Karpathy's `a.storage()` (the one-dimensional memory behind a view): its elements,
    written through, torch's printout and sizes; untyped_storage() its bytes."""
    for lib in (dlg, torch):
        a = lib.arange(18)
        s = a.storage()
        assert (len(s), s.nbytes(), s.element_size(), s[2], s.tolist()[:3], list(s)[-1]) == (
            18, 144, 8, 2, [0, 1, 2], 17)
        assert s.data_ptr() == a.data_ptr() == a.untyped_storage().data_ptr()
        s[0] = 5
        assert a[0].item() == 5 and a.untyped_storage()[:2].tolist() == [5, 0]
        assert len(lib.ones(3).untyped_storage()) == 12
    assert repr(dlg.arange(3.0).storage()) == repr(torch.arange(3.0).storage()).replace(
        "torch", "dlg")
    with pytest.warns(UserWarning, match="TypedStorage is deprecated"):
        dlg.ones(1).storage()


def test_dtype_queries_match_torch():
    pairs = [(dlg.tensor([1, 2]), 1.0), (dlg.tensor([1, 2], dtype=dlg.int32), 5),
             (dlg.tensor(1.0, dtype=dlg.float64), dlg.tensor([1], dtype=dlg.int32)), (2, 3),
             (True, False), (1, 2.5)]
    for a, b in pairs:
        ta, tb = (torch.tensor(v.numpy()) if isinstance(v, dlg.Tensor) else v for v in (a, b))
        assert str(dlg.result_type(a, b).np) == str(torch.result_type(ta, tb)).split(".")[1]
    dtypes = [(dlg.bool, torch.bool), (dlg.int32, torch.int32), (dlg.int64, torch.int64),
              (dlg.float16, torch.float16), (dlg.float32, torch.float32),
              (dlg.float64, torch.float64), (dlg.complex64, torch.complex64),
              (dlg.complex128, torch.complex128)]
    for d1, t1 in dtypes:
        for d2, t2 in dtypes:
            assert str(dlg.promote_types(d1, d2).np) == str(torch.promote_types(t1, t2))[6:]
            assert dlg.can_cast(d1, d2) == torch.can_cast(t1, t2)
    assert dlg.broadcast_shapes((2, 1), (3,), 1) == torch.broadcast_shapes((2, 1), (3,), 1)
    with pytest.raises(dlg.DlgShapeError):
        dlg.broadcast_shapes((2,), (3,))
    assert dlg.is_nonzero(dlg.tensor([0.5])) and not dlg.is_nonzero(dlg.tensor(0))
    with pytest.raises(dlg.DlgValueError):
        dlg.is_nonzero(dlg.tensor([1, 2]))
    assert dlg.is_same_size(dlg.tensor(X), dlg.tensor(X)) and not dlg.is_complex(dlg.tensor(X))
    assert dlg.is_signed(dlg.tensor([1])) and not dlg.is_signed(dlg.tensor([True]))


def test_as_tensor_asarray_scalar_tensor():
    a = np.arange(3.0)
    x = dlg.as_tensor(a)
    assert x.dtype == dlg.float64 and np.shares_memory(x.numpy(), a)
    assert dlg.as_tensor([1.0, 2.0]).dtype == dlg.float32
    assert dlg.as_tensor(x) is x and dlg.as_tensor(x, dtype=dlg.float32).dtype == dlg.float32
    assert not np.shares_memory(dlg.asarray(a, copy=True).numpy(), a)
    assert dlg.asarray([1, 2], requires_grad=False).dtype == dlg.int64
    with pytest.raises(dlg.DlgValueError, match="copy=False"):
        dlg.asarray([1, 2], copy=False)
    s = dlg.scalar_tensor(3)
    assert s.dtype == dlg.float32 and s.shape == () and s.item() == 3.0


def test_in_place_view_ops_reshape_x_and_keep_the_gradient():
    for name, args in (("t_", ()), ("transpose_", (0, 2)), ("swapaxes_", (1, 2)),
                       ("swapdims_", (0, 1)), ("squeeze_", ()), ("unsqueeze_", (1,))):
        a = X[:, :1] if name == "squeeze_" else X
        x, t = dlg.tensor(a[0] if name == "t_" else a), torch.tensor(a[0] if name == "t_" else a)
        assert getattr(x, name)(*args) is x
        getattr(t, name)(*args)
        np.testing.assert_array_equal(x.numpy(), t.numpy())
    leaf = dlg.tensor(X[0], requires_grad=True)
    y = leaf * 2
    y.t_()
    w = R.standard_normal((4, 3)).astype(np.float32)
    (y * dlg.tensor(w)).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), 2 * w.T)
    with pytest.raises(dlg.DlgValueError, match="leaf"):
        dlg.tensor(X, requires_grad=True).transpose_(0, 1)

    def fn(x):
        y = x + 1
        y.unsqueeze_(0)
        return y.transpose_(0, 1)
    model = dlg.trace(fn, dlg.tensor(X[0]))
    np.testing.assert_array_equal(model(X[0]), fn(dlg.tensor(X[0])).numpy())


def test_take_put_and_sum_to_size():
    idx = np.array([[0, -1], [5, 23]])
    both(lambda m, x: m.take(x, m.tensor(idx)), X)
    both(lambda m, x: x.take(m.tensor(idx)), X)
    src = np.array([1.0, 2.0, 3.0], np.float32)
    for acc in (False, True):
        both(lambda m, x, s, acc=acc: m.put(x, m.tensor([1, -1, 1 if acc else 2]), s,
                                            accumulate=acc), X, src)
    x = dlg.tensor(X)
    x.put_(dlg.tensor([0]), dlg.tensor([9.0]))
    assert x.numpy().flat[0] == 9.0
    whole = np.round(X * 4).astype(np.float32)  # sums exact in any order
    for size in ((3, 1), (1, 3, 4), (4,), (2, 1, 1)):
        both(lambda m, x, size=size: x.sum_to_size(*size), whole)
    with pytest.raises(dlg.DlgShapeError, match="expandable"):
        dlg.tensor(X).sum_to_size(2, 4)


def test_stacks_promote_and_split_as_torch():
    i, f = np.arange(6).reshape(2, 3), X[0, :2, :3]
    for name in ("hstack", "vstack", "row_stack", "dstack", "column_stack"):
        got = getattr(dlg, name)([dlg.tensor(i), dlg.tensor(f)])
        want = getattr(torch, name)([torch.tensor(i), torch.tensor(f)])
        assert got.dtype == dlg.float32 and want.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    both(lambda m, x: m.hstack([x, x[:, :1]]) * 1, X[0])
    for rank in (1, 2, 3):
        got = getattr(dlg, f"atleast_{rank}d")(dlg.tensor(1.0), dlg.tensor([1.0, 2.0]))
        want = getattr(torch, f"atleast_{rank}d")(torch.tensor(1.0), torch.tensor([1.0, 2.0]))
        assert [g.shape for g in got] == [tuple(w.shape) for w in want]
    with pytest.raises(dlg.DlgValueError, match="equal parts"):
        dlg.hsplit(dlg.tensor(X), 2)
    with pytest.raises(dlg.DlgShapeError, match="at least 3"):
        dlg.dsplit(dlg.tensor(X[0]), 2)
    assert [p.shape for p in dlg.tensor(X).split_with_sizes([1, 3], dim=2)] == [(2, 3, 1),
                                                                              (2, 3, 3)]


def test_index_constructors_and_scatters_at_the_edges():
    for row, col, offset in ((3, 3, 0), (4, 2, -1), (2, 5, 2), (0, 0, 0), (3, 1, 4)):
        for name in ("tril_indices", "triu_indices"):
            got = getattr(dlg, name)(row, col, offset)
            np.testing.assert_array_equal(got.numpy(),
                                          getattr(torch, name)(row, col, offset).numpy())
    assert dlg.tril_indices(3, 3, dtype=dlg.int32).dtype == dlg.int32
    flat = np.array([0, 5, 11, -1, -12])
    for got, want in zip(dlg.unravel_index(dlg.tensor(flat), (3, 4)),
                         torch.unravel_index(torch.tensor(flat), (3, 4))):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for r, rep in ((0, False), (2, True), (4, False)):
        got = dlg.combinations(dlg.tensor([1, 2, 3]), r, rep)
        want = torch.combinations(torch.tensor([1, 2, 3]), r, rep)
        assert got.shape == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    both(lambda m, x, s: m.slice_scatter(x, s, 2, 0, None, 2), X, X[:, :, ::2] * 3)
    both(lambda m, x, s: x.index_copy(1, m.tensor([2, 0]), s), X, X[:, :2] + 1)
    both(lambda m, x, s: m.masked_scatter(x, m.tensor(X > 0), s), X, X[::-1].copy())


# torch's index_put / index_put_ (x[indices] = v, or += with accumulate, as a function)
@pytest.mark.parametrize("fn", [
    lambda m, x, v: x.index_put((m.tensor([0, 1, 0]), m.tensor([2, -1, 2])), v[0, :3] * 2,
                                accumulate=True),
    lambda m, x, v: x.index_put((m.tensor([1, 0]), m.tensor([0, 2])), v[0, :2]),
    lambda m, x, v: m.index_put(x, (m.tensor([[1], [0]]),), v[0, 0]),
    lambda m, x, v: x.index_put((x[:, :, 0] > 0,), v[0, 0], accumulate=True),
    lambda m, x, v: x.index_put((m.tensor([1, 1, 1]),), v[0, 0], accumulate=True),
], ids=["accumulate_repeats", "pairs", "broadcast_rows", "mask", "one_row_thrice"])
def test_index_put_matches_torch(fn):
    """Values and gradients; repeated positions add up in another order than torch's
    sequential writes, so to a float32 rounding."""
    xs = [dlg.tensor(a, requires_grad=True) for a in (X, X[:1] * 3)]
    ts = [torch.tensor(a, requires_grad=True) for a in (X, X[:1] * 3)]
    y, ty = fn(dlg, *xs), fn(torch, *ts)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    w = R.standard_normal(ty.shape).astype(np.float32)
    (y * dlg.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_index_put_in_place_traced_and_compiled():
    def f(x):
        y = x * 1
        y.index_put_((dlg.tensor([0, 0, 2]), dlg.tensor([1, 1, 3])), dlg.tensor(1.5),
                     accumulate=True)
        return y

    x = R.standard_normal((3, 4)).astype(np.float32)
    t = torch.tensor(x)
    t.index_put_((torch.tensor([0, 0, 2]), torch.tensor([1, 1, 3])), torch.tensor(1.5),
                 accumulate=True)
    np.testing.assert_array_equal(f(dlg.tensor(x)).numpy(), t.numpy())
    np.testing.assert_allclose(dlg.trace(f, x)(x), t.numpy(), rtol=1e-6)
    np.testing.assert_allclose(dlg.compile(f, x)(x), t.numpy(), rtol=1e-6)
    with pytest.raises(dlg.DlgError, match=r"leaf tensor that requires grad"):
        dlg.zeros(3, requires_grad=True).index_put_((dlg.tensor([0]),), dlg.tensor(1.0))


@pytest.mark.parametrize("call, pattern", [
    ("x.index_put(x[0], x)", r"index_put: indices must be a tuple of tensors, got Tensor"),
    ("x.index_put((None, dlg.tensor([0])), x)", r"torch's None for a whole dim is not supported"),
    ("x.index_put((dlg.tensor([0.5]),), x)", r"must be long, int or bool tensors, got f32"),
    ("x.index_put((dlg.tensor([0]),) * 4, x)", r"too many indices for a tensor of dimension 3"),
    ("x.index_put((dlg.tensor([0, 1]), dlg.tensor([0, 1, 2])), x)", r"do not broadcast"),
    ("x.index_put((dlg.tensor([0, 1]),), x[0, :, :2])",
     r"index_put: values of shape \(3, 2\) cannot be broadcast to the indexed shape \(2, 3, 4\)"),
])
def test_index_put_bad_calls(call, pattern):
    with pytest.raises(dlg.DlgError, match=pattern):
        eval(call, {"x": dlg.tensor(X), "dlg": dlg})


@pytest.mark.parametrize("fn", [
    lambda m, x, n: x[0, :n], lambda m, x, n: x[:, n:, ::n], lambda m, x, n: x[..., n - 1:n + 1],
    lambda m, x, n: m.arange(n), lambda m, x, n: m.arange(1, n + 2),
    lambda m, x, n: m.zeros(n), lambda m, x, n: m.ones((n, 2)), lambda m, x, n: m.full([n], 2.0),
], ids=["stop", "start_step", "both", "arange", "arange_bounds", "zeros", "ones_tuple", "full"])
def test_one_element_int_tensors_stand_where_ints_go(fn):
    """A 0-d int tensor as a slice bound or a factory's size, as torch reads it (`__index__`):
    `seq[:length]` over a tensor of lengths, `arange(lengths.max())`."""
    both(lambda m, x: fn(m, x, m.tensor(2)), X)


@pytest.fixture
def print_options():
    from dlg.frontend import printing
    yield
    printing.OPTIONS.clear()
    torch.set_printoptions(profile="default")


_RNG = np.random.default_rng(11)
PRINTED = [
    np.float32(3.5), np.float32(-0.0), np.arange(6.0, dtype=np.float32).reshape(2, 3),
    _RNG.standard_normal((3, 4)).astype(np.float32), np.array([1e-5, 1.0], np.float32),
    np.array([1e9, 1.0], np.float32), np.array([np.nan, 1.0, np.inf, -np.inf], np.float32),
    np.array([-1.25, 100.0], np.float32), np.arange(2000.0, dtype=np.float32),
    np.ones((2, 3, 4), np.float32), _RNG.standard_normal((40, 30)).astype(np.float32),
    np.arange(30.0, dtype=np.float32) / 7, np.array([1.5, 2.0]), np.array([0.001, 12345.0]),
    np.arange(-5, 7).reshape(3, 4), np.array([True, False]), np.arange(3, dtype=np.int32),
    np.array([7, 255], np.uint8), np.zeros((0, 3), np.float32), np.zeros(0, np.int64),
    np.zeros(0, np.float32), np.float64(2.0), _RNG.standard_normal((2, 2, 600)).astype(np.float16),
    np.array([1 + 2j, -0.5j], np.complex64), np.array([[1e-6 - 3j, 2.5 + 0j]]),
    (_RNG.standard_normal((30, 40)) * 1j).astype(np.complex64),
]
OPTIONS = [{}, {"precision": 2}, {"sci_mode": False}, {"sci_mode": True, "precision": 3},
           {"profile": "short"}, {"threshold": 5, "edgeitems": 2}, {"linewidth": 40},
           {"profile": "full"}]


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_tensors_print_as_torch_s(options, print_options):
    """repr(tensor) is torch's text, under torch.set_printoptions too: 4 decimals, integral floats
    as `1.`, scientific notation past a 1000 ratio, rows aligned under the first bracket, the
    dtype shown unless it is a default one, summaries past the threshold."""
    dlg.set_printoptions(**options)
    torch.set_printoptions(**options)
    for values in PRINTED:
        want = repr(torch.tensor(values)).replace("torch.", "dlg.")
        assert repr(dlg.tensor(values)) == want, values.dtype
    x = torch.ones(3, requires_grad=True)
    assert repr(dlg.ones(3, requires_grad=True)) == repr(x)
    assert repr(dlg.nn.Parameter(dlg.ones(2))) == repr(torch.nn.Parameter(torch.ones(2)))
    assert str(dlg.arange(3.0) * 2) == str(torch.arange(3.0) * 2)


def test_set_printoptions_refuses_an_unknown_profile():
    with pytest.raises(dlg.DlgValueError, match="profile must be one of"):
        dlg.set_printoptions(profile="long")


def test_t_and_vmap_at_the_top_level_as_torch():
    both(lambda m, x: m.t(x[0]) * 2, X)
    both(lambda m, x: m.t(x[0, 0]), X)
    both(lambda m, x: m.vmap(lambda row: (row * row).sum())(x[0]), X)


INT = np.array([[1, 2], [3, 12]])


@pytest.mark.parametrize("fn", [
    lambda m, x: x.logical_and_(x > 0), lambda m, x: (x > 0).logical_or_(x < -1),
    lambda m, x: x.logical_xor_(x > 0), lambda m, x: m.tensor(INT).bitwise_and_(m.tensor(3)),
    lambda m, x: m.tensor(INT).bitwise_or_(4), lambda m, x: m.tensor(INT).bitwise_xor_(5),
    lambda m, x: m.tensor(INT).bitwise_not_(), lambda m, x: m.tensor(INT).bitwise_left_shift_(1),
    lambda m, x: m.tensor(INT).bitwise_right_shift_(1),
    lambda m, x: x.heaviside_(m.tensor(0.5)), lambda m, x: x.nextafter_(m.zeros(3, 4)),
    lambda m, x: x[0, 0].clone().addmv_(x[0].T.contiguous(), m.ones(3)),
    lambda m, x: x[0].addr_(m.ones(3), m.ones(4), alpha=2),
    lambda m, x: x[0].addbmm_(m.ones(2, 3, 5), m.ones(2, 5, 4)),
    lambda m, x: x.arctan_(), lambda m, x: x.arctan2_(m.ones(3, 4)),
    lambda m, x: x.index_copy_(1, m.tensor([2, 0]), m.ones(2, 2, 4)),
    lambda m, x: x.masked_scatter_(x > 0, m.arange(24.0).reshape(2, 3, 4)),
], ids=["logical_and_", "logical_or_", "logical_xor_", "bitwise_and_", "bitwise_or_",
        "bitwise_xor_", "bitwise_not_", "bitwise_left_shift_", "bitwise_right_shift_",
        "heaviside_", "nextafter_", "addmv_", "addr_", "addbmm_", "arctan_", "arctan2_",
        "index_copy_", "masked_scatter_"])
def test_more_in_place_forms_match_torch(fn):
    """The in-place forms of logical, bitwise and product functions: values and dtypes as
    torch's (a float x keeps its dtype under logical_and_)."""
    ours, theirs = fn(dlg, dlg.tensor(X)), fn(torch, torch.tensor(X))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")


def test_deprecated_number_alpha_overload_of_add_and_sub_as_torch():
    """Old tutorials' SGD by hand: `p.data.add_(-learning_rate, p.grad.data)`, torch's
    deprecated add_(Number alpha, Tensor other), works with torch's warning."""
    import warnings

    results = []
    for lib in (torch, dlg):
        p, g = lib.tensor([1.0, 2.0]), lib.tensor([0.5, -1.0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            p.add_(-0.1, g)
            q = p.sub(2, g)
            p.sub_(3, g)
        # torch warns once a process (TORCH_WARN_ONCE): an earlier test may have used its warning
        assert lib is torch or any("add_(Number alpha, Tensor other)" in str(w.message)
                                   for w in caught)
        results.append([p.tolist(), q.tolist()])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


@pytest.mark.parametrize("name, args", [("sin_", ()), ("exp_", ()), ("clamp_", (-0.2, 0.3)),
                                        ("sigmoid_", ()), ("zero_", ()), ("fill_", (2.5,)),
                                        ("nan_to_num_", ()), ("round_", ()), ("neg_", ())])
def test_top_level_in_place_functions_as_torch(name, args):
    """torch.sin_(b) (the Introduction to PyTorch tensors tutorial) and torch's other top-level
    in-place spellings: the method of that name, the tensor itself returned."""
    values = np.array([0.0, 0.5, -0.7, 2.0], np.float32)
    results = []
    for lib in (torch, dlg):
        x = lib.from_numpy(values.copy())
        assert getattr(lib, name)(x, *args) is x
        results.append(x.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
    with pytest.raises(dlg.DlgTypeError, match=f"{name}\\(\\) writes into a tensor"):
        getattr(dlg, name)([1.0], *args)


@pytest.mark.parametrize("name", ["to_sparse", "to_sparse_coo", "to_sparse_csr"])
def test_sparse_layouts_are_refused_by_name(name):
    """Whisper keeps its alignment heads as all_heads.to_sparse(): a DlgError saying dlg has no
    sparse tensors, not an AttributeError; is_sparse and layout answer as torch's dense ones."""
    x, t = dlg.ones(2, 2), torch.ones(2, 2)
    assert x.is_sparse == t.is_sparse and x.layout == dlg.strided and t.layout == torch.strided
    with pytest.raises(dlg.DlgTypeError, match=rf"{name}\(\): dlg has no sparse tensors"):
        getattr(x, name)()
