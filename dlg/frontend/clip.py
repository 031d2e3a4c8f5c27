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
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = get_total_norm([p.grad for p in params if p.grad is not None], norm_type,
                           error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


clip_grad_norm = clip_grad_norm_  # torch's deprecated spelling


def get_total_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """The norm of all of `tensors` (gradients, usually) as one vector; 0 for none."""
    arrays = [t.numpy_view() for t in ([tensors] if isinstance(tensors, Tensor) else tensors)]
    p = float(norm_type)
    if not arrays:
        return Tensor.of(np.zeros((), np.float32))
    if p == math.inf:
        total = max(float(np.abs(a).max(initial=0.0)) for a in arrays)
    else:
        total = sum(float(np.sum(np.abs(a.astype(np.float64)) ** p)) for a in arrays) ** (1 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise DlgValueError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                            f"gradients is {total}; pass error_if_nonfinite=False to clip anyway",
                            engine.caller_span())
    return Tensor.of(np.asarray(total, arrays[0].dtype))


def clip_grads_with_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                          total_norm: Tensor | float, foreach: bool | None = None) -> None:
    """Scale every gradient by max_norm / (total_norm + 1e-6) where that is below 1 (the second
    half of clip_grad_norm_, given get_total_norm's result)."""
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    scale = min(float(max_norm) / (total + 1e-6), 1.0)
    for g in _grads(parameters):
        g *= np.asarray(scale, g.dtype)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    for g in _grads(parameters):
        np.clip(g, -float(clip_value), float(clip_value), out=g)


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[np.ndarray]:
    """The gradient arrays of the parameters that have one (written in place)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad.numpy_view() for p in params if p.grad is not None]
