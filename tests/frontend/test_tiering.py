"""Eager graphs that tier up (frontend/tiering.py): a kept gradient graph and an optimizer's
update compiled once hot give torch's results, step after step, as the interpreted ones do.
Tiering is forced from the second run (`tier_up`); torch eager is the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.frontend import autograd, engine
from dlg.frontend.tiering import TieredOp

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


# ---- eager ops alone (TieredOp) --------------------------------------------------------------
@pytest.fixture
def ops_tier_up(monkeypatch):
    """Every eager op plan made from here tiers at its first run; the plans kept before are
    dropped (and again after), so no other test meets a compiled op."""
    monkeypatch.setattr(dlg.frontend.tiering, "OP_COMPILE_AFTER_S", 0.0)
    engine.forget_plans()
    yield
    engine.forget_plans()


def _tiered_plans():
    return {key[0].name: run for key, (_, run) in engine._plans.items()
            if isinstance(run, TieredOp)}


def test_eager_ops_compiled_once_hot_match_torch(ops_tier_up, monkeypatch):
    """A forward pass's convolution, pool, activation and loss, compiled op by op (each kept,
    the trial forced to win), give torch's values and gradients, call after call."""
    monkeypatch.setattr(dlg.frontend.tiering, "KEPT_UP_TO", float("inf"))
    torch.manual_seed(0)
    theirs = cnn(torch)
    ours = cnn(dlg)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy())
                          for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(1)
    for step in range(3):
        x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 5)
        losses = []
        for lib, model in ((dlg, ours), (torch, theirs)):
            model.zero_grad()
            loss = lib.nn.functional.cross_entropy(model(lib.tensor(x)), lib.tensor(y))
            loss.backward()
            losses.append(float(loss))
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5, err_msg=f"step {step}")
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} at step {step}")
    compiled = {name for name, run in _tiered_plans().items() if run.native is not None}
    assert {"conv2d", "relu", "max_pool", "avg_pool", "linear"} <= compiled, compiled


def test_a_compiled_op_slower_than_numpy_is_dropped(ops_tier_up, monkeypatch):
    """Where the trial loses, the op keeps its NumPy run (and stops counting)."""
    monkeypatch.setattr(dlg.frontend.tiering, "KEPT_UP_TO", 0.0)
    a, b = dlg.ones(3, 4), dlg.full((3, 4), 2.0)
    for _ in range(3):
        np.testing.assert_array_equal((a * b).numpy(), np.full((3, 4), 2.0, np.float32))
    run = _tiered_plans()["mul"]
    assert run.native is None and run.spent == float("-inf")


def test_views_random_draws_and_float64_stay_numpy(ops_tier_up, monkeypatch):
    """A view shares its base's memory (an in-place op on it writes the base), a draw comes from
    dlg's generator, and float64 keeps NumPy's exact rounding: none of them tier."""
    monkeypatch.setattr(dlg.frontend.tiering, "KEPT_UP_TO", float("inf"))
    x = dlg.zeros(2, 6)
    for _ in range(2):
        x.view(3, 4).add_(1.0)
        x.t()[0].add_(1.0)
        dlg.nn.functional.dropout(x, 0.5, training=True)
        dlg.ones(2, dtype=dlg.float64) * 3.0
    expected = np.full((2, 6), 2.0, np.float32)
    expected[:, 0] += 2.0
    np.testing.assert_array_equal(x.numpy(), expected)
    for (op, types, *_), (_, run) in engine._plans.items():
        numpy_only = (op.name in ("reshape", "transpose", "slice", "index", "random_uniform")
                      or any(t.dtype is dlg.float64 for t in types))
        assert isinstance(run, TieredOp) is not numpy_only, (op.name, types)
