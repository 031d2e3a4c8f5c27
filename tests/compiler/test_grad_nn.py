"""Convolution and pooling gradients across their attribute space: float64 finite differences
and torch.autograd (ties in max pooling, count_include_pad, ceil_mode, groups, dilation); the
compiled pool gradients against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.compiler.passes.autodiff import grad
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph
from tests.compiler.gradcheck import check_gradients, scalar_loss

CONVS = [  # x shape, w shape, stride, padding, dilation, groups
    ((2, 3, 9), (4, 3, 3), (2,), ((1, 0),), (1,), 1),
    ((1, 4, 10), (4, 1, 2), (3,), ((0, 2),), (2,), 4),            # depthwise, stride > kernel
    ((2, 2, 7, 6), (4, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 4, 8, 9), (6, 2, 3, 2), (2, 3), ((0, 1), (2, 0)), (1, 2), 2),
    ((2, 3, 5, 5), (3, 1, 1, 1), (2, 2), ((3, 3), (0, 0)), (1, 1), 3),  # padding beyond kernel
    ((1, 1, 9, 9), (2, 1, 3, 3), (4, 4), ((0, 0), (0, 0)), (1, 1), 1),  # unread last rows
    ((2, 3, 1, 6), (3, 1, 1, 1), (4, 1), ((3, 0), (0, 3)), (2, 3), 3),  # windows in padding only
    ((1, 2, 11), (4, 1, 4), (2,), ((3, 1),), (3,), 2),                  # kernel extent > input
    ((2, 2, 4, 1, 5), (4, 1, 2, 1, 3), (2, 1, 3), ((1, 0), (0, 0), (1, 2)), (1, 1, 2), 2),  # 3-d
    ((1, 3, 3, 4, 3), (2, 3, 1, 2, 2), (3, 2, 1), ((0, 0), (1, 1), (0, 1)), (1, 1, 1), 1),
]
POOLS = [  # op, x shape, attrs
    ("max_pool", (2, 3, 7, 7), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}),
    ("max_pool", (2, 2, 9), {"kernel": (3,), "stride": (2,), "padding": (0,), "ceil_mode": True}),
    ("max_pool", (1, 2, 6, 6), {"kernel": (2, 2), "stride": (1, 1), "padding": (0, 0),
                                "dilation": (2, 2)}),
    ("avg_pool", (2, 3, 7, 7), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}),
    ("avg_pool", (2, 3, 7, 7), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1),
                                "count_include_pad": False, "ceil_mode": True}),
    ("avg_pool", (1, 2, 8), {"kernel": (4,), "stride": (3,), "padding": (2,), "ceil_mode": True}),
    ("max_pool", (1, 2, 5, 1, 6), {"kernel": (2, 1, 3), "stride": (3, 1, 2), "padding": (1, 0, 1),
                                   "dilation": (2, 1, 1), "ceil_mode": True}),
    ("avg_pool", (2, 1, 4, 5, 3), {"kernel": (2, 3, 2), "stride": (2, 1, 3), "padding": (1, 1, 0),
                                   "count_include_pad": False, "ceil_mode": True}),
]


def graph(op: str, shapes: list[tuple], dtype: DType = DType.f64, **attrs) -> Graph:
    g = Graph(op)
    b = Builder(g)
    ins = [b.input(f"in{i}", TensorType(dtype, s)) for i, s in enumerate(shapes)]
    g.set_output("out", getattr(b, op)(*ins, **attrs))
    return g


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS)
def test_conv_gradients_match_finite_differences(xs, ws, stride, padding, dilation, groups):
    g, weights = scalar_loss(graph("conv", [xs, ws], stride=stride, padding=padding,
                                   dilation=dilation, groups=groups))
    rng = np.random.default_rng(0)
    inputs = {"in0": rng.standard_normal(xs), "in1": rng.standard_normal(ws), **weights}
    check_gradients(g, inputs, {}, ["in0", "in1"], rtol=1e-7)


@pytest.mark.parametrize("op, shape, attrs", POOLS)
def test_pool_gradients_match_finite_differences(op, shape, attrs):
    g, weights = scalar_loss(graph(op, [shape], **attrs))
    x = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0  # no ties
    check_gradients(g, {"in0": x, **weights}, {}, ["in0"], rtol=1e-7)


def run_grads(g: Graph, inputs: dict, wrt: list[str], cotangent: np.ndarray) -> dict:
    b = Builder(g)
    ct = b.input("ct", TensorType(DType.f64, cotangent.shape))
    g.set_output("loss", b.reduce_sum(b.mul(dict(g.outputs)["out"], ct)))
    outs, _ = Interpreter().run(grad(g, "loss", wrt=wrt), {**inputs, "ct": cotangent}, {})
    return outs


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS)
def test_conv_gradients_match_torch(xs, ws, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    conv = getattr(F, f"conv{len(xs) - 2}d")
    pads = [p for pair in reversed(padding) for p in pair]  # F.pad: last dim first
    ty = conv(F.pad(tx, pads), tw, stride=stride, dilation=dilation, groups=groups)
    ct = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(ct))
    outs = run_grads(graph("conv", [xs, ws], stride=stride, padding=padding, dilation=dilation,
                           groups=groups), {"in0": x, "in1": w}, ["in0", "in1"], ct)
    np.testing.assert_allclose(outs["grad.in0"], tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(outs["grad.in1"], tw.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("op, shape, attrs", POOLS)
@pytest.mark.parametrize("ties", [False, True])
def test_pool_gradients_match_torch(op, shape, attrs, ties):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = np.round(rng.standard_normal(shape)) if ties else rng.standard_normal(shape)
    tx = torch.tensor(x, requires_grad=True)
    nd = len(attrs["kernel"])
    fn = getattr(torch.nn.functional, f"{op}{nd}d")
    kwargs = {"kernel_size": attrs["kernel"], "stride": attrs["stride"],
              "padding": attrs["padding"], "ceil_mode": attrs.get("ceil_mode", False)}
    if "dilation" in attrs:
        kwargs["dilation"] = attrs["dilation"]
    if "count_include_pad" in attrs:
        kwargs["count_include_pad"] = attrs["count_include_pad"]
    ty = fn(tx, **kwargs)
    ct = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(ct))
    outs = run_grads(graph(op, [shape], **attrs), {"in0": x}, ["in0"], ct)
    np.testing.assert_allclose(outs["grad.in0"], tx.grad.numpy(), rtol=1e-10, atol=1e-10)


IN_BOUNDS = [  # every window inside the input: the compiled scatters read and store unguarded
    ("max_pool", (2, 3, 8, 6), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}),
    ("avg_pool", (1, 2, 9), {"kernel": (3,), "stride": (3,), "padding": (0,)}),
]


@pytest.mark.parametrize("op, shape, attrs", POOLS + IN_BOUNDS)
def test_compiled_pool_gradients_are_the_interpreters(op, shape, attrs):
    """With ties (rounded data): the first maximum of each window, as the interpreter picks."""
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal(shape))
    g = graph(op, [shape], **attrs)
    b = Builder(g)
    ct = b.input("ct", g.type_of(dict(g.outputs)["out"]))
    g.set_output("loss", b.reduce_sum(b.mul(dict(g.outputs)["out"], ct)))
    gg = grad(g, "loss", wrt=["in0"])
    feeds = {"in0": x, "ct": rng.standard_normal(tuple(g.type_of(ct).shape))}
    want, _ = Interpreter().run(gg, feeds, {})
    got = NativeGraph(gg)(feeds, {})
    np.testing.assert_allclose(got["grad.in0"], want["grad.in0"], rtol=1e-12, atol=1e-12)


def test_constant_input_sends_each_window_gradient_to_its_first_element():
    """All ties: PyTorch and dlg both pick the first element of each window."""
    g = graph("max_pool", [(1, 1, 4, 4)], kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    outs = run_grads(g, {"in0": np.ones((1, 1, 4, 4))}, ["in0"], np.ones((1, 1, 2, 2)))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(outs["grad.in0"][0, 0], expected)


def test_overlapping_windows_add_their_gradients():
    """x[1] is the maximum of both windows that contain it: it gets both windows' gradients."""
    g = graph("max_pool", [(1, 1, 4)], kernel=(3,), stride=(1,), padding=(0,))
    outs = run_grads(g, {"in0": np.array([[[0.0, 5.0, 1.0, 0.0]]])}, ["in0"],
                     np.array([[[2.0, 3.0]]]))
    np.testing.assert_array_equal(outs["grad.in0"], [[[0.0, 5.0, 0.0, 0.0]]])


def test_windows_wholly_in_padding_send_no_gradient():
    """With dilation a window can read only padding (its max is -inf, as in PyTorch); its
    gradient goes nowhere. (PyTorch's backward writes it to an arbitrary element there.)"""
    g = graph("max_pool", [(1, 2, 1)], kernel=(2,), stride=(1,), padding=(1,), dilation=(2,),
              ceil_mode=True)
    outs = run_grads(g, {"in0": np.array([[[1.0], [2.0]]])}, ["in0"], np.ones((1, 2, 1)))
    np.testing.assert_array_equal(outs["grad.in0"], np.zeros((1, 2, 1)))


COMPOSITES = [  # op, x shape, w shape, attrs
    ("conv1d", (2, 4, 9), (6, 2, 3), {"stride": (2,), "padding": (1,), "dilation": (2,),
                                      "groups": 2}),
    ("conv1d", (1, 3, 8), (2, 3, 4), {"auto_pad": "same"}),
    ("conv2d", (2, 3, 7, 6), (4, 3, 3, 2), {"stride": (2, 1), "padding": (1, 0)}),
    ("conv2d", (1, 4, 6, 6), (4, 1, 3, 3), {"padding": (2, 1), "dilation": (2, 1),
                                            "groups": 4}),
    ("conv3d", (2, 2, 3, 5, 4), (4, 2, 3, 1, 2), {"auto_pad": "same"}),
    ("conv3d", (1, 4, 5, 3, 6), (2, 2, 2, 3, 1), {"stride": (3, 1, 2), "padding": (1, 1, 0),
                                                  "dilation": (2, 1, 1), "groups": 2}),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch copies the padded input
@pytest.mark.parametrize("op, xs, ws, attrs", COMPOSITES)
def test_conv_composites_with_bias_match_torch(op, xs, ws, attrs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, w, bias = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, bias))
    kwargs = {k: v for k, v in attrs.items() if k != "auto_pad"}
    if "auto_pad" in attrs:
        kwargs["padding"] = attrs["auto_pad"]
    ty = getattr(torch.nn.functional, op)(tx, tw, tb, **kwargs)
    ct = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(ct))
    outs = run_grads(graph(op, [xs, ws, (ws[0],)], **attrs), {"in0": x, "in1": w, "in2": bias},
                     ["in0", "in1", "in2"], ct)
    for i, t in enumerate((tx, tw, tb)):
        np.testing.assert_allclose(outs[f"grad.in{i}"], t.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [DType.f32, DType.f64])
def test_compiled_max_pool_gradient_routes_to_nans_and_first_maxima(dtype):
    """The vectorised 2x2 window (straight-line argmax): a NaN is the window's maximum (the
    first NaN where there are several), ties go to the first, -inf windows to their first
    element; as the interpreter does, over rows long enough to vectorise."""
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((2, 3, 6, 40))).astype(dtype.np)
    x[0, 0, :2, :2] = [[1.0, np.nan], [np.nan, 2.0]]
    x[0, 1, 2:4, 4:6] = -np.inf
    x[1, 2, 0, 0] = np.nan
    g = graph("max_pool", [x.shape], dtype, kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    b = Builder(g)
    ct = b.input("ct", g.type_of(dict(g.outputs)["out"]))
    g.set_output("loss", b.reduce_sum(b.mul(dict(g.outputs)["out"], ct)))
    gg = grad(g, "loss", wrt=["in0"])
    feeds = {"in0": x, "ct": rng.standard_normal(tuple(g.type_of(ct).shape)).astype(dtype.np)}
    want, _ = Interpreter().run(gg, feeds, {})
    got = NativeGraph(gg)(feeds, {})
    np.testing.assert_array_equal(got["grad.in0"], want["grad.in0"])
