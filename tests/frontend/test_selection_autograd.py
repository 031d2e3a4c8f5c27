"""Eager ops whose shapes depend on the data (x[mask], masked_select, nonzero, unique, bincount),
bool arithmetic, the autograd API beyond backward() (retain_grad, backward(inputs=), dlg.autograd)
and module buffers (persistent=False, load_state_dict's result), against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)
X = R.uniform(-1, 1, (3, 4)).astype(np.float32)


def both(a: np.ndarray) -> tuple[dlg.Tensor, torch.Tensor]:
    return dlg.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def same(got, want) -> None:
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            same(g, w)
        return
    w = want.detach().numpy()
    g = got.detach().numpy()
    assert g.shape == w.shape and g.dtype == w.dtype, (g, w)
    np.testing.assert_allclose(g, w, rtol=1e-6)


MASKS = {
    "elementwise": lambda m, x: x[x > 0],
    "rows": lambda m, x: x[x.sum(1) > -0.5],
    "columns": lambda m, x: x[:, m.tensor([True, False, True, True])],
    "after_ellipsis": lambda m, x: x[..., m.tensor([False, True, True, False])],
    "list_of_bools": lambda m, x: x[[True, False, True]],
    "mask_then_int": lambda m, x: x[x[:, 0] > -2, 1],
    "masked_select": lambda m, x: m.masked_select(x, x[0] > 0),  # the mask broadcasts
    "method": lambda m, x: x.masked_select(x < 0),
}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_boolean_masks_select_and_differentiate_like_torch(name):
    (x, tx), f = both(X), MASKS[name]
    y, ty = f(dlg, x), f(torch, tx)
    same(y, ty)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)


def test_a_mask_of_the_wrong_shape_and_a_traced_mask_are_clear_errors():
    x = dlg.tensor(X)
    with pytest.raises(dlg.DlgShapeError, match="shape of the mask"):
        x[dlg.tensor([True, False])]
    with pytest.raises(dlg.DlgValueError, match="depends on the data"):
        dlg.trace(lambda a: a[a > 0], dlg.tensor(X))
    with pytest.raises(dlg.DlgValueError, match="nonzero's result"):
        dlg.trace(lambda a: dlg.nonzero(a), dlg.tensor(X))


INTS = np.array([[3, 1, 3], [0, 1, 7]])
QUERIES = {
    "nonzero": lambda m, a: m.nonzero(a),
    "nonzero_tuple": lambda m, a: m.nonzero(a, as_tuple=True),
    "argwhere": lambda m, a: m.argwhere(a),
    "where_one_argument": lambda m, a: m.where(a > 1),
    "unique": lambda m, a: m.unique(a),
    "unique_all": lambda m, a: m.unique(a, return_inverse=True, return_counts=True),
    "unique_rows": lambda m, a: m.unique(m.cat([a, a[:1]]), dim=0, return_inverse=True,
                                         return_counts=True),
    "unique_consecutive": lambda m, a: m.unique_consecutive(
        m.tensor([1, 1, 2, 2, 1, 3, 3]), return_inverse=True, return_counts=True),
    "unique_consecutive_dim": lambda m, a: m.unique_consecutive(
        m.tensor([[1, 1], [1, 1], [2, 0]]), dim=0, return_counts=True),
    "bincount": lambda m, a: m.bincount(a.flatten(), minlength=10),
    "bincount_weights": lambda m, a: m.bincount(a.flatten(), m.ones(6) * 0.5),
    "method": lambda m, a: a.flatten().bincount(),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_data_dependent_queries_match_torch(name):
    same(QUERIES[name](dlg, dlg.tensor(INTS)), QUERIES[name](torch, torch.tensor(INTS)))


def test_bincount_refuses_negative_values_and_floats():
    with pytest.raises(dlg.DlgValueError, match="negative"):
        dlg.bincount(dlg.tensor([1, -1]))
    with pytest.raises(dlg.DlgTypeError, match="1-d tensor of ints"):
        dlg.bincount(dlg.tensor([1.0]))


def test_bools_add_as_or_and_multiply_as_and():
    a, b = [True, False, False], [True, True, False]
    for f in (lambda m, x, y: x + y, lambda m, x, y: x * y, lambda m, x, y: x + True,
              lambda m, x, y: False * y, lambda m, x, y: x + 1):
        same(f(dlg, dlg.tensor(a), dlg.tensor(b)), f(torch, torch.tensor(a), torch.tensor(b)))
    with pytest.raises(dlg.DlgTypeError, match="logical_xor"):
        dlg.tensor(a) - dlg.tensor(b)


# ---- autograd ------------------------------------------------------------------------------
def test_retain_grad_fills_a_non_leafs_grad():
    (x, tx) = both(X)
    y, ty = x * 2 + 1, tx * 2 + 1
    y.retain_grad()
    ty.retain_grad()
    assert y.retains_grad and not (x * 3).retains_grad
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    same(y.grad, ty.grad)
    same(x.grad, tx.grad)


def test_a_second_backward_gives_a_retained_non_leaf_a_new_grad():
    """torch adds into a leaf's .grad in place, but gives a retained non-leaf's .grad a new
    tensor: a .grad held from the first backward keeps its value."""
    got = []
    for lib in (dlg, torch):
        x = lib.tensor(X, requires_grad=True)
        h = x * 3
        h.retain_grad()
        z = (h * h).sum()
        z.backward(retain_graph=True)
        held_h, held_x = h.grad, x.grad
        z.backward()
        assert held_x is x.grad and held_h is not h.grad
        got.append((held_h, h.grad, x.grad))
    same(*got)


def test_backward_twice_accumulates_and_inputs_limit_it():
    (x, tx), (w, tw) = both(X), both(X[:, :1])
    loss, tloss = (x * w).sum(), (tx * tw).sum()
    loss.backward(retain_graph=True)
    loss.backward(inputs=[x])
    tloss.backward(retain_graph=True)
    tloss.backward(inputs=[tx])
    same(x.grad, tx.grad)
    same(w.grad, tw.grad)


def test_autograd_grad_returns_gradients_without_accumulating():
    (x, tx), (w, tw) = both(X), both(X[:, :1])
    outs = [(x * w).sum(), (x ** 3)]
    touts = [(tx * tw).sum(), (tx ** 3)]
    seed = R.uniform(-1, 1, X.shape).astype(np.float32)
    got = dlg.autograd.grad(outs, [x, w], grad_outputs=[None, dlg.tensor(seed)])
    want = torch.autograd.grad(touts, [tx, tw], grad_outputs=[None, torch.tensor(seed)])
    same(got, want)
    assert x.grad is None and w.grad is None
    unused = dlg.tensor(1.0, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="allow_unused"):
        dlg.autograd.grad(outs[0], [x, unused])
    assert dlg.autograd.grad(outs[0], [x, unused], allow_unused=True)[1] is None
    zeros = dlg.autograd.grad(outs[0], [unused], materialize_grads=True)[0]
    assert zeros.item() == 0.0


def test_autograd_backward_of_several_tensors():
    (x, tx) = both(X)
    dlg.autograd.backward([x.sum(), (x * x).sum()])
    torch.autograd.backward([tx.sum(), (tx * tx).sum()])
    same(x.grad, tx.grad)


# ---- module buffers ------------------------------------------------------------------------
def buffered(m):
    class Net(m.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = m.nn.Linear(2, 2)
            self.register_buffer("cache", m.zeros(2), persistent=False)
            self.register_buffer("scale", m.ones(2))
    return Net()


def test_buffers_not_persistent_stay_out_of_the_state_dict_and_stay_buffers():
    net, tnet = buffered(dlg), buffered(torch)
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]
    net.scale = dlg.full((2,), 3.0)  # assigning a tensor to a buffer keeps it a buffer
    assert net.state_dict()["scale"].tolist() == [3.0, 3.0]
    with pytest.raises(dlg.DlgTypeError, match="dlg tensor or None"):
        net.register_buffer("bad", [1, 2])


def test_load_state_dict_names_what_did_not_match():
    net, tnet = buffered(dlg), buffered(torch)
    partial = {"fc.weight": np.eye(2, dtype=np.float32), "extra": np.zeros(1, np.float32)}
    got = net.load_state_dict(partial, strict=False)
    want = tnet.load_state_dict({k: torch.tensor(v) for k, v in partial.items()}, strict=False)
    assert got.missing_keys == want.missing_keys
    assert got.unexpected_keys == want.unexpected_keys
    assert net.fc.weight.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(dlg.DlgValueError, match="missing keys"):
        nn.Linear(2, 2).load_state_dict({})
