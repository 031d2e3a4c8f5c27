"""Eager graphs that tier up (frontend/tiering.py): a kept gradient graph and an optimizer's
update compiled once hot give torch's results, step after step, as the interpreted ones do.
Tiering is forced from the second run (`tier_up`); torch eager is the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.frontend import autograd

torch = pytest.importorskip("torch")


@pytest.fixture
def tier_up(monkeypatch):
    monkeypatch.setattr(dlg.frontend.tiering, "COMPILE_AFTER_S", 0.0)
    autograd._state.__dict__.pop("plans", None)  # plans kept by earlier tests never tier
    yield
    autograd._state.__dict__.pop("plans", None)


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 5))


def cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(6, 3))


@pytest.mark.parametrize("make, shape", [(mlp, (7, 12)), (cnn, (5, 2, 8, 8))],
                         ids=["mlp", "cnn"])
def test_compiled_gradients_and_updates_train_as_torch(tier_up, make, shape):
    torch.manual_seed(0)
    theirs = make(torch)
    ours = make(dlg)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    opt = dlg.optim.Adam(ours.parameters(), lr=0.01)
    topt = torch.optim.Adam(theirs.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    for step in range(5):
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, shape[1] if make is mlp else 3, shape[0]) % 3
        for lib, model, o in ((dlg, ours, opt), (torch, theirs, topt)):
            o.zero_grad()
            lib.nn.functional.cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            o.step()
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} at step {step}")
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=f"{name} at step {step}")
    plans = list(autograd._state.plans.values())
    assert len(plans) == 1 and plans[0].tier.native is not None
    assert all(u.tier.native is not None for u in opt._graphs.values())


def test_float64_and_rarely_run_graphs_stay_interpreted(tier_up, monkeypatch):
    """float64 keeps the interpreter's exact arithmetic; a graph whose interpreted runs have
    not yet cost COMPILE_AFTER_S is not compiled."""
    x = dlg.tensor(np.linspace(-1, 1, 6), requires_grad=True)
    for _ in range(3):
        (x.sin() * x).sum().backward()
    assert [p.tier for p in autograd._state.plans.values()] == [None]
    monkeypatch.setattr(dlg.frontend.tiering, "COMPILE_AFTER_S", 3600.0)
    autograd._state.plans.clear()
    w = dlg.tensor(np.ones(6, np.float32), requires_grad=True)
    for _ in range(5):
        (w.sin() * w).sum().backward()
    (plan,) = autograd._state.plans.values()
    assert plan.tier is not None and plan.tier.native is None and 0 < plan.tier.spent < 3600
    np.testing.assert_allclose(w.grad.numpy(), 5 * (np.sin(1) + np.cos(1)), rtol=1e-6)
