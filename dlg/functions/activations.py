"""The activations that are not one-input elementwise ops (those come from the registry by
themselves): prelu, with a learned weight per channel, glu, gated by one half of its input,
threshold (a where), softmin (softmax of -x) and rrelu (a leaky relu whose slopes are drawn
while training)."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_number, tensor
from dlg.functions.creation import rand
from dlg.functions.front import Front
from dlg.functions.nn import softmax
from dlg.ir.ops.elementwise import ADD, GLU, GT, LEAKY_RELU, MUL, NEG, PRELU, WHERE


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


def rrelu(F: Front, x: Any, lower: Any = 1.0 / 8, upper: Any = 1.0 / 3, training: Any = False,
          inplace: bool = False) -> Any:
    """PyTorch's F.rrelu (randomized leaky relu): while training, x <= 0 is scaled by a slope
    drawn per element from U(lower, upper) (dlg's random stream; the gradient is that same
    slope), else by the mean slope (lower + upper) / 2. `inplace` is accepted; the result is
    a new tensor (dlg.nn.functional's inplace= writes it back)."""
    x = tensor(F, x, "rrelu's input")
    for what, v in (("lower", lower), ("upper", upper)):
        if not is_number(v):
            raise DlgTypeError(f"rrelu: {what} must be a number, got {describe(F, v)}")
    if lower > upper:
        raise DlgValueError(f"rrelu: the lower bound {lower} must be at most the upper bound "
                            f"{upper}")
    if not isinstance(training, bool):
        raise DlgTypeError(f"rrelu: training must be a bool, got {describe(F, training)}")
    t = F.type_of(x)
    if not t.dtype.is_float:
        raise DlgTypeError(f"rrelu: the input must be floating point, got {t}")
    if not training:
        return F.emit(LEAKY_RELU, x, negative_slope=(lower + upper) / 2)
    slope = F.emit(ADD, F.emit(MUL, rand(F, t.shape, dtype=t.dtype),
                               F.lift(upper - lower, t.dtype)), F.lift(lower, t.dtype))
    return F.emit(WHERE, F.emit(GT, x, F.lift(0.0, t.dtype)), x, F.emit(MUL, x, slope))
