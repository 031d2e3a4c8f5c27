"""Neural-network ops: convolution and pooling primitives, and the composite layers built on them.

Primitives (with references): `conv` (N-d, explicit asymmetric padding, no bias), `max_pool`,
`avg_pool`. Their semantics are PyTorch's, including pooling's output-size rule with ceil_mode
and avg_pool's divisor. They are primitives because codegen gives them real kernels.

Composites (decompositions):
- `conv1d(x, w, b)` / `conv2d(x, w, b)` take a bias; `conv1d_nobias(x, w)` / `conv2d_nobias(x, w)`
  do not. Padding is `padding` (ints, symmetric per spatial dim) or `auto_pad="same"|"valid"`
  (an attribute holds one kind, so the PyTorch strings travel in their own attribute, as in
  ONNX); "same" needs stride 1 and puts the odd pad on the high side, like PyTorch.
- `linear(x, w, b)` = x @ w^T + b and `linear_nobias(x, w)`, with PyTorch's [out, in] weight.
- `layer_norm(x, *affine)`: `affine` is empty or (weight, bias); `normalized_shape` names the
  trailing dims, as in PyTorch.
- `batch_norm(x, mean, var, weight, bias)` normalises with the statistics it is given (the layer
  computes batch statistics in training mode).
- `softmax`, `log_softmax`, `logsumexp` (all subtract the max), `dropout`, `embedding`,
  `one_hot`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    INTS,
    NUMERIC,
    normalize_axes,
    normalize_axis,
    require_dtype,
    same_dtype,
)
from dlg.ir.ops.opdef import Attr, defop
from dlg.ir.ops.reduce import reduced_shape
from dlg.ir.shapes import Sym, shape_str
from dlg.ir.types import TensorType


# ---- convolution ------------------------------------------------------------------------------
def _check_lengths(op: str, nd: int, **attrs: Sequence) -> None:
    for name, value in attrs.items():
        if len(value) != nd:
            raise DlgAttributeError(f"{op}: {name} needs {nd} value{'s' if nd > 1 else ''} "
                                    f"(one per spatial dim), got {list(value)}")


def _concrete(op: str, t: TensorType, axes: range, what: str) -> tuple[int, ...]:
    dims = [t.shape[a] for a in axes]
    if any(isinstance(d, Sym) for d in dims):
        raise DlgShapeError(f"{op}: {what} must be concrete, got {t}")
    return tuple(d for d in dims if isinstance(d, int))


def _conv_infer(x: TensorType, w: TensorType, *, stride: tuple[int, ...],
                padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int,
                op: str = "conv") -> TensorType:
    require_dtype(op, x, FLOATS)
    same_dtype(op, x, w)
    nd = x.rank - 2
    if nd not in (1, 2) or w.rank != x.rank:
        raise DlgShapeError(f"{op}: expects input [N, C_in, *spatial] and weight "
                            f"[C_out, C_in/groups, *kernel] with 1 or 2 spatial dims, got "
                            f"input {x} and weight {w}")
    _check_lengths(op, nd, stride=stride, padding=padding, dilation=dilation)
    if min(stride) < 1 or min(dilation) < 1 or groups < 1 or min(min(p) for p in padding) < 0:
        raise DlgAttributeError(f"{op}: stride, dilation and groups must be positive and padding "
                                f"non-negative, got stride={list(stride)}, "
                                f"dilation={list(dilation)}, groups={groups}, "
                                f"padding={[list(p) for p in padding]}")
    spatial = _concrete(op, x, range(1, x.rank), "input channels and spatial dims")
    c_in, spatial = spatial[0], spatial[1:]
    c_out, c_group, *kernel = _concrete(op, w, range(w.rank), "weight dims")
    if c_in % groups or c_out % groups or c_group * groups != c_in:
        raise DlgShapeError(f"{op}: input {x} has {c_in} channels but weight {w} with "
                            f"groups={groups} expects {c_group * groups}; C_in and C_out must "
                            f"be divisible by groups")
    out = []
    for size, k, s, (lo, hi), d in zip(spatial, kernel, stride, padding, dilation):
        span = size + lo + hi - d * (k - 1) - 1
        if span < 0:
            raise DlgShapeError(f"{op}: kernel {kernel} (dilation {list(dilation)}) is larger "
                                f"than the padded input: input {x}, weight {w}, "
                                f"padding {[list(p) for p in padding]}")
        out.append(span // s + 1)
    return TensorType(x.dtype, (x.shape[0], c_out, *out))


def _conv_ref(x: np.ndarray, w: np.ndarray, *, stride: tuple[int, ...],
              padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int
              ) -> np.ndarray:
    nd = x.ndim - 2
    n, c_in = x.shape[:2]
    c_out, kernel = w.shape[0], w.shape[2:]
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), *padding])
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    out = [(size - e) // s + 1 for size, e, s in zip(xp.shape[2:], extent, stride)]
    win = sliding_window_view(xp, extent, axis=tuple(range(2, 2 + nd)))
    win = win[(slice(None), slice(None))
              + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
              + tuple(slice(None, None, d) for d in dilation)]
    win = win.reshape(n, groups, c_in // groups, *out, *kernel)
    wg = w.astype(np.float64).reshape(groups, c_out // groups, c_in // groups, *kernel)
    o_letters, k_letters = "xyz"[:nd], "ijk"[:nd]
    y = np.einsum(f"ngc{o_letters}{k_letters},goc{k_letters}->ngo{o_letters}", win, wg,
                  optimize=True)
    return y.reshape(n, c_out, *out).astype(x.dtype)


CONV = defop("conv", ("x", "w"), _conv_infer, ref=_conv_ref,
             attrs={"stride": Attr("ints"), "padding": Attr("pads"), "dilation": Attr("ints"),
                    "groups": Attr("int")},
             doc="PyTorch's convolution (cross-correlation), 1-D or 2-D, without bias.")


def _resolve_pads(op: str, w: TensorType, stride: tuple[int, ...], padding: tuple[int, ...],
                  dilation: tuple[int, ...], auto_pad: str) -> tuple[tuple[int, int], ...]:
    """Explicit (lo, hi) pads from symmetric ints or PyTorch's 'same'/'valid'."""
    if auto_pad == "none":
        return tuple((p, p) for p in padding)
    if any(padding):
        raise DlgAttributeError(f"{op}: give padding={list(padding)} or auto_pad={auto_pad!r}, "
                                f"not both")
    if auto_pad == "valid":
        return tuple((0, 0) for _ in padding)
    if any(s != 1 for s in stride):
        raise DlgAttributeError(f"{op}: padding 'same' needs stride 1, got stride={list(stride)}")
    kernel = _concrete(op, w, range(2, w.rank), "weight dims")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _convnd(nd: int, with_bias: bool) -> None:
    name = f"conv{nd}d" if with_bias else f"conv{nd}d_nobias"

    def attrs_of(x: TensorType, w: TensorType, stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
                 auto_pad: str) -> dict:
        if x.rank != nd + 2:
            raise DlgShapeError(f"{name}: input must have rank {nd + 2} "
                                f"([N, C, {', '.join('HW'[2 - nd:])}]), got {x}")
        _check_lengths(name, nd, stride=stride, padding=padding, dilation=dilation)
        pads = _resolve_pads(name, w, stride, padding, dilation, auto_pad)
        return {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}

    def infer(x: TensorType, w: TensorType, *bias: TensorType, **attrs) -> TensorType:
        out = _conv_infer(x, w, **attrs_of(x, w, **attrs), op=name)
        if bias:
            same_dtype(name, x, bias[0])
            if bias[0].shape != (out.shape[1],):
                raise DlgShapeError(f"{name}: bias must be [{out.shape[1]}] (C_out of weight {w}),"
                                    f" got {bias[0]}")
        return out

    def decompose(b, x, w, *bias, **attrs):
        y = b.conv(x, w, **attrs_of(b.type_of(x), b.type_of(w), **attrs))
        if not bias:
            return y
        c_out = b.type_of(w).shape[0]
        return b.add(y, b.reshape(bias[0], shape=(c_out,) + (1,) * nd))

    inputs = ("x", "w", "b") if with_bias else ("x", "w")
    defop(name, inputs, infer, decompose=decompose,
          attrs={"stride": Attr("ints", (1,) * nd), "padding": Attr("ints", (0,) * nd),
                 "dilation": Attr("ints", (1,) * nd), "groups": Attr("int", 1),
                 "auto_pad": Attr("str", "none", ("none", "same", "valid"))},
          doc=f"PyTorch's F.conv{nd}d{'' if with_bias else ' without bias'}.")


for _nd in (1, 2):
    _convnd(_nd, with_bias=True)
    _convnd(_nd, with_bias=False)


# ---- pooling ----------------------------------------------------------------------------------
def _pool_sizes(op: str, x: TensorType, kernel: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool
                ) -> list[int]:
    """PyTorch's pooling_output_shape, with its argument checks."""
    nd = len(kernel)
    if nd not in (1, 2) or x.rank < nd + 1:
        raise DlgShapeError(f"{op}: kernel {list(kernel)} needs 1 or 2 spatial dims and an input "
                            f"of rank at least {nd + 1}, got {x}")
    _check_lengths(op, nd, stride=stride, padding=padding, dilation=dilation)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise DlgAttributeError(f"{op}: kernel, stride and dilation must be positive and padding "
                                f"non-negative, got kernel={list(kernel)}, stride={list(stride)}, "
                                f"dilation={list(dilation)}, padding={list(padding)}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise DlgAttributeError(f"{op}: padding {list(padding)} must be at most half the kernel "
                                f"size {list(kernel)}")
    spatial = _concrete(op, x, range(x.rank - nd, x.rank), "spatial dims")
    out = []
    for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        n = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1  # the last window must start inside the input or its left padding
        if n < 1:
            raise DlgShapeError(f"{op}: input {x} is too small for kernel {list(kernel)} "
                                f"(dilation {list(dilation)}, padding {list(padding)})")
        out.append(n)
    return out


def _windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], dilation: Sequence[int], out: Sequence[int], fill: float
             ) -> np.ndarray:
    """[..., *out, *kernel] windows over the last len(kernel) dims of x, padded with `fill`."""
    nd = len(kernel)
    lead = x.ndim - nd
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    # Pad high enough for ceil_mode's last window, which may run past the right padding.
    highs = [max((o - 1) * s + e - p - size, 0)
             for o, s, e, p, size in zip(out, stride, extent, padding, x.shape[lead:])]
    xp = np.pad(x, [(0, 0)] * lead + list(zip(padding, highs)), constant_values=fill)
    win = sliding_window_view(xp, extent, axis=tuple(range(lead, x.ndim)))
    return win[(slice(None),) * lead
               + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
               + tuple(slice(None, None, d) for d in dilation)]


def _ones_if_empty(dilation: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[int, ...]:
    return dilation or (1,) * len(kernel)


def _max_pool_infer(x: TensorType, *, kernel, stride, padding, dilation, ceil_mode) -> TensorType:
    require_dtype("max_pool", x, FLOATS)
    out = _pool_sizes("max_pool", x, kernel, stride, padding, _ones_if_empty(dilation, kernel),
                      ceil_mode)
    return x.with_shape(x.shape[:x.rank - len(kernel)] + tuple(out))


def _max_pool_ref(x: np.ndarray, *, kernel, stride, padding, dilation, ceil_mode) -> np.ndarray:
    dilation = _ones_if_empty(dilation, kernel)
    t = TensorType(DType.of(x), x.shape)
    out = _pool_sizes("max_pool", t, kernel, stride, padding, dilation, ceil_mode)
    win = _windows(x, kernel, stride, padding, dilation, out, -np.inf)
    return win.max(axis=tuple(range(-len(kernel), 0)))


_POOL_ATTRS = {"kernel": Attr("ints"), "stride": Attr("ints"), "padding": Attr("ints"),
               "ceil_mode": Attr("bool", False)}
MAX_POOL = defop("max_pool", ("x",), _max_pool_infer, ref=_max_pool_ref,
                 attrs={**_POOL_ATTRS, "dilation": Attr("ints", ())},
                 doc="PyTorch's max_pool1d/2d over the last 1 or 2 dims; dilation () means 1s.")


def _avg_pool_infer(x: TensorType, *, kernel, stride, padding, ceil_mode, count_include_pad
                    ) -> TensorType:
    require_dtype("avg_pool", x, FLOATS)
    out = _pool_sizes("avg_pool", x, kernel, stride, padding, (1,) * len(kernel), ceil_mode)
    return x.with_shape(x.shape[:x.rank - len(kernel)] + tuple(out))


def _avg_pool_ref(x: np.ndarray, *, kernel, stride, padding, ceil_mode, count_include_pad
                  ) -> np.ndarray:
    nd = len(kernel)
    ones = (1,) * nd
    t = TensorType(DType.of(x), x.shape)
    out = _pool_sizes("avg_pool", t, kernel, stride, padding, ones, ceil_mode)
    win = _windows(x.astype(np.float64), kernel, stride, padding, ones, out, 0.0)
    total = win.sum(axis=tuple(range(-nd, 0)))
    # PyTorch's divisor: the window clipped to the padded input, or to the input itself.
    divisor = np.ones((), np.float64)
    for axis, (o, k, s, p) in enumerate(zip(out, kernel, stride, padding)):
        start = np.arange(o) * s - p
        size = x.shape[x.ndim - nd + axis]
        end = np.minimum(start + k, size + p)
        count = end - start if count_include_pad else np.minimum(end, size) - np.maximum(start, 0)
        divisor = np.multiply.outer(divisor, count)
    return (total / divisor).astype(x.dtype)


AVG_POOL = defop("avg_pool", ("x",), _avg_pool_infer, ref=_avg_pool_ref,
                 attrs={**_POOL_ATTRS, "count_include_pad": Attr("bool", True)},
                 doc="PyTorch's avg_pool1d/2d over the last 1 or 2 dims, with its divisor rules.")


# ---- softmax family ---------------------------------------------------------------------------
def _softmax_infer(name: str):
    def infer(x: TensorType, axis: int) -> TensorType:
        require_dtype(name, x, FLOATS)
        normalize_axis(name, axis, x.rank)
        return x
    return infer


def _softmax_decompose(b, x, axis):
    shifted = b.sub(x, b.reduce_max(x, axes=(axis,), keepdims=True))
    e = b.exp(shifted)
    return b.div(e, b.reduce_sum(e, axes=(axis,), keepdims=True))


def _log_softmax_decompose(b, x, axis):
    shifted = b.sub(x, b.reduce_max(x, axes=(axis,), keepdims=True))
    return b.sub(shifted, b.log(b.reduce_sum(b.exp(shifted), axes=(axis,), keepdims=True)))


SOFTMAX = defop("softmax", ("x",), _softmax_infer("softmax"), decompose=_softmax_decompose,
                attrs={"axis": Attr("int", -1)}, doc="exp(x - max) / sum: never overflows.")
LOG_SOFTMAX = defop("log_softmax", ("x",), _softmax_infer("log_softmax"),
                    decompose=_log_softmax_decompose, attrs={"axis": Attr("int", -1)},
                    doc="(x - max) - log(sum(exp(x - max))): stable for large logits.")


def _logsumexp_infer(x: TensorType, axes, keepdims) -> TensorType:
    require_dtype("logsumexp", x, FLOATS)
    return x.with_shape(reduced_shape("logsumexp", x, axes, keepdims))


def _logsumexp_decompose(b, x, axes, keepdims):
    t = b.type_of(x)
    axes = normalize_axes("logsumexp", axes, t.rank)
    m = b.reduce_max(x, axes=axes, keepdims=True)
    # An all -inf slice has max -inf: shift by 0 there so the result is -inf, not nan.
    inf = b.constant(math.inf, t.dtype)
    m = b.where(b.eq(b.abs(m), inf), b.constant(0.0, t.dtype), m)
    out = b.add(b.log(b.reduce_sum(b.exp(b.sub(x, m)), axes=axes, keepdims=True)), m)
    return out if keepdims else b.squeeze(out, axes=axes)


LOGSUMEXP = defop("logsumexp", ("x",), _logsumexp_infer, decompose=_logsumexp_decompose,
                  attrs={"axes": Attr("axes", None), "keepdims": Attr("bool", False)},
                  doc="log(sum(exp(x))) shifted by the max, as torch.logsumexp.")


# ---- dropout ----------------------------------------------------------------------------------
def _dropout_infer(x: TensorType, p: float, training: bool) -> TensorType:
    require_dtype("dropout", x, FLOATS)
    if not 0.0 <= p <= 1.0:
        raise DlgAttributeError(f"dropout: probability p must be in [0, 1], got {p}")
    return x


def _dropout_decompose(b, x, p, training):
    if not training or p == 0.0:
        return x
    t = b.type_of(x)
    if p == 1.0:
        return b.full(shape=t.shape, value=0.0, dtype=t.dtype)
    keep = b.ge(b.random_uniform(shape=t.shape, dtype=t.dtype), b.constant(p, t.dtype))
    scaled = b.mul(x, b.constant(1.0 / (1.0 - p), t.dtype))
    return b.where(keep, scaled, b.constant(0.0, t.dtype))


DROPOUT = defop("dropout", ("x",), _dropout_infer, decompose=_dropout_decompose,
                attrs={"p": Attr("float", 0.5), "training": Attr("bool", True)},
                doc="Zero each element with probability p, scale the rest by 1/(1-p); "
                    "identity when not training.")


# ---- normalisation ----------------------------------------------------------------------------
def _batch_norm_infer(x, mean, var, weight, bias, *, eps, axis) -> TensorType:
    require_dtype("batch_norm", x, FLOATS)
    same_dtype("batch_norm", x, mean, var, weight, bias)
    a = normalize_axis("batch_norm", axis, x.rank)
    for what, t in (("mean", mean), ("var", var), ("weight", weight), ("bias", bias)):
        if t.shape != (x.shape[a],):
            raise DlgShapeError(f"batch_norm: {what} must be [{x.shape[a]}] (axis {axis} of input "
                                f"{x}), got {t}")
    return x


def _batch_norm_decompose(b, x, mean, var, weight, bias, eps, axis):
    t = b.type_of(x)
    a = normalize_axis("batch_norm", axis, t.rank)
    shape = tuple(t.shape[a] if i == a else 1 for i in range(t.rank))

    def col(v):
        return b.reshape(v, shape=shape)

    scale = b.mul(b.rsqrt(b.add(col(var), b.constant(eps, t.dtype))), col(weight))
    return b.add(b.mul(b.sub(x, col(mean)), scale), col(bias))


BATCH_NORM = defop("batch_norm", ("x", "mean", "var", "weight", "bias"), _batch_norm_infer,
                   decompose=_batch_norm_decompose,
                   attrs={"eps": Attr("float", 1e-5), "axis": Attr("int", 1)},
                   doc="(x - mean) / sqrt(var + eps) * weight + bias, per channel `axis`.")


def _layer_norm_infer(x: TensorType, *affine: TensorType, normalized_shape, eps) -> TensorType:
    require_dtype("layer_norm", x, FLOATS)
    k = len(normalized_shape)
    if not 1 <= k <= x.rank or tuple(x.shape[x.rank - k:]) != tuple(normalized_shape):
        raise DlgShapeError(f"layer_norm: input {x} does not end with normalized_shape "
                            f"{shape_str(normalized_shape)}")
    if len(affine) not in (0, 2):
        raise DlgTypeError(f"layer_norm takes x alone or x, weight and bias, got "
                           f"{1 + len(affine)} inputs")
    for what, t in zip(("weight", "bias"), affine):
        same_dtype("layer_norm", x, t)
        if t.shape != tuple(normalized_shape):
            raise DlgShapeError(f"layer_norm: {what} must be {shape_str(normalized_shape)}, "
                                f"got {t}")
    return x


def _layer_norm_decompose(b, x, *affine, normalized_shape, eps):
    t = b.type_of(x)
    axes = tuple(range(t.rank - len(normalized_shape), t.rank))
    centred = b.sub(x, b.reduce_mean(x, axes=axes, keepdims=True))
    var = b.reduce_mean(b.mul(centred, centred), axes=axes, keepdims=True)
    y = b.mul(centred, b.rsqrt(b.add(var, b.constant(eps, t.dtype))))
    if affine:
        y = b.add(b.mul(y, affine[0]), affine[1])
    return y


LAYER_NORM = defop("layer_norm", ("x", "*affine"), _layer_norm_infer,
                   decompose=_layer_norm_decompose,
                   attrs={"normalized_shape": Attr("dims"), "eps": Attr("float", 1e-5)},
                   doc="Normalise the trailing dims (biased variance); affine is () or (w, b).")


# ---- lookup and dense -------------------------------------------------------------------------
def _embedding_infer(weight: TensorType, indices: TensorType) -> TensorType:
    require_dtype("embedding", indices, INTS, "indices")
    require_dtype("embedding", weight, NUMERIC, "weight")
    if weight.rank != 2:
        raise DlgShapeError(f"embedding: weight must be [num_embeddings, dim], got {weight}")
    return TensorType(weight.dtype, indices.shape + weight.shape[1:])


EMBEDDING = defop("embedding", ("weight", "indices"), _embedding_infer,
                  decompose=lambda b, weight, indices: b.take(weight, indices, axis=0),
                  doc="Rows of weight picked by integer indices (weight [V, D] as PyTorch).")


def _one_hot_infer(indices: TensorType, num_classes: int, dtype: DType) -> TensorType:
    require_dtype("one_hot", indices, INTS, "indices")
    if num_classes < 1:
        raise DlgAttributeError(f"one_hot: num_classes must be positive, got {num_classes}")
    return TensorType(dtype, indices.shape + (num_classes,))


def as_i64(b, indices):
    """Integer indices as i64, the dtype `arange` counts in (no cast when they already are)."""
    return indices if b.type_of(indices).dtype == DType.i64 else b.cast(indices, dtype=DType.i64)


def _one_hot_decompose(b, indices, num_classes, dtype):
    idx = b.unsqueeze(as_i64(b, indices), axes=(-1,))
    hit = b.eq(idx, b.arange(stop=float(num_classes), dtype=DType.i64))
    return b.cast(hit, dtype=dtype)


ONE_HOT = defop("one_hot", ("indices",), _one_hot_infer, decompose=_one_hot_decompose,
                attrs={"num_classes": Attr("int"), "dtype": Attr("dtype", DType.f32)},
                doc="A new trailing axis of num_classes with a 1 at each index.")


def _linear_infer(x: TensorType, w: TensorType, *bias: TensorType, name: str) -> TensorType:
    require_dtype(name, x, FLOATS)
    same_dtype(name, x, w, *bias)
    if x.rank < 1 or w.rank != 2 or x.shape[-1] != w.shape[1]:
        raise DlgShapeError(f"{name}: input {x} does not fit weight {w} "
                            f"(weight is [out_features, in_features])")
    if bias and bias[0].shape != (w.shape[0],):
        raise DlgShapeError(f"{name}: bias must be [{w.shape[0]}], got {bias[0]}")
    return x.with_shape(x.shape[:-1] + (w.shape[0],))


def _linear_decompose(b, x, w, *bias):
    y = b.matmul(x, b.transpose(w, perm=(1, 0)))
    return b.add(y, bias[0]) if bias else y


LINEAR = defop("linear", ("x", "w", "b"),
               lambda x, w, bias: _linear_infer(x, w, bias, name="linear"),
               decompose=_linear_decompose, doc="x @ w^T + b with PyTorch's [out, in] weight.")
LINEAR_NOBIAS = defop("linear_nobias", ("x", "w"),
                      lambda x, w: _linear_infer(x, w, name="linear_nobias"),
                      decompose=_linear_decompose, doc="x @ w^T.")
