"""Neural-network composites (convolution and pooling live in conv.py and pool.py):
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


from dlg.errors import DlgAttributeError, DlgShapeError, DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    INDEX_INTS,
    NUMERIC,
    normalize_axes,
    normalize_axis,
    require_dtype,
    same_dtype,
)
from dlg.ir.ops.opdef import Attr, defop
from dlg.ir.ops.reduce import reduced_shape
from dlg.ir.shapes import shape_str
from dlg.ir.types import TensorType


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
    require_dtype("embedding", indices, INDEX_INTS, "indices")
    require_dtype("embedding", weight, NUMERIC, "weight")
    if weight.rank != 2:
        raise DlgShapeError(f"embedding: weight must be [num_embeddings, dim], got {weight}")
    return TensorType(weight.dtype, indices.shape + weight.shape[1:])


EMBEDDING = defop("embedding", ("weight", "indices"), _embedding_infer,
                  decompose=lambda b, weight, indices: b.take(weight, indices, axis=0),
                  doc="Rows of weight picked by integer indices (weight [V, D] as PyTorch).")


def _one_hot_infer(indices: TensorType, num_classes: int, dtype: DType) -> TensorType:
    require_dtype("one_hot", indices, INDEX_INTS, "indices")
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
    require_dtype(name, x, NUMERIC)  # integers too, as torch's F.linear (wrapping matmul)
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
