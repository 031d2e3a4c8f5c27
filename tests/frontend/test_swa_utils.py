"""dlg.optim.swa_utils against torch.optim.swa_utils: AveragedModel's running average (default,
EMA avg_fn, use_buffers) over the same training, SWALR's learning rates for both strategies,
update_bn's recomputed BatchNorm statistics, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.optim import swa_utils

torch = pytest.importorskip("torch")
from torch.optim import swa_utils as tswa  # noqa: E402


def twins(seed: int = 0):
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                 torch.nn.ReLU(), torch.nn.Linear(4, 2))
    ours = dlg.nn.Sequential(dlg.nn.Linear(3, 4), dlg.nn.BatchNorm1d(4), dlg.nn.ReLU(),
                             dlg.nn.Linear(4, 2))
    ours.load_state_dict({k: dlg.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def batches(n: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((6, 3)).astype(np.float32) for _ in range(n)]


def same_state(ours, theirs, rtol=1e-5):
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for k in b:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=rtol, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("ema", [False, True])
@pytest.mark.parametrize("use_buffers", [False, True])
def test_averaged_model_matches_torch(ema, use_buffers):
    ours, theirs = twins()
    kw = {"use_buffers": use_buffers}
    avg_o = swa_utils.AveragedModel(ours, avg_fn=swa_utils.get_ema_avg_fn(0.9) if ema else None,
                                    **kw)
    avg_t = tswa.AveragedModel(theirs, avg_fn=tswa.get_ema_avg_fn(0.9) if ema else None, **kw)
    opt_o = dlg.optim.SGD(ours.parameters(), lr=0.1)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for x in batches():
        for m, opt, t in ((ours, opt_o, dlg.tensor(x)), (theirs, opt_t, torch.tensor(x))):
            opt.zero_grad()
            (m(t) ** 2).mean().backward()
            opt.step()
        avg_o.update_parameters(ours)
        avg_t.update_parameters(theirs)
    same_state(avg_o, avg_t)
    x = batches(1, 9)[0]
    avg_o.eval(), avg_t.eval()
    np.testing.assert_allclose(avg_o(dlg.tensor(x)).detach().numpy(),
                               avg_t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_update_bn_matches_torch():
    ours, theirs = twins(1)
    data = batches(5, 3)
    swa_utils.update_bn([(dlg.tensor(x), 0) for x in data], ours)
    tswa.update_bn([(torch.tensor(x), 0) for x in data], theirs)
    same_state(ours, theirs)
    assert ours[1].momentum == 0.1 and ours.training


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 1, 3])
def test_swalr_matches_torch(strategy, anneal_epochs):
    lrs = []
    for m in (dlg, torch):
        opt = m.optim.SGD([m.zeros(2, requires_grad=True)], lr=0.5)
        opt.add_param_group({"params": [m.zeros(1, requires_grad=True)], "lr": 0.2})
        swa = (swa_utils if m is dlg else tswa).SWALR(opt, swa_lr=[0.05, 0.01],
                                                      anneal_epochs=anneal_epochs,
                                                      anneal_strategy=strategy)
        seen = []
        for _ in range(6):
            opt.step()
            swa.step()
            seen.append(swa.get_last_lr())
        lrs.append(seen)
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda: swa_utils.SWALR(dlg.optim.SGD([dlg.zeros(1, requires_grad=True)], lr=1), 0.1,
                            anneal_strategy="exp"),
    lambda: swa_utils.SWALR(dlg.optim.SGD([dlg.zeros(1, requires_grad=True)], lr=1), 0.1,
                            anneal_epochs=-1),
    lambda: swa_utils.AveragedModel(dlg.nn.Linear(2, 2), device="cuda"),
])
def test_bad_arguments(call):
    with pytest.raises(dlg.DlgValueError):
        call()
