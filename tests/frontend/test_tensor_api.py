"""The Tensor API, creation functions, dtypes and grad modes against PyTorch: values, dtypes,
shapes and gradients of each method (0-d tensors included), and the errors, as DlgErrors that
name the argument."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)


def arr(*shape: int) -> np.ndarray:
    return R.uniform(-1, 1, shape).astype(np.float32)


MASK = np.array([[True, False, True]])
SCALAR = np.float32(0.7)


def lib_tensor(m: Any, a: Any) -> Any:
    """An input as a tensor of library `m` (bool masks stay bool and need no gradient)."""
    t = m.tensor(a)
    return t if a.dtype == np.bool_ else t.requires_grad_()


# (name, function of (library, *tensors), input arrays): outputs and gradients are compared
CASES = [
    ("view_as", lambda m, a, b: a.view_as(b), [arr(2, 3), arr(3, 2)]),
    ("reshape_as", lambda m, a, b: a.reshape_as(b) * b, [arr(6), arr(3, 2)]),
    ("expand_as", lambda m, a, b: a.expand_as(b) * b, [arr(2, 1), arr(2, 3)]),
    ("repeat", lambda m, a: a.repeat(2, 3), [arr(2, 3)]),
    ("repeat_prepends", lambda m, a: a.repeat(2, 1, 2), [arr(2, 3)]),
    ("repeat_0d", lambda m, a: a.repeat(2, 3), [SCALAR]),
    ("repeat_0d_none", lambda m, a: a.repeat(()), [SCALAR]),
    ("tile_fewer", lambda m, a: a.tile(2), [arr(2, 3)]),
    ("tile_fn", lambda m, a: m.tile(a, (2, 1, 1)), [arr(2, 3)]),
    ("masked_fill_number", lambda m, a, k: a.masked_fill(k, -2.5), [arr(2, 3), MASK]),
    ("masked_fill_broadcast", lambda m, a, k: a.masked_fill(k, 1), [arr(3), np.ones((2, 3), bool)]),
    ("masked_fill_0d", lambda m, a, k, v: m.masked_fill(a, k, v), [arr(2, 3), MASK, SCALAR]),
    ("where_method", lambda m, a, k, b: a.where(k, b), [arr(2, 3), MASK, arr(3)]),
    ("where_method_number", lambda m, a, k: a.where(k, 0.5), [arr(2, 3), MASK]),
    ("split_size", lambda m, a: a.split(2, dim=1), [arr(2, 5)]),
    ("split_sizes", lambda m, a: m.split(a, [1, 4], 1), [arr(2, 5)]),
    ("split_sizes_zero", lambda m, a: a.split([0, 2, 0]), [arr(2, 2)]),
    ("chunk_uneven", lambda m, a: a.chunk(4, -1), [arr(2, 5)]),
    ("chunk_fewer", lambda m, a: m.chunk(a, 4), [arr(6)]),
    ("unbind", lambda m, a: a.unbind(1), [arr(2, 3)]),
    ("unbind_fn", lambda m, a: m.unbind(a), [arr(2, 3)]),
    ("narrow", lambda m, a: a.narrow(1, -3, 2), [arr(2, 4)]),
    ("narrow_fn", lambda m, a: m.narrow(a, 0, 1, 1), [arr(2, 4)]),
    ("cat_legacy_empty", lambda m, a: m.cat([m.zeros(0), a, m.zeros(0)], 1), [arr(2, 3)]),
    ("cat_only_empty", lambda m, a: m.cat([a, a]), [np.zeros(0, np.float32)]),
    ("narrow_tensor_start", lambda m, a: a.narrow(1, m.tensor(-3), 2), [arr(2, 4)]),
    ("narrow_fn_tensor_start", lambda m, a: m.narrow(a, 0, m.tensor(1), 1), [arr(2, 4)]),
    ("movedim", lambda m, a: a.movedim(0, -1), [arr(2, 3, 4)]),
    ("movedim_tuple", lambda m, a: m.movedim(a, (0, 1), (2, 0)), [arr(2, 3, 4)]),
    ("swapaxes", lambda m, a: a.swapaxes(0, 2), [arr(2, 3, 4)]),
    ("swapdims", lambda m, a: m.swapdims(a, -1, 0), [arr(2, 3, 4)]),
    ("flatten_range", lambda m, a: a.flatten(1, 2), [arr(2, 3, 4, 2)]),
    ("flatten_0d", lambda m, a: a.flatten(), [SCALAR]),
    ("squeeze_tuple", lambda m, a: a.squeeze((0, 2, 3)), [arr(1, 3, 1, 2)]),
    ("squeeze_0d", lambda m, a: a.squeeze(0), [SCALAR]),
    ("unsqueeze_0d", lambda m, a: a.unsqueeze(-1), [SCALAR]),
    ("unflatten", lambda m, a: a.unflatten(1, (2, -1)), [arr(3, 6)]),
    ("unflatten_fn", lambda m, a: m.unflatten(a, -1, (3, 1, 2)), [arr(3, 6)]),
    ("clone", lambda m, a: a.clone() * 2, [arr(2, 3)]),
    ("double_float", lambda m, a: a.double().float() * a, [arr(2, 3)]),
    ("to_dtype", lambda m, a: a.to(m.float64) * 2, [arr(2, 3)]),
    ("to_tensor", lambda m, a, b: a.to(b.double()) + 1, [arr(2, 3), arr(1)]),
    ("to_cpu", lambda m, a: a.to("cpu", m.float64).cpu(), [arr(2, 3)]),
    ("type_as", lambda m, a, b: a.type_as(b.long()), [arr(2, 3), arr(1)]),
    ("half", lambda m, a: a.half().float(), [arr(2, 3)]),
    ("long_int_bool", lambda m, a: (a.long(), a.int(), a.bool()), [arr(2, 3) * 3]),
    ("new_zeros", lambda m, a: a.new_zeros(2, 3), [arr(1)]),
    ("new_ones", lambda m, a: a.double().new_ones((2,)), [arr(1)]),
    ("new_full", lambda m, a: a.long().new_full((2, 2), 3.7), [arr(1)]),
    ("new_empty", lambda m, a: a.new_empty((0, 3)), [arr(1)]),
    ("new_tensor", lambda m, a: a.long().new_tensor([1.5, 2.5]), [arr(1)]),
]


def _run(m: Any, fn: Any, arrays: list[np.ndarray]) -> tuple[list[Any], list[Any]]:
    inputs = [lib_tensor(m, a) for a in arrays]
    out = fn(m, *inputs)
    return inputs, list(out) if isinstance(out, (tuple, list)) else [out]


def _dtype_name(dtype: Any) -> str:
    return dtype.torch_name if isinstance(dtype, dlg.DType) else str(dtype).split(".")[-1]


@pytest.mark.parametrize("name, fn, arrays", CASES, ids=[c[0] for c in CASES])
def test_methods_match_torch(name, fn, arrays):
    ins, outs = _run(dlg, fn, arrays)
    t_ins, t_outs = _run(torch, fn, arrays)
    assert len(outs) == len(t_outs)
    weights = []
    for o, t in zip(outs, t_outs):
        if isinstance(t, torch.Size):
            assert tuple(o) == tuple(t)
            continue
        assert o.shape == tuple(t.shape) and _dtype_name(o.dtype) == _dtype_name(t.dtype), name
        np.testing.assert_allclose(o.numpy_view(), t.detach().numpy(), rtol=1e-6, atol=1e-6)
        if t.requires_grad:
            weights.append((o, t, R.uniform(-1, 1, t.shape).astype(t.detach().numpy().dtype)))
    if not weights:
        return
    sum((dlg.tensor(w) * o).sum() for o, _, w in weights).backward()
    sum((torch.tensor(w) * t).sum() for _, t, w in weights).backward()
    for i, ti in zip(ins, t_ins):
        if ti.grad is not None:
            np.testing.assert_allclose(i.grad.numpy(), ti.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_in_place_updates_match_torch():
    for m in (dlg, torch):
        x = m.zeros(2, 3)
        x.fill_(2.0).add_(m.ones(3), alpha=2).mul_(3).sub_(1).div_(2)
        y = m.ones(2, 3, dtype=m.int64).copy_(x)
        assert y.dtype == m.int64
        z = m.ones(3).fill_(m.tensor(4.0)).zero_()
        if m is dlg:
            d = (x.numpy(), y.numpy(), z.numpy())
    np.testing.assert_allclose(d[0], x.numpy())
    np.testing.assert_array_equal(d[1], y.numpy())
    np.testing.assert_array_equal(d[2], z.numpy())


VIEWS = {"row": lambda z: z[0], "columns": lambda z: z[:, 1:], "strided": lambda z: z[:, ::2],
         "t": lambda z: z.t(), "narrow": lambda z: z.narrow(0, 0, 1),
         "chunk": lambda z: z.chunk(2)[1], "view": lambda z: z.view(6),
         "unsqueeze": lambda z: z.unsqueeze(0), "unbind": lambda z: z.unbind(0)[1],
         "unbind_columns": lambda z: z.unbind(1)[2], "diagonal": lambda z: z.diagonal(),
         "diagonal_offset": lambda z: z.diagonal(1), "diagonal_below": lambda z: z.t().diagonal(-1),
         "diagonal_past_the_end": lambda z: z.diagonal(3)}


@pytest.mark.parametrize("view", VIEWS.values(), ids=VIEWS)
def test_views_share_memory_with_their_tensor_as_torchs_do(view):
    """An in-place op on a view writes into the tensor it came from, and the view sees the
    tensor's own in-place changes afterwards."""
    results = []
    for m in (dlg, torch):
        z = m.arange(6, dtype=m.float32).reshape(2, 3)
        v = view(z)
        v.add_(10)
        z.mul_(2)
        results.append((z.numpy().copy(), np.asarray(v.tolist())))
    for d, t in zip(*results):
        np.testing.assert_array_equal(d, t)


SETITEMS = [((0,), 5.0), ((slice(None), 0), [7.0, 8.0]), ((Ellipsis, slice(0, None, 2)), 1.5),
            (("mask",), -1.0), ((("index",), 1), 3)]


@pytest.mark.parametrize("key,value", SETITEMS, ids=["row", "column", "strided", "mask", "index"])
def test_setitem_matches_torch(key, value):
    results = []
    for m in (dlg, torch):
        z = m.arange(6, dtype=m.float32).reshape(2, 3)
        items = tuple(z > 2 if k == "mask" else m.tensor([1, 0]) if k == ("index",) else k
                      for k in key)
        z[items if len(items) > 1 else items[0]] = m.tensor(value) if isinstance(value, list) \
            else value
        results.append(z.numpy().copy())
    np.testing.assert_array_equal(*results)


def test_setitem_on_a_tensor_that_requires_grad_is_refused_as_other_in_place_ops():
    w = dlg.ones(3, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="in-place"):
        w[0] = 2.0
    with dlg.no_grad():
        w[0] = 2.0  # as torch: initialising a parameter
    assert w.tolist() == [2.0, 1.0, 1.0]
    with pytest.raises(dlg.DlgValueError, match="x\\[...\\] = value"):
        dlg.zeros(2)[5] = 1.0


def test_random_in_place_fills_draw_from_dlgs_generator():
    dlg.manual_seed(3)
    a = dlg.empty(1000).normal_(2.0, 0.5)
    dlg.manual_seed(3)
    b = dlg.empty(1000).normal_(2.0, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert abs(a.numpy().mean() - 2.0) < 0.1 and abs(a.numpy().std() - 0.5) < 0.1
    u = dlg.empty(1000).uniform_(-2, 3).numpy()
    assert u.min() >= -2 and u.max() < 3 and u.min() < -1.5 and u.max() > 2.5


def test_queries_match_torch():
    for shape in ((), (2, 3)):
        a, t = dlg.zeros(shape), torch.zeros(shape)
        assert (a.numel(), a.nelement(), a.dim(), a.element_size(), a.is_contiguous(),
                a.is_floating_point(), dlg.numel(a), dlg.is_tensor(a), dlg.is_tensor(1),
                dlg.is_floating_point(a.long())) == (
            t.numel(), t.nelement(), t.dim(), t.element_size(), t.is_contiguous(),
            t.is_floating_point(), torch.numel(t), torch.is_tensor(t), torch.is_tensor(1),
            torch.is_floating_point(t.long()))
    x = dlg.zeros(2, 3)
    assert x.size(-1) == 3 and x.size() == (2, 3) and x.contiguous() is x
    assert isinstance(dlg.numel(x), int)
    assert x.to(dlg.float32) is x and x.to(x) is x and x.to(dlg.float32, copy=True) is not x


# (name, function of the library, compare values exactly)
CREATION = [
    ("linspace", lambda m: m.linspace(-1, 2, 7), False),
    ("linspace_one", lambda m: m.linspace(3, 5, 1), True),
    ("linspace_int", lambda m: m.linspace(0, 10, 5, dtype=m.int64), True),
    ("logspace", lambda m: m.logspace(0, 2, 3), False),
    ("logspace_base", lambda m: m.logspace(-1, 3, 5, base=2.0), False),
    ("eye", lambda m: m.eye(3), True),
    ("eye_rect_long", lambda m: m.eye(2, 4, dtype=m.int64), True),
    ("full_like", lambda m: m.full_like(m.ones(2, 2), 3.5), True),
    ("full_like_dtype", lambda m: m.full_like(m.ones(2), 3, dtype=m.int64), True),
    ("full_int", lambda m: m.full((2,), 3), True),
    ("full_bool", lambda m: m.full((2,), True), True),
    ("zeros_long", lambda m: m.zeros(2, 3, dtype=m.long), True),
    ("ones_like_dtype", lambda m: m.ones_like(m.ones(2), dtype=m.bool), True),
    ("zeros_like", lambda m: m.zeros_like(m.ones(2, dtype=m.int32)), True),
    ("empty", lambda m: m.empty(2, 0).shape, True),
    ("empty_like", lambda m: m.empty_like(m.ones(3, dtype=m.float64)).dtype, True),
    ("rand_like", lambda m: (m.rand_like(m.ones(2, 3)).shape, m.randn_like(m.ones(2)).dtype),
     True),
    ("tensor_cpu", lambda m: m.tensor([1, 2], dtype=m.float32, device="cpu"), True),
    ("tensor_python_floats", lambda m: m.tensor([1.5, 2]), True),
    ("tensor_python_float", lambda m: m.tensor(0.25), True),
    ("tensor_numpy_float64", lambda m: m.tensor(np.array([1.5])), True),
    # PyTorch's factory options: the cpu (a string or a device), dense, unpinned, requires_grad
    ("arange_device", lambda m: m.arange(1, end=7, step=2, device=m.device("cpu")), True),
    ("eye_options", lambda m: m.eye(3, 2, device="cpu", layout=m.strided, pin_memory=False,
                                    requires_grad=True), True),
    ("linspace_device", lambda m: m.linspace(0, 1, 5, device="cpu", dtype=None), False),
    ("logspace_device", lambda m: m.logspace(0, 1, 4, device="cpu:0"), False),
    ("randint_device", lambda m: m.randint(2, 3, (4,), device="cpu"), True),
    ("zeros_device", lambda m: m.zeros((2, 3), device="cpu", requires_grad=True), True),
    ("like_device", lambda m: m.ones_like(m.ones(2), device="cpu",
                                          memory_format=m.preserve_format), True),
    ("rand_like_device", lambda m: m.rand_like(m.ones(2, 3), device="cpu").shape, True),
    ("new_zeros_device", lambda m: m.ones(2, dtype=m.int32).new_zeros((2, 3), device="cpu"),
     True),
    ("new_full_grad", lambda m: m.ones(2).new_full((2,), 3.0, device="cpu", requires_grad=True),
     True),
    ("device_property", lambda m: m.zeros(2, device=m.ones(1).device), True),
    # linspace's bounds as 0-d tensors, its one- and no-step forms, integer dtypes (PyTorch's
    # formula: the ends are exact, int bounds truncate), logspace's base
    ("linspace_tensor_bounds", lambda m: m.linspace(m.tensor(3), m.tensor(9.3), 50), False),
    ("linspace_halves", lambda m: m.linspace(-2.0, 4.3, 7), False),
    ("linspace_empty", lambda m: m.linspace(m.tensor(1.5), 2, 0), True),
    ("linspace_one_tensor", lambda m: m.linspace(m.tensor(2.5), 9, 1), True),
    ("linspace_int_truncates", lambda m: m.linspace(-2.5, 7.7, 6, dtype=m.int64), True),
    ("linspace_int32_down", lambda m: m.linspace(9, -4, 5, dtype=m.int32), True),
    ("logspace_tensor_base", lambda m: m.logspace(m.tensor(-3), 2, 6, 1.1), False),
    ("logspace_int", lambda m: m.logspace(0, 4, 5, base=2.0, dtype=m.int64), True),
    ("logspace_f64", lambda m: m.logspace(-1.5, 3, 9, dtype=m.float64), False),
    # memory formats: dlg keeps no strides, so each one gives the same values
    ("to_flags_channels_last", lambda m: m.ones(1, 2, 2, 2).to(
        "cpu", m.float64, False, True, memory_format=m.channels_last), True),
    ("to_non_blocking", lambda m: m.arange(3).to(m.float32, True), True),
    ("float_contiguous_format", lambda m: m.arange(3).float(memory_format=m.contiguous_format),
     True),
    ("clone_preserve_format", lambda m: m.eye(2).clone(memory_format=m.preserve_format), True),
    ("contiguous_format", lambda m: m.eye(2).contiguous(memory_format=m.contiguous_format), True),
]


def _plain(v: Any) -> Any:
    if isinstance(v, (dlg.Tensor, torch.Tensor)):
        return v
    if isinstance(v, tuple):
        return tuple(_plain(x) for x in v)
    return _dtype_name(v) if isinstance(v, (dlg.DType, torch.dtype)) else v


@pytest.mark.parametrize("name, fn, exact", CREATION, ids=[c[0] for c in CREATION])
def test_creation_matches_torch(name, fn, exact):
    ours, theirs = _plain(fn(dlg)), _plain(fn(torch))
    if not isinstance(theirs, torch.Tensor):
        assert (tuple(ours) if isinstance(ours, tuple) else ours) == (
            tuple(tuple(v) if isinstance(v, torch.Size) else v for v in theirs)
            if isinstance(theirs, tuple) else theirs)
        return
    assert ours.shape == tuple(theirs.shape) and _dtype_name(ours.dtype) == _dtype_name(
        theirs.dtype) and ours.requires_grad == theirs.requires_grad
    if exact:
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
    else:
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)


def test_random_integers_and_permutations():
    dlg.manual_seed(0)
    r = dlg.randint(-2, 3, (400,))
    assert r.dtype == dlg.int64 and set(r.numpy().tolist()) == {-2, -1, 0, 1, 2}
    assert set(dlg.randint(3, (50,)).numpy().tolist()) <= {0, 1, 2}
    assert dlg.randint(0, 5, size=(2, 3), dtype=dlg.int32).dtype == dlg.int32
    assert set(dlg.randint(high=2, size=(50,)).numpy().tolist()) == {0, 1}
    p = dlg.randperm(10)
    assert p.dtype == dlg.int64 and sorted(p.numpy().tolist()) == list(range(10))


def test_multinomial_draws_as_torch_and_refuses_what_torch_refuses():
    """torch.multinomial (word2vec's negative sampling); it was missing."""
    dlg.manual_seed(0)
    w = dlg.tensor([0.1, 0.0, 0.6, 0.3])
    draws = dlg.multinomial(w, 20000, replacement=True)
    assert draws.dtype == dlg.int64 and draws.shape == (20000,)
    np.testing.assert_allclose(np.bincount(draws.numpy(), minlength=4) / 20000,
                               [0.1, 0.0, 0.6, 0.3], atol=0.02)
    for _ in range(20):  # without replacement: each category once, zero weights last
        order = w.multinomial(4).tolist()
        assert sorted(order) == [0, 1, 2, 3] and order[-1] == 1
    rows = dlg.multinomial(dlg.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]), 1)
    assert rows.tolist() == torch.multinomial(torch.tensor([[1.0, 0, 0], [0, 0, 2.0]]),
                                              1).tolist()
    for call, message in [(lambda m: m.multinomial(m.tensor([-1.0, 0.8]), 1), "element < 0"),
                          (lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1), "sum of prob"),
                          (lambda m: m.multinomial(m.tensor([1, 2]), 1), "floating-point"),
                          (lambda m: m.multinomial(m.tensor([1.0, 2.0]), 3), "without repl")]:
        with pytest.raises(RuntimeError, match=message):
            call(torch)
        with pytest.raises(dlg.DlgError, match=message):
            call(dlg)


def test_bernoulli_and_normal_as_torch():
    dlg.manual_seed(0)
    p = dlg.full((20000,), 0.3, requires_grad=True)
    b = dlg.bernoulli(p)
    assert b.dtype == dlg.float32 and set(b.tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 0.02 and p.bernoulli().shape == (20000,)
    assert abs(dlg.bernoulli(dlg.zeros(1000), p=0.75).mean().item() - 0.75) < 0.05
    for ours, theirs in [(dlg.normal(2.0, 3.0, size=(2, 3)), torch.normal(2.0, 3.0, size=(2, 3))),
                         (dlg.normal(dlg.zeros(2, 1), dlg.ones(3)),
                          torch.normal(torch.zeros(2, 1), torch.ones(3))),
                         (dlg.normal(dlg.zeros(2, dtype=dlg.float64), 1.0),
                          torch.normal(torch.zeros(2, dtype=torch.float64), 1.0))]:
        assert ours.shape == tuple(theirs.shape)
        assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")
    n = dlg.normal(dlg.ones(20000), 2.0)
    assert abs(n.mean().item() - 1) < 0.05 and abs(n.std().item() - 2) < 0.05
    exe = dlg.compile(lambda q: dlg.bernoulli(q) + dlg.normal(q, 0.0))
    out = np.asarray(exe(dlg.full((4, 5), 0.5)))
    assert out.shape == (4, 5) and set(np.unique(out)) <= {0.5, 1.5}


def test_legacy_constructors_as_torch():
    for name, args in [("LongTensor", ([1, 2],)), ("FloatTensor", (2, 3)),
                       ("FloatTensor", ([[1, 2]],)), ("LongTensor", (3,)),
                       ("DoubleTensor", ([0.5],)), ("BoolTensor", ([True],)),
                       ("FloatTensor", ((2, 3),)), ("LongTensor", ((4,),))]:
        ours, theirs = getattr(dlg, name)(*args), getattr(torch, name)(*args)
        assert ours.shape == tuple(theirs.shape) and (
            ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch."))
        if isinstance(args[0], (list, tuple)):  # a plain tuple is data too, not sizes
            assert ours.tolist() == theirs.tolist()
    assert dlg.FloatTensor(dlg.zeros(2, 3).shape).shape == torch.FloatTensor(
        torch.Size([2, 3])).shape


def test_creation_reaches_dlg_files():
    """The new functions are .dlg builtins too (one function for both doors)."""
    m = dlg.loads("""
model M {
    input x: f32[2, 3]
    output y = repeat(x, 1, 2) + tile(masked_fill(x, x > 0.0, 0.0), (2,))
    output e = eye(3) + linspace(0.0, 1.0, 3)
    output c = chunk(x, 2, axis=1)[1]
}
""")
    x = arr(2, 3)
    y, e, c = m(x=x)
    t = torch.tensor(x)
    np.testing.assert_allclose(y, (t.repeat(1, 2) + t.masked_fill(t > 0, 0).tile(2)).numpy())
    np.testing.assert_allclose(e, (torch.eye(3) + torch.linspace(0, 1, 3)).numpy())
    np.testing.assert_allclose(c, t.chunk(2, 1)[1].numpy())


# ---- dtypes ------------------------------------------------------------------------------------
DTYPES = [("float32", "float"), ("float64", "double"), ("float16", "half"), ("int64", "long"),
          ("int32", "int"), ("bool", "bool")]


@pytest.mark.parametrize("name, alias", DTYPES)
def test_dtypes_match_torch(name, alias):
    ours, theirs = getattr(dlg, name), getattr(torch, name)
    assert getattr(dlg, alias) is ours and getattr(torch, alias) is theirs
    assert repr(ours) == repr(theirs).replace("torch", "dlg") == f"dlg.{name}"
    assert (ours.is_floating_point, ours.itemsize, ours.is_signed, ours.is_complex) == (
        theirs.is_floating_point, theirs.itemsize, theirs.is_signed, theirs.is_complex)
    assert dlg.zeros(1, dtype=ours).dtype == getattr(dlg, alias)


def test_dtype_text_stays_dlg_in_types_and_dlg_source():
    assert str(dlg.float32) == "f32"
    assert str(dlg.zeros(2, dtype=dlg.long).tensor_type) == "i64[2]"
    assert "dtype=dlg.float64" in repr(dlg.ones(2, dtype=dlg.float64))  # as torch, not float32


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_finfo_matches_torch(dtype):
    ours, theirs = dlg.finfo(getattr(dlg, dtype)), torch.finfo(getattr(torch, dtype))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert dlg.finfo().eps == torch.finfo().eps and dlg.get_default_dtype() == dlg.float32


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_iinfo_matches_torch(dtype):
    ours, theirs = dlg.iinfo(getattr(dlg, dtype)), torch.iinfo(getattr(torch, dtype))
    assert (ours.bits, ours.max, ours.min, ours.dtype) == (
        theirs.bits, theirs.max, theirs.min, theirs.dtype)


# ---- grad modes --------------------------------------------------------------------------------
def test_constants_are_torchs():
    """torch.pi (the Annotated Diffusion Model's cosine schedule), e, inf, nan, newaxis."""
    for name in ("pi", "e", "inf", "nan", "newaxis"):
        mine, theirs = getattr(dlg, name), getattr(torch, name)
        assert type(mine) is type(theirs) and str(mine) == str(theirs)  # nan too
    x = dlg.arange(3.0)
    assert x[:, dlg.newaxis].shape == (3, 1) and dlg.clamp(x, 1, dlg.inf).tolist() == [1, 1, 2]


def _records(m: Any) -> bool:
    return (m.ones(2, requires_grad=True) * 2).requires_grad


@pytest.mark.parametrize("m", [dlg, torch], ids=["dlg", "torch"])
def test_grad_modes_behave_as_torch(m):
    assert m.is_grad_enabled() and _records(m)
    with m.no_grad():
        assert not _records(m)
        with m.enable_grad():
            assert _records(m)
        assert not m.is_grad_enabled()
    with m.set_grad_enabled(False):
        assert not _records(m)
    assert _records(m)
    m.set_grad_enabled(False)
    assert not m.is_grad_enabled()
    m.set_grad_enabled(True)
    with m.inference_mode():
        assert not m.is_grad_enabled() and m.is_inference_mode_enabled()
        with m.inference_mode(False):
            assert m.is_grad_enabled() and not m.is_inference_mode_enabled()
        assert m.is_inference_mode_enabled()
    with m.inference_mode(False):
        assert m.is_grad_enabled()
    assert not m.is_inference_mode_enabled()

    @m.inference_mode  # bare, as llama2.c's generate (it returned a wrapper's wrapper)
    def inferred(x):
        return (x * 2).requires_grad, m.is_inference_mode_enabled()

    @m.inference_mode(mode=False)
    def not_inferred() -> tuple[bool, bool]:
        return _records(m), m.is_inference_mode_enabled()

    assert inferred(m.ones(2, requires_grad=True)) == (False, True)
    with m.no_grad():
        assert not_inferred() == (True, False)

    @m.no_grad
    def bare() -> bool:
        return _records(m)

    @m.no_grad()
    def called() -> bool:
        return _records(m)

    @m.set_grad_enabled(False)
    def switched() -> bool:
        return _records(m)

    @m.enable_grad()
    def enabled() -> bool:
        return _records(m)

    assert m.is_grad_enabled()
    assert (bare(), called(), switched()) == (False, False, False)
    with m.no_grad():
        assert enabled()
    assert m.is_grad_enabled()


# ---- errors ------------------------------------------------------------------------------------
ERRORS = [
    (lambda: dlg.ones(2, 3).view(5), dlg.DlgShapeError, r"\[2,3\] to \[5\]: .* 5 elements, not 6"),
    (lambda: dlg.ones(2, 3).repeat(2), dlg.DlgShapeError, r"repeat: 1 repeats for the 2 dims"),
    (lambda: dlg.ones(2).repeat(-1), dlg.DlgValueError, r"repeats must not be negative"),
    (lambda: dlg.ones(6).split([1, 4]), dlg.DlgShapeError, r"split: .*\[1, 4\].* add up to 6"),
    (lambda: dlg.split(dlg.ones(6), 0), dlg.DlgValueError, r"split_size must be positive"),
    (lambda: dlg.ones(6).split(2.0), dlg.DlgTypeError, r"split_size_or_sections must be"),
    (lambda: dlg.ones(6).chunk(0), dlg.DlgValueError, r"chunk: chunks must be a positive int"),
    (lambda: dlg.ones(()).chunk(2), dlg.DlgShapeError, r"chunk: dim 0 is out of range"),
    (lambda: dlg.ones(()).unbind(), dlg.DlgShapeError, r"unbind: dim 0 is out of range"),
    (lambda: dlg.ones(2, 3).narrow(1, 2, 2), dlg.DlgShapeError, r"narrow: start 2 and length 2"),
    (lambda: dlg.ones(2, 3).narrow(1, dlg.tensor(1.0), 2), dlg.DlgTypeError,
     r"narrow: start must be an int or a 0-d integer tensor, got f32\[\]"),
    (lambda: dlg.ones(2, 3).movedim((0, 1), 0), dlg.DlgShapeError, r"movedim: source and dest"),
    (lambda: dlg.ones(2, 3).movedim(0, 2), dlg.DlgShapeError, r"movedim: destination 2 is out"),
    (lambda: dlg.ones(2, 6).unflatten(1, (4, -1)), dlg.DlgShapeError, r"unflatten: sizes"),
    (lambda: dlg.ones(()).size(0), dlg.DlgShapeError, r"dimension 0 is out of range for a 0-d"),
    (lambda: dlg.ones(3).masked_fill(dlg.ones(3), 1), dlg.DlgTypeError, r"mask must be a bool"),
    (lambda: dlg.ones(3).masked_fill(dlg.ones(3) > 0, dlg.ones(3)), dlg.DlgShapeError,
     r"value must be a number or a 0-d tensor, got f32\[3\]"),
    (lambda: dlg.ones(3).to("cuda"), dlg.DlgValueError, r"device 'cuda'"),
    (lambda: dlg.zeros(2, device="cuda:0"), dlg.DlgValueError, r"device 'cuda:0'"),
    (lambda: dlg.linspace(0, 1, 3, device="cuda"), dlg.DlgValueError,
     r"eager dlg tensors live on the CPU"),
    (lambda: dlg.ones(2).new_ones(3, device="mps"), dlg.DlgValueError, r"device 'mps'"),
    (lambda: dlg.eye(2, pin_memory=True), dlg.DlgValueError, r"pin_memory=True"),
    (lambda: dlg.arange(2, layout="sparse"), dlg.DlgValueError, r"dense \(dlg.strided\)"),
    (lambda: dlg.arange(3, requires_grad=True), dlg.DlgTypeError, r"only float tensors"),
    (lambda: dlg.linspace(dlg.ones(2), 1, 3), dlg.DlgTypeError, r"start must be a number or "
     r"a 0-d tensor"),
    (lambda: dlg.ones(2, 3).to(memory_format=dlg.channels_last), dlg.DlgValueError,
     r"dlg.channels_last needs a 4-d tensor"),
    (lambda: dlg.ones(2).clone(memory_format="cl"), dlg.DlgTypeError, r"memory_format must be"),
    (lambda: dlg.ones(3).to(np.float32), dlg.DlgTypeError, r"must be a dlg dtype"),
    (lambda: dlg.ones(3, requires_grad=True).fill_(0), dlg.DlgValueError, r"in-place"),
    (lambda: dlg.randint(3, 3, (2,)), dlg.DlgValueError, r"randint: low 3 must be below"),
    (lambda: dlg.randint(3), dlg.DlgTypeError, r"randint: missing its size"),
    (lambda: dlg.linspace(0, 1, -1), dlg.DlgValueError, r"linspace: steps must be"),
    (lambda: dlg.eye(-1), dlg.DlgValueError, r"eye: n must be a non-negative int"),
    (lambda: dlg.rand(2, dtype=dlg.long), dlg.DlgTypeError, r"rand makes float tensors"),
    (lambda: dlg.finfo(dlg.int32), dlg.DlgTypeError, r"finfo\(\) takes a float dtype"),
    (lambda: dlg.iinfo(dlg.float32), dlg.DlgTypeError, r"iinfo\(\) takes an integer dtype"),
]


@pytest.mark.parametrize("fn, error, message", ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_errors_name_the_argument(fn, error, message):
    with pytest.raises(error, match=message) as info:
        fn()
    assert info.value.span is not None and info.value.span.file == __file__


TORCH_DTYPES = [
    (lambda: dlg.ones(2).to(torch.float64), "use dlg.float64"),
    (lambda: dlg.zeros(2, dtype=torch.long), "use dlg.int64"),
    (lambda: dlg.tensor([1.0], dtype=torch.float16), "use dlg.float16"),
    (lambda: dlg.arange(3, dtype=torch.int8), "use dlg.int8"),
    (lambda: dlg.arange(3, dtype=torch.uint16), "dlg has no uint16 dtype"),
    (lambda: dlg.finfo(torch.float32), "use dlg.float32"),
]


@pytest.mark.parametrize("fn, message", TORCH_DTYPES)
def test_torch_dtypes_are_refused_with_dlgs_spelling(fn, message):
    with pytest.raises(dlg.DlgTypeError, match=r"PyTorch's torch\.\w+; " + re.escape(message)):
        fn()


def test_small_integer_arrays_keep_their_dtype():
    """NumPy uint8/int8/int16 arrays (an image's bytes) keep their dtype as torch.from_numpy's,
    so the usual img.float() / 255 pipeline computes torch's values; uint16/32, which dlg lacks,
    become int64; uint64 (past int64's range) is refused."""
    img = (np.arange(24).reshape(2, 3, 4) * 11).astype(np.uint8)
    assert dlg.from_numpy(img).dtype == dlg.uint8
    ours = dlg.from_numpy(img).float().div(255).permute(2, 0, 1)
    np.testing.assert_array_equal(ours.numpy(), torch.from_numpy(img).float().div(255).permute(
        2, 0, 1).numpy())
    for kind, dtype in ((np.int8, dlg.int8), (np.int16, dlg.int16), (np.uint8, dlg.uint8),
                        (np.uint16, dlg.int64), (np.uint32, dlg.int64)):
        assert dlg.tensor(np.array([1, 2], kind)).dtype == dtype
    with pytest.raises(dlg.DlgTypeError, match="dtype uint64 is not supported"):
        dlg.tensor(np.zeros(2, np.uint64))


def test_legacy_sized_constructor_as_torch():
    """torch.Tensor(out, in) (pre-1.0 layers: nn.Parameter(torch.Tensor(out, in)) and then an
    initialiser) is float32 of that shape; torch.Tensor() an empty float32 tensor."""
    for sizes in [(6, 4), (2, 3, 4), (0, 3)]:
        ours, theirs = dlg.Tensor(*sizes), torch.Tensor(*sizes)
        assert tuple(ours.shape) == tuple(theirs.shape) and ours.dtype == dlg.float32
    assert tuple(dlg.Tensor().shape) == tuple(torch.Tensor().shape) == (0,)
    weight = dlg.nn.Parameter(dlg.Tensor(3, 2))
    dlg.nn.init.kaiming_uniform_(weight, a=5 ** 0.5)
    assert weight.requires_grad and weight.shape == (3, 2) and weight.detach().numpy().any()
    with pytest.raises(dlg.DlgTypeError, match=r"Tensor\(\*sizes\): expected non-negative ints"):
        dlg.Tensor(2, "a")


@pytest.mark.parametrize("data", [[1, 2], [[1, 2], [3, 4]], [True, False], np.array([1, 2]),
                                  np.array([1.5, 2.5]), np.array(3.0), 5, np.int64(3), ()],
                         ids=repr)
def test_tensor_constructor_is_float32_as_torch(data):
    """torch.Tensor(data) is always float32 (an int is the legacy size: Tensor(5) has shape
    (5,)); torch.tensor, and dlg.tensor, infer the dtype."""
    ours, theirs = dlg.Tensor(data), torch.Tensor(data)
    assert ours.dtype == dlg.float32 and theirs.dtype == torch.float32
    assert tuple(ours.shape) == tuple(theirs.shape)
    if not isinstance(data, (int, np.integer)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert dlg.tensor([1, 2]).dtype == dlg.int64 and dlg.tensor(5).shape == ()
    assert dlg.tensor([True]).dtype == dlg.bool and dlg.tensor(np.array([1.5])).dtype == dlg.float64


def test_tensor_constructor_of_a_tensor_or_size_as_torch():
    """torch.Tensor(t) keeps t's dtype and storage; torch.Tensor(x.shape) is that shape."""
    ints = dlg.tensor([1, 2])
    assert dlg.Tensor(ints).dtype == dlg.int64
    shape = tuple(torch.Tensor(torch.Size([2, 3])).shape)
    assert tuple(dlg.Tensor(dlg.Size([2, 3])).shape) == shape
    for bad in [5.0, None, "x"]:
        with pytest.raises(TypeError):
            torch.Tensor(bad)
        with pytest.raises(dlg.DlgTypeError, match="Tensor\\(data\\): data must be a sequence"):
            dlg.Tensor(bad)
    assert dlg.nn.Parameter(dlg.tensor([1.0, 2.0], dtype=dlg.float64)).dtype == dlg.float64


def test_type_names_and_casts_as_torch():
    """torch's x.type(): the type's name; x.type(dtype / constructor / name): a cast as x.to,
    the tensor itself where the dtype is its own (the Quickstart's `.type(torch.float)`)."""
    pred, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    pred_d, y_d = dlg.tensor(pred.numpy()), dlg.tensor(y.numpy())
    want = (pred.argmax(1) == y).type(torch.float)
    got = (pred_d.argmax(1) == y_d).type(dlg.float)
    assert got.dtype == dlg.float32 and np.array_equal(got.numpy(), want.numpy())
    x, x_d = torch.ones(2, 3), dlg.ones(2, 3)
    assert x.type() == "torch.FloatTensor" and x_d.type() == "dlg.FloatTensor"
    assert str(x_d.tensor_type) == "f32[2,3]" and x_d.type(dlg.float32) is x_d
    for t in (torch.tensor([1 + 2j]), torch.ones(2, dtype=torch.float16),
              torch.ones(2, dtype=torch.uint8), torch.ones(2, dtype=torch.float64)):
        ours = dlg.tensor(t.numpy())
        assert ours.type() == t.type().replace("torch.", "dlg.")
        assert ours.float().type(t.type()).dtype.torch_name == str(t.dtype).removeprefix("torch.")
    for torch_dtype, dtype in [("torch.DoubleTensor", "torch.DoubleTensor"),
                               ("torch.LongTensor", "dlg.LongTensor"),
                               (torch.IntTensor, dlg.IntTensor), (torch.bool, dlg.bool)]:
        assert str(x.type(torch_dtype).dtype) == f"torch.{x_d.type(dtype).dtype.torch_name}"
    with pytest.raises(dlg.DlgValueError, match="eager tensors live on the cpu"):
        x_d.type("torch.cuda.FloatTensor")
    with pytest.raises(dlg.DlgValueError, match="not a tensor type name"):
        x_d.type("float")


def test_pin_memory_as_torch_on_the_cpu():
    """torch without an accelerator refuses pin_memory() and says is_pinned() is False."""
    assert dlg.ones(2).is_pinned() is torch.ones(2).is_pinned() is False
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            torch.ones(2).pin_memory()
    with pytest.raises(dlg.DlgValueError, match=r"pin_memory\(\): pinned memory is for copies "
                                                 r"to a GPU"):
        dlg.ones(2).pin_memory()


def test_a_range_indexes_as_a_list_of_ints():
    """nn_tutorial.py's nll: `-input[range(target.shape[0]), target].mean()`; a range reads and
    writes as torch's list of positions, with the gradient, eagerly and compiled."""
    a = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    got, want = dlg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for x, lib in ((got, dlg), (want, torch)):
        (x[range(3), lib.tensor([0, 2, 1])] * lib.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(got.grad.numpy(), want.grad.numpy())
    ours, theirs = dlg.tensor(a), torch.tensor(a)
    ours[range(0, 3, 2)] = 0
    theirs[range(0, 3, 2)] = 0
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())

    class Nll(dlg.nn.Module):
        def forward(self, x, target):
            return -x[range(target.shape[0]), target].mean()

    target = dlg.tensor([3, 0, 1])
    np.testing.assert_allclose(dlg.compile(Nll())(dlg.tensor(a), target).item(),
                               -torch.tensor(a)[range(3), torch.tensor([3, 0, 1])].mean().item())


def test_factories_take_torchs_size_keyword():
    """torch.empty(size=(n, m)) (pytorch/examples gat's parameters): the shape by keyword, as
    torch names it, in zeros, ones, empty, rand, randn and full."""
    for lib in (torch, dlg):
        made = [lib.empty(size=(2, 3)), lib.zeros(size=(2,)), lib.ones(size=[2, 2]),
                lib.rand(size=(1, 2)), lib.randn(size=(3,)),
                lib.full(size=(2,), fill_value=3.0)]
        assert [tuple(t.shape) for t in made] == [(2, 3), (2,), (2, 2), (1, 2), (3,), (2,)]
        assert made[-1].tolist() == [3.0, 3.0]
