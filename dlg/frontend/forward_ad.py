"""torch.autograd.forward_ad (the forward-mode AD tutorial): dual tensors inside a
`dual_level`, `make_dual(primal, tangent)` and `unpack_dual(t) -> (primal, tangent)`.

dlg has reverse mode only, so a tangent is computed when it is asked for, by the double-vjp
identity: with the dual tensors recorded on the tape, g(u) = J^T u (a gradient graph, kept
differentiable in u) and d<g(u), t>/du = J t. A dual is its primal, recorded (a leaf that
requires grad, or a view of a primal that already does); its tangent lives in the level and
is dropped when the level closes, as torch drops it. A custom Function with a `jvp`
staticmethod gives its outputs' tangents itself (its outputs are duals of the level)."""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call

_levels: list[dict[int, tuple[weakref.ref, Tensor]]] = []
GRAD: list[Any] = []  # dlg.autograd.grad, put here by dlg.autograd.forward_ad (it imports later)


class UnpackedDualTensor(NamedTuple):
    primal: Tensor
    tangent: Tensor | None


def enter_dual_level() -> int:
    _levels.append({})
    return len(_levels) - 1


def exit_dual_level(*, level: int | None = None) -> None:
    if not _levels:
        raise DlgValueError("exit_dual_level: no dual level is open", engine.caller_span())
    _levels.pop()


class dual_level:  # noqa: N801  (torch's spelling)
    """A context in which dual tensors live; their tangents are dropped when it ends."""

    def __enter__(self) -> int:
        return enter_dual_level()

    def __exit__(self, *exc: Any) -> None:
        exit_dual_level()


def make_dual(tensor: Tensor, tangent: Tensor, *, level: int | None = None) -> Tensor:
    """`tensor` with `tangent` as its direction (a tangent of another layout is copied)."""
    if not _levels:
        raise DlgValueError("make_dual: open a `with forward_ad.dual_level():` first (torch's "
                            "rule: dual tensors live in a level)", engine.caller_span())
    if not isinstance(tangent, Tensor):
        tangent = Tensor.of(tangent)
    if tuple(tangent.shape) != tuple(tensor.shape):
        raise DlgShapeError(f"make_dual: the tangent's shape {list(tangent.shape)} is not the "
                            f"primal's {list(tensor.shape)}", engine.caller_span())
    with engine.enable_grad():
        dual = (tensor.view_as(tensor) if tensor.requires_grad
                else tensor.detach().requires_grad_())
    _register(dual, tangent if tangent.dtype == tensor.dtype else tangent.to(tensor.dtype))
    return dual


def _register(dual: Tensor, tangent: Tensor) -> None:
    _levels[-1][id(dual)] = (weakref.ref(dual), tangent)


def tangent_of(t: Tensor) -> Tensor | None:
    """t's tangent in the open level: its own if it is a dual, else J t of the duals it was
    computed from (None when it depends on none of them)."""
    if not _levels or not isinstance(t, Tensor):
        return None
    level = _levels[-1]
    entry = level.get(id(t))
    if entry is not None and entry[0]() is t:
        return entry[1]
    duals = [(d, tan) for ref, tan in level.values() if (d := ref()) is not None]
    if not duals or not t.requires_grad:
        return None
    grad = GRAD[0]
    with engine.enable_grad():
        u = call("zeros_like", t).requires_grad_()
        grads = grad(t, [d for d, _ in duals], grad_outputs=u, create_graph=True,
                     allow_unused=True)
        terms = [(g * tan).sum() for g, (_, tan) in zip(grads, duals) if g is not None]
        if not terms:
            return None
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        if not total.requires_grad:  # no dependence on u: a zero tangent
            return call("zeros_like", t)
        (tangent,) = grad(total, [u], allow_unused=True)
    return call("zeros_like", t) if tangent is None else tangent.detach()


def unpack_dual(tensor: Tensor, *, level: int | None = None) -> UnpackedDualTensor:
    """(primal, tangent): the tangent None outside a level or for a tensor no dual reaches."""
    return UnpackedDualTensor(tensor.detach() if isinstance(tensor, Tensor) else tensor,
                              tangent_of(tensor))


def function_jvp(cls: Any, ctx: Any, args: tuple[Any, ...], out: Any) -> Any:
    """A custom Function's `jvp(ctx, *input_tangents)` inside a level: its outputs become duals
    with the tangents it gives (None for the Functions without one, or without dual inputs)."""
    if not _levels or getattr(cls, "jvp", None) is None:
        return None
    tangents = [tangent_of(a) if isinstance(a, Tensor) else None for a in args]
    if all(t is None for t in tangents):
        return None
    given = [t if t is not None else (call("zeros_like", a) if isinstance(a, Tensor) else None)
             for t, a in zip(tangents, args)]
    with engine.no_grad():
        result = cls.jvp(ctx, *given)
    outs = out if isinstance(out, tuple) else (out,)
    results = result if isinstance(result, tuple) else (result,)
    made = []
    for o, r in zip(outs, results):
        if isinstance(o, Tensor) and isinstance(r, Tensor):
            dual = o.detach().requires_grad_()
            _register(dual, r)
            made.append(dual)
        else:
            made.append(o)
    return tuple(made) if isinstance(out, tuple) else made[0]


__all__ = ["UnpackedDualTensor", "dual_level", "enter_dual_level", "exit_dual_level",
           "make_dual", "unpack_dual"]
