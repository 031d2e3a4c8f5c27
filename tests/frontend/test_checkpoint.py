"""dlg.utils.checkpoint against torch.utils.checkpoint: the same values and input/parameter
gradients as torch's (and as calling the function), dropout's mask drawn again the same at
recomputation, intermediates not kept by the tape, checkpoint_sequential's segments, bad calls."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import dlg
from dlg.utils.checkpoint import checkpoint, checkpoint_sequential

torch = pytest.importorskip("torch")
import torch.utils.checkpoint as tcp  # noqa: E402


def pair(seed: int = 0):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6),
                                 torch.nn.GELU(), torch.nn.Linear(6, 3))
    ours = dlg.nn.Sequential(dlg.nn.Linear(4, 8), dlg.nn.Tanh(), dlg.nn.Linear(8, 6),
                             dlg.nn.GELU(), dlg.nn.Linear(6, 3))
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    x = np.random.default_rng(seed).standard_normal((5, 4)).astype(np.float32)
    return ours, theirs, x


def close(a, b):
    np.testing.assert_allclose(np.asarray(a.detach().numpy()), b.detach().numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("use_reentrant", [True, False])
@pytest.mark.parametrize("x_grad", [True, False])
def test_checkpoint_matches_torch(use_reentrant, x_grad):
    ours, theirs, x = pair()
    dx, tx = dlg.tensor(x, requires_grad=x_grad), torch.tensor(x, requires_grad=x_grad)
    fn_ours = lambda a: ours[2:](ours[:2](a) * 2)  # noqa: E731
    fn_theirs = lambda a: theirs[2:](theirs[:2](a) * 2)  # noqa: E731
    y = checkpoint(fn_ours, dx, use_reentrant=use_reentrant)
    t = tcp.checkpoint(fn_theirs, tx, use_reentrant=False)
    close(y, t)
    (y ** 2).sum().backward()
    (t ** 2).sum().backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        close(p.grad, q.grad)
    if x_grad:
        close(dx.grad, tx.grad)


def test_several_outputs_and_arguments():
    ours, theirs, x = pair(1)

    def block(m, a, scale, b):
        h = m(a)
        return h * scale, (h + b).tanh()

    dx, tx = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    db, tb = dlg.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    y1, y2 = checkpoint(block, ours, dx, 0.5, db, use_reentrant=True)
    t1, t2 = tcp.checkpoint(block, theirs, tx, 0.5, tb, use_reentrant=True)
    close(y1, t1), close(y2, t2)
    ((y1 * y2).sum() + y2.sum()).backward()
    ((t1 * t2).sum() + t2.sum()).backward()
    close(dx.grad, tx.grad), close(db.grad, tb.grad)
    close(ours[0].weight.grad, theirs[0].weight.grad)


def test_keyword_arguments_need_non_reentrant():
    ours, theirs, x = pair()
    dx, tx = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = checkpoint(lambda a, k=1.0: ours(a) * k, dx, k=3.0, use_reentrant=False)
    t = tcp.checkpoint(lambda a, k=1.0: theirs(a) * k, tx, k=3.0, use_reentrant=False)
    close(y, t)
    with pytest.raises(ValueError):
        tcp.checkpoint(lambda a, k=1.0: theirs(a) * k, tx, k=3.0, use_reentrant=True)
    with pytest.raises(dlg.DlgValueError, match="use_reentrant=False"):
        checkpoint(lambda a, k=1.0: ours(a) * k, dx, k=3.0, use_reentrant=True)


def test_dropout_mask_is_drawn_again_the_same():
    net = dlg.nn.Sequential(dlg.nn.Linear(6, 32), dlg.nn.Dropout(0.5), dlg.nn.Linear(32, 2))
    x = dlg.randn(8, 6, requires_grad=True)
    dlg.manual_seed(5)
    y = checkpoint(net, x, use_reentrant=False)
    y.sum().backward()
    kept = [p.grad.numpy().copy() for p in net.parameters()] + [x.grad.numpy().copy()]
    net.zero_grad()
    x.grad = None
    dlg.manual_seed(5)
    direct = net(x)
    direct.sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), direct.detach().numpy())
    for a, b in zip(kept, [p.grad.numpy() for p in net.parameters()] + [x.grad.numpy()]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_intermediates_are_not_kept():
    seen: list[weakref.ref] = []

    def block(a):
        h = a.exp()
        seen.append(weakref.ref(h))
        return h.sum(1)

    x = dlg.randn(3, 4, requires_grad=True)
    y = checkpoint(block, x, use_reentrant=False)
    direct = block(x)
    gc.collect()
    assert seen[0]() is None and seen[1]() is not None  # the tape keeps direct's intermediate
    (y.sum() + direct.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.detach().numpy()), rtol=1e-6)


@pytest.mark.parametrize("segments", [1, 2, 3, 5])
def test_checkpoint_sequential_matches_torch(segments):
    ours, theirs, x = pair(2)
    dx, tx = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = checkpoint_sequential(ours, segments, dx, use_reentrant=True)
    t = tcp.checkpoint_sequential(theirs, segments, tx, use_reentrant=True)
    close(y, t)
    y.sum().backward()
    t.sum().backward()
    close(dx.grad, tx.grad)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        close(p.grad, q.grad)


def test_without_grad_and_traced_it_just_runs():
    ours, _, x = pair()
    with dlg.no_grad():
        y = checkpoint(ours, dlg.tensor(x), use_reentrant=False)
    assert y.grad_fn is None
    m = dlg.trace(lambda a: checkpoint(ours, a, use_reentrant=False), dlg.tensor(x))
    np.testing.assert_allclose(m(x[:3]), ours(dlg.tensor(x[:3])).detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("call, error", [
    (lambda: checkpoint(3, dlg.ones(2), use_reentrant=False), dlg.DlgTypeError),
    (lambda: checkpoint(lambda a: a, dlg.ones(2), debug=True), dlg.DlgValueError),
    (lambda: checkpoint_sequential([dlg.nn.ReLU()], 0, dlg.ones(2)), dlg.DlgValueError),
])
def test_bad_calls(call, error):
    with pytest.raises(error):
        call()
