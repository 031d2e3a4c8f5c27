"""dlg.optim.lr_scheduler against torch.optim.lr_scheduler: the learning rates (and OneCycleLR's
momenta) of two parameter groups over 30 steps, the optimizer reading them, closed forms,
state_dict, and errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.errors import DlgTypeError, DlgValueError
from dlg.optim import lr_scheduler

torch = pytest.importorskip("torch")

SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 0.95 ** epoch + 0.01 * (epoch % 3)}),
    ("ConstantLR", {"factor": 0.25, "total_iters": 4}),
    ("LinearLR", {"start_factor": 0.2, "end_factor": 0.9, "total_iters": 6}),
    ("OneCycleLR", {"max_lr": [0.5, 0.2], "total_steps": 31}),
    ("OneCycleLR", {"max_lr": 0.3, "epochs": 3, "steps_per_epoch": 11, "three_phase": True,
                    "anneal_strategy": "linear"}),
]


def optimizers(name="SGD", **hyper):
    w = np.ones(2, np.float32)
    ours = [dlg.tensor(w, requires_grad=True) for _ in range(2)]
    theirs = [torch.tensor(w, requires_grad=True) for _ in range(2)]
    hyper = hyper or {"lr": 0.1, "momentum": 0.9}
    return (getattr(dlg.optim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.05}],
                                     **hyper),
            getattr(torch.optim, name)([{"params": theirs[:1]},
                                        {"params": theirs[1:], "lr": 0.05}], **hyper))


def assert_same_groups(opt, topt, what):
    for group, theirs in zip(opt.param_groups, topt.param_groups):
        for key in ("lr", "momentum", "betas"):
            if key in theirs:
                assert group[key] == pytest.approx(theirs[key], rel=1e-12, abs=1e-15), (key, what)


@pytest.mark.parametrize("name, kwargs", SCHEDULERS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULERS)])
def test_learning_rates_match_torch(name, kwargs):
    opt, topt = optimizers()
    ours = getattr(lr_scheduler, name)(opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for epoch in range(31 if name == "OneCycleLR" else 30):
        assert_same_groups(opt, topt, epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert ours.last_epoch == theirs.last_epoch
        topt.step()
        ours.step()
        theirs.step()


def test_one_cycle_moves_adams_beta1():
    opt, topt = optimizers("Adam", lr=0.01)
    ours = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    theirs = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=20)
    for epoch in range(20):
        assert_same_groups(opt, topt, epoch)
        ours.step()
        topt.step()
        theirs.step()


def test_sequential_hands_over_at_milestones():
    opt, topt = optimizers()
    ours = lr_scheduler.SequentialLR(opt, [lr_scheduler.ConstantLR(opt, factor=0.1,
                                                                   total_iters=4),
                                           lr_scheduler.ExponentialLR(opt, gamma=0.9),
                                           lr_scheduler.StepLR(opt, step_size=2)],
                                     milestones=[5, 12])
    T = torch.optim.lr_scheduler  # noqa: N806
    theirs = T.SequentialLR(topt, [T.ConstantLR(topt, factor=0.1, total_iters=4),
                                   T.ExponentialLR(topt, gamma=0.9), T.StepLR(topt, step_size=2)],
                            milestones=[5, 12])
    for epoch in range(30):
        assert_same_groups(opt, topt, epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        topt.step()
        ours.step()
        theirs.step()


def test_reduce_on_plateau_follows_the_metric():
    metrics = [5, 4, 4.1, 4.2, 3.9, 3.9, 3.9, 3.9, 3.9, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1] * 2
    for kwargs in ({"patience": 2}, {"mode": "max", "factor": 0.5, "patience": 1, "cooldown": 2,
                                     "threshold_mode": "abs", "min_lr": [0.02, 0.0]}):
        opt, topt = optimizers()
        ours = lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
        for epoch, metric in enumerate(metrics):
            ours.step(dlg.tensor(metric))
            theirs.step(metric)
            assert_same_groups(opt, topt, epoch)
            assert ours.get_last_lr() == theirs.get_last_lr()


def test_the_optimizer_steps_with_the_scheduled_lr():
    w0 = np.array([1.0, -2.0, 3.0], np.float32)
    ours, theirs = dlg.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, topt = dlg.optim.Adadelta([ours]), torch.optim.Adadelta([theirs])
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.7)
    for _ in range(6):
        for w, o in ((ours, opt), (theirs, topt)):
            o.zero_grad()
            (w * w * w).sum().backward()
            o.step()
        sched.step()
        tsched.step()
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, kwargs", SCHEDULERS[:4] + SCHEDULERS[5:7],
                         ids=[n for n, _ in SCHEDULERS[:4] + SCHEDULERS[5:7]])
def test_step_with_an_epoch_uses_the_closed_form(name, kwargs):
    opt, topt = optimizers()
    ours = getattr(lr_scheduler, name)(opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for epoch in (4, 11, 2, 7):
        ours.step(epoch)
        with pytest.warns(UserWarning):
            theirs.step(epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)


def test_state_dict_resumes_a_schedule():
    opt, _ = optimizers()
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    saved, lrs = sched.state_dict(), [g["lr"] for g in opt.param_groups]
    assert "optimizer" not in saved and saved["last_epoch"] == 4
    sched.step()
    resumed = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    resumed.load_state_dict(saved)
    for group, lr in zip(opt.param_groups, lrs):
        group["lr"] = lr
    resumed.step()
    assert resumed.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize("make, error, message", [
    (lambda o: lr_scheduler.StepLR(object(), step_size=1), DlgTypeError, "not an Optimizer"),
    (lambda o: lr_scheduler.StepLR(o, step_size=0), DlgTypeError, "bad value 0 for step_size"),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=-0.5), DlgTypeError, "bad value -0.5"),
    (lambda o: lr_scheduler.LambdaLR(o, [abs]), DlgValueError, "expected 2 lr_lambdas"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1), DlgValueError, "give total_steps"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=2.0), DlgValueError, "factor must be"),
    (lambda o: lr_scheduler.StepLR(o, step_size=2, last_epoch=3), DlgValueError,
     "no 'initial_lr'"),
])
def test_errors(make, error, message):
    opt, _ = optimizers()
    with pytest.raises(error, match=message):
        make(opt)
