"""In-place ops on tensors whose gradient is recorded (frontend/inplace.py, versions.py):
values and gradients against torch, eagerly and traced/compiled, and torch's errors (a leaf that
requires grad; a value an op saved for its backward, changed in place since)."""

import warnings

import numpy as np
import pytest

import dlg
import dlg.nn as dnn

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4)).astype(np.float32)
W = RNG.standard_normal((4, 4)).astype(np.float32)


def _attention_mask(m, a, b):
    s = a @ b
    s.masked_fill_(s > 0.5, float("-inf"))
    return s.softmax(-1) * 2


def _earlier_reader_keeps_its_edge(m, a, b):
    h = a * 2
    before = h * 3  # mul by a constant: torch keeps nothing of h
    h.mul_(3)
    return before + h


def _setitem_column(m, a, b):
    h = a * 1
    h[:, 0] = 0
    return h * h


def _setitem_value_gets_gradient(m, a, b):
    h = a * 1
    h[1] = b[0] * 2
    return h * h


def _setitem_into_zeros(m, a, b):
    out = m.zeros(a.shape[0], 6)
    out[..., :4] = a
    out[:, 4:] = a[:, :2] * b[0, :2]
    return out * out


def _setitem_mask_and_index(m, a, b):
    h = a + 0
    h[h > 0] = b[0, 0]
    h[m.tensor([2, 0])] = b[1]
    return h * a


def _relu_after_linear(m, a, b):
    return m.nn.functional.relu_(a @ b) * a


def _inplace_on_a_view(m, a, b):
    h = a * 1
    h[0].mul_(5)
    h.t()[1].add_(b[0, :3])
    h.select(1, 2).relu_()
    return h * h


def _inplace_on_column_views(m, a, b):
    h = a * 1
    h[:, 0].mul_(5)
    h.t()[1].add_(b[0, 0])
    h.reshape(-1, 2, 2)[:, 1].sub_(b[1, :2])
    h.select(1, 2).relu_()
    return h * h


def _chained_in_place_on_a_view(m, a, b):
    """Barlow Twins' `torch.diagonal(c).add_(-1).pow_(2)`: the view's record is replayed after
    its base changed, so the gradient graph must not read its memory as that record's value."""
    c = a @ b
    c.div_(4)
    on_diag = m.diagonal(c).add_(-1).pow_(2).sum()
    return on_diag + c.sum()


def _view_sees_base_change(m, a, b):
    h = a * 1
    v = h[0]
    col = h[:, 1:3]
    h.mul_(b[0])
    return (v * v).sum() + (col * 3).sum() + h.sum()


def _augmented_and_methods(m, a, b):
    h = a @ b
    h += a
    h -= 1
    h *= b[1]
    h /= 2
    h.copy_(h * 2 + a * b[2])
    h.clamp_(-1, 1).tanh_()
    return h * 3


def _fill_with_a_tensor(m, a, b):
    h = a * 1
    h[0].fill_(b[0, 0])
    h[1].zero_()
    return h * a


def _leaf_constant_receives_gradient(m, a, b):
    buf = m.ones(3, 4)
    buf.mul_(a)
    buf.index_fill_(1, m.tensor([1]), 0.0)
    return buf * 2


CASES = [_attention_mask, _earlier_reader_keeps_its_edge, _setitem_column,
         _setitem_value_gets_gradient, _setitem_into_zeros, _setitem_mask_and_index,
         _relu_after_linear, _inplace_on_a_view, _inplace_on_column_views,
         _chained_in_place_on_a_view, _view_sees_base_change, _augmented_and_methods,
         _fill_with_a_tensor, _leaf_constant_receives_gradient]


def _run(m, fn):
    a = m.tensor(X, requires_grad=True)
    b = m.tensor(W, requires_grad=True)
    out = fn(m, a, b)
    out.sum().backward()
    value = out.detach().numpy().copy()
    grads = [t.grad.numpy().copy() if t.grad is not None else None for t in (a, b)]
    return value, grads, out


@pytest.mark.parametrize("fn", CASES, ids=lambda f: f.__name__.strip("_"))
def test_in_place_values_and_gradients_match_torch(fn):
    ours, theirs = _run(dlg, fn), _run(torch, fn)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    for g, h in zip(ours[1], theirs[1]):
        assert (g is None) == (h is None)
        if g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-5)
    assert (ours[2].grad_fn is None) == (theirs[2].grad_fn is None)


def test_in_place_rebinds_grad_fn_and_views_see_the_change():
    a = dlg.tensor(X, requires_grad=True)
    h = a * 2
    v = h[1]
    assert h.mul_(3) is h and h.grad_fn == "mul" and not h.is_leaf
    np.testing.assert_allclose(v.detach().numpy(), X[1] * 6, rtol=1e-6)
    buf = dlg.zeros(3, 4)
    buf[0] = a[0]
    assert buf.requires_grad and buf.grad_fn is not None


@pytest.mark.parametrize("fn", [_setitem_column, _setitem_into_zeros, _inplace_on_column_views,
                                _attention_mask, _augmented_and_methods],
                         ids=lambda f: f.__name__.strip("_"))
def test_in_place_traced_and_compiled_match_eager(fn):
    b = dlg.tensor(W)

    def f(x):
        return fn(dlg, x, b)
    want = fn(torch, torch.tensor(X), torch.tensor(W)).numpy()
    traced = dlg.trace(f, dlg.tensor(X))
    np.testing.assert_allclose(np.asarray(traced(X)), want, rtol=1e-5, atol=1e-6)
    exe = dlg.compile(f)
    np.testing.assert_allclose(np.asarray(exe(dlg.tensor(X))), want, rtol=1e-5, atol=1e-6)


def _pair(module):
    torch.manual_seed(0)
    theirs = module(torch.nn)
    ours = module(dnn)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    return ours, theirs


def _block(nn):
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 8),
                         nn.LeakyReLU(0.1, inplace=True), nn.Linear(8, 2))


def test_relu_inplace_module_trains_and_compiles_as_torch():
    ours, theirs = _pair(_block)
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    ours(dlg.tensor(x)).sum().backward()
    theirs(torch.tensor(x)).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    want = theirs(torch.tensor(x)).detach().numpy()
    exe = dlg.compile(ours)
    np.testing.assert_allclose(np.asarray(exe(dlg.tensor(x))), want, rtol=1e-4, atol=1e-5)
    traced = dlg.trace(ours, dlg.tensor(x))
    np.testing.assert_allclose(np.asarray(traced(x)), want, rtol=1e-4, atol=1e-5)


def _sigmoid_output_changed(m, a, b):
    y = (a * 1).sigmoid()
    y.mul_(2)
    return y


def _saved_input_changed(m, a, b):
    h = a * 1
    out = h @ b
    h.add_(1)
    return out


def _softmax_output_changed(m, a, b):
    y = (a @ b).softmax(-1)
    y[0].mul_(2)
    return y


def _constant_changed_after_use(m, a, b):
    c = m.ones(3, 4)
    out = a * c
    c.add_(1)
    return out


def _changed_under_no_grad(m, a, b):
    y = a.exp()
    with m.no_grad():
        y.mul_(2)
    return y


@pytest.mark.parametrize("fn", [_sigmoid_output_changed, _saved_input_changed,
                                _softmax_output_changed, _constant_changed_after_use,
                                _changed_under_no_grad], ids=lambda f: f.__name__.strip("_"))
def test_backward_through_a_value_changed_in_place_is_refused_as_torch(fn):
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        _run(torch, fn)
    with pytest.raises(dlg.DlgValueError, match="modified by an inplace operation") as e:
        _run(dlg, fn)
    assert e.value.span is not None and e.value.span.file == __file__


@pytest.mark.parametrize("write", [lambda a: a.add_(1), lambda a: a[0].mul_(2),
                                   lambda a: a.t().zero_(), lambda a: a.__setitem__(0, 1.0),
                                   lambda a: dlg.nn.functional.relu_(a)])
def test_a_leaf_that_requires_grad_keeps_torchs_error(write):
    a = dlg.tensor(X, requires_grad=True)
    with pytest.raises(dlg.DlgValueError, match="leaf tensor that requires grad"):
        write(a)
    with dlg.no_grad():
        write(a)  # parameter updates


def test_no_grad_in_place_stays_a_numpy_write():
    x = dlg.tensor(X)
    array = x.numpy_view()
    x.add_(1)
    x[0] = 5.0
    x.masked_fill_(x > 4, 0.0)
    assert x.numpy_view() is array and x.record is None and not x.requires_grad


def test_backward_through_a_tape_older_than_an_optimizer_step_is_refused():
    """torch refuses it (the step wrote the weights in place); dlg would silently give the
    gradient at the new weights, since it reads leaves again at backward."""
    for lib in (torch, dlg):
        lib.manual_seed(0)
        lin = lib.nn.Linear(3, 2)
        opt = lib.optim.SGD(lin.parameters(), lr=0.1)
        x = lib.tensor(np.ones((4, 3), np.float32), requires_grad=True)
        first, second = (lin(x) ** 2).sum(), (lin(x) ** 2).sum()
        first.backward()
        opt.step()
        error = RuntimeError if lib is torch else dlg.DlgValueError
        with pytest.raises(error, match="modified by an inplace operation"):
            second.backward()


def _masked_conv(lib, how):
    """PixelCNN's masked convolution: the weight masked in place inside forward."""
    class MaskedConv2d(lib.nn.Conv2d):
        def __init__(self):
            super().__init__(1, 2, 3, padding=1, bias=False)
            self.register_buffer("mask", lib.ones(2, 1, 3, 3))
            self.mask[:, :, 1, 1:] = 0
            self.mask[:, :, 2:] = 0

        def forward(self, x):
            if how == "data":
                self.weight.data *= self.mask
            elif how == "data_assign":
                self.weight.data = self.weight.data * self.mask
            else:
                with lib.no_grad():
                    self.weight.mul_(self.mask)
            return super().forward(x)
    return MaskedConv2d()


@pytest.mark.parametrize("how", ["no_grad", "data", "data_assign"])
def test_parameter_written_in_place_in_a_compiled_forward_is_still_the_leaf(how):
    """A parameter masked in place in forward (under no_grad, `w.data *= m` or `w.data = ...`):
    traced and compiled, later ops read the masked value and the gradient reaches the
    parameter, as torch's autograd treats the leaf (it was cut off, and `.data` writes were
    lost or corrupted the parameter, in a trace)."""
    theirs = _masked_conv(torch, how)
    start = {k: dlg.tensor(v.numpy().copy()) for k, v in theirs.state_dict().items()}
    x = RNG.standard_normal((2, 1, 4, 4)).astype(np.float32)
    want = theirs(torch.tensor(x))
    (want ** 2).sum().backward()
    traced = _masked_conv(dlg, how)
    traced.load_state_dict(start)
    np.testing.assert_allclose(np.asarray(dlg.trace(traced, x)(x)), want.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    ours = _masked_conv(dlg, how)
    ours.load_state_dict(start)
    got = dlg.compile(ours)(dlg.tensor(x))
    (got ** 2).sum().backward()
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours.weight.detach().numpy(), theirs.weight.detach().numpy())


def test_data_assignment_shares_the_storage_as_torch():
    """`x.data = y` makes x share y's storage (its dtype and shape too), so `w.data *= mask`
    (d2l's my_init) leaves w's earlier views reading w; it made a copy, which cut them off."""
    for lib in (dlg, torch):
        w = lib.tensor([[6.0, -1.0, 7.0], [2.0, -8.0, 0.0]], requires_grad=True)
        row = w.data[0]
        w.data *= w.data.abs() >= 5
        w.data[:] += 1
        assert row.tolist() == [7.0, 1.0, 8.0] and w.requires_grad
        a, b = lib.zeros(3), lib.ones(2, dtype=lib.float64)
        a.data = b
        b += 1
        assert a.tolist() == [2.0, 2.0] and a.dtype == lib.float64


def test_float_of_a_tensor_requiring_grad_warns_as_torch():
    w = dlg.ones(2, requires_grad=True)
    with pytest.warns(UserWarning, match="requires_grad=True to a scalar"):
        assert float(w.sum()) == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(w.sum().detach()) == 2.0 and w.sum().item() == 2.0
