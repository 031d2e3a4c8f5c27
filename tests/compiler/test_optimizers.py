"""Optimizers as graph updates, step for step against torch.optim with identical gradients (fed
as graph inputs, so no autodiff is involved), and learning-rate schedules against
torch.optim.lr_scheduler."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.compiler.optimizers import apply_optimizer
from dlg.errors import DlgAttributeError, DlgTypeError
from dlg.ir import Builder, Graph, TensorType
from dlg.ir.train_spec import make_optimizer, make_schedule, scheduled_lr
from dlg.runtime.interp import Interpreter

SHAPES = {"w": (3, 4), "b": (4,)}

CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "betas": (0.8, 0.9)}),
    ("Adam", {"lr": 0.01, "betas": (0.9, 0.9999)}),  # 1 - 0.9999 needs the f64 corrections
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.5, "centered": True}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "maximize": True}),
    ("Adam", {"lr": 0.01, "maximize": True, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RMSprop", {"lr": 0.01, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1}),
    ("Adadelta", {"maximize": True}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.2, "eps": 1e-8}),
    ("Adagrad", {"maximize": True}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "momentum_decay": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True,
               "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.1}),  # rectified from step 6
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True,
               "maximize": True}),
    ("Rprop", {}),
    ("Rprop", {"lr": 0.1, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2), "maximize": True}),
    ("ASGD", {}),
    ("ASGD", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 2, "weight_decay": 0.1}),
    ("ASGD", {"lr": 0.05, "t0": 0, "maximize": True}),
    ("Adafactor", {}),
    ("Adafactor", {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-20, 1e-3), "d": 1.5,
                   "weight_decay": 0.1}),
    ("Adafactor", {"lr": 0.3, "weight_decay": 0.05, "maximize": True}),  # lr above 1/sqrt(step)
]


STEPS = 8  # RAdam rectifies its step from step 6 on


def optimizer_graph(name: str, hyper: dict, with_grad: tuple[str, ...] = ("w", "b")):
    g = Graph("opt")
    b = Builder(g)
    params = {k: b.param(k, TensorType.parse(f"f32{list(s)}")) for k, s in SHAPES.items()}
    grads = {k: b.input(f"g_{k}", TensorType.parse(f"f32{list(SHAPES[k])}")) for k in with_grad}
    state = apply_optimizer(b, make_optimizer(name, hyper), params, grads)
    return g, state


@pytest.mark.parametrize("name, hyper", CASES, ids=[f"{n}-{'-'.join(h)}" for n, h in CASES])
def test_steps_match_torch_optim(name, hyper):
    torch = pytest.importorskip("torch")
    g, state = optimizer_graph(name, hyper)
    rng = np.random.default_rng(0)
    values = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    values.update(state.initial)
    tensors = {k: torch.tensor(values[k], requires_grad=True) for k in SHAPES}
    opt = getattr(torch.optim, name)(list(tensors.values()), **hyper)
    interp = Interpreter()
    lr = make_optimizer(name, hyper).hyper["lr"]
    for step in range(STEPS):
        if step == 3:  # a schedule changes the learning rate between steps
            values["optimizer.lr"] = np.float32(lr / 2)
            for group in opt.param_groups:
                group["lr"] = lr / 2
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
        _, updates = interp.run(g, {f"g_{k}": v for k, v in grads.items()}, values)
        values.update(updates)
        for k, t in tensors.items():
            t.grad = torch.from_numpy(grads[k])
        opt.step()
        for k, t in tensors.items():
            np.testing.assert_allclose(values[k], t.detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{k} after step {step + 1}")
    assert float(values["optimizer.step"]) == STEPS


def test_state_names_follow_torch():
    _, state = optimizer_graph("Adam", {"lr": 0.01, "amsgrad": True})
    assert sorted(state.initial) == sorted([
        "optimizer.step", "optimizer.lr",
        *(f"optimizer.{p}.{s}" for p in SHAPES for s in ("exp_avg", "exp_avg_sq",
                                                          "max_exp_avg_sq"))])
    assert float(state.initial["optimizer.lr"]) == pytest.approx(0.01)


def test_params_without_gradient_are_left_alone():
    g, state = optimizer_graph("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
                               with_grad=("w",))
    assert "b" not in dict(g.updates) and "optimizer.b.momentum_buffer" not in state.initial
    values = {"w": np.ones((3, 4), np.float32), "b": np.ones(4, np.float32), **state.initial}
    _, updates = Interpreter().run(g, {"g_w": np.ones((3, 4), np.float32)}, values)
    assert "b" not in updates and not np.array_equal(updates["w"], values["w"])


TINY = """model M { input x: f32[N, 3] layer fc = Linear(3, 2) output y = fc(tanh(x)) }
train M { input t: f32[N, 2] loss = mse_loss(y, t) optimizer = %s }"""


@pytest.mark.parametrize("optimizer", [
    "Adadelta(lr=1.0, weight_decay=0.01)", "Adagrad(lr=0.1, lr_decay=0.01)",
    "Adamax(lr=0.01, maximize=false)", "NAdam(lr=0.01, weight_decay=0.01)",
    "RAdam(lr=0.01, decoupled_weight_decay=true, weight_decay=0.1)"])
def test_compiled_training_steps_match_the_interpreter(optimizer):
    """Each rule in a .dlg train section, compiled natively, against the interpreter."""
    params = {}
    for compiled in (False, True):
        m = dlg.loads(TINY % optimizer)
        m.load_state_dict({"fc.weight": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
                           "fc.bias": np.array([0.1, -0.2], np.float32)})
        step = m.train_step(compiled=compiled)
        rng = np.random.default_rng(0)
        for _ in range(7):  # RAdam's rectified update starts at step 6
            step(x=rng.standard_normal((4, 3)).astype(np.float32),
                 t=rng.standard_normal((4, 2)).astype(np.float32))
        params[compiled] = {k: v.copy() for k, v in m.params.items()}
    assert not np.allclose(params[False]["fc.weight"], np.linspace(-1, 1, 6).reshape(2, 3))
    for k, v in params[False].items():
        np.testing.assert_allclose(params[True][k], v, rtol=1e-5, atol=1e-6, err_msg=k)


# (a train section's optimizer, torch.optim's): the rules torch's steps read numbers back for
TRAINED_LIKE_TORCH = [
    ("Rprop(lr=0.05)", "Rprop", {"lr": 0.05}),
    ("Rprop(etas=(0.3, 1.5), step_sizes=(0.001, 0.2), maximize=true)", "Rprop",
     {"etas": (0.3, 1.5), "step_sizes": (0.001, 0.2), "maximize": True}),
    ("ASGD(lr=0.05, t0=2, weight_decay=0.1)", "ASGD", {"lr": 0.05, "t0": 2, "weight_decay": 0.1}),
    ("ASGD(lr=0.05, lambd=0.01, alpha=0.5, t0=0, maximize=true)", "ASGD",
     {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 0, "maximize": True}),
    ("Adafactor(lr=0.05, weight_decay=0.1)", "Adafactor", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adafactor(eps=(none, 0.01), d=1.5, beta2_decay=-0.5, maximize=true)", "Adafactor",
     {"eps": (None, 0.01), "d": 1.5, "beta2_decay": -0.5, "maximize": True}),
]


@pytest.mark.parametrize("optimizer, name, hyper", TRAINED_LIKE_TORCH,
                         ids=[o for o, _, _ in TRAINED_LIKE_TORCH])
def test_compiled_train_sections_match_torch(optimizer, name, hyper):
    """A .dlg train section's step compiled natively, against the same model trained by
    torch.optim: parameters after several steps."""
    torch = pytest.importorskip("torch")
    weight = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    bias = np.array([0.1, -0.2], np.float32)
    m = dlg.loads(TINY % optimizer)
    m.load_state_dict({"fc.weight": weight, "fc.bias": bias})
    step = m.train_step(compiled=True)
    fc = torch.nn.Linear(3, 2)
    fc.load_state_dict({"weight": torch.tensor(weight), "bias": torch.tensor(bias)})
    opt = getattr(torch.optim, name)(fc.parameters(), **hyper)
    rng = np.random.default_rng(0)
    for _ in range(6):
        x = rng.standard_normal((4, 3)).astype(np.float32)
        t = rng.standard_normal((4, 2)).astype(np.float32)
        step(x=x, t=t)
        opt.zero_grad()
        torch.nn.functional.mse_loss(fc(torch.tanh(torch.tensor(x))), torch.tensor(t)).backward()
        opt.step()
    assert not np.allclose(m.params["fc.weight"], weight)
    for k, v in fc.state_dict().items():
        np.testing.assert_allclose(m.params[f"fc.{k}"], v.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


# ---- schedules --------------------------------------------------------------------------------
SCHEDULES = [("StepLR", {"step_size": 3, "gamma": 0.5}),
             ("MultiStepLR", {"milestones": (2, 5, 9), "gamma": 0.3}),
             ("ExponentialLR", {"gamma": 0.9}),
             ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001})]


@pytest.mark.parametrize("name, hyper", SCHEDULES, ids=[n for n, _ in SCHEDULES])
def test_schedules_match_torch(name, hyper):
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in hyper.items()}
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    spec = make_schedule(name, hyper)
    for epoch in range(30):
        assert scheduled_lr(spec, 0.1, epoch) == pytest.approx(opt.param_groups[0]["lr"],
                                                               rel=1e-9, abs=1e-12), epoch
        opt.step()
        sched.step()


def test_schedule_in_a_train_section():
    m = dlg.loads("model M { input x: f32[N, 2] layer fc = Linear(2, 1) output y = fc(x) }\n"
                  "train M { input t: f32[N, 1] loss = mse_loss(y, t) optimizer = SGD(lr=0.1)\n"
                  "          schedule = StepLR(step_size=2, gamma=0.5) }")
    assert str(m.train_spec.schedule) == "StepLR(step_size=2, gamma=0.5)"
    m.fit(np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32), epochs=3, verbose=0)
    assert m._fit_step.lr == pytest.approx(0.05)


@pytest.mark.parametrize("call, error, message", [
    ("StepLR(gamma=0.5)", DlgAttributeError, "StepLR: step_size= is required"),
    ("StepLR(step_size=2, gama=0.5)", DlgAttributeError, "unknown hyper-parameter 'gama'"),
    ("StepLR(step_size=0)", DlgTypeError, "bad value 0 for step_size"),
    ("MultiStepLR(milestones=(5, 2))", DlgTypeError, "bad value"),
])
def test_schedule_errors(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        dlg.loads("model M { input x: f32[N, 2] layer fc = Linear(2, 1) output y = fc(x) }\n"
                  f"train M {{ input t: f32[N, 1] loss = mse_loss(y, t) optimizer = SGD(lr=0.1)"
                  f"\n schedule = {call} }}")
