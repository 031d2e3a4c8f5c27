"""The im2col pass (convolutions as matmuls over an im2col copy) and the im2col op.

The op's reference against a direct NumPy convolution (loops over kernel positions, no
windows); the compiled convolution, forward and with the gradients of a scalar loss (input and
weight), against the interpreter running the graph as written, over edge shapes: stride,
dilation, asymmetric padding, groups (depthwise too), 1x1 kernels, a kernel as large as the
input, odd sizes, 1-D, batch 1 and prime batches through one compilation with a symbolic batch.
"""

from __future__ import annotations

from math import prod

import numpy as np
import pytest

from dlg.compiler.passes.autodiff import grad
from dlg.compiler.passes.im2col import im2col
from dlg.compiler.pipeline import CompileCtx, CompileOptions, run_stages
from dlg.ir import Builder, DType, Graph, TensorType
from dlg.ir.ops.conv import CONV, CONV_WEIGHT_GRAD
from dlg.ir.ops.im2col import IM2COL
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

RTOL, ATOL = 1e-4, 1e-5

# (input [C, *spatial], weight [O, C/groups, *kernel], stride, padding, dilation, groups)
CONVS = {
    "plain": ((3, 7, 7), (16, 3, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "stride_dilation_pad": ((3, 9, 8), (17, 3, 3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 1),
    "groups": ((8, 6, 5), (32, 4, 3, 3), (1, 2), ((1, 1), (1, 1)), (1, 1), 2),
    "one_by_one": ((17, 4, 3), (16, 17, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "kernel_is_input": ((2, 5, 3), (16, 2, 5, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "odd_strided": ((3, 11, 13), (19, 3, 4, 3), (3, 2), ((2, 1), (0, 3)), (2, 1), 1),
    "conv1d": ((4, 17), (16, 4, 5), (2,), ((2, 1),), (2,), 1),
    "wide": ((16, 7, 6), (16, 16, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),
    # output width 20: by default (16 lanes) forward as tiles, weight gradient as a GEMM
    "vector_and_a_bit": ((16, 22, 22), (16, 16, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    # products too small for the GEMM: the convolutions stay as they are
    "depthwise": ((16, 5, 5), (16, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 16),
    "one_channel": ((1, 8, 8), (32, 1, 3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
}
KEPT = {"depthwise", "one_channel"}
# 16 or more input channels: the input gradient is rewritten
WIDE_INPUT = {"one_by_one", "wide", "vector_and_a_bit"}


def direct_conv(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups) -> np.ndarray:
    """PyTorch's convolution by its definition: a sum over kernel positions of channel
    products, each reading a strided slice of the padded input (float64)."""
    nd = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    out = [(xp.shape[2 + i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
           for i in range(nd)]
    c_out, c_group = w.shape[:2]
    y = np.zeros((x.shape[0], c_out, *out))
    for o in range(c_out):
        group = o // (c_out // groups)
        for k in np.ndindex(*w.shape[2:]):
            window = tuple(slice(k[i] * dilation[i], k[i] * dilation[i] + stride[i] * (out[i] - 1)
                                 + 1, stride[i]) for i in range(nd))
            xs = xp[(slice(None), slice(group * c_group, (group + 1) * c_group)) + window]
            y[:, o] += np.einsum("nc...,c->n...", xs, w[(o, slice(None)) + k])
    return y


def conv_graph(case: str) -> tuple[Graph, dict[str, np.ndarray], dict]:
    """conv on a symbolic batch, as an output and in a scalar loss sum(conv * r) with the
    input's and the weight's gradients; its weights; the conv's attributes."""
    shape, wshape, stride, padding, dilation, groups = CONVS[case]
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    g = Graph(case)
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N,{','.join(map(str, shape))}]"))
    w = b.input("w", TensorType(DType.f32, wshape))
    y = b.conv(x, w, **attrs)
    r = b.input("r", g.type_of(y))
    g.set_output("y", y)
    g.set_output("loss", b.reduce_sum(b.mul(y, r), axes=None, keepdims=False))
    return grad(g, "loss", wrt=["x", "w"]), {"w": _data(wshape, 1)}, attrs


def _data(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def options() -> CompileOptions:
    return CompileOptions(verify=True, im2col=True)


def graph_stages(g: Graph) -> Graph:
    return run_stages(g, CompileCtx(options()))


@pytest.mark.parametrize("case", sorted(CONVS))
def test_im2col_ref_makes_the_direct_convolution(case):
    shape, wshape, stride, padding, dilation, groups = CONVS[case]
    x, w = _data((3, *shape), 0), _data(wshape, 1)
    xp = np.pad(x, [(0, 0), (0, 0), *padding])
    cols = IM2COL.ref(xp, kernel=wshape[2:], stride=stride, dilation=dilation)
    out = cols.shape[2:]
    cols = cols.reshape(groups, -1, cols[0].size).astype(np.float64)
    y = w.reshape(groups, wshape[0] // groups, -1).astype(np.float64) @ cols
    y = y.reshape(wshape[0], 3, *out).swapaxes(0, 1)
    np.testing.assert_allclose(y, direct_conv(x, w, stride, padding, dilation, groups),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CONVS))
def test_the_pass_rewrites_gemm_sized_convolutions(case):
    """Forward and weight gradient become matmuls over im2col; the input gradient too when
    the input has enough channels; the small ones stay convolutions (a strided input gradient
    without dilation is one per phase of the stride)."""
    g, _, _ = conv_graph(case)
    ops = [node.op for node in graph_stages(g)]
    convs = ops.count(CONV) + ops.count(CONV_WEIGHT_GRAD)
    _, _, stride, _, dilation, _ = CONVS[case]
    phases = prod(stride) if max(dilation) == 1 else 1
    if case in KEPT:
        assert IM2COL not in ops and convs == 2 + phases
    else:
        wide = case in WIDE_INPUT
        assert IM2COL in ops and convs == (0 if wide else phases)


@pytest.mark.parametrize("case", sorted(CONVS))
def test_compiled_convolution_and_gradients_match_the_interpreter(case):
    """One compilation per case, run at batch 1 and two primes."""
    check_compiled(case, options())


def test_the_default_choice_matches_the_interpreter():
    """The pass's own choice, which may rewrite a weight gradient and not its forward."""
    check_compiled("vector_and_a_bit", CompileOptions(verify=True))


def check_compiled(case: str, options: CompileOptions) -> None:
    g, params, attrs = conv_graph(case)
    ng = NativeGraph(g, loss="loss", options=options)
    r_type = g.input_named("r").types[0]
    for n in (1, 3, 7):
        x = _data((n, *CONVS[case][0]), n)
        inputs = {"x": x, **params, "r": _data((n, *(int(d) for d in r_type.shape[1:])), 10 + n)}
        want, _ = Interpreter().run(g, inputs, {})
        got = ng(inputs, {})
        np.testing.assert_allclose(got["y"], direct_conv(x, params["w"], **attrs),
                                   rtol=RTOL, atol=ATOL)
        for k in ("y", "loss", "grad.x", "grad.w"):
            np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=1e-4, err_msg=k)


@pytest.mark.parametrize("channels,width,stride,forward,weight_grad", [
    (16, 7, 1, True, True), (16, 10, 1, False, True), (3, 12, 1, False, True),
    (16, 13, 1, False, False), (16, 16, 1, False, False), (16, 24, 1, False, False),
    (7, 20, 1, False, False), (16, 16, 2, True, True), (7, 20, 2, True, True)])
def test_by_default_only_convolutions_the_tiles_do_badly(channels, width, stride, forward,
                                                        weight_grad):
    """With 8 lanes: the forward convolution is rewritten below one vector's width, its weight
    gradient up to a vector and a half unless the width is a multiple of the vector; both
    whenever the input is read with a stride (the tiles need contiguous columns)."""
    g = Graph("c")
    b = Builder(g)
    size = stride * (width - 1) + 3
    x = b.input("x", TensorType.parse(f"f32[N,{channels},{size},{size}]"))
    w = b.input("w", TensorType(DType.f32, (32, channels, 3, 3)))
    y = b.conv(x, w, stride=(stride, stride), padding=((0, 0), (0, 0)), dilation=(1, 1),
               groups=1)
    g.set_output("loss", b.reduce_sum(b.mul(y, y), axes=None, keepdims=False))
    out = im2col(grad(g, "loss", wrt=["w"]), lanes=8)
    ops = [node.op for node in out]
    convs = [node for node in out if node.op is CONV and node.types[0].shape[1] == 32]
    assert (not convs) == forward
    assert (CONV_WEIGHT_GRAD not in ops) == weight_grad
    assert (IM2COL in ops) == (forward or weight_grad)
