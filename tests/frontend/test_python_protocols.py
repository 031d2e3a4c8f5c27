"""Python's protocols on eager tensors as torch has them: augmented assignment in place, NumPy
scalars and ufuncs meeting a tensor, 0-d tensors in type promotion, iteration and formatting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


def values(t) -> np.ndarray:
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_augmented_assignment_writes_in_place_through_views_and_names(op):
    results = []
    for m in (dlg, torch):
        base = m.ones(3) * 2
        alias, view = base, base[0:2]
        exec(f"view {op} 4", {}, {"view": view})
        exec(f"alias {op} m.tensor([1.0, 2.0, 4.0])", {}, {"alias": alias, "m": m})
        results.append(values(base))
    np.testing.assert_allclose(*results)


def test_manual_sgd_under_no_grad_moves_the_weights_like_torch():
    weights = []
    for m in (dlg, torch):
        m.manual_seed(0)
        w = m.tensor([[0.5, -0.25]], requires_grad=True)
        x = m.tensor([[1.0, 2.0], [3.0, -1.0]])
        for _ in range(3):
            loss = ((x * w).sum(1) - 1).pow(2).mean()
            loss.backward()
            with m.no_grad():
                w -= 0.1 * w.grad
            w.grad = None
        weights.append(values(w))
    np.testing.assert_allclose(*weights, rtol=1e-6)


def test_augmented_assignment_on_a_recorded_non_leaf_keeps_the_gradient_and_a_leaf_refuses():
    grads = []
    for m in (dlg, torch):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        h = x * 3
        h += x * x  # a residual in forward
        h *= 2
        h.sum().backward()
        grads.append(values(x.grad))
    np.testing.assert_allclose(*grads)
    leaf = dlg.ones(2, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="leaf tensor that requires grad"):
        leaf += 1


def test_numpy_scalars_and_ufuncs_give_tensors_that_keep_their_gradient():
    results = []
    for m in (dlg, torch):
        x = m.tensor([0.5, -1.0, 2.0], requires_grad=True)
        y = np.float32(0.5) * m.tanh(x) + np.sqrt(2 / np.pi) * x - np.float64(1.0)
        y = m.exp(y) * np.float32(2.0)
        assert isinstance(y, m.Tensor) and str(y.dtype).endswith("32")
        y.sum().backward()
        results.append((values(y), values(x.grad)))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_numpy_math_on_a_tensor_is_dlg_math_and_other_ufuncs_see_the_array():
    x = dlg.tensor([0.5, -1.0], requires_grad=True)
    np.exp(x).sum().backward()  # a tensor with its gradient (torch refuses: requires grad)
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, -1.0]), rtol=1e-6)
    np.testing.assert_allclose(np.clip(dlg.tensor([0.2, 0.8]), 0.0, 0.5), [0.2, 0.5])


DTYPES = ["float16", "float32", "float64", "int32", "int64", "bool"]


@pytest.mark.parametrize("a, b", list(itertools.product(DTYPES, DTYPES)))
def test_zero_dim_tensors_promote_as_in_torch(a, b):
    def dtype(m, shaped, scalar):
        x = m.ones(2, dtype=getattr(m, shaped))
        y = m.tensor(1, dtype=getattr(m, scalar))
        return str((x * y).dtype).split(".")[-1]
    names = {"f16": "float16", "f32": "float32", "f64": "float64", "i32": "int32",
             "i64": "int64", "bool": "bool"}
    assert names.get(dtype(dlg, a, b), dtype(dlg, a, b)) == dtype(torch, a, b)


def test_iteration_unpacking_and_builtins_walk_the_first_axis():
    t = dlg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    assert [r.tolist() for r in t] == [[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]]
    first, second = dlg.tensor([7, 8])
    assert (first.item(), second.item()) == (7, 8)
    assert max(dlg.tensor([1.0, 5.0, 2.0])).item() == 5.0
    assert [int(i) for i, _ in zip(dlg.arange(5), range(3))] == [0, 1, 2]
    with pytest.raises(dlg.DlgTypeError, match="0-d"):
        iter(dlg.tensor(1.0))


def test_a_scalar_tensor_formats_as_its_number():
    assert f"{dlg.tensor(0.12345):.3f}" == "0.123"
    assert f"{dlg.tensor(7):>4d}" == "   7"
    assert f"{dlg.tensor([1, 2])}" == str(dlg.tensor([1, 2]))
    with pytest.raises(dlg.DlgTypeError, match="format spec"):
        f"{dlg.tensor([1.0]):.2f}"
