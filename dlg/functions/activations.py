"""The activations that are not one-input elementwise ops (those come from the registry by
themselves): prelu, with a learned weight per channel, glu, gated by one half of its input,
threshold (a where) and softmin (softmax of -x)."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError
from dlg.functions.args import describe, is_number, tensor
from dlg.functions.front import Front
from dlg.functions.nn import softmax
from dlg.ir.ops.elementwise import GLU, GT, NEG, PRELU, WHERE


def prelu(F: Front, x: Any, weight: Any) -> Any:
    """PyTorch's F.prelu: where(x > 0, x, weight * x), weight [channels] along axis 1, or one
    slope ([1] or a 0-d tensor)."""
    return F.emit(PRELU, tensor(F, x, "prelu's input"), tensor(F, weight, "prelu's weight"))


def glu(F: Front, x: Any, axis: int = -1) -> Any:
    """PyTorch's F.glu: a * sigmoid(b), a and b the halves of x along `axis` (dim)."""
    return F.emit(GLU, tensor(F, x, "glu's input"), axis=axis)


def threshold(F: Front, x: Any, threshold: Any, value: Any, inplace: bool = False) -> Any:
    """PyTorch's F.threshold: x where x > threshold, else `value` (`inplace` is accepted; the
    result is a new tensor)."""
    x = tensor(F, x, "threshold's input")
    for what, v in (("threshold", threshold), ("value", value)):
        if not is_number(v):
            raise DlgTypeError(f"threshold: {what} must be a number, got {describe(F, v)}")
    dtype = F.type_of(x).dtype
    return F.emit(WHERE, F.emit(GT, x, F.lift(threshold, dtype)), x, F.lift(value, dtype))


def softmin(F: Front, x: Any, axis: int = -1, dtype: Any = None) -> Any:
    """softmax(-x) along `axis` (PyTorch's F.softmin; x cast to `dtype` first)."""
    return softmax(F, F.emit(NEG, tensor(F, x, "softmin's argument")), axis, dtype)
