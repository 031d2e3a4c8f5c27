"""ONNX import entries: convolution, pooling, normalisation, dropout and the losses.

ONNX writes padding per side (`pads` = begins then ends) and may ask for SAME padding; dlg's
convolutions and pools pad both sides alike, so uneven pads become an explicit `pad` first
(-inf for max pooling). ONNX pools stride 1 by default (PyTorch's stride is the kernel), and
average pooling leaves padding out of the count unless `count_include_pad`.
"""

from __future__ import annotations

import math
from typing import Any

from dlg.functions.creation import ones_like
from dlg.functions.losses import cross_entropy, nll_loss
from dlg.functions.nn import conv1d, conv2d
from dlg.functions.norms import group_norm, instance_norm, layer_norm
from dlg.functions.padding import pad
from dlg.functions.pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, MUL, RSQRT, SUB
from dlg.ir.ops.nn import BATCH_NORM, LOG_SOFTMAX
from dlg.ir.ops.reduce import REDUCE_MAX, REDUCE_MEAN
from dlg.onnx.node import Handler, OnnxNode

CONVS = {1: conv1d, 2: conv2d}
MAX_POOLS = {1: max_pool1d, 2: max_pool2d}
AVG_POOLS = {1: avg_pool1d, 2: avg_pool2d}


def _window(n: OnnxNode, kernel: list[int]) -> tuple[int, list[int], list[int], list[tuple[int,
                                                                                        int]]]:
    """nd, strides, dilations and (begin, end) pads per spatial axis, SAME padding resolved."""
    t = n.type(0)
    nd = t.rank - 2
    if nd not in CONVS:
        raise n.error(f"{nd}-d windows are not supported (dlg has 1-d and 2-d ones)")
    strides = list(n.attr("strides") or [1] * nd)
    dilations = list(n.attr("dilations") or [1] * nd)
    auto = n.attr("auto_pad", "NOTSET")
    pads = list(n.attr("pads") or [0] * (2 * nd))
    pairs = [(pads[i], pads[i + nd]) for i in range(nd)]
    if auto == "VALID":
        pairs = [(0, 0)] * nd
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = []
        for size, k, s, d in zip(t.shape[2:], kernel, strides, dilations):
            if not isinstance(size, int):
                raise n.error(f"{auto} padding needs known spatial sizes, got {t}")
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pairs.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return nd, strides, dilations, pairs


def _even(n: OnnxNode, x: Any, pairs: list[tuple[int, int]], fill: float,
          kernel: list[int] | None = None) -> tuple[Any, list[int]]:
    """x and per-axis padding for an op that pads both sides alike (pools: by at most half the
    kernel): other pads go in a `pad` first."""
    if all(lo == hi and (kernel is None or lo <= k // 2)
           for (lo, hi), k in zip(pairs, kernel or [0] * len(pairs))):
        return x, [lo for lo, _ in pairs]
    return pad(n.F, x, [(0, 0), (0, 0), *pairs], "constant", fill), [0] * len(pairs)


def _conv(n: OnnxNode) -> Any:
    kernel = n.attr("kernel_shape") or list(n.type(1).shape[2:])
    nd, strides, dilations, pairs = _window(n, kernel)
    x, padding = _even(n, n.x(0), pairs, 0.0)
    return CONVS[nd](n.F, x, n.x(1), n.opt(2), stride=tuple(strides), padding=tuple(padding),
                     dilation=tuple(dilations), groups=n.attr("group", 1))


def _max_pool(n: OnnxNode) -> Any:
    if n.wants(1):
        raise n.error("the Indices output is not supported")
    if n.attr("storage_order", 0):
        raise n.error("storage_order=1 is not supported")
    kernel = list(n.attr("kernel_shape"))
    nd, strides, dilations, pairs = _window(n, kernel)
    x, padding = _even(n, n.x(0), pairs, -math.inf, kernel)
    return MAX_POOLS[nd](n.F, x, tuple(kernel), tuple(strides), tuple(padding),
                         tuple(dilations), bool(n.attr("ceil_mode", 0)))


def _avg_pool(n: OnnxNode) -> Any:
    kernel = list(n.attr("kernel_shape"))
    nd, strides, dilations, pairs = _window(n, kernel)
    if any(d != 1 for d in dilations):
        raise n.error("dilated average pooling is not supported")
    include = bool(n.attr("count_include_pad", 0))
    if not include and any(lo != hi or lo > k // 2 for (lo, hi), k in zip(pairs, kernel)):
        raise n.error("pads uneven or over half the kernel, left out of the count, are not "
                      "supported")
    x, padding = _even(n, n.x(0), pairs, 0.0, kernel)
    return AVG_POOLS[nd](n.F, x, tuple(kernel), tuple(strides), tuple(padding),
                         bool(n.attr("ceil_mode", 0)), include)


def _global(op: Any) -> Handler:
    def handler(n: OnnxNode) -> Any:
        rank = n.type(0).rank
        return n.F.emit(op, n.x(0), axes=tuple(range(2, rank)), keepdims=True)
    return handler


# ---- normalisation ----------------------------------------------------------------------------
def _batch_norm(n: OnnxNode) -> Any:
    if n.attr("training_mode", 0) or n.num_outputs > 1 and any(n.wants(i) for i in (1, 2)):
        raise n.error("training mode (batch statistics as outputs) is not supported")
    x, scale, bias, mean, var = (n.x(i) for i in range(5))
    return n.F.emit(BATCH_NORM, x, mean, var, scale, bias, eps=n.attr("epsilon", 1e-5), axis=1)


def _layer_norm(n: OnnxNode) -> Any:
    """Normalised over the axes from `axis` on; the optional outputs are the mean and
    1 / sqrt(var + epsilon) of those axes (kept as size 1)."""
    t = n.type(0)
    axis, eps = n.attr("axis", -1) % t.rank, n.attr("epsilon", 1e-5)
    y = layer_norm(n.F, n.x(0), tuple(t.shape[axis:]), n.x(1), n.opt(2), eps=eps)
    if not (n.wants(1) or n.wants(2)):
        return y
    axes = tuple(range(axis, t.rank))
    mean = n.F.emit(REDUCE_MEAN, n.x(0), axes=axes, keepdims=True)
    centered = n.F.emit(SUB, n.x(0), mean)
    var = n.F.emit(REDUCE_MEAN, n.F.emit(MUL, centered, centered), axes=axes, keepdims=True)
    return y, mean, n.F.emit(RSQRT, n.F.emit(ADD, var, n.F.lift(eps, t.dtype)))


def _instance_norm(n: OnnxNode) -> Any:
    return instance_norm(n.F, n.x(0), weight=n.x(1), bias=n.x(2), eps=n.attr("epsilon", 1e-5))


def _group_norm(n: OnnxNode) -> Any:
    if n.opset < 21:
        raise n.error("opset 18's per-group scale and bias are not supported (opset 21's "
                      "per-channel ones are)")
    return group_norm(n.F, n.x(0), n.attr("num_groups"), n.x(1), n.x(2),
                      eps=n.attr("epsilon", 1e-5))


def _dropout(n: OnnxNode) -> Any:
    """Inference: the identity, and a mask of all true."""
    if n.has(2) and bool(n.static(2, "training_mode").reshape(-1)[0]):
        raise n.error("training mode is not supported (an imported graph is for inference)")
    if n.wants(1):
        return n.x(0), ones_like(n.F, n.x(0), DType.bool)
    return n.x(0)


# ---- losses -----------------------------------------------------------------------------------
def _loss_options(n: OnnxNode) -> dict[str, Any]:
    return {"weight": n.opt(2), "ignore_index": n.attr("ignore_index", -100),
            "reduction": n.attr("reduction", "mean")}


def _nll(n: OnnxNode) -> Any:
    return nll_loss(n.F, n.x(0), n.x(1), **_loss_options(n))


def _softmax_cross_entropy(n: OnnxNode) -> Any:
    loss = cross_entropy(n.F, n.x(0), n.x(1), **_loss_options(n))
    if n.wants(1):
        return loss, n.F.emit(LOG_SOFTMAX, n.x(0), axis=1)
    return loss


OPS: dict[str, Handler] = {
    "Conv": _conv, "MaxPool": _max_pool, "AveragePool": _avg_pool,
    "GlobalAveragePool": _global(REDUCE_MEAN), "GlobalMaxPool": _global(REDUCE_MAX),
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "InstanceNormalization": _instance_norm, "GroupNormalization": _group_norm,
    "Dropout": _dropout, "NegativeLogLikelihoodLoss": _nll,
    "SoftmaxCrossEntropyLoss": _softmax_cross_entropy,
}
