"""`dlg.nn.functional` and the top-level function spellings (`dlg.relu`, `dlg.cat`, ...): thin
names over registry ops, with PyTorch's argument names (dim, keepdim, reduction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.frontend import engine
from dlg.frontend.tensor import MaxResult, Tensor, binary, op

__all__ = ["MaxResult", "op"]
from dlg.ir.dtypes import DType
from dlg.ir.shapes import Sym


def _t(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


# ---- creation ------------------------------------------------------------------------------------
def tensor(data: Any, dtype: DType | None = None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.array(data.numpy_view() if isinstance(data, Tensor) else data,
                           dtype=None if dtype is None else dtype.np), requires_grad, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    return Tensor(array)


def _shape(size: Sequence[Any]) -> tuple[Any, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(s if isinstance(s, Sym) else int(s) for s in size)


def full(size: Sequence[Any], fill_value: float, dtype: DType = DType.f32,
         requires_grad: bool = False) -> Tensor:
    shape = _shape(tuple(size))
    if any(isinstance(d, Sym) for d in shape):  # while tracing: sized by a symbolic dim
        return op("full", shape=shape, value=float(fill_value), dtype=dtype)
    return Tensor(np.full(shape, fill_value, dtype.np), requires_grad)


def zeros(*size: Any, dtype: DType = DType.f32, requires_grad: bool = False) -> Tensor:
    return full(_shape(size), 0, dtype, requires_grad)


def ones(*size: Any, dtype: DType = DType.f32, requires_grad: bool = False) -> Tensor:
    return full(_shape(size), 1, dtype, requires_grad)


def randn(*size: Any, dtype: DType = DType.f32, requires_grad: bool = False) -> Tensor:
    return Tensor(engine.rng().standard_normal(_shape(size)).astype(dtype.np), requires_grad)


def rand(*size: Any, dtype: DType = DType.f32, requires_grad: bool = False) -> Tensor:
    return Tensor(engine.rng().random(_shape(size)).astype(dtype.np), requires_grad)


def arange(start: float, end: float | None = None, step: float = 1,
           dtype: DType | None = None) -> Tensor:
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    return Tensor(values, dtype=dtype)


def zeros_like(x: Tensor) -> Tensor:
    return zeros(x.shape, dtype=x.dtype)


def ones_like(x: Tensor) -> Tensor:
    return ones(x.shape, dtype=x.dtype)


# ---- functions -----------------------------------------------------------------------------------
def relu(x: Tensor, inplace: bool = False) -> Tensor:
    return op("relu", x)


def sigmoid(x: Tensor) -> Tensor:
    return op("sigmoid", x)


def tanh(x: Tensor) -> Tensor:
    return op("tanh", x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return op("gelu", x, approximate=approximate)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return op("leaky_relu", x, negative_slope=negative_slope)


def exp(x: Tensor) -> Tensor:
    return op("exp", x)


def log(x: Tensor) -> Tensor:
    return op("log", x)


def sqrt(x: Tensor) -> Tensor:
    return op("sqrt", x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return op("abs", x)


def softmax(x: Tensor, dim: int) -> Tensor:
    return op("softmax", x, axis=dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return op("log_softmax", x, axis=dim)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return op("flatten", x, start_axis=start_dim, end_axis=end_dim)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return binary("matmul", a, b)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return op("concat", *tensors, axis=dim)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return op("stack", *tensors, axis=dim)


def max(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A001
    return x.max(dim, keepdim)


def min(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:  # noqa: A001
    return x.min(dim, keepdim)


def argmax(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return x.argmax(dim, keepdim)


def sum(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return x.sum(dim, keepdim)


def mean(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return x.mean(dim, keepdim)


def where(condition: Tensor, x: Any, y: Any) -> Tensor:
    x, y = _t(x), _t(y)
    return op("where", condition, x.to(y.dtype) if x.dtype != y.dtype else x, y)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """The mask is drawn eagerly and fed to the gradient as data, never redrawn."""
    if not training or p == 0:
        return x
    if x.trace is not None:  # traced: the graph draws a fresh mask at every run
        return op("dropout", x, p=p, training=True)
    keep = Tensor(engine.rng().random(x.shape) >= p)
    return where(keep, x * (1.0 / (1.0 - p)), Tensor(np.zeros((), x.dtype.np)))


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return op("linear", x, weight, bias) if bias is not None else op("linear_nobias", x, weight)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    return _conv(2, x, weight, bias, stride, padding, dilation, groups)


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    return _conv(1, x, weight, bias, stride, padding, dilation, groups)


def _pair(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _conv(nd: int, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Tensor:
    attrs: dict[str, Any] = {"stride": _pair(stride, nd), "dilation": _pair(dilation, nd),
                             "groups": groups}
    if isinstance(padding, str):
        attrs["auto_pad"] = padding
    else:
        attrs["padding"] = _pair(padding, nd)
    if bias is None:
        return op(f"conv{nd}d_nobias", x, weight, **attrs)
    return op(f"conv{nd}d", x, weight, bias, **attrs)


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False) -> Tensor:
    return op("max_pool", x, kernel=_pair(kernel_size, 2),
              stride=_pair(stride if stride is not None else kernel_size, 2),
              padding=_pair(padding, 2), dilation=_pair(dilation, 2), ceil_mode=ceil_mode)


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    return op("avg_pool", x, kernel=_pair(kernel_size, 2),
              stride=_pair(stride if stride is not None else kernel_size, 2),
              padding=_pair(padding, 2), ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)


# ---- losses --------------------------------------------------------------------------------------
def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean",  # noqa: A002
                  label_smoothing: float = 0.0) -> Tensor:
    return op("cross_entropy", input, _t(target), reduction=reduction,
              label_smoothing=label_smoothing)


def nll_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    return op("nll_loss", input, _t(target), reduction=reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    return op("mse_loss", input, _t(target).to(input.dtype), reduction=reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    return op("l1_loss", input, _t(target).to(input.dtype), reduction=reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,  # noqa: A002
                                     reduction: str = "mean") -> Tensor:
    return op("binary_cross_entropy_with_logits", input, _t(target).to(input.dtype),
              reduction=reduction)


def binary_cross_entropy(input: Tensor, target: Tensor,  # noqa: A002
                         reduction: str = "mean") -> Tensor:
    return op("binary_cross_entropy", input, _t(target).to(input.dtype), reduction=reduction)

