"""dlg.optim.lr_scheduler against torch.optim.lr_scheduler: the learning rates (and OneCycleLR's
and CyclicLR's momenta) of two parameter groups over 30 steps, the optimizer reading them, closed
forms, ChainedScheduler, state_dict, and errors."""

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
    ("MultiplicativeLR", {"lr_lambda": lambda epoch: 0.9 + 0.02 * (epoch % 4)}),
    ("PolynomialLR", {"total_iters": 9, "power": 1.7}),
    ("CosineAnnealingWarmRestarts", {"T_0": 4}),
    ("CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 2, "eta_min": 0.002}),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": [0.2, 0.1], "step_size_up": 4}),
    ("CyclicLR", {"base_lr": [0.01, 0.02], "max_lr": 0.3, "step_size_up": 3,
                  "step_size_down": 5, "mode": "triangular2", "base_momentum": [0.7, 0.75]}),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.2, "step_size_up": 2, "mode": "exp_range",
                  "gamma": 0.95, "cycle_momentum": False}),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.2, "step_size_up": 3,
                  "scale_fn": lambda x: 1 / (1 + x), "scale_mode": "iterations"}),
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


CLOSED_FORMS = SCHEDULERS[:4] + SCHEDULERS[5:7] + [("PolynomialLR",
                                                    {"total_iters": 6, "power": 2.0})]


@pytest.mark.parametrize("name, kwargs", CLOSED_FORMS, ids=[n for n, _ in CLOSED_FORMS])
def test_step_with_an_epoch_uses_the_closed_form(name, kwargs):
    opt, topt = optimizers()
    ours = getattr(lr_scheduler, name)(opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    for epoch in (4, 11, 2, 7):
        ours.step(epoch)
        with pytest.warns(UserWarning):
            theirs.step(epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)


def test_step_with_an_epoch_restarts_the_cosine_where_torch_does():
    opt, topt = optimizers()
    ours = lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=3, T_mult=2)
    for epoch in (0.5, 4, 9.25, 2, 30, 21.5):
        ours.step(epoch)
        theirs.step(epoch)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert (ours.T_cur, ours.T_i, ours.last_epoch) == (theirs.T_cur, theirs.T_i,
                                                           theirs.last_epoch)


def test_chained_schedulers_compose_and_save_their_state():
    opt, topt = optimizers()
    chain = [(lr_scheduler.ConstantLR(opt, factor=0.5, total_iters=3),
              torch.optim.lr_scheduler.ConstantLR(topt, factor=0.5, total_iters=3)),
             (lr_scheduler.ExponentialLR(opt, gamma=0.9),
              torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.9)),
             (lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4),
              torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=4))]
    ours = lr_scheduler.ChainedScheduler([a for a, _ in chain])
    theirs = torch.optim.lr_scheduler.ChainedScheduler([b for _, b in chain])
    for epoch in range(12):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert_same_groups(opt, topt, epoch)
        topt.step()
        ours.step()
        theirs.step()
    saved = ours.state_dict()
    assert [s["last_epoch"] for s in saved["_schedulers"]] == [12, 12, 12]
    ours.step()
    ours.load_state_dict(saved)
    assert chain[0][0].last_epoch == 12


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
    (lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=0), DlgValueError,
     "positive integer T_0"),
    (lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=1.5), DlgValueError,
     "integer T_mult >= 1"),
    (lambda o: lr_scheduler.CyclicLR(o, 0.1, 1.0, mode="cosine"), DlgValueError,
     "mode must be one of"),
    (lambda o: lr_scheduler.CyclicLR(dlg.optim.Adagrad(o.param_groups[0]["params"]), 0.1, 1.0),
     DlgValueError, "must support momentum or beta1"),
    (lambda o: lr_scheduler.CyclicLR(o, [0.1], 1.0), DlgValueError, "expected 2 values"),
    (lambda o: lr_scheduler.ChainedScheduler([]), DlgValueError, "at least one scheduler"),
    (lambda o: lr_scheduler.ChainedScheduler([lr_scheduler.ReduceLROnPlateau(o)]),
     DlgValueError, "not ReduceLROnPlateau"),
])
def test_errors(make, error, message):
    opt, _ = optimizers()
    with pytest.raises(error, match=message):
        make(opt)


@pytest.mark.parametrize("name", ["SGD", "Adam", "Rprop", "ASGD", "Adafactor"])
def test_a_moving_lr_keeps_the_update_graph_and_matches_torch(name):
    """lr is fed to the update graph, so a scheduler moving it every step reuses the graph (it
    was rebuilt at each step: 3x slower eager training); the parameters still follow torch's,
    lr-started state (Rprop's step sizes, ASGD's eta) included."""
    start = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    weights = {}
    for lib in (dlg, torch):
        w = lib.tensor(start.copy(), requires_grad=True)
        opt = getattr(lib.optim, name)([w], lr=0.05)
        sched = lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
        graphs = set()
        for _ in range(6):
            opt.zero_grad()
            ((w * w).sum() + w.sum()).backward()
            opt.step()
            sched.step()
            if lib is dlg:
                graphs |= {id(u.graph) for u in opt._graphs.values()}
        assert lib is torch or len(graphs) == 1
        weights[lib.__name__] = w.detach().numpy()
    np.testing.assert_allclose(weights["dlg"], weights["torch"], rtol=1e-5, atol=1e-6)
