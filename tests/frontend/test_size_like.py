"""dlg.Size against torch.Size (what x.shape and x.size() return), and every torch `*_like`
creation function: the same shapes and dtypes as torch's, randint_like's range and keywords."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


def test_shape_is_a_size_as_torchs():
    for m in (dlg, torch):
        x = m.ones(2, 3, 4)
        assert isinstance(x.shape, m.Size) and isinstance(x.shape, tuple)
        assert isinstance(x.size(), m.Size)
    assert dlg.ones(2, 3).shape == torch.ones(2, 3).shape == (2, 3)


@pytest.mark.parametrize("case", [
    lambda S: S([2, 3, 4]).numel(),
    lambda S: S([]).numel(),
    lambda S: S((2, 0)).numel(),
    lambda S: type(S([2, 3, 4])[1:]).__name__,
    lambda S: tuple(S([2, 3, 4])[::-1]),
    lambda S: type(S([2, 3, 4])[0]).__name__,
    lambda S: (type(S([2]) + (3,)).__name__, tuple(S([2]) + (3,))),
    lambda S: (type((1,) + S([2])).__name__, tuple((1,) + S([2]))),
    lambda S: (type(S([2]) * 2).__name__, tuple(S([2]) * 2)),
    lambda S: S([2, 3]) == (2, 3),
    lambda S: tuple(S(np.array([2, 3]))),
    lambda S: S([2, 3]).index(3),
    lambda S: hash(S([2, 3])) == hash((2, 3)),
])
def test_size_behaves_as_torchs(case):
    assert case(dlg.Size) == case(torch.Size)


def test_size_repr_and_pickle():
    s = dlg.ones(2, 3).shape
    assert repr(s) == "dlg.Size([2, 3])" and repr(torch.ones(2, 3).shape) == "torch.Size([2, 3])"
    back = pickle.loads(pickle.dumps(s))
    assert isinstance(back, dlg.Size) and back == s


@pytest.mark.parametrize("bad", [[1.5], ["a"], 3])
def test_size_refuses_non_ints(bad):
    with pytest.raises(TypeError):
        torch.Size(bad)
    with pytest.raises(dlg.DlgTypeError, match="iterable of ints"):
        dlg.Size(bad)


def test_size_feeds_shape_arguments():
    x = dlg.ones(2, 3)
    assert dlg.zeros(x.shape).shape == (2, 3)
    assert dlg.arange(6.0).view(x.shape).shape == (2, 3)
    assert dlg.ones(3).expand(x.shape).shape == (2, 3)


def test_traced_shape_is_a_size_of_symbols():
    seen = []

    def f(x):
        seen.append((type(x.shape), type(x.shape[0]), str(x.shape.numel())))
        return x.reshape(x.shape[:1] + (-1,)) * 2

    m = dlg.trace(f, dlg.ones(4, 2, 3))
    assert seen == [(dlg.Size, dlg.ir.shapes.Sym, "6*N")]
    x = np.arange(42, dtype=np.float32).reshape(7, 2, 3)
    np.testing.assert_array_equal(m(x), x.reshape(7, 6) * 2)


LIKE = [("zeros_like", ()), ("ones_like", ()), ("empty_like", ()), ("full_like", (7,)),
        ("rand_like", ()), ("randn_like", ()), ("randint_like", (5,)), ("randint_like", (2, 9))]


@pytest.mark.parametrize("name, extra", LIKE)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_like_functions_shapes_and_dtypes(name, extra, dtype):
    if name in ("rand_like", "randn_like") and dtype == "int64":
        with pytest.raises(RuntimeError):
            getattr(torch, name)(torch.ones(2, 3, dtype=torch.int64))
        with pytest.raises(dlg.DlgTypeError):
            getattr(dlg, name)(dlg.ones(2, 3, dtype=dlg.int64))
        return
    ours = getattr(dlg, name)(dlg.ones(2, 3, dtype=getattr(dlg, dtype)), *extra)
    theirs = getattr(torch, name)(torch.ones(2, 3, dtype=getattr(torch, dtype)), *extra)
    assert ours.shape == theirs.shape and repr(ours.dtype)[4:] == repr(theirs.dtype)[6:]


def test_every_torch_like_function_exists():
    names = [n for n in dir(torch) if n.endswith("_like") and not n.startswith("_")]
    assert names and all(callable(getattr(dlg, n, None)) for n in names), names


def test_randint_like_draws_as_torchs():
    dlg.manual_seed(0)
    x = dlg.zeros(4000)
    ours = dlg.randint_like(x, 3, 7).numpy()
    theirs = torch.randint_like(torch.zeros(4000), 3, 7).numpy()
    assert set(np.unique(ours)) == set(np.unique(theirs)) == {3.0, 4.0, 5.0, 6.0}
    np.testing.assert_allclose(ours.mean(), theirs.mean(), atol=0.15)
    assert dlg.randint_like(x, high=4).numpy().max() == 3
    assert dlg.randint_like(x, 4, dtype=dlg.int32).dtype == dlg.int32
    gen = dlg.Generator().manual_seed(3)
    first = dlg.randint_like(x, 100, generator=gen).numpy()
    again = dlg.randint_like(x, 100, generator=dlg.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(first, again)
    assert dlg.randint_like(x, 2, requires_grad=True).requires_grad


@pytest.mark.parametrize("args, error", [((5, 3), dlg.DlgValueError), ((), dlg.DlgTypeError),
                                         ((2.5,), dlg.DlgTypeError)])
def test_randint_like_bad_bounds(args, error):
    with pytest.raises(error):
        dlg.randint_like(dlg.ones(2), *args)
