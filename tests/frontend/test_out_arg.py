"""torch's out= keyword on the top-level functions, against torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


def both(fn):
    return fn(torch), fn(dlg)


def test_out_is_written_and_returned():
    def program(lib):
        a = lib.from_numpy(np.arange(16, dtype=np.float32).reshape(4, 4))
        y3, z3, r = lib.zeros(4, 4), lib.zeros(4, 4), lib.zeros(4, 4)
        returned = lib.matmul(a, a.T, out=y3)
        lib.mul(a, a, out=z3)
        lib.add(a, 1, out=r)
        assert returned is y3
        i = lib.empty(2, dtype=lib.float32)
        lib.add(lib.tensor([1, 2]), 1, out=i)  # long result into a float out
        cat = lib.empty(0)
        lib.cat([a[0], a[1]], out=cat)  # an empty out is resized silently
        return [t.numpy() for t in (y3, z3, r, i, cat)]
    want, got = both(program)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)


def test_out_tuple_of_values_and_indices():
    def program(lib):
        x = lib.tensor([[1.0, 3.0], [4.0, 2.0]])
        v, i = lib.empty(0), lib.empty(0, dtype=lib.int64)
        r = lib.max(x, 1, out=(v, i))
        assert r.values is v and r.indices is i
        return v.numpy(), i.numpy()
    want, got = both(program)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_out_of_another_shape_is_resized_with_torch_warning():
    for lib in (torch, dlg):
        out = lib.zeros(3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lib.mul(lib.ones(2), lib.ones(2), out=out)
        assert out.tolist() == [1.0, 1.0]
        assert any("was resized" in str(w.message) for w in caught)


def test_out_refuses_gradients_and_narrowing_casts():
    a = dlg.ones(2, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="don't support automatic differentiation"):
        dlg.mul(a, a, out=dlg.empty(2))
    with dlg.no_grad():
        out = dlg.empty(2)
        dlg.mul(a, a, out=out)
    assert out.tolist() == [1.0, 1.0] and not out.requires_grad
    with pytest.raises(dlg.DlgTypeError, match="can't be cast to the desired output type"):
        dlg.mul(dlg.ones(2), dlg.ones(2), out=dlg.empty(2, dtype=dlg.int64))
    with pytest.raises(dlg.DlgTypeError, match="out= must be a tensor"):
        dlg.mul(dlg.ones(2), dlg.ones(2), out=[1.0, 2.0])
