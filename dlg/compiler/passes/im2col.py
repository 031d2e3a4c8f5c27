"""im2col: convolutions and their weight gradients become matrix products over an `im2col` copy
of the windows, one product for the whole batch, so they run on the packed GEMM.

With cols = im2col(x), [C*K, N*P] (K kernel positions, P output positions; the batch joins the
output positions) and per group g:
    conv:             y[g]  = W[g] [O/G, C/G*K] @ cols[g] [C/G*K, N*P]  -> [O, N, *out] -> NCHW
    conv_weight_grad: dW[g] = gT[g] [O/G, N*P]  @ cols[g]^T             -> [O, C/G, *kernel]
Both operands of each product are plain strided loads; the output's transpose to NCHW is read
by the kernel that adds the bias (fused there); gT, the cotangent channels first, is a 1x1
im2col (a copy in memory: the GEMM needs strided loads, not a transposed reshape). The forward
convolution and its weight gradient read the same cols after CSE (the pass runs before
simplify). The input gradient is a convolution (conv.py's VJP) and is rewritten like any other.

Only convolutions whose products have every side at least the GEMM's `GEMM_MIN_SIDE` are
rewritten: below it the products would run as register tiles, which stream cols (a whole
batch's columns) with no cache blocking. Runs after `explicit_padding`: no padding is read.

By default only where the tiles lose (`_tiles_waste_lanes`: output widths under a vector, and
for the weight gradient up to a vector and a half) or cannot run (`_strided`);
`CompileOptions(im2col=True)` rewrites every GEMM-sized convolution, False none. Where the tiles
use whole vectors they stay ahead even of the GEMM at ~60 GFLOP/s: the copy (cols is K times the
input) and the transpose to NCHW cost a third of the GEMM's time.
"""

from __future__ import annotations

from math import prod

from dlg.compiler.schedule import GEMM_MIN_SIDE
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph, Node, Value
from dlg.ir.ops.conv import CONV, CONV_WEIGHT_GRAD
from dlg.ir.rewrite import copy_graph
from dlg.ir.shapes import Shape, numel


def im2col(g: Graph, lanes: int | None) -> Graph:
    """`g` with its GEMM-sized convolutions rewritten: those that run faster as GEMMs on a
    target whose vectors hold `lanes` floats, or with None all of them (tests, A/B timing)."""
    def pays(node: Node) -> bool:
        return _gemm_sized(g, node) and (lanes is None or _tiles_waste_lanes(g, node, lanes)
                                         or _strided(node))
    if not any(pays(node) for node in g):
        return g

    def rewrite(b: Builder, node: Node, inputs: tuple[Value, ...]) -> Value | None:
        if not pays(node):
            return None
        return (_conv if node.op is CONV else _weight_grad)(b, node, *inputs)
    return copy_graph(g, rewrite)


def _gemm_sized(g: Graph, node: Node) -> bool:
    """A convolution or weight gradient, unpadded, whose products are GEMM-sized: output
    channels, and input channels times kernel positions, per group at least GEMM_MIN_SIDE."""
    if node.op not in (CONV, CONV_WEIGHT_GRAD):
        return False
    c_out, depth = _sides(g, node)
    return (not any(lo or hi for lo, hi in node.attrs["padding"])
            and min(c_out, depth) >= GEMM_MIN_SIDE)


def _sides(g: Graph, node: Node) -> tuple[int, int]:
    """Output channels and input channels times kernel positions, per group."""
    weight = g.type_of(node.inputs[1]).shape if node.op is CONV else node.types[0].shape
    groups = node.attrs["groups"]
    c_out, *rows = _static(weight)
    return c_out // groups, prod(rows)


def _tiles_waste_lanes(g: Graph, node: Node, lanes: int) -> bool:
    """Whether the register tiles lose to the GEMM here (measured with one thread; tables in
    DESIGN.md). They run along the output's last axis, the forward's from one vector up
    (32->64 channels, batch 64: at widths 12-28 they beat the GEMM by 8-45 %, MNIST's 24
    16.2 vs 24.2 ms), below a vector they tie or lose (CNN's 10). The weight gradient's tiles
    lose up to a vector and a half (MNIST's 24: 28.8 vs 24.6 ms with the copy)."""
    if node.op is CONV:
        width = node.types[0].shape[-1]
        return isinstance(width, int) and width < lanes
    width = g.type_of(node.inputs[1]).shape[-1]
    return isinstance(width, int) and width % lanes != 0 and width <= lanes + lanes // 2


def _strided(node: Node) -> bool:
    """Whether the convolution reads its input with a stride or dilation along the width: the
    register tiles need the output's columns to read contiguous input, so such a convolution
    runs as scalar loops (ResNet-18's stride-2 3x3 convolutions: 7 ms of its 36 ms batch-1
    call each; as GEMMs 1 ms)."""
    return node.attrs["stride"][-1] != 1 or node.attrs["dilation"][-1] != 1


def _static(dims: Shape) -> list[int]:
    """Channel and kernel dims: ints, by conv's shape rule."""
    ints = [d for d in dims if isinstance(d, int)]
    assert len(ints) == len(dims), dims
    return ints


def _matrix(b: Builder, v: Value, groups: int, rows: int) -> Value:
    """v as one [rows, rest] matrix per group: [groups, rows, rest], or [rows, rest] for one."""
    rest = numel(b.type_of(v).shape) // (groups * rows)
    return b.reshape(v, shape=(groups, rows, rest) if groups > 1 else (rows, rest))


def _columns(b: Builder, node: Node, x: Value, kernel: tuple[int, ...]) -> Value:
    """im2col(x), one [C/groups*K, N*P] matrix per group."""
    a = node.attrs
    cols = b.im2col(x, kernel=kernel, stride=a["stride"], dilation=a["dilation"])
    return _matrix(b, cols, a["groups"], _static(b.type_of(cols).shape[:1])[0] // a["groups"])


def _conv(b: Builder, node: Node, x: Value, w: Value) -> Value:
    groups = node.attrs["groups"]
    c_out, c_group, *kernel = _static(b.type_of(w).shape)
    y = b.matmul(_matrix(b, w, groups, c_out // groups), _columns(b, node, x, tuple(kernel)))
    n, _, *out = node.types[0].shape
    y = b.reshape(y, shape=(c_out, n, *out))
    return b.transpose(y, perm=(1, 0, *range(2, 2 + len(out))))  # read by the bias's kernel


def _weight_grad(b: Builder, node: Node, x: Value, g: Value) -> Value:
    groups = node.attrs["groups"]
    c_out = _static(b.type_of(g).shape[1:2])[0]
    ones = (1,) * (b.type_of(g).rank - 2)  # a 1x1 im2col: g channels first, [O, N, *out]
    gt = b.im2col(g, kernel=ones, stride=ones, dilation=ones)  # in memory, unlike a transpose
    cols = _columns(b, node, x, node.attrs["kernel"])
    rank = b.type_of(cols).rank
    cols_t = b.transpose(cols, perm=(*range(rank - 2), rank - 1, rank - 2))
    dw = b.matmul(_matrix(b, gt, groups, c_out // groups), cols_t)
    return b.reshape(dw, shape=node.types[0].shape)
