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
from tests.frontend.test_modules_torch import assert_close, check, f, pair

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
    *[(f"{kind}3d", lambda ns, kind=kind, v=v: getattr(ns, f"{kind}3d")((1, 2, 0, 1, 2, 1), *v),
       [f(2, 3, 3, 4, 5)]) for kind, v in PAD_MODES],
    *[(f"{kind}3d(int, unbatched)", lambda ns, kind=kind, v=v: getattr(ns, f"{kind}3d")(1, *v),
       [f(2, 3, 4, 3)]) for kind, v in PAD_MODES],
    ("ConstantPad2d(negative)", lambda ns: ns.ConstantPad2d((-1, 2, 0, -2), 0.5),
     [f(2, 3, 4, 5)]),
    ("ConstantPad3d(negative)", lambda ns: ns.ConstantPad3d((-1, 2, 0, -2, 1, 0), -2.0),
     [f(2, 2, 3, 4, 5)]),
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
    lambda ns: ns.ZeroPad3d(2), lambda ns: ns.ConstantPad3d((1, 0, 2, 1, 0, 3), -1.5),
    lambda ns: ns.ReflectionPad3d(1), lambda ns: ns.ReplicationPad3d((0, 1, 2, 3, 4, 5)),
    lambda ns: ns.CircularPad3d(1),
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


def test_3d_padding_modules_compile():
    pads = nn.Sequential(nn.ReflectionPad3d((1, 2, 0, 1, 2, 1)), nn.ReplicationPad3d(1),
                         nn.ConstantPad3d((0, 1, 1, 0, 2, 0), 0.5), nn.ZeroPad3d(1),
                         nn.CircularPad3d((1, 0, 0, 1, 1, 1)))
    compiled_matches_eager(pads, f(2, 3, 3, 4, 5))


@pytest.mark.parametrize("make, x, error", [
    (lambda: nn.PixelShuffle(2), f(2, 6, 3, 3), "divisible by upscale_factor squared"),
    (lambda: nn.PixelShuffle(0), f(2, 4, 3, 3), "positive int"),
    (lambda: nn.PixelUnshuffle(2), f(2, 4, 3, 4), "divisible by downscale_factor"),
    (lambda: nn.ReflectionPad1d(3), f(2, 3, 3), "at most 2"),
    (lambda: nn.ZeroPad2d(1), f(5, 5), "expects a 3-d or 4-d input"),
    (lambda: nn.ReflectionPad3d((1, 1, 1, 1, 3, 0)), f(1, 2, 3, 4, 4), "at most 2"),
    (lambda: nn.ReplicationPad3d(1), f(4, 5, 6), "expects a 4-d or 5-d input"),
    (lambda: nn.ConvTranspose2d(3, 4, 3), f(2, 4, 5, 5), "has 4 channels but weight"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2), f(2, 3, 5, 5),
     "output_padding"),
], ids=["shuffle channels", "shuffle factor", "unshuffle size", "reflect too far",
        "pad rank", "reflect 3d too far", "pad 3d rank", "transpose channels",
        "transpose output_padding"])
def test_bad_inputs_are_dlg_errors(make, x, error):
    with pytest.raises(DlgError, match=error):
        make()(dlg.tensor(x))


@pytest.mark.parametrize("make, error", [
    (lambda: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"), "zeros"),
    (lambda: nn.ConvTranspose1d(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride="x"), "stride"),
    (lambda: nn.ZeroPad2d((1, 2, 3)), "padding"),
    (lambda: nn.ConstantPad3d((1, 2, 3, 4), 0.0), "padding"),
])
def test_bad_options_are_dlg_errors(make, error):
    with pytest.raises(DlgError, match=error):
        make()


# ---- normalisation, products, distances, alpha dropout, parameter containers -------------------
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


@pytest.mark.parametrize("call, error", [
    (lambda: nn.RMSNorm(5)(dlg.tensor(f(3, 4))), "normalized_shape"),
    (lambda: nn.Bilinear(3, 4, 2)(dlg.tensor(f(5, 3)), dlg.tensor(f(5, 3))), "bilinear"),
    (lambda: nn.Bilinear(3, 4, 2)(dlg.tensor(f(5, 3)), dlg.tensor(f(6, 4))), "leading dims"),
], ids=["rms_norm shape", "bilinear features", "bilinear batch"])
def test_layer_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call()


def ns_ones(ns: Any, n: int) -> Any:
    return (dlg if ns is nn else torch).ones(n)


# ---- scaled_dot_product_attention ---------------------------------------------------------------
def _mask(*shape: int) -> np.ndarray:
    allowed = np.random.default_rng(1).random(shape) > 0.4
    allowed[..., 0] = True  # no row without a key to attend (torch gives NaN there)
    return allowed


SDPA = [
    ({}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"is_causal": True}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"attn_mask": _mask(4, 6)}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"attn_mask": f(2, 1, 4, 6)}, (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)),
    ({"scale": 0.3}, (3, 4, 5), (3, 6, 5), (3, 6, 2)),
    ({"enable_gqa": True, "is_causal": True}, (2, 4, 3, 5), (2, 2, 3, 5), (2, 2, 3, 5)),
]


@pytest.mark.parametrize("kw, q, k, v", SDPA, ids=["plain", "causal", "bool mask", "float mask",
                                                  "scale", "gqa"])
def test_scaled_dot_product_attention_matches_torch(kw, q, k, v):
    arrays = [f(*s) for s in (q, k, v)]
    ours = [dlg.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ya = F.scaled_dot_product_attention(*ours, **{n: dlg.tensor(x) if isinstance(x, np.ndarray)
                                                  else x for n, x in kw.items()})
    yt = torch.nn.functional.scaled_dot_product_attention(
        *theirs, **{n: torch.tensor(x) if isinstance(x, np.ndarray) else x for n, x in kw.items()})
    assert_close(ya, yt, "output")
    (ya * ya).sum().backward()
    (yt * yt).sum().backward()
    for name, a, t in zip("qkv", ours, theirs):
        assert_close(a.grad, t.grad, f"{name} gradient", 1e-4)


def test_scaled_dot_product_attention_dropout_and_compiled():
    q = dlg.tensor(np.ones((2, 64, 8), np.float32))
    v = dlg.tensor(np.eye(64, dtype=np.float32)[None].repeat(2, 0))
    dlg.manual_seed(0)
    weights = F.scaled_dot_product_attention(q, q, v, dropout_p=0.5).numpy()  # [2, 64, 64]
    assert set(np.unique(np.round(weights * 32, 4))) <= {0.0, 1.0}  # 1/64 kept as 2/64, or 0

    class Causal(nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, x, x, is_causal=True)
    compiled_matches_eager(Causal(), f(2, 5, 4))


def test_dlg_builtins_take_a_symbolic_length():
    """The .dlg door: a causal attention over any sequence length, compiled once."""
    model = dlg.compile(dlg.loads("model M { input q: f32[N, T, 8]  output y = "
                                  "scaled_dot_product_attention(q, q, q, is_causal=true) }"))
    for length in (3, 5):
        q = f(2, length, 8)
        want = torch.nn.functional.scaled_dot_product_attention(*[torch.tensor(q)] * 3,
                                                                is_causal=True)
        np.testing.assert_allclose(model(q=q), want.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, error", [
    (lambda a: F.scaled_dot_product_attention(a, a, a, attn_mask=dlg.tensor(_mask(4, 4)),
                                              is_causal=True), "not both"),
    (lambda a: F.scaled_dot_product_attention(a, dlg.tensor(f(2, 4, 3)), a), "expects query"),
    (lambda a: F.scaled_dot_product_attention(a, a, a, dropout_p="x"), "dropout_p"),
], ids=["mask and causal", "key width", "dropout_p"])
def test_scaled_dot_product_attention_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call(dlg.tensor(f(2, 4, 5)))


def test_sdpa_kernel_picks_a_backend_without_changing_numbers():
    """torch.nn.attention.sdpa_kernel (modern training scripts pin FLASH_ATTENTION): the
    backends torch names, the block accepted, the numbers torch's math kernel gives."""
    from dlg.nn.attention import SDPBackend, sdpa_kernel

    assert {b.name: int(b) for b in SDPBackend} == {
        b.name: int(b) for b in torch.nn.attention.SDPBackend.__members__.values()}
    assert str(SDPBackend.MATH) == str(torch.nn.attention.SDPBackend.MATH)
    q = f(2, 4, 5)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        want = torch.nn.functional.scaled_dot_product_attention(*[torch.tensor(q)] * 3,
                                                                is_causal=True)
    for backends in (SDPBackend.FLASH_ATTENTION, [SDPBackend.MATH, SDPBackend.CUDNN_ATTENTION]):
        with dlg.nn.attention.sdpa_kernel(backends):
            got = F.scaled_dot_product_attention(*[dlg.tensor(q)] * 3, is_causal=True)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(dlg.DlgTypeError, match="an SDPBackend or a list of them"):
        with sdpa_kernel("flash"):
            pass


# ---- Transformer layers ---------------------------------------------------------------------
TRANSFORMERS = [
    ("EncoderLayer", lambda ns: ns.TransformerEncoderLayer(8, 2, 16, dropout=0.0), [f(5, 3, 8)]),
    ("EncoderLayer(gelu, batch_first, norm_first)",
     lambda ns: ns.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True), [f(3, 5, 8)]),
    ("EncoderLayer(callable, no bias, eps, unbatched)",
     lambda ns: ns.TransformerEncoderLayer(6, 3, 10, dropout=0.0, activation=ns.functional.silu,
                                           bias=False, layer_norm_eps=1e-3), [f(4, 6)]),
    ("DecoderLayer", lambda ns: ns.TransformerDecoderLayer(8, 2, 12, dropout=0.0),
     [f(4, 2, 8), f(5, 2, 8)]),
    ("DecoderLayer(norm_first, batch_first)",
     lambda ns: ns.TransformerDecoderLayer(8, 4, 12, dropout=0.0, norm_first=True,
                                           batch_first=True), [f(2, 4, 8), f(2, 5, 8)]),
    ("Encoder", lambda ns: ns.TransformerEncoder(
        ns.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2, ns.LayerNorm(8)), [f(5, 3, 8)]),
    ("Decoder", lambda ns: ns.TransformerDecoder(
        ns.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True), 2),
     [f(4, 2, 8), f(5, 2, 8)]),
    ("Transformer", lambda ns: ns.Transformer(8, 2, 1, 2, 16, dropout=0.0, batch_first=True),
     [f(2, 5, 8), f(2, 4, 8)]),
]


@pytest.mark.parametrize("name, make, inputs", TRANSFORMERS, ids=[c[0] for c in TRANSFORMERS])
@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_transformer_matches_torch(name, make, inputs):
    check(make, inputs, training=True)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_transformer_with_dropout_matches_torch_in_eval_mode():
    check(lambda ns: ns.Transformer(8, 2, 2, 1, 16), [f(5, 2, 8), f(4, 2, 8)], training=False)


@pytest.mark.filterwarnings("ignore:Support for mismatched")
def test_transformer_masks_match_torch():
    ours, theirs = pair(lambda ns: ns.TransformerDecoderLayer(8, 2, 16, dropout=0.0))
    tgt, memory = f(4, 2, 8), f(5, 2, 8)
    causal = np.triu(np.ones((4, 4), bool), 1)
    padding = np.array([[False, False, True, False, True], [False] * 5])
    masks = [{"tgt_mask": causal, "memory_key_padding_mask": padding},
             {"tgt_mask": np.float32(nn.Transformer.generate_square_subsequent_mask(4).numpy()),
              "tgt_is_causal": True, "memory_mask": f(4, 5)},
             {"tgt_key_padding_mask": padding[:, :4]}]
    for kwargs in masks:
        lib = [{n: mod.tensor(v) if isinstance(v, np.ndarray) else v for n, v in kwargs.items()}
               for mod in (dlg, torch)]
        assert_close(ours(dlg.tensor(tgt), dlg.tensor(memory), **lib[0]),
                     theirs(torch.tensor(tgt), torch.tensor(memory), **lib[1]), f"{list(kwargs)}")
    encoder, their_encoder = pair(lambda ns: ns.TransformerEncoder(
        ns.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2))
    src, additive = f(2, 5, 8), f(5, 5)
    assert_close(encoder(dlg.tensor(src), src_key_padding_mask=dlg.tensor(padding),
                         mask=dlg.tensor(additive)),
                 their_encoder(torch.tensor(src), src_key_padding_mask=torch.tensor(padding),
                               mask=torch.tensor(additive)), "encoder")


def test_square_subsequent_mask_takes_torchs_device_and_dtype():
    for kwargs in ({}, {"device": "cpu", "dtype": "float64"}, {"dtype": "float16"}):
        ours = nn.Transformer.generate_square_subsequent_mask(
            4, **{k: getattr(dlg, v) if k == "dtype" else v for k, v in kwargs.items()})
        theirs = torch.nn.Transformer.generate_square_subsequent_mask(
            4, **{k: getattr(torch, v) if k == "dtype" else v for k, v in kwargs.items()})
        assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(DlgError, match="device 'cuda'"):
        nn.Transformer.generate_square_subsequent_mask(3, device="cuda")


def test_transformer_layers_compile_and_initialise_as_torch():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True)
    compiled_matches_eager(layer, f(2, 5, 8))
    w = nn.Transformer(16, 2, 1, 1, 32).encoder.layers[0].linear1.weight.detach().numpy()
    bound = np.sqrt(6 / (16 + 32))  # xavier_uniform, as torch's _reset_parameters
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


@pytest.mark.parametrize("make, error", [
    (lambda: nn.TransformerEncoderLayer(8, 3), "divisible"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="tanh"), "relu/gelu"),
    (lambda: nn.Transformer(8, 2, 1, 1, 16)(dlg.tensor(f(5, 2, 8)), dlg.tensor(f(4, 3, 8))),
     "batch number"),
    (lambda: nn.Transformer(8, 2, 1, 1, 16)(dlg.tensor(f(5, 2, 6)), dlg.tensor(f(4, 2, 6))),
     "d_model"),
    (lambda: nn.TransformerEncoderLayer(8, 2)(dlg.tensor(f(5, 2, 8)), is_causal=True),
     "is_causal"),
])
def test_transformer_errors(make, error):
    with pytest.raises(DlgError, match=error):
        make()


# ---- from_torch ------------------------------------------------------------------------------
class Upsampler(torch.nn.Module):
    """A torch model of the new pieces: a transposed convolution, a pixel shuffle and a
    Transformer encoder layer over the pixels as tokens."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(3, 16, 3, stride=2, padding=1, output_padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)
        self.pad = torch.nn.ReflectionPad2d(1)
        self.encoder = torch.nn.TransformerEncoderLayer(4, 2, 8, batch_first=True,
                                                        activation="gelu")

    def forward(self, x):
        y = self.pad(self.shuffle(self.up(x)))
        return self.encoder(y.flatten(2).transpose(1, 2))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
def test_from_torch_converts_the_new_modules():
    torch.manual_seed(0)
    net = Upsampler().eval()
    x = f(2, 3, 2, 2)
    model = dlg.from_torch(net, torch.tensor(x))
    assert list(model.params) == list(net.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(model(x), net(torch.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    stack = torch.nn.Transformer(8, 2, 1, 1, 16, batch_first=True).eval()
    src, tgt = f(2, 5, 8), f(2, 3, 8)
    with torch.no_grad():
        np.testing.assert_allclose(dlg.from_torch(stack, (torch.tensor(src), torch.tensor(tgt)))(
            src, tgt), stack(torch.tensor(src), torch.tensor(tgt)).numpy(), rtol=1e-5, atol=1e-5)
    distance = torch.nn.PairwiseDistance(p=1.0)
    a, b = f(3, 4), f(3, 4)
    np.testing.assert_allclose(dlg.from_torch(distance, (torch.tensor(a), torch.tensor(b)))(a, b),
                               distance(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-5)
