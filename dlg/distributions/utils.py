"""Helpers the distributions share, as torch.distributions.utils: parameters broadcast to one
shape, probabilities and logits converted both ways, lazily computed properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError
from dlg.frontend import engine
from dlg.frontend.dtypes import finfo, get_default_dtype
from dlg.frontend import functional as F
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor

Number = (int, float, np.integer, np.floating)


def broadcast_all(*values: Any) -> tuple[Tensor, ...]:
    """Tensors and numbers -> tensors of one broadcast shape; numbers take the tensors' dtype
    (the default dtype when all are numbers), as torch's."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    for v in values:
        if not isinstance(v, (Tensor, *Number)) or isinstance(v, bool):
            raise DlgTypeError(f"Input arguments must all be instances of numbers or dlg "
                               f"tensors, got {type(v).__name__}", engine.caller_span())
    dtype = tensors[0].dtype if tensors else get_default_dtype()
    out = [v if isinstance(v, Tensor) else F.tensor(float(v), dtype=dtype) for v in values]
    shape = broadcast_shapes(*(t.shape for t in out))
    return tuple(t if tuple(t.shape) == tuple(shape) else t.expand(shape) for t in out)


def broadcast_shapes(*shapes: Sequence[Any]) -> Size:
    """NumPy's broadcasting of shapes, as a dlg.Size; a trace's symbolic dims broadcast with 1
    and with themselves."""
    out: list[Any] = []
    for shape in shapes:
        shape = tuple(shape)
        padded = [1] * (len(shape) - len(out)) + out
        tail = (1,) * (len(padded) - len(shape)) + shape
        for i, (a, b) in enumerate(zip(padded, tail)):
            if not (isinstance(b, int) and b == 1):
                if isinstance(a, int) and a == 1 or a is b or a == b:
                    padded[i] = b
                else:
                    raise DlgTypeError(f"shapes cannot be broadcast together: "
                                       f"{', '.join(str(tuple(s)) for s in shapes)}",
                                       engine.caller_span())
        out = padded
    return Size(out)


def clamp_probs(probs: Tensor) -> Tensor:
    eps = finfo(probs.dtype).eps
    return F.clamp(probs, min=eps, max=1 - eps)


def probs_to_logits(probs: Tensor, is_binary: bool = False) -> Tensor:
    clamped = clamp_probs(probs)
    return F.log(clamped) - F.log1p(-clamped) if is_binary else F.log(clamped)


def logits_to_probs(logits: Tensor, is_binary: bool = False) -> Tensor:
    return F.sigmoid(logits) if is_binary else F.softmax(logits, dim=-1)


def sum_rightmost(value: Tensor, dims: int) -> Tensor:
    """Sum out the `dims` rightmost dims (torch's _sum_rightmost)."""
    return value.reshape(tuple(value.shape[:value.ndim - dims]) + (-1,)).sum(-1) if dims else value


def as_size(shape: Any, what: str = "sample_shape") -> Size:
    if isinstance(shape, Size):
        return shape  # its dims may be a trace's symbols
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        return Size([int(shape)])
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape):
        raise DlgTypeError(f"{what} must be a dlg.Size or a tuple of ints, got {shape!r}",
                           engine.caller_span())
    return Size(int(d) for d in shape)


def is_traced(*values: Any) -> bool:
    """Any of the values is a symbolic tensor of a trace (no data to validate)."""
    return any(isinstance(v, Tensor) and v.graph_value is not None for v in values)


class lazy_property:  # noqa: N801  (torch's spelling)
    """A property computed once per instance and stored under its name, so a distribution made
    from logits computes probs only when asked (and the reverse)."""

    def __init__(self, fn: Any):
        self.wrapped = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        value = self.wrapped(instance)
        instance.__dict__[self.wrapped.__name__] = value
        return value
