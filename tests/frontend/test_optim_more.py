"""Rprop, ASGD, Adafactor (update graphs whose torch loops read numbers back: step counts, norms)
and LBFGS (eager) against torch.optim on the same problem: parameters, state and state_dict
after several steps, two parameter groups with their own options, parameters missing a gradient
on some steps, a torch state_dict loaded to resume, a small network trained eagerly and as a
traced, compiled training step, LBFGS's fixed step and strong-Wolfe line search; and errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.errors import DlgAttributeError, DlgError, DlgTypeError, DlgValueError
from tests.frontend import test_optim_torch as optim_torch

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 3, 4)]
# (optimizer, defaults, options of a second group holding the last parameter)
CASES = [
    ("Rprop", {}, {"lr": 0.05}),
    ("Rprop", {"lr": 0.1, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2)}, {"maximize": True}),
    ("ASGD", {}, {"lr": 0.05, "lambd": 0.01}),
    ("ASGD", {"lr": 0.05, "t0": 3, "weight_decay": 0.1}, {"alpha": 0.5, "maximize": True}),
    ("Adafactor", {}, {"lr": 0.05}),
    ("Adafactor", {"lr": 0.05, "weight_decay": 0.1, "eps": (1e-20, 1e-3), "d": 1.5},
     {"beta2_decay": -0.5, "maximize": True}),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def make_pair(rng, name, defaults, second):
    return optim_torch.make_pair(rng, name, defaults, second, SHAPES)


def step_both(rng, ours, opt, theirs, topt, steps, skip_from=3):
    """Steps with the same random gradients; the first parameter has none from `skip_from` on
    every other step."""
    for k in range(steps):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            if i == 0 and k >= skip_from and k % 2:
                p.grad, t.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, t.grad = dlg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()


def assert_same(ours, opt, theirs, topt):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    mine, torchs = opt.state_dict(), topt.state_dict()
    assert mine["state"].keys() == torchs["state"].keys()
    for i, entries in torchs["state"].items():
        assert mine["state"][i].keys() == entries.keys()
        for key, value in entries.items():
            np.testing.assert_allclose(np.asarray(mine["state"][i][key].numpy()),
                                       value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name, defaults, second", CASES, ids=IDS)
def test_steps_match_torch(name, defaults, second):
    rng = np.random.default_rng(0)
    ours, opt, theirs, topt = make_pair(rng, name, defaults, second)
    step_both(rng, ours, opt, theirs, topt, 8)
    assert_same(ours, opt, theirs, topt)
    for group, tgroup in zip(opt.param_groups, topt.param_groups):
        assert {k: v for k, v in group.items() if k != "params"}.items() <= tgroup.items()


@pytest.mark.parametrize("name, defaults, second", CASES[::2], ids=IDS[::2])
def test_a_torch_state_dict_resumes(name, defaults, second):
    rng = np.random.default_rng(1)
    ours, opt, theirs, topt = make_pair(rng, name, defaults, second)
    step_both(rng, ours, opt, theirs, topt, 3, skip_from=9)
    fresh = getattr(dlg.optim, name)([{"params": ours[:2]}, {"params": ours[2:], **second}],
                                     **defaults)
    fresh.load_state_dict(topt.state_dict())
    step_both(rng, ours, fresh, theirs, topt, 3, skip_from=9)
    assert_same(ours, fresh, theirs, topt)


# ---- a small network -----------------------------------------------------------------------------
def small_network():
    """A Linear-Tanh-Linear regression in dlg and torch with the same weights, and its data."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 2))).astype(np.float32)
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    ours = dlg.nn.Sequential(dlg.nn.Linear(5, 4), dlg.nn.Tanh(), dlg.nn.Linear(4, 2))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs, x, y


def torch_steps(theirs, topt, x, y, steps):
    for _ in range(steps):
        topt.zero_grad()
        torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        topt.step()


def assert_same_network(ours, theirs):
    for (name, p), t in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=name)


NETWORK_CASES = [("Rprop", {}), ("Rprop", {"etas": (0.4, 1.3), "maximize": True}),
                 ("ASGD", {"lr": 0.05, "t0": 2, "weight_decay": 0.1}),
                 ("ASGD", {"lr": 0.05, "lambd": 0.01, "maximize": True}),
                 ("Adafactor", {"weight_decay": 0.1}),
                 ("Adafactor", {"lr": 0.05, "eps": (1e-20, 1e-3), "d": 1.5, "maximize": True})]
NETWORK_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(NETWORK_CASES)]


@pytest.mark.parametrize("name, options", NETWORK_CASES, ids=NETWORK_IDS)
def test_a_small_network_trains_like_torch(name, options):
    ours, theirs, x, y = small_network()
    kernels = {"foreach": False, "capturable": False, "differentiable": False}  # torch's
    if name == "Adafactor":  # torch's Adafactor takes foreach alone
        kernels = {"foreach": False}
    opt = getattr(dlg.optim, name)(ours.parameters(), **kernels, **options)  # kernel options
    for _ in range(6):
        opt.zero_grad()
        dlg.nn.functional.mse_loss(ours(dlg.tensor(x)), dlg.tensor(y)).backward()
        opt.step()
    torch_steps(theirs, getattr(torch.optim, name)(theirs.parameters(), **options), x, y, 6)
    assert_same_network(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta",
                                  "Adamax", "NAdam", "RAdam", "ASGD", "Rprop", "Adafactor"])
def test_signature_and_param_groups_are_torchs(name):
    """What users read off an optimizer: inspect.signature (train_gpt2.py probes it for
    'fused'), param_groups with torch's keys (foreach, fused, capturable, ...) in torch's
    order, values and all, for the constructor's group and one added with its own options, and
    what print(optimizer) shows."""
    import inspect

    theirs = getattr(torch.optim, name)
    sig, their_sig = inspect.signature(getattr(dlg.optim, name)), inspect.signature(theirs)
    assert [(p.name, p.kind, repr(p.default)) for p in sig.parameters.values()] == [
        (p.name, p.kind, repr(p.default)) for p in their_sig.parameters.values()]
    ours = getattr(dlg.optim, name)([dlg.zeros(2, requires_grad=True)], lr=0.1, foreach=False)
    opt = theirs([torch.zeros(2, requires_grad=True)], lr=0.1, foreach=False)
    ours.add_param_group({"params": [dlg.zeros(1, requires_grad=True)], "lr": 0.5,
                          "weight_decay": 0.25})
    opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "lr": 0.5,
                         "weight_decay": 0.25})
    for group, their_group in zip(ours.param_groups, opt.param_groups):
        assert [k for k in group] == [k for k in their_group]
        assert {k: v for k, v in group.items() if k != "params"} == {
            k: v for k, v in their_group.items() if k != "params"}
    assert repr(ours) == repr(opt)  # print(optimizer), a blank line between the groups


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "Adagrad"])
def test_fused_is_torchs_choice_of_kernels(name):
    """fused=True (torch's CPU kernels for these four since 2.4; nanoGPT passes it) steps as
    the unfused optimizer: accepted, same numbers."""
    ours, theirs, x, y = small_network()
    options = {"lr": 0.05, "fused": True}
    opt = getattr(dlg.optim, name)(ours.parameters(), **options)
    for _ in range(3):
        opt.zero_grad()
        dlg.nn.functional.mse_loss(ours(dlg.tensor(x)), dlg.tensor(y)).backward()
        opt.step()
    torch_steps(theirs, getattr(torch.optim, name)(theirs.parameters(), **options), x, y, 3)
    assert_same_network(ours, theirs)


@pytest.mark.parametrize("name, options", NETWORK_CASES, ids=NETWORK_IDS)
def test_a_traced_compiled_training_step_trains_like_torch(name, options):
    """The optimizer's update graph inside a traced training step, compiled natively."""
    ours, theirs, x, y = small_network()
    opt = getattr(dlg.optim, name)(ours.parameters(), **options)
    step = dlg.trace_train(ours, dlg.nn.functional.mse_loss, opt, x, y).train_step(
        compiled=True)
    for _ in range(6):
        step(x=x, y=y)
    torch_steps(theirs, getattr(torch.optim, name)(theirs.parameters(), **options), x, y, 6)
    assert_same_network(ours, theirs)


# ---- LBFGS on a small network ------------------------------------------------------------------
def lbfgs_pair(**options):
    """The small network with an LBFGS over each copy, and the closures re-evaluating them."""
    ours, theirs, x, y = small_network()
    opt = dlg.optim.LBFGS(ours.parameters(), **options)
    topt = torch.optim.LBFGS(theirs.parameters(), **options)

    def closure():
        opt.zero_grad()
        loss = dlg.nn.functional.mse_loss(ours(dlg.tensor(x)), dlg.tensor(y))
        loss.backward()
        return loss

    def torch_closure():
        topt.zero_grad()
        loss = torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        return loss
    return ours, opt, closure, theirs, topt, torch_closure


@pytest.mark.parametrize("options", [
    {"lr": 0.5, "max_iter": 5},
    {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 6},
    {"line_search_fn": "strong_wolfe", "max_iter": 30, "max_eval": 12, "tolerance_change": 1e-5},
    {"line_search_fn": "strong_wolfe", "lr": 10, "max_iter": 8},
], ids=["fixed-step", "strong-wolfe-short-history", "strong-wolfe-max-eval", "strong-wolfe-lr"])
def test_lbfgs_matches_torch(options):
    ours, opt, closure, theirs, topt, torch_closure = lbfgs_pair(**options)
    for _ in range(2):  # float32 rounding apart, later iterations drift (1e-5 by the third)
        loss, their_loss = opt.step(closure), topt.step(torch_closure)
        assert float(loss) == pytest.approx(their_loss.item(), rel=1e-5)
    for p, t in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
    state = opt.state[next(iter(ours.parameters()))]
    their_state = topt.state[next(iter(theirs.parameters()))]
    assert (state["func_evals"], state["n_iter"]) == (their_state["func_evals"],
                                                       their_state["n_iter"])
    assert len(state["old_dirs"]) == len(their_state["old_dirs"])


def rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


@pytest.mark.parametrize("lr", [0.01, 5.0], ids=["extrapolates", "zooms"])
def test_lbfgs_line_search_on_rosenbrock_matches_torch(lr):
    """A first trial step far too short (the line search extrapolates) or too long (it zooms
    into a bracket), on a curved valley."""
    start = np.float32([-1.5, 2.0, -0.5, 1.2])
    x, xt = dlg.tensor(start, requires_grad=True), torch.tensor(start, requires_grad=True)
    opt = dlg.optim.LBFGS([x], lr=lr, max_iter=8, line_search_fn="strong_wolfe")
    topt = torch.optim.LBFGS([xt], lr=lr, max_iter=8, line_search_fn="strong_wolfe")

    def closure(opt, x):
        opt.zero_grad()
        loss = rosenbrock(x)
        loss.backward()
        return loss
    opt.step(lambda: closure(opt, x))
    topt.step(lambda: closure(topt, xt))
    np.testing.assert_allclose(x.detach().numpy(), xt.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert opt.state[x]["func_evals"] == topt.state[xt]["func_evals"]


def test_lbfgs_resumes_from_torchs_state_dict():
    ours, opt, closure, theirs, topt, torch_closure = lbfgs_pair(history_size=4, max_iter=4)
    topt.step(torch_closure)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    opt.load_state_dict(topt.state_dict())
    for _ in range(2):
        opt.step(closure)
        topt.step(torch_closure)
    for p, t in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_lbfgs_is_refused_by_a_traced_training_step():
    model = dlg.nn.Linear(3, 1)
    x, y = np.ones((2, 3), np.float32), np.ones((2, 1), np.float32)
    with pytest.raises(DlgValueError, match="LBFGS runs eagerly only"):
        dlg.trace_train(model, dlg.nn.functional.mse_loss, dlg.optim.LBFGS(model.parameters()),
                        x, y)


@pytest.mark.parametrize("make, error, message", [
    (lambda ps: dlg.optim.Rprop(ps, etas=(1.5, 2.0)), DlgTypeError,
     r"bad value \(1.5, 2.0\) for etas \(it takes \(etaminus, etaplus\) with 0 < etaminus"),
    (lambda ps: dlg.optim.Rprop(ps, step_sizes=(1e-6,)), DlgTypeError, "for step_sizes"),
    (lambda ps: dlg.optim.Rprop(ps, momentum=0.9), DlgAttributeError,
     "Rprop: unknown hyper-parameter 'momentum'"),
    (lambda ps: dlg.optim.Rprop(ps, foreach="yes"), DlgTypeError, "foreach is None, True or"),
    (lambda ps: dlg.optim.ASGD(ps, weight_decay=-1), DlgTypeError, "bad value -1 for weight_d"),
    (lambda ps: dlg.optim.ASGD(ps, capturable=True), DlgValueError,
     "capturable=True .* needs CUDA parameters"),
    (lambda ps: dlg.optim.Adam(ps, differentiable=True), DlgValueError,
     r"differentiable=True \(autograd through the optimizer's step\) is not supported"),
    (lambda ps: dlg.optim.AdamW(ps, fused="yes"), DlgTypeError, "fused is None, True or"),
    (lambda ps: dlg.optim.RMSprop(ps, fused=True), DlgTypeError,
     "RMSprop has no option 'fused' \\(torch's takes foreach, capturable, differentiable\\)"),
    (lambda ps: dlg.optim.AdamW(ps, fused=True, foreach=True), DlgValueError,
     "`fused` and `foreach` cannot be `True` together"),
    (lambda ps: dlg.optim.SGD([{"params": ps, "capturable": False}]), DlgTypeError,
     "SGD has no option 'capturable'"),
    (lambda ps: dlg.optim.Adafactor(ps, d=0.5), DlgTypeError, "threshold >= 1"),
    (lambda ps: dlg.optim.Adafactor(ps, beta2_decay=0.5), DlgTypeError, "a number <= 0"),
    (lambda ps: dlg.optim.Adafactor(ps, eps=(-1.0, 1e-3)), DlgTypeError, "bad value .* for eps"),
    (lambda ps: dlg.optim.Adafactor(ps, lr=-1.0), DlgTypeError, "bad value -1.0 for lr"),
    (lambda ps: dlg.optim.LBFGS(ps, lr=-1.0), DlgValueError, "Invalid learning rate"),
    (lambda ps: dlg.optim.LBFGS([{"params": ps[:1]}, {"params": ps[1:]}]), DlgValueError,
     "doesn't support per-parameter options"),
    (lambda ps: dlg.optim.LBFGS(ps, line_search_fn="armijo"), DlgValueError,
     "only 'strong_wolfe' is supported"),
])
def test_errors(make, error, message):
    params = [dlg.tensor(np.ones(2, np.float32), requires_grad=True) for _ in range(2)]
    with pytest.raises(error, match=message):
        make(params)
    assert issubclass(error, DlgError)


def _step_hook_log(lib) -> list:
    log = []
    p = lib.nn.Parameter(lib.ones(2))
    opt = lib.optim.SGD([p], lr=0.1)
    h1 = opt.register_step_pre_hook(lambda o, a, k: log.append(("pre", p.tolist())))
    h2 = opt.register_step_post_hook(
        lambda o, a, k: log.append(("post", [round(v, 4) for v in p.tolist()])))
    p.grad = lib.ones(2)
    opt.step()
    h1.remove()
    opt.step()
    h2.remove()
    opt.step()
    q = lib.nn.Parameter(lib.ones(2))
    lbfgs = lib.optim.LBFGS([q], max_iter=2)
    lbfgs.register_step_post_hook(lambda o, a, k: log.append("lbfgs"))

    def closure():
        lbfgs.zero_grad()
        loss = (q ** 2).sum()
        loss.backward()
        return loss

    lbfgs.register_step_pre_hook(lambda o, a, k: ((a[0], closure), {}))
    lbfgs.step(None)  # the pre-hook gives the closure
    log.append([round(v, 4) for v in q.tolist()])
    return log


def test_step_pre_and_post_hooks_as_torch():
    """Optimizer.register_step_pre_hook / register_step_post_hook (torch's; dlg had neither):
    run around each step, removable, once per step (LBFGS's own step too); a pre-hook may
    replace the step's arguments."""
    assert _step_hook_log(dlg) == _step_hook_log(torch)


@pytest.mark.parametrize("name, args", [("SGD", (0.1, 0.9, 0.0, 1e-4, True)),
                                        ("Adam", (1e-2, (0.8, 0.9), 1e-6, 1e-3, True)),
                                        ("AdamW", (1e-2,)), ("RMSprop", (1e-2, 0.9)),
                                        ("Adagrad", (0.1, 0.01)), ("Adadelta", (0.5, 0.8))])
def test_options_positionally_as_torch(name, args):
    """fast_neural_style's `Adam(transformer.parameters(), args.lr)`: the options after params
    are torch's positional parameters (dlg took keywords alone: 'takes 2 positional arguments')."""
    ours = getattr(dlg.optim, name)([dlg.nn.Parameter(dlg.ones(2))], *args)
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], *args)
    want = {k: v for k, v in theirs.param_groups[0].items() if k != "params"}
    got = ours.param_groups[0]
    assert all(got[k] == want[k] for k in want if k in got)
    with pytest.raises(DlgTypeError, match="multiple values for argument 'lr'"):
        getattr(dlg.optim, name)([dlg.nn.Parameter(dlg.ones(2))], 0.1, lr=0.2)
