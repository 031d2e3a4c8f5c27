"""The activations that are not one-input elementwise ops (those come from the registry by
themselves): prelu, with a learned weight per channel, and glu, gated by one half of its input."""

from __future__ import annotations

from typing import Any

from dlg.functions.args import tensor
from dlg.functions.front import Front
from dlg.ir.ops.elementwise import GLU, PRELU


def prelu(F: Front, x: Any, weight: Any) -> Any:
    """PyTorch's F.prelu: where(x > 0, x, weight * x), weight [channels] along axis 1, or one
    slope ([1] or a 0-d tensor)."""
    return F.emit(PRELU, tensor(F, x, "prelu's input"), tensor(F, weight, "prelu's weight"))


def glu(F: Front, x: Any, axis: int = -1) -> Any:
    """PyTorch's F.glu: a * sigmoid(b), a and b the halves of x along `axis` (dim)."""
    return F.emit(GLU, tensor(F, x, "glu's input"), axis=axis)
