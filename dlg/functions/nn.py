"""Neural-network functions with PyTorch's names and argument order: conv1d/2d/3d,
conv_transpose1d/2d/3d, the pool options, linear, bilinear, embedding, one_hot, dropout,
softmax, log_softmax (normalisation is in norms.py); detach, the gradient's stop.

`conv_options` and `pool_options` read a convolution's or pool's settings; `dlg.nn`'s modules
call them when they are made, the .dlg layers when they run, so `Conv2d(..., stride="x")` is the
same error from both.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, ints, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.source import FULL
from dlg.ir.ops import REGISTRY
from dlg.ir.ops.common import SPATIAL_RANKS
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.functions.creation import dtype_arg
from dlg.ir.ops.elementwise import ADD, CAST, MUL, SUB
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import RESHAPE, SQUEEZE, TRANSPOSE, UNSQUEEZE
from dlg.ir.ops.nn import (
    DROPOUT,
    EMBEDDING,
    LINEAR,
    LINEAR_NOBIAS,
    LOG_SOFTMAX,
    ONE_HOT,
    SOFTMAX,
)

# (nd, with bias) -> conv1d, conv1d_nobias, conv2d, ..., conv3d_nobias
CONVS = {(nd, bias): REGISTRY[f"conv{nd}d{'' if bias else '_nobias'}"]
         for nd in SPATIAL_RANKS for bias in (True, False)}
CONV_TRANSPOSES = {(nd, bias): REGISTRY[f"conv_transpose{nd}d{'' if bias else '_nobias'}"]
                   for nd in SPATIAL_RANKS for bias in (True, False)}


def conv_options(F: Front, nd: int, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                 groups: Any = 1) -> dict[str, Any]:
    """A convolution's attributes: padding is ints or PyTorch's 'same'/'valid'."""
    attrs: dict[str, Any] = {"stride": ints(F, stride, nd, "stride"),
                             "dilation": ints(F, dilation, nd, "dilation")}
    if not is_int(groups) or groups < 1:
        raise DlgTypeError(f"groups must be a positive int, got {describe(F, groups)}")
    attrs["groups"] = int(groups)
    if isinstance(padding, str):
        attrs["auto_pad"] = args.choice(F, padding, ("same", "valid"), "padding")
    elif is_int(padding) or isinstance(padding, (tuple, list)):
        attrs["padding"] = ints(F, padding, nd, "padding")
    else:
        raise DlgTypeError(f"padding must be 'same', 'valid', an int or a tuple of {nd} ints, "
                           f"got {describe(F, padding)}")
    return attrs


def _batched(F: Front, nd: int, op: Any, x: Any, inputs: list[Any], attrs: dict[str, Any]) -> Any:
    """`op` on [N, C, ...]; an unbatched [C, ...] input is a batch of one, as torch reads it."""
    unbatched = F.type_of(x).rank == nd + 1
    if unbatched:
        inputs[0] = F.emit(UNSQUEEZE, x, axes=(0,))
    y = F.emit(op, *inputs, **attrs)
    return F.emit(SQUEEZE, y, axes=(0,)) if unbatched else y


def _inputs(F: Front, name: str, x: Any, weight: Any, bias: Any) -> list[Any]:
    inputs = [tensor(F, x, f"{name}'s input"), tensor(F, weight, f"{name}'s weight")]
    return inputs if bias is None else [*inputs, tensor(F, bias, f"{name}'s bias")]


def _conv(nd: int) -> Callable[..., Any]:
    def conv(F: Front, x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
             dilation: Any = 1, groups: Any = 1) -> Any:
        attrs = conv_options(F, nd, stride, padding, dilation, groups)
        return _batched(F, nd, CONVS[nd, bias is not None], x,
                        _inputs(F, f"conv{nd}d", x, weight, bias), attrs)
    conv.__name__ = conv.__qualname__ = f"conv{nd}d"
    conv.__doc__ = (f"PyTorch's F.conv{nd}d: input [N, C, ...] or unbatched [C, ...], weight "
                    f"[C_out, C/groups, ...].")
    return conv


conv1d, conv2d, conv3d = (_conv(nd) for nd in SPATIAL_RANKS)


def conv_transpose_options(F: Front, nd: int, stride: Any = 1, padding: Any = 0,
                           output_padding: Any = 0, groups: Any = 1, dilation: Any = 1
                           ) -> dict[str, Any]:
    """A transposed convolution's attributes (ints only: PyTorch has no 'same' for it)."""
    if not is_int(groups) or groups < 1:
        raise DlgTypeError(f"groups must be a positive int, got {describe(F, groups)}")
    return {"stride": ints(F, stride, nd, "stride"), "padding": ints(F, padding, nd, "padding"),
            "output_padding": ints(F, output_padding, nd, "output_padding"),
            "dilation": ints(F, dilation, nd, "dilation"), "groups": int(groups)}


def _conv_transpose(nd: int) -> Callable[..., Any]:
    name = f"conv_transpose{nd}d"

    def conv_transpose(F: Front, x: Any, weight: Any, bias: Any = None, stride: Any = 1,
                       padding: Any = 0, output_padding: Any = 0, groups: Any = 1,
                       dilation: Any = 1) -> Any:
        attrs = conv_transpose_options(F, nd, stride, padding, output_padding, groups, dilation)
        return _batched(F, nd, CONV_TRANSPOSES[nd, bias is not None], x,
                        _inputs(F, name, x, weight, bias), attrs)
    conv_transpose.__name__ = conv_transpose.__qualname__ = name
    conv_transpose.__doc__ = (f"PyTorch's F.{name} (conv{nd}d's transpose): input [N, C_in, ...] "
                              f"or unbatched, weight [C_in, C_out/groups, ...].")
    return conv_transpose


conv_transpose1d, conv_transpose2d, conv_transpose3d = (_conv_transpose(nd)
                                                       for nd in SPATIAL_RANKS)


def pool_options(F: Front, nd: int, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: Any = False) -> dict[str, Any]:
    """A pool's window attributes; the stride defaults to the kernel (also when it is an empty
    tuple, as in PyTorch). A 1-tuple stands for every dim, as in PyTorch."""
    kernel_size, stride, padding = (v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
                                    for v in (kernel_size, stride, padding))
    stride = None if isinstance(stride, (tuple, list)) and not stride else stride
    kernel = ints(F, kernel_size, nd, "kernel_size")
    if not isinstance(ceil_mode, bool):
        raise DlgTypeError(f"ceil_mode must be a bool, got {describe(F, ceil_mode)}")
    return {"kernel": kernel, "stride": kernel if stride is None else ints(F, stride, nd, "stride"),
            "padding": ints(F, padding, nd, "padding"), "ceil_mode": ceil_mode}


def linear(F: Front, x: Any, weight: Any, bias: Any = None) -> Any:
    """x @ weight^T + bias, weight [out_features, in_features] (PyTorch's layout)."""
    inputs = [tensor(F, x, "linear's input"), tensor(F, weight, "linear's weight")]
    if bias is None:
        return F.emit(LINEAR_NOBIAS, *inputs)
    return F.emit(LINEAR, *inputs, tensor(F, bias, "linear's bias"))


def bilinear(F: Front, x1: Any, x2: Any, weight: Any, bias: Any = None) -> Any:
    """y[..., o] = x1[..., i] weight[o, i, j] x2[..., j] + bias[o]: one matmul of x1 with the
    weight laid out [in1, out * in2], then a product with x2 summed over j."""
    t1, t2 = (F.type_of(tensor(F, v, f"bilinear's input{i}")) for i, v in ((1, x1), (2, x2)))
    w = F.type_of(tensor(F, weight, "bilinear's weight"))
    if w.rank != 3 or t1.shape[-1:] != w.shape[1:2] or t2.shape[-1:] != w.shape[2:] \
            or t1.shape[:-1] != t2.shape[:-1]:
        raise DlgShapeError(f"bilinear: inputs [..., in1] and [..., in2] with the same leading "
                            f"dims and weight [out, in1, in2], got {t1}, {t2} and weight {w}")
    out, in1, in2 = w.shape
    rows = F.emit(RESHAPE, F.emit(TRANSPOSE, weight, perm=(1, 0, 2)), shape=(in1, out * in2))
    y = F.emit(RESHAPE, F.emit(MATMUL, x1, rows), shape=(*t1.shape[:-1], out, in2))
    y = F.emit(REDUCE_SUM, F.emit(MUL, y, F.emit(UNSQUEEZE, x2, axes=(-2,))), axes=(-1,))
    return y if bias is None else F.emit(ADD, y, tensor(F, bias, "bilinear's bias"))


def embedding(F: Front, indices: Any, weight: Any) -> Any:
    """Rows of `weight` [num_embeddings, dim] picked by integer `indices`."""
    return F.emit(EMBEDDING, tensor(F, weight, "embedding's weight"),
                  tensor(F, indices, "embedding's indices"))


def one_hot(F: Front, indices: Any, num_classes: int, dtype: DType = DType.f32) -> Any:
    return F.emit(ONE_HOT, tensor(F, indices, "one_hot's indices"), num_classes=num_classes,
                  dtype=dtype)


def dropout(F: Front, x: Any, p: Any = 0.5, training: Any = None, inplace: bool = False) -> Any:
    """Zero elements with probability p and scale the rest by 1/(1-p) while training (the
    front's mode unless `training` is given)."""
    if not is_number(p) or not 0 <= p <= 1:
        raise DlgTypeError(f"dropout: probability p must be a number in [0, 1], got "
                           f"{describe(F, p)}")
    training = F.training if training is None else training
    return F.emit(DROPOUT, tensor(F, x, "dropout's argument"), p=p, training=training)


def detach(F: Front, x: Any) -> Any:
    """x's values with no gradient flowing back through them (torch's detach, JAX's
    stop_gradient): a target held fixed, a straight-through estimator's other half."""
    return F.emit(STOP_GRADIENT, tensor(F, x, "detach's argument"))


def _channel_dropout(nd: int) -> Callable[..., Any]:
    name = f"dropout{nd}d"

    def channel_dropout(F: Front, x: Any, p: Any = 0.5, training: Any = None,
                        inplace: bool = False) -> Any:
        t = F.type_of(tensor(F, x, f"{name}'s argument"))
        if nd == 2 and t.rank == 2:  # torch's deprecated reading: elementwise, with its warning
            warnings.warn("dropout2d: Received a 2-D input to dropout2d, which is deprecated "
                          "and will result in an error in a future release. To retain the "
                          "behavior and silence this warning, please use dropout instead.",
                          UserWarning, stacklevel=5)
            return dropout(F, x, p, training)
        if t.rank not in (nd + 1, nd + 2):
            raise DlgShapeError(f"{name}: input must be [N, C, {nd} spatial dims] or unbatched, "
                                f"got {t}")
        # PyTorch reads a 3-d input to dropout2d as batched [N, C, L]
        channels = 1 if t.rank == nd + 1 and nd != 2 else 2
        ones = F.emit(FULL, shape=t.shape[:channels] + (1,) * (t.rank - channels), value=1.0,
                      dtype=t.dtype)
        return F.emit(MUL, x, dropout(F, ones, p, training))
    channel_dropout.__name__ = channel_dropout.__qualname__ = name
    channel_dropout.__doc__ = (f"PyTorch's F.{name}: zero whole channels with probability p "
                               f"(one draw per sample and channel), scale the rest by 1/(1-p).")
    return channel_dropout


dropout1d, dropout2d, dropout3d = (_channel_dropout(nd) for nd in (1, 2, 3))

SELU_ALPHA = 1.7580993408473766  # SELU's scale * alpha: what alpha dropout drops to (negated)


def _alpha_dropout(F: Front, x: Any, p: Any, training: Any, per_channel: bool) -> Any:
    """Dropped elements (or channels) become SELU's negative saturation, then an affine map
    keeps the mean and variance of SELU's output, as PyTorch's alpha dropouts."""
    t = F.type_of(tensor(F, x, "alpha_dropout's argument"))
    mask = t.shape[:2] + (1,) * (t.rank - 2) if per_channel else t.shape
    ones = F.emit(FULL, shape=mask, value=1.0, dtype=t.dtype)
    kept = dropout(F, ones, p, training)  # 0, or 1/(1-p) where kept
    if kept is ones or p == 0:
        return x
    if p == 1:
        return F.emit(MUL, x, F.lift(0.0, t.dtype))
    a = 1.0 / math.sqrt((SELU_ALPHA ** 2 * p + 1) * (1 - p))
    keep = F.emit(MUL, kept, F.lift(1.0 - p, t.dtype))  # 0 or 1
    dropped_to = F.emit(MUL, F.emit(SUB, keep, F.lift(1.0, t.dtype)), F.lift(SELU_ALPHA, t.dtype))
    y = F.emit(ADD, F.emit(MUL, x, keep), dropped_to)
    return F.emit(ADD, F.emit(MUL, y, F.lift(a, t.dtype)), F.lift(SELU_ALPHA * a * p, t.dtype))


def alpha_dropout(F: Front, x: Any, p: Any = 0.5, training: Any = False,
                  inplace: bool = False) -> Any:
    """PyTorch's F.alpha_dropout (for SELU networks): identity unless training."""
    return _alpha_dropout(F, x, p, training, per_channel=False)


def feature_alpha_dropout(F: Front, x: Any, p: Any = 0.5, training: Any = False,
                          inplace: bool = False) -> Any:
    """PyTorch's F.feature_alpha_dropout: alpha dropout of whole channels (axis 1)."""
    return _alpha_dropout(F, x, p, training, per_channel=True)


def _softmax(F: Front, op: Any, x: Any, axis: Any, dtype: Any) -> Any:
    """x cast to `dtype` first (PyTorch's argument); a 0-d tensor's axis is 0, which PyTorch
    also calls -1; an empty tensor is its own result (there is no maximum to subtract)."""
    x = tensor(F, x, f"{op.name}'s argument")
    if dtype is not None and dtype != F.type_of(x).dtype:
        x = F.emit(CAST, x, dtype=dtype_arg(F, dtype, f"{op.name}: dtype"))
    t = F.type_of(x)
    if 0 in t.shape and t.dtype.is_float:
        return x
    return F.emit(op, x, axis=0 if t.rank == 0 and axis == -1 else axis)


def softmax(F: Front, x: Any, axis: int = -1, dtype: Any = None) -> Any:
    return _softmax(F, SOFTMAX, x, axis, dtype)


def log_softmax(F: Front, x: Any, axis: int = -1, dtype: Any = None) -> Any:
    return _softmax(F, LOG_SOFTMAX, x, axis, dtype)
