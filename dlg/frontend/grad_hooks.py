"""`Tensor.register_hook`: functions backward calls with a tensor's gradient, in registration
order, each given the previous one's result; one that returns a tensor replaces the gradient.

A leaf's hooks run before its gradient is added to `.grad`. A recorded tensor's replacement
changes what flows on to the tensors it was made from: as gradients are linear in the seeds,
the difference (replacement - gradient) is one more seed at that tensor, so backward's one
gradient graph still computes everything. The hooked tensors are visited nearest the roots first
(their gradients take the seeds added below them), each costing one gradient run.

A `Together` hook (a module's full backward hooks) sees several tensors' gradients at once: the
first of them backward reaches computes them all in one run, and a replacement adds its seed
at each; the tensors are made one after another (identity copies), so nothing between them has
been visited yet.
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


class Together:
    """One hook over several tensors (a module's inputs, or its outputs): backward, reaching the
    first of them, computes all their gradients at once and calls `fn(grads)` (a tuple, None
    where no gradient flows); a result other than None replaces them, one per tensor."""

    def __init__(self, tensors: list[Tensor], fn: Callable[[tuple[Any, ...]], Any]):
        self.refs = [weakref.ref(t) for t in tensors]  # the tensors' hook tables hold this
        self.fn = fn

    def seeds(self, roots: Roots, order: list[tuple[Tensor, Any]],
              gradients: Callable[[Roots, Any, list[Tensor]], list[Any]]) -> Roots:
        """The seeds (replacement - gradient) that `fn`'s replacements add."""
        members = [ref() for ref in self.refs]
        live = [m for m in members if m is not None]
        found = dict(zip(map(id, live), gradients(roots, order, live)))
        grads = [None if m is None else found.get(id(m)) for m in members]
        given = tuple(None if g is None else _as_tensor(m, g) for m, g in zip(members, grads))
        result = self.fn(given)
        if result is None:
            return []
        result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        if len(result) != len(members):
            raise DlgValueError(f"a backward hook returned {len(result)} gradients where "
                                f"{len(members)} were expected", caller_span())
        seeds: Roots = []
        for m, g, old, new in zip(members, grads, given, result):
            if m is not None and g is not None and new is not None and new is not old:
                seeds.append((m, _checked(m, g, new) - g))
        return seeds


def register_together(tensors: list[Tensor], fn: Callable[[tuple[Any, ...]], Any]) -> None:
    """`fn` over the gradients of all of `tensors` at once (a `Together`); they must be
    recorded (not leaves), as backward visits recorded tensors only for it."""
    hook = Together(tensors, fn)
    for t in tensors:
        register_hook(t, hook)  # type: ignore[arg-type]


_post_hooks: dict[int, tuple[weakref.ref, OrderedDict[int, Callable[..., Any]]]] = {}


def register_post_accumulate(t: Tensor, hook: Callable[[Tensor], Any]) -> RemovableHandle:
    """`hook(t)` after backward has added to a leaf's `.grad` (torch's
    register_post_accumulate_grad_hook: an optimizer step fused into the backward pass)."""
    if not t.requires_grad:
        raise DlgValueError("cannot register a hook on a tensor that doesn't require gradient",
                            caller_span())
    if not t.is_leaf:
        raise DlgValueError("post accumulate grad hooks cannot be registered on non-leaf "
                            "tensors", caller_span())
    key = id(t)
    entry = _post_hooks.get(key)
    if entry is None or entry[0]() is not t:
        table = _post_hooks  # bound now: the callback may run as the interpreter exits
        entry = (weakref.ref(t, lambda _: table.pop(key, None)), OrderedDict())
        _post_hooks[key] = entry
    return add_hook(entry[1], hook)


def post_accumulate(t: Tensor) -> None:
    """t's post-accumulate hooks, in registration order (their results are ignored)."""
    entry = _post_hooks.get(id(t))
    if entry is not None and entry[0]() is t:
        for hook in list(entry[1].values()):
            hook(t)


def registered() -> bool:
    """Whether any live tensor has a hook."""
    return bool(_hooks)


def _hooks_of(t: Tensor) -> list[Callable[..., Any]]:
    entry = _hooks.get(id(t))
    return list(entry[1].values()) if entry is not None and entry[0]() is t else []


def run(t: Tensor, grad: np.ndarray) -> np.ndarray:
    """`grad` through t's hooks."""
    for hook in _hooks_of(t):
        if isinstance(hook, Together):
            continue
        result = hook(_as_tensor(t, grad))
        if result is not None:
            grad = _checked(t, grad, result)
    return grad


def _as_tensor(t: Tensor, grad: np.ndarray) -> Tensor:
    """`grad` as a plain tensor (tensor.py imports this module, not the reverse)."""
    given = t.detach()
    given.data = grad
    return given


def _checked(t: Tensor, grad: np.ndarray, result: Any) -> np.ndarray:
    """A hook's replacement for `grad` as t's array."""
    new = np.asarray(result, t.tensor_type.dtype.np)
    if new.shape != grad.shape:
        raise DlgValueError(f"a gradient hook changed the size of the gradient from "
                            f"{list(grad.shape)} to {list(new.shape)}", caller_span())
    return new


def with_hooks(roots: Roots, order: list[tuple[Tensor, Any]],
               gradients: Callable[[Roots, Any, list[Tensor]], list[Any]]) -> Roots:
    """`roots` and one more seed per recorded tensor of `order` (autograd's tape: (tensor,
    record) pairs) whose hooks changed its gradient (`gradients` is autograd's)."""
    if not _hooks:
        return roots
    roots = list(roots)
    done: set[int] = set()
    for t, r in reversed(order):  # `order` puts every value after its inputs
        if r is None or r is not t.record:
            continue
        hooks = _hooks_of(t)
        together = next((h for h in hooks if isinstance(h, Together)), None)
        if together is not None:  # the first of its tensors backward reaches
            if id(together) not in done:
                done.add(id(together))
                roots += together.seeds(roots, order, gradients)
            hooks = [h for h in hooks if not isinstance(h, Together)]
        if not hooks:
            continue
        grad = gradients(roots, order, [t])[0]
        if grad is None:
            continue
        new = run(t, grad)
        if new is not grad:
            roots.append((t, new - grad))
    return roots
