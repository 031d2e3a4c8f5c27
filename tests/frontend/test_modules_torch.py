"""dlg.nn's modules and options against torch.nn: the same module built from both namespaces,
torch's state_dict loaded into dlg's (the keys equal), then outputs and the gradients of inputs
and parameters compared in training and in eval mode; the options' own behaviour (running
statistics, padding rows, padding modes, masks); repr as torch prints it; and a few composite
modules traced and compiled against eager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.errors import DlgError

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)

Make = Callable[[Any], Any]  # builds the module from a namespace: dlg.nn or torch.nn


def pair(make: Make) -> tuple[Any, Any]:
    """The dlg module holding the torch module's state (after checking the keys agree)."""
    torch.manual_seed(0)
    ours, theirs = make(nn), make(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def first(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out


def assert_close(ours: Any, theirs: Any, what: str, tol: float = 1e-5) -> None:
    np.testing.assert_allclose(ours.detach().numpy() if hasattr(ours, "detach") else ours,
                               theirs.detach().numpy(), rtol=tol, atol=tol, err_msg=what)


def check(make: Make, inputs: list[np.ndarray], training: bool, **call: Any) -> tuple[Any, Any]:
    """Outputs, input and parameter gradients and the state after the call, dlg vs torch."""
    ours, theirs = pair(make)
    ours.train(training)
    theirs.train(training)
    grads = [a.dtype.kind == "f" for a in inputs]
    xa = [dlg.tensor(a, requires_grad=g) for a, g in zip(inputs, grads)]
    xt = [torch.tensor(a, requires_grad=g) for a, g in zip(inputs, grads)]
    ya, yt = first(ours(*xa, **call)), first(theirs(*xt, **call))
    assert_close(ya, yt, "output")
    w = R.standard_normal(tuple(yt.shape)).astype(np.float32)
    (ya * dlg.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for i, (a, t) in enumerate(zip(xa, xt)):
        if t.grad is not None:
            assert_close(a.grad, t.grad, f"input {i} gradient", 1e-4)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, f"{name} gradient", 1e-4)
    for name, v in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], v, f"state {name}")
    return ours, theirs


def f(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(np.float32)


MODULES: list[tuple[str, Make, Callable[[], list[np.ndarray]]]] = [
    # activations
    *[(name, lambda ns, name=name: getattr(ns, name)(), lambda: [f(3, 5) * 3])
      for name in ("Identity", "SiLU", "Mish", "SELU", "ReLU6", "Hardswish", "Hardsigmoid",
                   "LogSigmoid", "Softsign", "Tanhshrink", "ELU", "CELU", "Softplus",
                   "Hardtanh", "LeakyReLU", "Softshrink", "Hardshrink")],
    ("ELU(alpha)", lambda ns: ns.ELU(alpha=0.5), lambda: [f(3, 5)]),
    ("CELU(alpha)", lambda ns: ns.CELU(alpha=2.0), lambda: [f(3, 5)]),
    ("Softplus(beta, threshold)", lambda ns: ns.Softplus(beta=2.0, threshold=1.5),
     lambda: [f(3, 5)]),
    ("Hardtanh(min, max)", lambda ns: ns.Hardtanh(min_val=-0.5, max_val=2.0), lambda: [f(3, 5)]),
    ("LeakyReLU(slope)", lambda ns: ns.LeakyReLU(0.2), lambda: [f(3, 5)]),
    ("PReLU", lambda ns: ns.PReLU(), lambda: [f(2, 3, 4)]),
    ("PReLU(channels)", lambda ns: ns.PReLU(3, init=0.1), lambda: [f(2, 3, 4)]),
    ("GLU", lambda ns: ns.GLU(dim=1), lambda: [f(2, 6, 3)]),
    ("Softmin", lambda ns: ns.Softmin(dim=1), lambda: [f(3, 5)]),
    # shapes
    ("Unflatten", lambda ns: ns.Unflatten(1, (2, 3)), lambda: [f(4, 6, 2)]),
    ("Unflatten(-1)", lambda ns: ns.Unflatten(-1, (-1, 2)), lambda: [f(4, 6)]),
    # pools
    ("AdaptiveAvgPool2d(even)", lambda ns: ns.AdaptiveAvgPool2d((2, 3)), lambda: [f(2, 3, 4, 6)]),
    ("AdaptiveAvgPool2d(uneven)", lambda ns: ns.AdaptiveAvgPool2d((3, None)),
     lambda: [f(2, 3, 7, 5)]),
    ("AdaptiveAvgPool1d", lambda ns: ns.AdaptiveAvgPool1d(3), lambda: [f(2, 3, 8)]),
    ("AdaptiveMaxPool2d", lambda ns: ns.AdaptiveMaxPool2d(3), lambda: [f(2, 3, 7, 6)]),
    ("MaxPool2d(dilation, ceil)", lambda ns: ns.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True),
     lambda: [f(2, 3, 9, 8)]),
    ("MaxPool1d(ceil)", lambda ns: ns.MaxPool1d(2, ceil_mode=True), lambda: [f(2, 3, 7)]),
    ("AvgPool2d(ceil, no pad count)",
     lambda ns: ns.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
     lambda: [f(2, 3, 8, 7)]),
    ("LPPool2d", lambda ns: ns.LPPool2d(2, 3), lambda: [f(2, 3, 7, 6)]),
    ("LPPool2d(float p, stride, ceil)", lambda ns: ns.LPPool2d(1.5, (3, 2), (2, 1), True),
     lambda: [np.abs(f(2, 3, 8, 5)) + 0.1]),
    ("LPPool1d(p=3, ceil, unbatched)", lambda ns: ns.LPPool1d(3, 2, ceil_mode=True),
     lambda: [np.abs(f(3, 7))]),
    ("LPPool1d(p=1, stride)", lambda ns: ns.LPPool1d(1, 3, 1), lambda: [f(2, 3, 7)]),
    # convolutions
    *[(f"Conv2d({mode})", lambda ns, mode=mode: ns.Conv2d(3, 4, 3, padding=(1, 2),
                                                          padding_mode=mode),
       lambda: [f(2, 3, 5, 6)]) for mode in ("zeros", "reflect", "replicate", "circular")],
    ("Conv1d(circular, same)", lambda ns: ns.Conv1d(2, 3, 4, padding="same",
                                                    padding_mode="circular"),
     lambda: [f(2, 2, 9)]),
    ("Conv2d(same, dilation)", lambda ns: ns.Conv2d(2, 3, 3, padding="same", dilation=2),
     lambda: [f(2, 2, 7, 7)]),
    ("Conv1d(valid, no bias)", lambda ns: ns.Conv1d(2, 3, 3, padding="valid", bias=False),
     lambda: [f(2, 2, 9)]),
    # normalisation
    ("BatchNorm2d(affine=False)", lambda ns: ns.BatchNorm2d(3, affine=False),
     lambda: [f(4, 3, 2, 2)]),
    ("BatchNorm1d(no running stats)", lambda ns: ns.BatchNorm1d(4, track_running_stats=False),
     lambda: [f(6, 4)]),
    ("BatchNorm1d(momentum=None)", lambda ns: ns.BatchNorm1d(4, momentum=None),
     lambda: [f(6, 4, 3)]),
    ("GroupNorm", lambda ns: ns.GroupNorm(2, 4), lambda: [f(3, 4, 5)]),
    ("GroupNorm(no bias)", lambda ns: ns.GroupNorm(2, 4, bias=False), lambda: [f(3, 4, 5)]),
    ("LayerNorm(no bias)", lambda ns: ns.LayerNorm((2, 3), bias=False), lambda: [f(4, 2, 3)]),
    ("BatchNorm2d(no bias)", lambda ns: ns.BatchNorm2d(3, bias=False), lambda: [f(4, 3, 2, 2)]),
    ("GroupNorm(affine=False)", lambda ns: ns.GroupNorm(3, 6, eps=1e-3, affine=False),
     lambda: [f(2, 6, 2, 3)]),
    ("InstanceNorm2d", lambda ns: ns.InstanceNorm2d(3), lambda: [f(2, 3, 4, 4)]),
    ("InstanceNorm1d(affine)", lambda ns: ns.InstanceNorm1d(3, affine=True),
     lambda: [f(2, 3, 5)]),
    # attention
    ("MultiheadAttention", lambda ns: ns.MultiheadAttention(8, 2),
     lambda: [f(5, 3, 8), f(4, 3, 8), f(4, 3, 8)]),
    ("MultiheadAttention(batch_first, no bias)",
     lambda ns: ns.MultiheadAttention(6, 3, bias=False, batch_first=True),
     lambda: [f(2, 5, 6), f(2, 4, 6), f(2, 4, 6)]),
    ("MultiheadAttention(unbatched)", lambda ns: ns.MultiheadAttention(4, 1),
     lambda: [f(3, 4), f(5, 4), f(5, 4)]),
    ("MultiheadAttention(kdim, vdim)",
     lambda ns: ns.MultiheadAttention(6, 2, kdim=4, vdim=3, batch_first=True),
     lambda: [f(2, 5, 6), f(2, 4, 4), f(2, 4, 3)]),
    ("MultiheadAttention(add_bias_kv, add_zero_attn)",
     lambda ns: ns.MultiheadAttention(6, 3, add_bias_kv=True, add_zero_attn=True),
     lambda: [f(3, 2, 6), f(4, 2, 6), f(4, 2, 6)]),
    # losses
    ("KLDivLoss", lambda ns: ns.KLDivLoss(reduction="batchmean"),
     lambda: [np.log(np.abs(f(3, 4)) + 0.1), np.abs(f(3, 4))]),
    ("KLDivLoss(log_target)", lambda ns: ns.KLDivLoss(reduction="sum", log_target=True),
     lambda: [f(3, 4), f(3, 4)]),
    ("SmoothL1Loss", lambda ns: ns.SmoothL1Loss(beta=0.5), lambda: [f(3, 4), f(3, 4)]),
    ("HuberLoss", lambda ns: ns.HuberLoss(reduction="sum", delta=0.7),
     lambda: [f(3, 4), f(3, 4)]),
    ("CrossEntropyLoss(weight, ignore_index, smoothing)",
     lambda ns: ns.CrossEntropyLoss(weight=ns_tensor(ns, [1.0, 2.0, 0.5]), ignore_index=1,
                                    label_smoothing=0.1),
     lambda: [f(5, 3), np.array([0, 1, 2, 2, 0])]),
    ("NLLLoss(weight, sum)",
     lambda ns: ns.NLLLoss(weight=ns_tensor(ns, [1.0, 2.0, 0.5]), reduction="sum"),
     lambda: [f(4, 3), np.array([0, 1, 2, 2])]),
    ("BCEWithLogitsLoss(weight)",
     lambda ns: ns.BCEWithLogitsLoss(weight=ns_tensor(ns, [0.5, 1.0, 2.0]), reduction="sum"),
     lambda: [f(4, 3), np.float32(R.random((4, 3)) > 0.5)]),
    ("BCELoss(weight)", lambda ns: ns.BCELoss(weight=ns_tensor(ns, [0.5, 1.0, 2.0])),
     lambda: [np.float32(R.uniform(0.1, 0.9, (4, 3))), np.float32(R.random((4, 3)) > 0.5)]),
    ("CosineSimilarity", lambda ns: ns.CosineSimilarity(dim=1), lambda: [f(3, 5), f(3, 5)]),
]


def ns_tensor(ns: Any, values: list[float]) -> Any:
    """A float32 tensor of the namespace's library (dlg.nn -> dlg, torch.nn -> torch)."""
    lib = dlg if ns is nn else torch
    return lib.tensor(np.float32(values))


@pytest.mark.parametrize("name, make, inputs", MODULES, ids=[c[0] for c in MODULES])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_module_matches_torch(name, make, inputs, training):
    check(make, inputs(), training)


# ---- the activations' functional forms, at their kinks too --------------------------------------
KINKS = np.float32([-30, -20, -3, -1, -0.5, 0, 0.5, 1, 3, 6, 20, 30, 1e-4, -1e-4, 2.5, -2.5])
ACTIVATIONS = [
    ("silu", {}), ("elu", {"alpha": 0.5}), ("selu", {}), ("celu", {"alpha": 2}),
    ("softplus", {}), ("softplus", {"beta": 2, "threshold": 3}), ("mish", {}), ("softsign", {}),
    ("hardsigmoid", {}), ("hardswish", {}), ("relu6", {}), ("logsigmoid", {}),
    ("tanhshrink", {}), ("softshrink", {"lambd": 1}), ("hardshrink", {}),
    ("hardtanh", {"min_val": -0.5, "max_val": 3}), ("leaky_relu", {"negative_slope": 0.2}),
    ("rrelu", {}), ("rrelu", {"lower": 0.1, "upper": 0.4, "training": False}),
]


@pytest.mark.parametrize("name, kwargs", ACTIVATIONS,
                         ids=[f"{n}-{'-'.join(map(str, k.values()))}" for n, k in ACTIVATIONS])
def test_activation_function_matches_torch(name, kwargs):
    """dlg.nn.functional's value and gradient, torch's choices at the kinks included."""
    xa, xt = dlg.tensor(KINKS, requires_grad=True), torch.tensor(KINKS, requires_grad=True)
    ya, yt = getattr(nn.functional, name)(xa, **kwargs), getattr(torch.nn.functional, name)(
        xt, **kwargs)
    assert_close(ya, yt, "value", 1e-6)
    ya.sum().backward()
    yt.sum().backward()
    assert_close(xa.grad, xt.grad, "gradient", 1e-6)


def test_prelu_and_glu_functions_match_torch():
    x, w = f(2, 4, 3), np.float32([0.1, -0.2, 0.3, 2.0])
    assert_close(nn.functional.prelu(dlg.tensor(x), dlg.tensor(w)),
                 torch.nn.functional.prelu(torch.tensor(x), torch.tensor(w)), "prelu")
    assert_close(nn.functional.prelu(dlg.tensor(x), dlg.tensor(np.float32(0.3))),
                 torch.nn.functional.prelu(torch.tensor(x), torch.tensor(0.3)), "one slope, 0-d")
    assert_close(nn.functional.glu(dlg.tensor(x), dim=1),
                 torch.nn.functional.glu(torch.tensor(x), dim=1), "glu")
    with pytest.raises(DlgError, match="weight must be one slope"):
        nn.functional.prelu(dlg.tensor(x), dlg.tensor(np.float32([1, 2])))
    with pytest.raises(DlgError, match="even"):
        nn.functional.glu(dlg.tensor(x), dim=-1)


# ---- options' own behaviour ------------------------------------------------------------------
def test_a_conv_subclass_overrides_conv_forward_as_in_torch():
    """Whisper's Conv1d: `_conv_forward(x, weight, bias)` overridden to cast the weight to the
    input's dtype, and forward goes through it, as torch's."""
    outs = []
    for lib in (dlg, torch):
        class Conv1d(lib.nn.Conv1d):
            def _conv_forward(self, x, weight, bias):
                return super()._conv_forward(x, weight.to(x.dtype),
                                             None if bias is None else bias.to(x.dtype))

        conv = Conv1d(3, 4, kernel_size=3, padding=1)
        with lib.no_grad():
            conv.weight.copy_(lib.arange(36.0).reshape(4, 3, 3) / 36)
            conv.bias.copy_(lib.arange(4.0))
        out = conv(lib.arange(30.0, dtype=lib.float64).reshape(2, 3, 5))
        assert out.dtype == lib.float64
        outs.append(out.detach().numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-12)


def test_batch_norm_momentum_none_is_a_cumulative_average():
    make = lambda ns: ns.BatchNorm1d(3, momentum=None)  # noqa: E731
    ours, theirs = pair(make)
    for _ in range(3):
        x = f(5, 3)
        ours(dlg.tensor(x))
        theirs(torch.tensor(x))
    for name, v in theirs.state_dict().items():
        assert_close(ours.state_dict()[name], v, name)
    assert int(ours.num_batches_tracked.item()) == 3


def test_batch_norm_options_leave_out_their_state():
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    untracked = nn.BatchNorm2d(3, track_running_stats=False)
    assert list(untracked.state_dict()) == ["weight", "bias"]
    x = f(4, 3, 2, 2)
    untracked.eval()  # still the batch's statistics
    y = untracked(dlg.tensor(x)).detach().numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)


def test_embedding_padding_idx_starts_at_zero_and_gets_no_gradient():
    ours, theirs = pair(lambda ns: ns.Embedding(6, 3, padding_idx=2))
    assert not ours.weight.detach().numpy()[2].any()
    idx = np.array([[2, 1, 2], [4, 2, 0]])
    ya, yt = ours(dlg.tensor(idx)), theirs(torch.tensor(idx))
    assert_close(ya, yt, "output")
    (ya * ya).sum().backward()
    (yt * yt).sum().backward()
    assert_close(ours.weight.grad, theirs.weight.grad, "weight gradient")
    assert not ours.weight.grad.numpy()[2].any()


def test_embedding_max_norm_renormalises_the_rows_looked_up():
    ours, theirs = pair(lambda ns: ns.Embedding(5, 4, max_norm=1.0))
    idx = np.array([0, 3, 3])
    assert_close(ours(dlg.tensor(idx)), theirs(torch.tensor(idx)), "output")
    assert_close(ours.weight, theirs.weight, "renormalised weight")
    assert np.linalg.norm(ours.weight.detach().numpy()[1]) > 1  # a row not looked up stays


def test_embedding_options_are_attributes_as_torch():
    """What code handing an Embedding's options to F.embedding reads (AWD-LSTM's
    embedded_dropout): padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse."""
    ours, theirs = pair(lambda ns: ns.Embedding(5, 4, padding_idx=1, max_norm=2.0))
    names = ("padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse")
    assert [getattr(ours, n) for n in names] == [getattr(theirs, n) for n in names]
    idx = np.array([0, 1, 3])
    assert_close(dlg.nn.functional.embedding(dlg.tensor(idx), ours.weight * 2, *(
        getattr(ours, n) for n in names)), torch.nn.functional.embedding(
        torch.tensor(idx), theirs.weight * 2, *(getattr(theirs, n) for n in names)), "output")


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_scale_grad_by_freq_as_torch(padding_idx):
    """Each row's gradient divided by its index's count in the batch (the padding row's none),
    the module's and F.embedding's, eager and compiled."""
    idx = np.array([[0, 2, 2, 5], [2, 1, 0, 2]])
    g = f(2, 4, 3)
    ours, theirs = pair(lambda ns: ns.Embedding(6, 3, padding_idx=padding_idx,
                                                scale_grad_by_freq=True))
    for run in (ours, dlg.compile(ours)):
        ours.zero_grad()
        theirs.zero_grad()
        (run(dlg.tensor(idx)) * dlg.tensor(g)).sum().backward()
        (theirs(torch.tensor(idx)) * torch.tensor(g)).sum().backward()
        assert_close(ours.weight.grad, theirs.weight.grad, "weight gradient")
    w = f(6, 3)
    a, t = dlg.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    dlg.nn.functional.embedding(dlg.tensor(idx), a, scale_grad_by_freq=True).sum().backward()
    torch.nn.functional.embedding(torch.tensor(idx), t, scale_grad_by_freq=True).sum().backward()
    assert_close(a.grad, t.grad, "functional")


def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest():
    dlg.manual_seed(0)
    x = np.ones((8, 6, 5, 5), np.float32)
    y = nn.Dropout2d(0.5)(dlg.tensor(x)).numpy()
    per_channel = y.reshape(8, 6, -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # whole channels
    assert 0 < (per_channel[..., 0] == 0).mean() < 1
    one_d = nn.Dropout1d(0.5)(dlg.tensor(np.ones((6, 7), np.float32))).numpy()  # unbatched
    assert (one_d.min(-1) == one_d.max(-1)).all()
    assert (nn.Dropout2d(0.5).eval()(dlg.tensor(x)).numpy() == x).all()
    volumes = nn.Dropout3d(0.5)(dlg.ones(8, 6, 2, 3, 2)).numpy().reshape(8, 6, -1)
    assert set(np.unique(volumes)) <= {0.0, 2.0}
    assert (volumes.min(-1) == volumes.max(-1)).all() and 0 < (volumes == 0).mean() < 1
    assert repr(nn.Dropout3d(0.2)) == repr(torch.nn.Dropout3d(0.2))


@pytest.mark.parametrize("name, args, kwargs, positive", [
    ("lp_pool2d", (2, 3), {}, False),
    ("lp_pool2d", (2.0, (3, 2)), {"stride": (2, 1), "ceil_mode": True}, False),
    ("lp_pool2d", (0.5, 2), {"stride": 1}, True),
    ("lp_pool2d", (float("inf"), (2, 3)), {"ceil_mode": True}, False),
    ("lp_pool2d", (-float("inf"), 2), {}, False),
    ("lp_pool1d", (3, 2), {"ceil_mode": True}, True),
    ("lp_pool1d", (1, 3, 1), {}, False),
    ("lp_pool1d", (4, 2, (1,)), {}, False),
    ("lp_pool1d", (float("inf"), 3, 2), {"ceil_mode": True}, False),
], ids=["2d p=2", "2d p=2.0 ceil", "2d p=0.5", "2d inf ceil", "2d -inf", "1d p=3 ceil",
        "1d p=1", "1d p=4 stride tuple", "1d inf"])
def test_lp_pool_functions_match_torch(name, args, kwargs, positive):
    """torch's definition exactly: avg_pool of x^p times the kernel's size, so a ceil_mode
    window cut by the edge is scaled up as torch's is; inf is the largest |x|."""
    x = f(2, 3, 7, 6) if name == "lp_pool2d" else f(2, 3, 9)
    x = np.abs(x) + 0.1 if positive else x
    xa, xt = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya = getattr(nn.functional, name)(xa, *args, **kwargs)
    yt = getattr(torch.nn.functional, name)(xt, *args, **kwargs)
    assert_close(ya, yt, "value")
    w = f(*yt.shape)
    (ya * dlg.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    assert_close(xa.grad, xt.grad, "gradient", 1e-4)


def test_lp_pool_of_a_zero_window_has_no_gradient():
    """sign(s) * relu(|s|) before the root, as torch: 0 (not nan) where a window sums to 0."""
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, :2, :2] = f(2, 2)
    xa, xt = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = nn.functional.lp_pool2d(xa, 2, 2), torch.nn.functional.lp_pool2d(xt, 2, 2)
    ya.sum().backward()
    yt.sum().backward()
    assert_close(ya, yt, "value")
    assert_close(xa.grad, xt.grad, "gradient")
    assert not np.isnan(xa.grad.numpy()).any()


@pytest.mark.parametrize("call, error", [
    (lambda x: nn.functional.lp_pool2d(x, 0, 2), "norm_type must be a nonzero number"),
    (lambda x: nn.functional.lp_pool2d(x, "2", 2), "norm_type"),
    (lambda x: nn.functional.lp_pool1d(x, 2, 2, ceil_mode=1), "ceil_mode"),
    (lambda x: nn.LPPool2d(2, (2, 2, 2))(x), "kernel_size"),
    (lambda x: nn.LPPool2d(2, 5)(x), "too small"),
], ids=["p=0", "p str", "ceil_mode", "kernel rank", "window too large"])
def test_lp_pool_errors_are_dlg_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call(dlg.tensor(f(2, 3, 4, 4)))


def test_rrelu_in_eval_mode_is_torchs():
    """The mean slope (lower + upper) / 2, as torch's leaky relu in eval mode."""
    check(lambda ns: ns.RReLU(0.2, 0.5), [f(3, 5) * 3], training=False)
    check(lambda ns: ns.RReLU(), [f(2, 3, 4)], training=False)


def _rrelu_slopes(lib: Any, x: np.ndarray, lower: float, upper: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """RReLU(lower, upper) in training mode of `lib` (dlg or torch): each negative element's
    slope from the output, and from the gradient."""
    xs = lib.tensor(x, requires_grad=True)
    y = (nn if lib is dlg else torch.nn).RReLU(lower, upper)(xs)
    y.sum().backward()
    out, grad = y.detach().numpy(), xs.grad.numpy()
    assert np.array_equal(out[x > 0], x[x > 0]) and (grad[x > 0] == 1).all()
    return out[x < 0] / x[x < 0], grad[x < 0]


def test_rrelu_in_training_draws_uniform_slopes_as_torch():
    """Training: a slope per negative element from U(lower, upper), drawn from dlg's random
    stream; the gradient is that same slope. Compared with torch by statistics (the draws
    themselves differ): range, mean, variance and quartiles of 20000 slopes."""
    x = f(40000)
    lower, upper = 0.1, 0.4
    dlg.manual_seed(0)
    ours, ours_grad = _rrelu_slopes(dlg, x, lower, upper)
    torch.manual_seed(0)
    theirs, _ = _rrelu_slopes(torch, x, lower, upper)
    np.testing.assert_allclose(ours_grad, ours, rtol=1e-5)  # the same slope
    assert lower <= ours.min() and ours.max() <= upper
    width = upper - lower
    for slopes in (ours, theirs):  # both U(lower, upper): mean, variance, quartiles
        assert abs(slopes.mean() - (lower + upper) / 2) < 0.01 * width
        assert abs(slopes.var() - width ** 2 / 12) < 0.05 * width ** 2 / 12
        np.testing.assert_allclose(np.quantile(slopes, [0.25, 0.5, 0.75]),
                                   lower + width * np.array([0.25, 0.5, 0.75]), atol=0.02 * width)
    assert len(np.unique(ours)) > 0.99 * len(ours)  # one draw per element
    dlg.manual_seed(0)
    np.testing.assert_array_equal(_rrelu_slopes(dlg, x, lower, upper)[0], ours)  # seeded
    assert not np.array_equal(_rrelu_slopes(dlg, x, lower, upper)[0], ours)  # fresh draws


def test_rrelu_traced_and_compiled_draw_fresh_slopes_in_training():
    x = f(4, 2000)
    module = nn.RReLU(0.1, 0.4)
    for run in (dlg.trace(module, x), dlg.compile(module, x)):
        first, second = np.asarray(run(x)), np.asarray(run(x))
        slopes = first[x < 0] / x[x < 0]
        assert 0.1 <= slopes.min() and slopes.max() <= 0.4 and abs(slopes.mean() - 0.25) < 0.01
        np.testing.assert_array_equal(first[x > 0], x[x > 0])
        assert not np.array_equal(first, second)
    module.eval()
    want = torch.nn.RReLU(0.1, 0.4).eval()(torch.tensor(x)).numpy()
    for run in (dlg.trace(module, x), dlg.compile(module, x)):
        np.testing.assert_allclose(np.asarray(run(x)), want, rtol=1e-6, atol=1e-7)


def test_rrelu_inplace_writes_its_input_in_training():
    x = f(3, 50)
    ours = dlg.tensor(x)
    assert nn.RReLU(0.1, 0.4, inplace=True)(ours) is ours
    slopes = ours.numpy()[x < 0] / x[x < 0]
    assert 0.1 <= slopes.min() and slopes.max() <= 0.4
    np.testing.assert_array_equal(ours.numpy()[x > 0], x[x > 0])


@pytest.mark.parametrize("call, error", [
    (lambda x: nn.functional.rrelu(x, 0.5, 0.1, True), "lower bound 0.5 must be at most"),
    (lambda x: nn.functional.rrelu(x, "0.1"), "lower must be a number"),
    (lambda x: nn.functional.rrelu(x, training=1), "training must be a bool"),
    (lambda x: nn.RReLU()(x.long()), "floating point"),
], ids=["bounds", "lower", "training", "dtype"])
def test_rrelu_errors_are_dlg_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call(dlg.tensor(f(3, 4)))


@pytest.mark.parametrize("make", [lambda ns: ns.MaxPool2d(2, return_indices=True),
                                  lambda ns: ns.AdaptiveMaxPool2d((4, 3), return_indices=True)])
def test_max_pools_return_indices_as_torch(make):
    x = f(2, 3, 6, 7)
    ya, ia = make(nn)(dlg.tensor(x))
    yt, it = make(torch.nn)(torch.tensor(x))
    assert_close(ya, yt, "values")
    np.testing.assert_array_equal(ia.numpy(), it.numpy())


@pytest.mark.parametrize("options", [{}, {"add_bias_kv": True, "add_zero_attn": True}],
                         ids=["plain", "bias_kv_zero_attn"])
def test_multihead_attention_masks_and_weights_match_torch(options):
    """Masks over the keys; with add_bias_kv and add_zero_attn they leave the appended keys
    unmasked."""
    ours, theirs = pair(lambda ns: ns.MultiheadAttention(6, 2, **options))
    q, k = f(4, 2, 6), f(5, 2, 6)
    padding = np.array([[False, False, True, False, True], [False] * 5])
    causal = np.triu(np.ones((4, 5), bool), 1)
    additive = f(4, 5)
    per_head = R.random((2 * 2, 4, 5)) > 0.7  # [N * heads, L, S]
    per_head[..., 0] = False  # no row fully masked
    for kwargs in ({"key_padding_mask": padding, "attn_mask": causal},
                   {"attn_mask": additive}, {"attn_mask": per_head},
                   {"average_attn_weights": False}):
        out_a, w_a = ours(*map(dlg.tensor, (q, k, k)),
                          **{n: dlg.tensor(v) for n, v in kwargs.items() if n.endswith("mask")},
                          **{n: v for n, v in kwargs.items() if not n.endswith("mask")})
        out_t, w_t = theirs(*map(torch.tensor, (q, k, k)),
                            **{n: torch.tensor(v) if n.endswith("mask") else v
                               for n, v in kwargs.items()})
        assert_close(out_a, out_t, f"output with {list(kwargs)}")
        assert_close(w_a, w_t, f"weights with {list(kwargs)}")
    assert ours(*map(dlg.tensor, (q, k, k)), need_weights=False)[1] is None


# ---- construction: names, initialisation, errors, repr -------------------------------------------
def test_multihead_attention_initialises_as_torch():
    m = nn.MultiheadAttention(16, 4)
    bound = np.sqrt(6 / (16 + 48))  # xavier_uniform of [3E, E]
    w = m.in_proj_weight.detach().numpy()
    assert w.shape == (48, 16) and np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert not m.in_proj_bias.detach().numpy().any() and not m.out_proj.bias.detach().numpy().any()


def test_prelu_starts_at_init():
    weight = nn.PReLU(3, init=0.1).weight.detach().numpy()
    np.testing.assert_array_equal(weight, np.float32([0.1] * 3))


def test_module_dict_names_its_children():
    d = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.PReLU()})
    d["c"] = nn.Identity()
    assert list(d) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert list(d.state_dict()) == ["a.weight", "a.bias", "b.weight"]


def test_embedding_from_pretrained_holds_the_rows_frozen_or_not():
    rows = f(4, 3)
    frozen = nn.Embedding.from_pretrained(rows)
    assert_close(frozen(dlg.tensor(np.array([2, 0]))), torch.tensor(rows[[2, 0]]), "lookup")
    assert not frozen.weight.requires_grad
    assert nn.Embedding.from_pretrained(dlg.tensor(rows), freeze=False).weight.requires_grad


def test_module_apply_buffers_and_requires_grad():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Sequential"]  # torch's order: children first
    assert [tuple(b.shape) for b in net.buffers()] == [(3,), (3,), ()]
    assert not any(p.requires_grad for p in net.requires_grad_(False).parameters())


def test_sequential_takes_an_ordered_dict_and_slices():
    from collections import OrderedDict
    s = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(s.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(s[:1], nn.Sequential) and len(s[:1]) == 1


@pytest.mark.parametrize("make, error", [
    (lambda: nn.Conv2d(1, 1, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: nn.GroupNorm(3, 4), "divisible"),
    (lambda: nn.MultiheadAttention(6, 4), "divisible"),
    (lambda: nn.Dropout(1.5), "between 0 and 1"),
    (lambda: nn.Embedding(4, 2, padding_idx=4), "padding_idx"),
])
def test_bad_options_are_dlg_errors(make, error):
    with pytest.raises(DlgError, match=error):
        make()


REPRS = [
    lambda ns: ns.Linear(784, 128), lambda ns: ns.Linear(3, 2, bias=False),
    lambda ns: ns.Conv2d(1, 32, 3, 1), lambda ns: ns.Conv2d(2, 4, 3, padding=1, bias=False),
    lambda ns: ns.Conv1d(2, 4, 3, padding="same", padding_mode="reflect", groups=2),
    lambda ns: ns.BatchNorm2d(3, momentum=None), lambda ns: ns.LayerNorm(5),
    lambda ns: ns.GroupNorm(2, 4), lambda ns: ns.InstanceNorm1d(3),
    lambda ns: ns.LayerNorm(4, bias=False), lambda ns: ns.BatchNorm1d(2, affine=False),
    lambda ns: ns.Embedding(10, 3, padding_idx=0),
    lambda ns: ns.Dropout(0.25), lambda ns: ns.Flatten(), lambda ns: ns.Unflatten(1, (2, 5)),
    lambda ns: ns.ReLU(), lambda ns: ns.ELU(alpha=0.5), lambda ns: ns.LeakyReLU(0.2),
    lambda ns: ns.Hardtanh(), lambda ns: ns.Softplus(), lambda ns: ns.Softshrink(),
    lambda ns: ns.PReLU(), lambda ns: ns.GELU(), lambda ns: ns.Softmax(dim=1),
    lambda ns: ns.RReLU(), lambda ns: ns.RReLU(0.1, 0.3, inplace=True),
    lambda ns: ns.MaxPool2d(2), lambda ns: ns.AdaptiveAvgPool2d((1, 1)),
    lambda ns: ns.LPPool2d(2, 3), lambda ns: ns.LPPool1d(1.5, 2, 1, True),
    lambda ns: ns.Sequential(ns.Linear(2, 3), ns.ReLU(), ns.Dropout()),
]


@pytest.mark.parametrize("make", REPRS, ids=range(len(REPRS)))
def test_repr_is_torchs(make):
    assert repr(make(nn)) == repr(make(torch.nn))


# ---- traced and compiled composites ------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x)[0]


COMPOSITES = [
    ("GroupNorm", lambda: nn.GroupNorm(2, 4), (3, 4, 5)),
    ("PReLU", lambda: nn.PReLU(4), (3, 4, 5)),
    ("LPPool2d", lambda: nn.LPPool2d(2, (2, 3), ceil_mode=True), (2, 3, 5, 7)),
    ("LPPool1d(inf)", lambda: nn.LPPool1d(float("inf"), 2), (2, 3, 6)),
    ("MultiheadAttention", Attention, (3, 5, 8)),
    ("Conv2d(reflect)", lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
     (2, 2, 5, 5)),
]


@pytest.mark.parametrize("name, make, shape", COMPOSITES, ids=[c[0] for c in COMPOSITES])
def test_traced_and_compiled_match_eager(name, make, shape):
    module = make().eval()
    x = f(*shape)
    eager = module(dlg.tensor(x)).detach().numpy()
    np.testing.assert_allclose(dlg.trace(module, x)(x), eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlg.compile(module, x)(x), eager, rtol=1e-4, atol=1e-5)


TRAINED = [  # modules whose parameters are reshaped or sliced before use, and running statistics
    ("GroupNorm", lambda ns: ns.GroupNorm(1, 3)),
    ("PReLU", lambda ns: ns.PReLU(3)),
    ("BatchNorm1d(momentum=None)", lambda ns: ns.BatchNorm1d(3, momentum=None)),
]


@pytest.mark.parametrize("name, make", TRAINED, ids=[c[0] for c in TRAINED])
def test_traced_training_steps_match_torch(name, make):
    """A traced training step trains every parameter (ops on parameters alone stay in the
    graph) and updates the running statistics, step for step as torch."""
    ours, theirs = pair(lambda ns: ns.Sequential(ns.Linear(4, 3), make(ns)))
    x, y = f(8, 4), f(8, 3)
    opt, topt = dlg.optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(),
                                                                          lr=0.1)
    step = dlg.trace_train(ours, nn.functional.mse_loss, opt, x, y).train_step()
    for _ in range(3):
        loss = step(x=x, y=y)["loss"]
        topt.zero_grad()
        their_loss = torch.nn.functional.mse_loss(theirs(torch.tensor(x)), torch.tensor(y))
        their_loss.backward()
        topt.step()
        np.testing.assert_allclose(loss, their_loss.item(), rtol=1e-5)
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value, key)


def test_dropout2d_of_a_2d_input_is_elementwise_with_torchs_warning():
    """pytorch/examples mnist_rnn puts nn.Dropout2d after a BatchNorm1d on [N, 64]: torch warns
    and drops elements (its deprecated reading); dlg refused the shape."""
    import warnings

    for lib in (torch, dlg):
        drop = lib.nn.Dropout2d(0.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = drop(lib.ones(64, 64))
        assert any("Received a 2-D input to dropout2d" in str(w.message) for w in caught)
        zeros = (y == 0).float()
        assert 0.4 < zeros.mean().item() < 0.6 and zeros.prod(1).sum().item() == 0
        assert set(np.unique(y.numpy()).tolist()) == {0.0, 2.0}
        drop.eval()
        assert (drop(lib.ones(2, 3)) == 1).all()
