"""The torch.nn pieces added after the first set, against torch with the same weights (torch's
state_dict loaded into dlg's): transposed convolutions, pixel shuffles, padding modules,
Upsample/Unfold/Fold, RMSNorm, Bilinear, PairwiseDistance, AlphaDropout, the parameter
containers, scaled_dot_product_attention and the Transformer layers. Outputs and the gradients
of inputs and parameters (in training and eval mode), one traced and compiled check per family,
from_torch of a model using them, and a clear DlgError for each kind of mistake."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.errors import DlgError
from tests.frontend.test_modules_torch import assert_close, check, f

torch = pytest.importorskip("torch")
F = nn.functional


def compiled_matches_eager(module: Any, *inputs: np.ndarray) -> None:
    """dlg.trace and dlg.compile of the module (in eval mode) agree with its eager output."""
    module.eval()
    eager = module(*map(dlg.tensor, inputs)).detach().numpy()
    np.testing.assert_allclose(dlg.trace(module, *inputs)(*inputs), eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dlg.compile(module, *inputs)(*inputs), eager, rtol=1e-4,
                               atol=1e-4)


# ---- transposed convolutions --------------------------------------------------------------------
CONV_TRANSPOSES = [
    ("2d", lambda ns: ns.ConvTranspose2d(3, 4, 3), [f(2, 3, 4, 5)]),
    ("2d(stride 2, output_padding)",
     lambda ns: ns.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
     [f(2, 3, 4, 5)]),
    ("2d(stride 3, groups, dilation)",
     lambda ns: ns.ConvTranspose2d(4, 6, (3, 2), stride=(3, 2), padding=(2, 1),
                                   output_padding=(2, 1), groups=2, dilation=(1, 2)),
     [f(2, 4, 3, 4)]),
    ("2d(no bias, unbatched)", lambda ns: ns.ConvTranspose2d(2, 3, 2, stride=2, bias=False),
     [f(2, 3, 3)]),
    ("1d(stride 3, padding)", lambda ns: ns.ConvTranspose1d(3, 2, 4, stride=3, padding=2,
                                                            output_padding=1),
     [f(2, 3, 6)]),
    ("1d(groups 3)", lambda ns: ns.ConvTranspose1d(3, 6, 3, groups=3, dilation=2), [f(2, 3, 5)]),
]


@pytest.mark.parametrize("name, make, inputs", CONV_TRANSPOSES, ids=[c[0] for c in CONV_TRANSPOSES])
def test_conv_transpose_matches_torch(name, make, inputs):
    check(make, inputs, training=True)


@pytest.mark.parametrize("nd, x, w, kw", [
    (2, f(2, 4, 5, 6), f(4, 3, 3, 2), {"stride": (2, 3), "padding": (1, 0),
                                       "output_padding": (1, 2), "groups": 2,
                                       "dilation": (1, 2)}),
    (1, f(3, 5), f(3, 4, 3), {"stride": 2, "padding": 3, "dilation": 3, "output_padding": 2}),
], ids=["2d", "1d-unbatched"])
def test_conv_transpose_function_matches_torch(nd, x, w, kw):
    name = f"conv_transpose{nd}d"
    xa, wa = dlg.tensor(x, requires_grad=True), dlg.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ya, yt = getattr(F, name)(xa, wa, **kw), getattr(torch.nn.functional, name)(xt, wt, **kw)
    assert_close(ya, yt, "output")
    (ya * ya).sum().backward()
    (yt * yt).sum().backward()
    assert_close(xa.grad, xt.grad, "input gradient", 1e-4)
    assert_close(wa.grad, wt.grad, "weight gradient", 1e-4)


def test_conv_transpose_output_size_picks_the_output_padding():
    ours, theirs = (ns.ConvTranspose2d(3, 2, 3, stride=2) for ns in (nn, torch.nn))
    ours.load_state_dict(theirs.state_dict())
    x = f(1, 3, 4, 4)
    assert_close(ours(dlg.tensor(x), output_size=(10, 9)),
                 theirs(torch.tensor(x), output_size=(10, 9)), "output")
    with pytest.raises(DlgError, match="output_size"):
        ours(dlg.tensor(x), output_size=(12, 9))


def test_conv_transpose_compiles_and_is_a_prelude_layer():
    compiled_matches_eager(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
                           f(2, 3, 4, 5))
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=1,
                                      output_padding=(1, 2), groups=2, dilation=(1, 2))
    m = dlg.loads("model M { input x: f32[N, 4, 5, 6]  layer m = ConvTranspose2d(4, 6, (3, 2), "
                  "stride=(2, 3), padding=1, output_padding=(1, 2), groups=2, dilation=(1, 2)) "
                  " output y = m(x) }")
    state = {f"m.{k}": v for k, v in theirs.state_dict().items()}
    assert list(m.params) == list(state)
    m.load_state_dict(state)
    x = f(2, 4, 5, 6)
    np.testing.assert_allclose(m(x=x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)


# ---- pixel shuffles, padding, resampling, patches -----------------------------------------------
PAD_MODES = [("ZeroPad", ()), ("ConstantPad", (1.5,)), ("ReflectionPad", ()),
             ("ReplicationPad", ()), ("CircularPad", ())]
SPATIAL = [
    ("PixelShuffle", lambda ns: ns.PixelShuffle(2), [f(2, 8, 3, 5)]),
    ("PixelShuffle(3, unbatched)", lambda ns: ns.PixelShuffle(3), [f(9, 2, 3)]),
    ("PixelUnshuffle", lambda ns: ns.PixelUnshuffle(2), [f(2, 3, 4, 6)]),
    ("PixelUnshuffle(extra batch dims)", lambda ns: ns.PixelUnshuffle(3), [f(2, 2, 1, 3, 6)]),
    *[(f"{kind}1d", lambda ns, kind=kind, v=v: getattr(ns, f"{kind}1d")((2, 1), *v),
       [f(2, 3, 5)]) for kind, v in PAD_MODES],
    *[(f"{kind}2d", lambda ns, kind=kind, v=v: getattr(ns, f"{kind}2d")((1, 2, 2, 0), *v),
       [f(2, 3, 4, 5)]) for kind, v in PAD_MODES],
    *[(f"{kind}2d(int, unbatched)", lambda ns, kind=kind, v=v: getattr(ns, f"{kind}2d")(1, *v),
       [f(3, 4, 5)]) for kind, v in PAD_MODES],
    ("ConstantPad2d(negative)", lambda ns: ns.ConstantPad2d((-1, 2, 0, -2), 0.5),
     [f(2, 3, 4, 5)]),
    ("Upsample(nearest)", lambda ns: ns.Upsample(scale_factor=2), [f(2, 3, 4, 5)]),
    ("Upsample(bilinear, size)", lambda ns: ns.Upsample(size=(7, 9), mode="bilinear"),
     [f(2, 3, 4, 5)]),
    ("Upsample(linear, align_corners)",
     lambda ns: ns.Upsample(scale_factor=1.5, mode="linear", align_corners=True), [f(2, 3, 6)]),
    ("UpsamplingBilinear2d", lambda ns: ns.UpsamplingBilinear2d(scale_factor=2),
     [f(1, 2, 3, 4)]),
    ("UpsamplingNearest2d", lambda ns: ns.UpsamplingNearest2d(size=(5, 7)), [f(1, 2, 3, 4)]),
    ("Unfold", lambda ns: ns.Unfold((2, 3), dilation=(2, 1), padding=1, stride=(2, 1)),
     [f(2, 3, 6, 7)]),
    ("Fold", lambda ns: ns.Fold((5, 6), (2, 3), padding=(1, 0), stride=(2, 1)),
     [f(2, 12, 12)]),
]


@pytest.mark.parametrize("name, make, inputs", SPATIAL, ids=[c[0] for c in SPATIAL])
def test_spatial_module_matches_torch(name, make, inputs):
    check(make, inputs, training=True)


SPATIAL_REPRS = [
    lambda ns: ns.PixelShuffle(2), lambda ns: ns.PixelUnshuffle(3),
    lambda ns: ns.ZeroPad2d(1), lambda ns: ns.ZeroPad1d((1, 2)),
    lambda ns: ns.ConstantPad1d(2, 3.5), lambda ns: ns.ReflectionPad2d((1, 0, 2, 1)),
    lambda ns: ns.ReplicationPad1d(3), lambda ns: ns.CircularPad2d(1),
    lambda ns: ns.Upsample(scale_factor=2), lambda ns: ns.Upsample((4, 5), mode="bilinear"),
    lambda ns: ns.Unfold(3, padding=1), lambda ns: ns.Fold((4, 5), 2, stride=2),
]


@pytest.mark.parametrize("make", SPATIAL_REPRS, ids=range(len(SPATIAL_REPRS)))
def test_spatial_repr_is_torchs(make):
    assert repr(make(nn)) == repr(make(torch.nn))


def test_spatial_modules_compile():
    shuffle = nn.Sequential(nn.ReflectionPad2d((1, 2, 0, 1)), nn.PixelShuffle(2),
                            nn.PixelUnshuffle(2), nn.Upsample(scale_factor=2, mode="bilinear"),
                            nn.Unfold(2, stride=2), nn.Fold((10, 12), 2, stride=2))
    compiled_matches_eager(shuffle, f(2, 8, 4, 3))


@pytest.mark.parametrize("make, x, error", [
    (lambda: nn.PixelShuffle(2), f(2, 6, 3, 3), "divisible by upscale_factor squared"),
    (lambda: nn.PixelShuffle(0), f(2, 4, 3, 3), "positive int"),
    (lambda: nn.PixelUnshuffle(2), f(2, 4, 3, 4), "divisible by downscale_factor"),
    (lambda: nn.ReflectionPad1d(3), f(2, 3, 3), "at most 2"),
    (lambda: nn.ZeroPad2d(1), f(5, 5), "expects a 3-d or 4-d input"),
    (lambda: nn.ConvTranspose2d(3, 4, 3), f(2, 4, 5, 5), "has 4 channels but weight"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2), f(2, 3, 5, 5),
     "output_padding"),
], ids=["shuffle channels", "shuffle factor", "unshuffle size", "reflect too far",
        "pad rank", "transpose channels", "transpose output_padding"])
def test_bad_inputs_are_dlg_errors(make, x, error):
    with pytest.raises(DlgError, match=error):
        make()(dlg.tensor(x))


@pytest.mark.parametrize("make, error", [
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), "zeros"),
    (lambda: nn.ConvTranspose1d(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride="x"), "stride"),
    (lambda: nn.ZeroPad2d((1, 2, 3)), "padding"),
])
def test_bad_options_are_dlg_errors(make, error):
    with pytest.raises(DlgError, match=error):
        make()


# ---- normalisation, products, distances, alpha dropout, parameter containers ----------------------
LAYERS = [
    ("RMSNorm", lambda ns: ns.RMSNorm(5), [f(3, 4, 5)]),
    ("RMSNorm(2 dims, eps)", lambda ns: ns.RMSNorm((2, 3), eps=1e-3), [f(4, 2, 3)]),
    ("RMSNorm(no affine)", lambda ns: ns.RMSNorm(4, elementwise_affine=False), [f(3, 4)]),
    ("Bilinear", lambda ns: ns.Bilinear(3, 4, 5), [f(6, 3), f(6, 4)]),
    ("Bilinear(no bias, batch dims)", lambda ns: ns.Bilinear(2, 3, 4, bias=False),
     [f(2, 5, 2), f(2, 5, 3)]),
    ("PairwiseDistance", lambda ns: ns.PairwiseDistance(), [f(4, 5), f(4, 5)]),
    ("PairwiseDistance(p=1, keepdim)", lambda ns: ns.PairwiseDistance(1.0, 1e-3, True),
     [f(4, 5), f(1, 5)]),
]


@pytest.mark.parametrize("name, make, inputs", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(name, make, inputs):
    check(make, inputs, training=True)


@pytest.mark.parametrize("kind", ["AlphaDropout", "FeatureAlphaDropout"])
def test_alpha_dropout_is_identity_in_eval_and_keeps_the_moments_in_training(kind):
    check(lambda ns: getattr(ns, kind)(0.3), [f(4, 3, 5)], training=False)
    dlg.manual_seed(0)
    y = getattr(nn, kind)(0.2)(dlg.tensor(f(64, 32, 16))).numpy()
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05
    assert repr(getattr(nn, kind)(0.3)) == repr(getattr(torch.nn, kind)(0.3))


def test_layers_compile():
    compiled_matches_eager(nn.Sequential(nn.RMSNorm(4), nn.AlphaDropout()), f(3, 4))
    bilinear = nn.Bilinear(3, 4, 2)
    x1, x2 = f(5, 3), f(5, 4)
    eager = bilinear(dlg.tensor(x1), dlg.tensor(x2)).detach().numpy()
    np.testing.assert_allclose(dlg.compile(bilinear, x1, x2)(x1, x2), eager, rtol=1e-4,
                               atol=1e-5)


def test_layer_reprs_and_initialisers_are_torchs():
    for make in (lambda ns: ns.RMSNorm((2, 3), eps=1e-4), lambda ns: ns.Bilinear(2, 3, 4),
                 lambda ns: ns.PairwiseDistance()):
        assert repr(make(nn)) == repr(make(torch.nn))
    w = nn.Bilinear(16, 3, 40).weight.detach().numpy()
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.24  # U(-1/sqrt(in1), 1/sqrt(in1))


def test_parameter_containers_hold_torchs_names():
    class Model(nn.Module):
        def __init__(self, ns):
            super().__init__()
            self.scales = ns.ParameterList([ns.Parameter(ns_ones(ns, 3)) for _ in range(2)])
            self.shifts = ns.ParameterDict({"a": ns.Parameter(ns_ones(ns, 3))})

    ours = Model.__new__(Model)
    nn.Module.__init__(ours)
    ours.scales = nn.ParameterList([dlg.ones(3), np.ones(3, np.float32)])
    ours.shifts = nn.ParameterDict({"a": dlg.ones(3)})
    theirs = torch.nn.Module()
    theirs.scales = torch.nn.ParameterList([torch.ones(3), torch.ones(3)])
    theirs.shifts = torch.nn.ParameterDict({"a": torch.ones(3)})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.scales)
    ours.scales.append(dlg.zeros(2))
    ours.shifts["b"] = dlg.zeros(1)
    assert len(ours.scales) == 3 and tuple(ours.scales[-1].shape) == (2,)
    assert list(ours.shifts) == ["a", "b"] and "b" in ours.shifts
    (ours.scales[0] * ours.shifts["a"]).sum().backward()
    assert ours.scales[0].grad is not None


def ns_ones(ns: Any, n: int) -> Any:
    return (dlg if ns is nn else torch).ones(n)
