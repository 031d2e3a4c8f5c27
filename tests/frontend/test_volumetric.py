"""The 3-d layers (Conv3d, ConvTranspose3d, MaxPool3d, AvgPool3d, LPPool3d, the adaptive 3-d
pools, BatchNorm3d, InstanceNorm3d) and their F.* functions against torch: outputs and the
gradients of inputs and parameters, running statistics, reprs; a traced 3-d network compiled
against eager and its compiled training step against the interpreter's and torch's; bad input
as DlgErrors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.errors import DlgError
from tests.frontend.test_modules_more import compiled_matches_eager
from tests.frontend.test_modules_torch import assert_close, check, f, pair

torch = pytest.importorskip("torch")
F = nn.functional

MODULES = [
    ("Conv3d", lambda ns: ns.Conv3d(2, 4, 3, padding=1), [f(2, 2, 4, 5, 3)]),
    ("Conv3d(stride, dilation, groups)",
     lambda ns: ns.Conv3d(4, 6, (2, 1, 3), stride=(2, 1, 3), padding=(1, 0, 2),
                          dilation=(2, 1, 1), groups=2), [f(2, 4, 5, 1, 7)]),
    ("Conv3d(stride > kernel, no bias)", lambda ns: ns.Conv3d(3, 2, 1, stride=3, bias=False),
     [f(1, 3, 7, 4, 5)]),
    ("Conv3d(same, replicate)", lambda ns: ns.Conv3d(2, 3, (3, 2, 1), padding="same",
                                                     padding_mode="replicate"),
     [f(2, 2, 3, 4, 5)]),
    ("Conv3d(unbatched)", lambda ns: ns.Conv3d(2, 3, 2), [f(2, 3, 3, 3)]),
    ("ConvTranspose3d", lambda ns: ns.ConvTranspose3d(3, 2, 3, stride=2, padding=1,
                                                      output_padding=1), [f(2, 3, 2, 3, 1)]),
    ("ConvTranspose3d(groups, dilation)",
     lambda ns: ns.ConvTranspose3d(4, 2, (2, 1, 2), stride=(1, 3, 2), groups=2,
                                   dilation=(2, 1, 1), output_padding=(0, 2, 1), bias=False),
     [f(1, 4, 3, 2, 3)]),
    ("MaxPool3d", lambda ns: ns.MaxPool3d(2), [f(2, 3, 4, 5, 6)]),
    ("MaxPool3d(padding, dilation, ceil)",
     lambda ns: ns.MaxPool3d((3, 1, 2), (2, 1, 3), (1, 0, 1), dilation=(1, 1, 2), ceil_mode=True),
     [f(2, 2, 7, 1, 8)]),
    ("MaxPool3d(stride > kernel, unbatched)", lambda ns: ns.MaxPool3d(1, 3), [f(2, 5, 4, 7)]),
    ("AvgPool3d", lambda ns: ns.AvgPool3d(2, 1), [f(2, 3, 3, 4, 5)]),
    ("AvgPool3d(ceil, no pad count)",
     lambda ns: ns.AvgPool3d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     [f(1, 2, 5, 6, 4)]),
    ("LPPool3d", lambda ns: ns.LPPool3d(2, 2), [f(2, 3, 4, 5, 4)]),
    ("LPPool3d(float p, stride, ceil)", lambda ns: ns.LPPool3d(1.5, (2, 3, 2), 2, True),
     [np.abs(f(1, 2, 5, 6, 3)) + 0.1]),
    ("AdaptiveAvgPool3d(even)", lambda ns: ns.AdaptiveAvgPool3d((2, 1, 3)), [f(2, 3, 4, 5, 6)]),
    ("AdaptiveAvgPool3d(uneven, None)", lambda ns: ns.AdaptiveAvgPool3d((3, None, 2)),
     [f(2, 2, 5, 3, 7)]),
    ("AdaptiveMaxPool3d", lambda ns: ns.AdaptiveMaxPool3d(2), [f(2, 2, 5, 3, 4)]),
    ("BatchNorm3d", lambda ns: ns.BatchNorm3d(3), [f(4, 3, 2, 3, 1)]),
    ("BatchNorm3d(momentum=None, no affine)",
     lambda ns: ns.BatchNorm3d(2, momentum=None, affine=False), [f(2, 2, 3, 1, 4)]),
    ("InstanceNorm3d", lambda ns: ns.InstanceNorm3d(3), [f(2, 3, 2, 3, 4)]),
    ("InstanceNorm3d(affine, unbatched)", lambda ns: ns.InstanceNorm3d(2, affine=True),
     [f(2, 3, 1, 5)]),
]


@pytest.mark.parametrize("name, make, inputs", MODULES, ids=[c[0] for c in MODULES])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_volumetric_module_matches_torch(name, make, inputs, training):
    check(make, inputs, training)


@pytest.mark.parametrize("make", [c[1] for c in MODULES[::3]], ids=[c[0] for c in MODULES[::3]])
def test_volumetric_repr_is_torchs(make):
    ours, theirs = pair(make)
    assert repr(ours) == repr(theirs)


FUNCTIONS = [  # name, inputs, keywords
    ("conv3d", [f(2, 4, 3, 5, 4), f(6, 2, 2, 3, 1), f(6)],
     {"stride": (1, 2, 3), "padding": (1, 0, 1), "dilation": (2, 1, 1), "groups": 2}),
    ("conv3d", [f(3, 4, 4, 4), f(2, 3, 3, 1, 2)], {"padding": "valid"}),
    ("conv_transpose3d", [f(2, 4, 2, 3, 2), f(4, 1, 3, 2, 2), f(2)],
     {"stride": (2, 1, 3), "padding": (1, 0, 0), "output_padding": (1, 0, 2), "groups": 2}),
    ("max_pool3d", [f(2, 3, 5, 4, 6)], {"kernel_size": 2, "stride": (1, 2, 3), "padding": 1}),
    ("avg_pool3d", [f(2, 3, 5, 4, 6)], {"kernel_size": (3, 2, 2), "padding": (1, 0, 1),
                                        "divisor_override": 5}),
    ("lp_pool3d", [f(2, 3, 5, 4, 6)], {"norm_type": 2, "kernel_size": (3, 2, 2),
                                       "stride": (1, 2, 2), "ceil_mode": True}),
    ("lp_pool3d", [f(1, 2, 4, 4, 5)], {"norm_type": float("inf"), "kernel_size": 2}),
    ("adaptive_avg_pool3d", [f(1, 2, 7, 5, 3)], {"output_size": (3, 2, 1)}),
    ("adaptive_max_pool3d", [f(1, 2, 7, 5, 3)], {"output_size": (2, 3, 2)}),
]


@pytest.mark.parametrize("name, inputs, kw", FUNCTIONS, ids=[c[0] for c in FUNCTIONS])
def test_volumetric_function_matches_torch(name, inputs, kw):
    ours = [dlg.tensor(a, requires_grad=True) for a in inputs]
    theirs = [torch.tensor(a, requires_grad=True) for a in inputs]
    ya, yt = getattr(F, name)(*ours, **kw), getattr(torch.nn.functional, name)(*theirs, **kw)
    assert_close(ya, yt, "output")
    w = f(*yt.shape)
    (ya * dlg.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for i, (a, t) in enumerate(zip(ours, theirs)):
        assert_close(a.grad, t.grad, f"gradient {i}", 1e-4)


def test_max_pool3d_indices_are_torchs():
    x = np.round(f(2, 2, 5, 4, 6) * 2)  # ties: both take each window's first maximum
    values, indices = F.max_pool3d(dlg.tensor(x), (2, 3, 2), 2, 1, return_indices=True)
    their_values, their_indices = torch.nn.functional.max_pool3d(
        torch.tensor(x), (2, 3, 2), 2, 1, return_indices=True)
    assert_close(values, their_values, "values")
    np.testing.assert_array_equal(indices.numpy(), their_indices.numpy())


def net(ns: Any) -> Any:
    return ns.Sequential(
        ns.Conv3d(2, 4, 3, padding=1), ns.BatchNorm3d(4), ns.ReLU(),
        ns.MaxPool3d(2, ceil_mode=True),
        ns.ConvTranspose3d(4, 3, 2, stride=2), ns.InstanceNorm3d(3, affine=True),
        ns.AvgPool3d(2, 1, 1, count_include_pad=False), ns.AdaptiveAvgPool3d((1, 2, 3)),
        ns.Flatten(), ns.Linear(18, 3))


def test_a_volumetric_network_compiles_like_eager():
    ours, _ = pair(net)
    compiled_matches_eager(ours, f(2, 2, 5, 4, 3))


def small_net(ns: Any) -> Any:
    return ns.Sequential(ns.Conv3d(2, 3, 2, padding=1), ns.BatchNorm3d(3),
                         ns.MaxPool3d(2, ceil_mode=True), ns.AvgPool3d(2, 1, 1),
                         ns.Flatten(), ns.Linear(108, 3))


def test_compiled_volumetric_training_step_matches_the_interpreter_and_torch():
    x, y = f(4, 2, 4, 3, 2), f(4, 3)
    states = []
    for compiled in (False, True):
        ours, theirs = pair(small_net)
        opt = dlg.optim.SGD(ours.parameters(), lr=0.1)
        step = dlg.trace_train(ours, F.mse_loss, opt, x, y).train_step(compiled=compiled)
        topt = torch.optim.SGD(theirs.parameters(), lr=0.1)
        for _ in range(2):
            loss = step(x=x, y=y)["loss"]
            topt.zero_grad()
            their_loss = torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(y))
            their_loss.backward()
            topt.step()
            np.testing.assert_allclose(loss, their_loss.item(), rtol=1e-4)
        states.append(ours.state_dict())
        for key, value in theirs.state_dict().items():
            assert_close(ours.state_dict()[key], value, key, 1e-4)
    for key, value in states[0].items():
        np.testing.assert_allclose(states[1][key].numpy(), value.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=key)


@pytest.mark.parametrize("call, error", [
    (lambda: nn.Conv3d(2, 3, 2)(dlg.randn(2, 4, 4)), "conv3d"),
    (lambda: nn.Conv3d(2, 3, (2, 2)), "kernel_size"),
    (lambda: nn.ConvTranspose3d(2, 3, 2, output_padding=2)(dlg.randn(1, 2, 2, 2, 2)),
     "output_padding"),
    (lambda: nn.MaxPool3d(2)(dlg.randn(4, 4)), "max_pool3d|max_pool"),
    (lambda: nn.MaxPool3d(3, padding=2)(dlg.randn(1, 1, 5, 5, 5)), "padding"),
    (lambda: F.avg_pool3d(dlg.randn(1, 1, 1, 2, 2), 2), "too small"),
    (lambda: F.adaptive_avg_pool3d(dlg.randn(1, 2, 3, 3), (1, 0, 1)), "output_size"),
    (lambda: nn.BatchNorm3d(3)(dlg.randn(2, 3, 4, 4)), "BatchNorm3d takes"),
    (lambda: nn.InstanceNorm3d(3)(dlg.randn(3, 4, 4)), "InstanceNorm3d"),
    (lambda: F.conv3d(dlg.randn(1, 2, 3, 3, 3), dlg.randn(3, 1, 2, 2, 2)), "channels"),
])
def test_volumetric_errors_are_dlg_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call()
