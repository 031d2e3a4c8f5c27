"""`Tensor.register_hook`: functions backward calls with a tensor's gradient, in registration
order, each given the previous one's result; one that returns a tensor replaces the gradient.

A leaf's hooks run before its gradient is added to `.grad`. A recorded tensor's replacement
changes what flows on to the tensors it was made from: as gradients are linear in the seeds,
the difference (replacement - gradient) is one more seed at that tensor, so backward's one
gradient graph still computes everything. The hooked tensors are visited nearest the roots first
(their gradients take the seeds added below them), each costing one gradient run.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend.engine import caller_span
from dlg.frontend.handles import RemovableHandle, add_hook

if TYPE_CHECKING:
    from dlg.frontend.tensor import Tensor

Roots = list[tuple["Tensor", "np.ndarray | None"]]
_hooks: dict[int, tuple[weakref.ref, OrderedDict[int, Callable[..., Any]]]] = {}


def register_hook(t: Tensor, hook: Callable[[Tensor], Any]) -> RemovableHandle:
    if not t.requires_grad:
        raise DlgValueError("cannot register a hook on a tensor that doesn't require gradient",
                            caller_span())
    key = id(t)
    entry = _hooks.get(key)
    if entry is None or entry[0]() is not t:
        entry = (weakref.ref(t, lambda _: _hooks.pop(key, None)), OrderedDict())
        _hooks[key] = entry
    return add_hook(entry[1], hook)


def registered() -> bool:
    """Whether any live tensor has a hook."""
    return bool(_hooks)


def _hooks_of(t: Tensor) -> list[Callable[..., Any]]:
    entry = _hooks.get(id(t))
    return list(entry[1].values()) if entry is not None and entry[0]() is t else []


def run(t: Tensor, grad: np.ndarray) -> np.ndarray:
    """`grad` through t's hooks."""
    for hook in _hooks_of(t):
        given = t.detach()  # a plain tensor (tensor.py imports this module, not the reverse)
        given.data = grad
        result = hook(given)
        if result is not None:
            new = np.asarray(result, t.type.dtype.np)
            if new.shape != grad.shape:
                raise DlgValueError(f"a gradient hook changed the size of the gradient from "
                                    f"{list(grad.shape)} to {list(new.shape)}", caller_span())
            grad = new
    return grad


def with_hooks(roots: Roots, order: list[tuple[Tensor, Any]],
               gradients: Callable[[Roots, Any, list[Tensor]], list[Any]]) -> Roots:
    """`roots` and one more seed per recorded tensor of `order` (autograd's tape: (tensor,
    record) pairs) whose hooks changed its gradient (`gradients` is autograd's)."""
    if not _hooks:
        return roots
    roots = list(roots)
    for t, r in reversed(order):  # `order` puts every value after its inputs
        if r is None or r is not t.record or not _hooks_of(t):
            continue
        grad = gradients(roots, order, [t])[0]
        if grad is None:
            continue
        new = run(t, grad)
        if new is not grad:
            roots.append((t, new - grad))
    return roots
