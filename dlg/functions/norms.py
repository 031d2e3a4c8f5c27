"""Normalisation functions with PyTorch's signatures: batch_norm (given or batch statistics),
layer_norm, rms_norm, group_norm, instance_norm, normalize, renorm, cosine_similarity,
pairwise_distance. All
are compositions of registry ops (batch_norm and layer_norm their composite ops), so gradients
and compiled forms come with them.

Running statistics are state: `batch_norm(training=True)` normalises with the batch's
statistics (`batch_statistics`) and leaves moving the running ones to the caller (the eager
F.batch_norm updates them in place as torch does; .dlg layers write an `update`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import broadcast_shapes
from dlg.functions.padding import pad
from dlg.functions.pooling import avg_pool2d
from dlg.ir.ops.elementwise import ADD, CAST, DIV, GT, MAXIMUM, MUL, POW, RSQRT, SUB, WHERE
from dlg.ir.ops.nn import BATCH_NORM, LAYER_NORM
from dlg.ir.ops.reduce import REDUCE_MEAN, REDUCE_SUM, REDUCE_VAR, VECTOR_NORM
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE
from dlg.ir.ops.source import FULL
from dlg.ir.shapes import numel


def _scalar(F: Front, value: float, like: Any) -> Any:
    return F.lift(value, F.type_of(like).dtype)


def _filled(F: Front, value: float, like: Any, shape: tuple[Any, ...]) -> Any:
    return F.emit(FULL, shape=shape, value=value, dtype=F.type_of(like).dtype)


def _eps(F: Front, eps: Any, name: str) -> float:
    if not is_number(eps):
        raise DlgTypeError(f"{name}: eps must be a number, got {describe(F, eps)}")
    return float(eps)


def batch_statistics(F: Front, x: Any) -> tuple[Any, Any]:
    """The mean and biased variance of x [N, C, ...] over every axis but the channels."""
    t = F.type_of(tensor(F, x, "batch_norm's input"))
    if t.rank < 2:
        raise DlgShapeError(f"batch_norm: input must be [N, C, ...], got {t}")
    axes = (0,) + tuple(range(2, t.rank))
    return (F.emit(REDUCE_MEAN, x, axes=axes),
            F.emit(REDUCE_VAR, x, axes=axes, correction=0.0))


def batch_norm(F: Front, x: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Any:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (axis 1), with the running
    statistics, or the batch's when training (see the module docstring)."""
    t = F.type_of(tensor(F, x, "batch_norm's input"))
    if not isinstance(training, bool):
        raise DlgTypeError(f"batch_norm: training must be a bool, got {describe(F, training)}")
    if training or running_mean is None or running_var is None:
        if not training:
            raise DlgTypeError("batch_norm: running_mean and running_var are needed unless "
                               "training")
        mean, var = batch_statistics(F, x)
    else:
        mean = tensor(F, running_mean, "batch_norm's running_mean")
        var = tensor(F, running_var, "batch_norm's running_var")
    channels = (t.shape[1],) if t.rank > 1 else ()
    weight = _filled(F, 1.0, x, channels) if weight is None else weight
    bias = _filled(F, 0.0, x, channels) if bias is None else bias
    return F.emit(BATCH_NORM, x, mean, var, tensor(F, weight, "batch_norm's weight"),
                  tensor(F, bias, "batch_norm's bias"), eps=_eps(F, eps, "batch_norm"))


def layer_norm(F: Front, x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalise over the trailing `normalized_shape` dims (an int or a tuple); a missing
    weight or bias is ones or zeros."""
    shape = args.shape(F, (normalized_shape,))
    x = tensor(F, x, "layer_norm's input")
    affine = []
    if weight is not None or bias is not None:
        affine = [_filled(F, fill, x, shape) if v is None else tensor(F, v, f"layer_norm's {what}")
                  for v, fill, what in ((weight, 1.0, "weight"), (bias, 0.0, "bias"))]
    return F.emit(LAYER_NORM, x, *affine, normalized_shape=shape,
                  eps=_eps(F, eps, "layer_norm"))


def rms_norm(F: Front, x: Any, normalized_shape: Any, weight: Any = None,
             eps: Any = None) -> Any:
    """x / sqrt(mean(x^2) + eps) over the trailing `normalized_shape` dims, times weight; eps
    None is the dtype's machine epsilon (PyTorch 2.4's F.rms_norm)."""
    shape = args.shape(F, (normalized_shape,))
    t = F.type_of(tensor(F, x, "rms_norm's input"))
    if len(shape) > t.rank or t.shape[t.rank - len(shape):] != shape:
        raise DlgShapeError(f"rms_norm: normalized_shape {list(shape)} must be the last dims "
                            f"of the input, got {t}")
    eps = float(np.finfo(t.dtype.np).eps) if eps is None else _eps(F, eps, "rms_norm")
    axes = tuple(range(t.rank - len(shape), t.rank))
    mean_square = F.emit(REDUCE_MEAN, F.emit(MUL, x, x), axes=axes, keepdims=True)
    y = F.emit(MUL, x, F.emit(RSQRT, F.emit(ADD, mean_square, _scalar(F, eps, x))))
    return y if weight is None else F.emit(MUL, y, tensor(F, weight, "rms_norm's weight"))


def _per_channel(F: Front, v: Any, t: Any, what: str) -> Any:
    """A [C] weight or bias shaped to broadcast along axis 1 of `t`."""
    return F.emit(RESHAPE, tensor(F, v, what), shape=(1, t.shape[1]) + (1,) * (t.rank - 2))


def group_norm(F: Front, x: Any, num_groups: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """x [N, C, ...] normalised per sample over each group of C / num_groups channels (biased
    variance), then scaled and shifted per channel."""
    t = F.type_of(tensor(F, x, "group_norm's input"))
    if not is_int(num_groups) or num_groups < 1:
        raise DlgTypeError(f"group_norm: num_groups must be a positive int, got "
                           f"{describe(F, num_groups)}")
    if t.rank < 2 or not isinstance(t.shape[1], int) or t.shape[1] % num_groups:
        raise DlgShapeError(f"group_norm: input must be [N, C, ...] with C divisible by "
                            f"num_groups {num_groups}, got {t}")
    grouped = F.emit(RESHAPE, x, shape=(t.shape[0], num_groups, _group_size(t, num_groups)))
    y = F.emit(LAYER_NORM, grouped, normalized_shape=F.type_of(grouped).shape[2:],
               eps=_eps(F, eps, "group_norm"))
    y = F.emit(RESHAPE, y, shape=t.shape)
    if weight is not None:
        y = F.emit(MUL, y, _per_channel(F, weight, t, "group_norm's weight"))
    if bias is not None:
        y = F.emit(ADD, y, _per_channel(F, bias, t, "group_norm's bias"))
    return y


def _group_size(t: Any, groups: int) -> Any:
    size: Any = t.shape[1] // groups
    for d in t.shape[2:]:
        size = size * d
    return size


def instance_norm(F: Front, x: Any, running_mean: Any = None, running_var: Any = None,
                  weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Any:
    """Each channel of each sample normalised over its spatial dims (group_norm with one
    channel per group); tracking running statistics is not supported."""
    if running_mean is not None or running_var is not None or use_input_stats is not True:
        raise DlgTypeError("instance_norm: running statistics are not supported (use "
                           "use_input_stats=True without running_mean/running_var)")
    t = F.type_of(tensor(F, x, "instance_norm's input"))
    if t.rank < 3:
        raise DlgShapeError(f"instance_norm: input must be [N, C, ...spatial], got {t}")
    return group_norm(F, x, t.shape[1], weight, bias, eps)


def normalize(F: Front, x: Any, p: float = 2.0, axis: int = 1, eps: float = 1e-12) -> Any:
    """x / max(||x||_p, eps) along `axis` (PyTorch's F.normalize)."""
    x = tensor(F, x, "normalize's input")
    if not is_number(p):
        raise DlgTypeError(f"normalize: p must be a number, got {describe(F, p)}")
    norm = F.emit(VECTOR_NORM, x, ord=float(p), axes=(args.axis(F, axis, "dim"),),
                  keepdims=True)
    return F.emit(DIV, x, F.emit(MAXIMUM, norm, _scalar(F, _eps(F, eps, "normalize"), x)))


def renorm(F: Front, x: Any, p: Any, axis: Any, maxnorm: Any) -> Any:
    """Each slice x.select(axis, i) whose p-norm exceeds maxnorm scaled to maxnorm (by
    maxnorm / (norm + 1e-7), as torch.renorm; its gradient is this product's)."""
    x = tensor(F, x, "renorm's input")
    t = F.type_of(x)
    if not t.dtype.is_float:
        raise DlgTypeError(f"renorm: expected a floating point tensor, got {t}")
    for value, what in ((p, "p"), (maxnorm, "maxnorm")):
        if not is_number(value):
            raise DlgTypeError(f"renorm: {what} must be a number, got {describe(F, value)}")
    if p <= 0:
        raise DlgValueError(f"renorm: non-positive-norm not supported, got p={p}")
    if maxnorm < 0:
        raise DlgValueError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    if t.rank == 0:
        raise DlgShapeError("renorm: input needs at least 1 dimension, got a 0-d tensor")
    a = args.axis(F, axis, "dim") % t.rank
    others = tuple(d for d in range(t.rank) if d != a)
    norm = F.emit(VECTOR_NORM, x, ord=float(p), axes=others, keepdims=True)
    limit = _scalar(F, float(maxnorm), x)
    scale = F.emit(DIV, limit, F.emit(ADD, norm, _scalar(F, 1e-7, x)))
    return F.emit(MUL, x, F.emit(WHERE, F.emit(GT, norm, limit), scale, _scalar(F, 1.0, x)))


def cosine_similarity(F: Front, x1: Any, x2: Any, axis: int = 1, eps: float = 1e-8) -> Any:
    """The cosine of the angle between x1 and x2 along `axis` (broadcast against each other);
    each norm is clamped below at eps, as PyTorch does."""
    x1 = tensor(F, x1, "cosine_similarity's x1")
    x2 = tensor(F, x2, "cosine_similarity's x2")
    a = args.axis(F, axis, "dim")
    floor = _scalar(F, _eps(F, eps, "cosine_similarity"), x1)
    shape = broadcast_shapes("cosine_similarity", F.type_of(x1).shape, F.type_of(x2).shape)
    units = [F.emit(DIV, v, F.emit(MAXIMUM, F.emit(VECTOR_NORM, v, axes=(a,), keepdims=True),
                                   floor))
             for v in (x if F.type_of(x).shape == shape else F.emit(BROADCAST_TO, x, shape=shape)
                       for x in (x1, x2))]
    return F.emit(REDUCE_SUM, F.emit(MUL, *units), axes=(a,))


def pairwise_distance(F: Front, x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6,
                      keepdims: bool = False) -> Any:
    """||x1 - x2 + eps||_p over the last axis (PyTorch's F.pairwise_distance; integers
    subtract in their dtype, wrapping as torch's, then count in float32)."""
    x1 = tensor(F, x1, "pairwise_distance's x1")
    diff = F.emit(SUB, x1, tensor(F, x2, "pairwise_distance's x2"))
    if not F.type_of(diff).dtype.is_float:
        diff = F.emit(CAST, diff, dtype=DType.f32)
    diff = F.emit(ADD, diff, _scalar(F, _eps(F, eps, "pairwise_distance"), diff))
    return F.emit(VECTOR_NORM, diff, ord=float(p), axes=(-1,), keepdims=keepdims)


def local_response_norm(F: Front, x: Any, size: Any, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Any:
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels)^beta (PyTorch's
    F.local_response_norm): the window is zero-padded by size // 2 before and (size - 1) // 2
    after, and averaged by an avg_pool, as torch does."""
    x = tensor(F, x, "local_response_norm's input")
    t = F.type_of(x)
    if t.rank < 3:
        raise DlgShapeError(f"local_response_norm: expected 3D or higher dimensionality input, "
                            f"got {t}")
    if not is_int(size) or size < 1:
        raise DlgTypeError(f"local_response_norm: size must be a positive int, got "
                           f"{describe(F, size)}")
    columns = F.emit(RESHAPE, F.emit(MUL, x, x), shape=(t.shape[0], 1, t.shape[1],
                                                         numel(t.shape[2:])))
    padded = pad(F, columns, (0, 0, size // 2, (size - 1) // 2))
    mean = F.emit(RESHAPE, avg_pool2d(F, padded, (size, 1), 1), shape=t.shape)
    scale = F.emit(ADD, F.emit(MUL, mean, _scalar(F, float(alpha), x)), _scalar(F, float(k), x))
    return F.emit(DIV, x, F.emit(POW, scale, _scalar(F, float(beta), x)))
