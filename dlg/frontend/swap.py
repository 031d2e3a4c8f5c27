"""`dlg.utils.swap_tensors(t1, t2)`, torch.utils.swap_tensors (the swap_tensors recipe): the two
tensor objects exchange their contents (values, type, autograd record, requires_grad, grad) and
their classes, each keeping its identity, so a module holding `t1` now holds `t2`'s values."""

from __future__ import annotations

from dlg.errors import DlgTypeError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor

_CONTENTS = ("_value", "tensor_type", "record", "_requires_grad", "grad", "graph_value")


def swap_tensors(t1: Tensor, t2: Tensor) -> None:
    if not isinstance(t1, Tensor) or not isinstance(t2, Tensor):
        raise DlgTypeError(f"swap_tensors takes two tensors, got {type(t1).__name__} and "
                           f"{type(t2).__name__}", engine.caller_span())
    if engine.current_tracer() is not None:
        raise DlgTypeError("swap_tensors of traced tensors: swap them outside the trace",
                           engine.caller_span())
    for name in _CONTENTS:
        a, b = getattr(t1, name), getattr(t2, name)
        setattr(t1, name, b)
        setattr(t2, name, a)
    t1.__class__, t2.__class__ = t2.__class__, t1.__class__
