"""torch.nn.utils' gradient clipping for eager training loops: the gradients scaled or clamped
in place after `backward()`, before the optimizer's step (an RNN's or a transformer's usual
guard against exploding gradients)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Scale every gradient by max_norm / (total norm + 1e-6) where that is below 1, as torch
    does; returns the total norm of the gradients (all of them as one vector) before."""
    grads = _grads(parameters)
    p = float(norm_type)
    if not grads:
        return Tensor.of(np.zeros((), np.float32))
    if p == math.inf:
        total = max(float(np.abs(g).max(initial=0.0)) for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** p)) for g in grads) ** (1 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise DlgValueError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                            f"gradients is {total}; pass error_if_nonfinite=False to clip anyway",
                            engine.caller_span())
    scale = min(float(max_norm) / (total + 1e-6), 1.0)
    for g in grads:
        g *= np.asarray(scale, g.dtype)
    return Tensor.of(np.asarray(total, grads[0].dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    for g in _grads(parameters):
        np.clip(g, -float(clip_value), float(clip_value), out=g)


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    """The gradient arrays of the parameters that have one (written in place)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad.numpy_view() for p in params if p.grad is not None]
