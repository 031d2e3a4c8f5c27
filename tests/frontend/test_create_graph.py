"""Gradients of gradients in eager dlg (create_graph=True), against torch: a gradient penalty
(WGAN-GP), a physics-informed residual (d2u/dx2), Hessian-vector products, and backward into
`.grad` with a graph."""

import numpy as np
import pytest

import dlg
import dlg.nn as nn
import dlg.nn.functional as F

torch = pytest.importorskip("torch")

R = np.random.default_rng(0)


def _pair(shape, requires_grad=True):
    x = R.standard_normal(shape).astype(np.float32)
    return (dlg.tensor(x, requires_grad=requires_grad),
            torch.tensor(x, requires_grad=requires_grad))


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.detach().numpy() if hasattr(a, "detach") else a),
                               b.detach().numpy(), rtol=tol, atol=tol)


def test_second_derivative_of_a_scalar_function():
    x, tx = _pair((5,))
    for lib, v in ((dlg, x), (torch, tx)):
        y = (v.sin() * v ** 3).sum()
        (g,) = lib.autograd.grad(y, v, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), v)
        if lib is dlg:
            got_g, got_h = g, h
        else:
            want_g, want_h = g, h
    _close(got_g, want_g)
    _close(got_h, want_h)
    assert got_g.requires_grad and got_g.grad_fn is not None


def test_physics_informed_residual_trains_like_torch():
    """u(x) by a small tanh net; the loss is the residual of u'' + u = 0 at sample points."""
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    net.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    points = np.linspace(-1, 1, 7, dtype=np.float32)[:, None]
    losses = {}
    for lib, model in ((dlg, net), (torch, tnet)):
        opt = lib.optim.SGD(model.parameters(), lr=0.05)
        history = []
        for _ in range(3):
            x = lib.tensor(points, requires_grad=True)
            u = model(x)
            (du,) = lib.autograd.grad(u.sum(), x, create_graph=True)
            (d2u,) = lib.autograd.grad(du.sum(), x, create_graph=True)
            loss = ((d2u + u) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
        losses[lib.__name__] = history
    np.testing.assert_allclose(losses["dlg"], losses["torch"], rtol=1e-4)
    for p, tp in zip(net.parameters(), tnet.parameters()):
        _close(p, tp, 1e-4)


def test_wgan_gradient_penalty_matches_torch():
    torch.manual_seed(1)
    tcritic = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LeakyReLU(0.2),
                                  torch.nn.Linear(8, 1))
    critic = nn.Sequential(nn.Linear(4, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    critic.load_state_dict({k: v.detach().numpy() for k, v in tcritic.state_dict().items()})
    real = R.standard_normal((6, 4)).astype(np.float32)
    fake = R.standard_normal((6, 4)).astype(np.float32)
    alpha = R.random((6, 1)).astype(np.float32)
    grads = {}
    for lib, model in ((dlg, critic), (torch, tcritic)):
        mixed = (lib.tensor(alpha) * lib.tensor(real)
                 + (1 - lib.tensor(alpha)) * lib.tensor(fake)).requires_grad_(True)
        score = model(mixed)
        (g,) = lib.autograd.grad(score, mixed, grad_outputs=lib.ones_like(score),
                                 create_graph=True, retain_graph=True)
        penalty = ((g.norm(2, dim=1) - 1) ** 2).mean() * 10
        loss = score.mean() + penalty
        loss.backward()
        grads[lib.__name__] = [p.grad for p in model.parameters()]
    for a, b in zip(grads["dlg"], grads["torch"]):
        _close(a, b, 1e-4)


def test_hessian_vector_product():
    w, tw = _pair((3,))
    a = R.standard_normal((4, 3)).astype(np.float32)
    v = R.standard_normal(3).astype(np.float32)
    out = {}
    for lib, p in ((dlg, w), (torch, tw)):
        loss = F.softplus(lib.tensor(a) @ p).sum() if lib is dlg else \
            torch.nn.functional.softplus(torch.tensor(a) @ p).sum()
        (g,) = lib.autograd.grad(loss, p, create_graph=True)
        (hv,) = lib.autograd.grad((g * lib.tensor(v)).sum(), p)
        out[lib.__name__] = hv
    _close(out["dlg"], out["torch"], 1e-5)


def test_backward_create_graph_leaves_a_differentiable_grad():
    x, tx = _pair((4,))
    for lib, v in ((dlg, x), (torch, tx)):
        (v ** 3).sum().backward(create_graph=True)
        first = v.grad
        v.grad = None
        (first * first).sum().backward()
        if lib is dlg:
            got_first, got = first, v.grad
        else:
            want_first, want = first, v.grad
    _close(got_first, want_first)
    _close(got, want, 1e-4)


def test_create_graph_with_a_hook_is_refused():
    x = dlg.tensor(np.ones(3, np.float32), requires_grad=True)
    x.register_hook(lambda g: g * 2)
    with pytest.raises(dlg.DlgValueError, match="hooks"):
        dlg.autograd.grad((x ** 2).sum(), x, create_graph=True)


def test_second_derivative_at_a_computed_tensor():
    """g = d sum(y^3)/dy is recorded in terms of y itself (3y^2), so it differentiates again
    with respect to y and, through y, to x; with x wanted too, the gradient keeps x's path."""
    a = np.array([1.0, 2.0, -1.5], np.float32)
    got = {}
    for lib in (dlg, torch):
        x = lib.tensor(a, requires_grad=True)
        y = x * 2
        (g,) = lib.autograd.grad((y ** 3).sum(), y, create_graph=True)
        (h,) = lib.autograd.grad(g.sum(), y, retain_graph=True)
        (hx,) = lib.autograd.grad(g.sum(), x, retain_graph=True)
        _, gx = lib.autograd.grad((y ** 3).sum(), [y, x], create_graph=True)
        (hxx,) = lib.autograd.grad(gx.sum(), x)
        got[lib.__name__] = [v.detach().numpy() for v in (g, h, hx, hxx)]
    for mine, theirs in zip(got["dlg"], got["torch"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5)
