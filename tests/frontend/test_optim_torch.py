"""dlg.optim against torch.optim, side by side: the same parameters and gradients, several steps,
several parameter groups with their own options, state_dict in both directions,
add_param_group, and parameters that miss a gradient on some steps (torch counts steps per
parameter). The side-by-side runs go through both tiers of an update: the interpreter, and the
compiled update writing in place that a hot update graph gets (here from its second step:
`compiled`)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import dlg
from dlg.errors import DlgAttributeError, DlgTypeError, DlgValueError

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,), (2, 3)]

# (optimizer, defaults, options of a second group holding the last parameter)
CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01},
     {"nesterov": True, "dampening": 0.0}),
    ("SGD", {"lr": 0.1, "maximize": True}, {"lr": 0.05, "momentum": 0.5}),
    ("Adam", {"lr": 0.01, "amsgrad": True}, {"betas": (0.8, 0.9), "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}, {"decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}, {"weight_decay": 0.2, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5}, {"centered": True, "alpha": 0.9}),
    ("Adadelta", {}, {"lr": 0.5, "rho": 0.8, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True, "eps": 1e-5}, {"lr": 2.0}),
    # torch fills Adagrad's sums from the constructor's initial_accumulator_value, not a group's
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.3}, {"lr_decay": 0.05}),
    ("Adagrad", {"weight_decay": 0.1, "eps": 1e-6}, {"maximize": True}),
    ("Adamax", {}, {"lr": 0.01, "betas": (0.7, 0.95), "weight_decay": 0.1}),
    ("NAdam", {}, {"momentum_decay": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True},
     {"maximize": True}),
    ("RAdam", {}, {"betas": (0.5, 0.9), "weight_decay": 0.1}),
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
     {"maximize": True}),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


@pytest.fixture(params=["interpreted", "compiled"])
def tier(request, monkeypatch):
    """`compiled`: every update graph compiled from its second step (frontend/tiering.py)."""
    if request.param == "compiled":
        monkeypatch.setattr(dlg.frontend.tiering, "COMPILE_AFTER_S", 0.0)
    return request.param


def make_pair(rng, name, defaults, second, shapes=SHAPES):
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [dlg.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], **second}]  # noqa: E731
    return (ours, getattr(dlg.optim, name)(groups(ours), **defaults),
            theirs, getattr(torch.optim, name)(groups(theirs), **defaults))


def give_grads(rng, ours, theirs, skip=()):
    for i, (p, t) in enumerate(zip(ours, theirs)):
        if i in skip:
            p.grad, t.grad = None, None
            continue
        g = rng.standard_normal(p.shape).astype(np.float32)
        p.grad, t.grad = dlg.tensor(g), torch.tensor(g)


def assert_same(ours, theirs, what):
    for i, (p, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"param {i} {what}")


@pytest.mark.parametrize("name, defaults, second", CASES, ids=IDS)
def test_groups_step_like_torch(name, defaults, second, tier):
    rng = np.random.default_rng(0)
    ours, opt, theirs, topt = make_pair(rng, name, defaults, second)
    for step in range(8):  # RAdam rectifies from step 6; the bias param misses steps 2 and 3
        give_grads(rng, ours, theirs, skip=(1,) if step in (2, 3) else ())
        opt.step()
        topt.step()
        assert_same(ours, theirs, f"after step {step + 1}")
    assert (tier == "compiled") == any(u.tier.native is not None for u in opt._graphs.values())
    ours_state, their_state = opt.state_dict(), topt.state_dict()
    for group, their_group in zip(ours_state["param_groups"], their_state["param_groups"]):
        assert list(group.items()) == list(their_group.items())  # foreach, fused, ... too
    for i, entries in their_state["state"].items():
        assert sorted(k for k, v in entries.items() if v is not None) == sorted(
            ours_state["state"][i]), i
        for k, v in entries.items():
            if v is not None:
                np.testing.assert_allclose(ours_state["state"][i][k].numpy(), v.numpy(),
                                           rtol=1e-5, atol=1e-6, err_msg=f"{i}.{k}")


@pytest.mark.parametrize("name, defaults, second", CASES, ids=IDS)
def test_float64_params_step_like_torch_to_the_last_digits(name, defaults, second, tier):
    """torch's lr is a Python float: float64 params step by the unrounded lr (an f32 lr gave
    0.1 as 0.10000000149, a relative error of 1e-8 in every update)."""
    rng = np.random.default_rng(1)
    start = [rng.standard_normal(s) for s in SHAPES]
    ours = [dlg.tensor(a, requires_grad=True) for a in start]
    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    opt = getattr(dlg.optim, name)([{"params": ours[:2]}, {"params": ours[2:], **second}],
                                   **defaults)
    topt = getattr(torch.optim, name)([{"params": theirs[:2]}, {"params": theirs[2:], **second}],
                                      **defaults)
    for _ in range(3):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad, t.grad = dlg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        assert p.dtype == dlg.float64
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-12,
                                   atol=1e-14)


@pytest.mark.parametrize("name, defaults, second", CASES[::3], ids=IDS[::3])
def test_state_dicts_move_between_torch_and_dlg(name, defaults, second, tier):
    """torch's state_dict loads into dlg (and dlg's into a fresh dlg optimizer): training goes
    on as if never interrupted."""
    rng = np.random.default_rng(1)
    ours, opt, theirs, topt = make_pair(rng, name, defaults, second)
    for _ in range(3):
        give_grads(rng, ours, theirs)
        topt.step()
    for p, t in zip(ours, theirs):
        p.data = dlg.tensor(t.detach().numpy())
    opt.load_state_dict(topt.state_dict())
    for _ in range(2):
        give_grads(rng, ours, theirs)
        opt.step()
        topt.step()
    assert_same(ours, theirs, "after loading torch's state")
    saved = copy.deepcopy(opt.state_dict())
    fresh = getattr(dlg.optim, name)([{"params": ours[:2]}, {"params": ours[2:]}], lr=123.0)
    fresh.load_state_dict(saved)
    give_grads(rng, ours, theirs)
    fresh.step()
    topt.step()
    assert_same(ours, theirs, "after a dlg round trip")


def test_add_param_group_like_torch():
    rng = np.random.default_rng(2)
    ours, opt, theirs, topt = make_pair(rng, "Adam", {"lr": 0.01}, {"lr": 0.02})
    extra = rng.standard_normal((5,)).astype(np.float32)
    ours.append(dlg.tensor(extra, requires_grad=True))
    theirs.append(torch.tensor(extra, requires_grad=True))
    for step in range(4):
        if step == 2:
            opt.add_param_group({"params": ours[3], "lr": 0.1, "amsgrad": True})
            topt.add_param_group({"params": theirs[3], "lr": 0.1, "amsgrad": True})
        give_grads(rng, ours, theirs, skip=(3,) if step < 2 else ())
        opt.step()
        topt.step()
    assert_same(ours, theirs, "with a group added")
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["betas"] == (0.9, 0.999)


def test_lr_written_into_a_group_takes_effect():
    rng = np.random.default_rng(3)
    ours, opt, theirs, topt = make_pair(rng, "SGD", {"lr": 0.1, "momentum": 0.9}, {})
    for step in range(4):
        for g1, g2 in zip(opt.param_groups, topt.param_groups):
            g1["lr"] = g2["lr"] = 0.1 / (step + 1)
        g1["momentum"] = g2["momentum"] = 0.5 if step >= 2 else 0.9  # rebuilds the update
        give_grads(rng, ours, theirs)
        opt.step()
        topt.step()
    assert_same(ours, theirs, "with options changed between steps")


def test_step_runs_the_closure():
    w = dlg.tensor([1.0, -2.0], requires_grad=True)
    opt = dlg.optim.SGD([w], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    np.testing.assert_allclose(w.detach().numpy(), [0.0, 0.0])


@pytest.mark.parametrize("make, error, message", [
    (lambda w: dlg.optim.Adam([], lr=0.1), DlgValueError, "empty parameter list"),
    (lambda w: dlg.optim.Adam([w], lr=-1.0), DlgTypeError, "bad value -1.0 for lr"),
    (lambda w: dlg.optim.Adadelta([w], rhoo=0.5), DlgAttributeError, "did you mean 'rho'"),
    (lambda w: dlg.optim.SGD([{"params": [w]}, {"params": [w]}]), DlgValueError,
     "more than one parameter group"),
    (lambda w: dlg.optim.Adagrad([{"params": [w], "lr_decay": "x"}]), DlgTypeError,
     "bad value 'x' for lr_decay"),
    (lambda w: dlg.optim.SGD([np.zeros(2)]), DlgTypeError, "optimizes tensors"),
])
def test_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(dlg.tensor([1.0], requires_grad=True))


def test_a_traced_step_takes_one_set_of_options():
    a, b = dlg.tensor([1.0], requires_grad=True), dlg.tensor([1.0], requires_grad=True)
    assert str(dlg.optim.NAdam([a, b]).spec).startswith("NAdam(lr=0.002")
    with pytest.raises(DlgValueError, match="one set of options"):
        _ = dlg.optim.NAdam([{"params": [a]}, {"params": [b], "lr": 0.1}]).spec
