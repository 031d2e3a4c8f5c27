"""One differentiation level of torch.func's transforms on dlg's eager tape.

functorch wraps the differentiated inputs in a new autograd level; here a level is a fresh
tensor per input leaf: a new leaf requiring grad where the caller's tensor is outside any
gradient, else a recorded `view_as` of it, so an enclosing gradient (a user's backward, or an
outer transform) still reaches the caller's tensor. Inputs are fresh tensors even when the
caller passes the same tensor twice or closes over it, so grad(lambda x: grad(lambda y: x * y)(x))
differentiates x * y in y alone (1, not 2: no perturbation confusion).

Whether results stay recorded (create_graph) is decided by the tape: only when grad mode is on
and the outputs reach a tensor requiring grad other than this level's fresh inputs can an
enclosing level differentiate them; otherwise the gradients run once and come back detached,
as torch's do at the top level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dlg.autograd.functional import _grad as autograd_grad
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.foreign import type_name
from dlg.frontend import autograd, engine
from dlg.frontend.tensor import Tensor, call, foreign_tensors
from dlg.func.pytree import TreeSpec, flatten, unflatten

Argnums = int | tuple[int, ...]


def check_argnums(argnums: Any, count: int) -> tuple[int, ...]:
    """torch's argnums checks; the positions, negative ones counted from the end."""
    many = isinstance(argnums, tuple)
    items = argnums if many else (argnums,)
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
        raise DlgTypeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}",
                           engine.caller_span())
    if many and not items:
        raise DlgValueError("argnums must be non-empty", engine.caller_span())
    if len(set(items)) != len(items):
        raise DlgValueError(f"argnums elements must be unique, got {argnums}",
                            engine.caller_span())
    for a in items:
        if not -count <= a < count:
            raise DlgValueError(f"Got argnum={a}, but only {count} positional inputs",
                                engine.caller_span())
    return tuple(a % count for a in items)


def selected(args: tuple[Any, ...], argnums: Argnums) -> Any:
    """The differentiated arguments: one for an int argnums, a tuple of them for a tuple."""
    positions = check_argnums(argnums, len(args))
    return tuple(args[a] for a in positions) if isinstance(argnums, tuple) else args[positions[0]]


def replaced(args: tuple[Any, ...], argnums: Argnums, new: Any) -> tuple[Any, ...]:
    """`args` with the selected arguments replaced by `new` (as `selected` returned them)."""
    positions = check_argnums(argnums, len(args))
    values = new if isinstance(argnums, tuple) else (new,)
    out = list(args)
    for a, v in zip(positions, values):
        out[a] = v
    return tuple(out)


def check_tensors(leaves: Sequence[Any], what: str) -> None:
    for x in leaves:
        if not isinstance(x, Tensor):
            raise DlgTypeError(f"{what}: expected tensors, got unsupported type "
                               f"{type(x).__name__}", engine.caller_span())


def eager_only(fn: str) -> None:
    """The transforms run the function eagerly (vmap loops over the batch, which a trace
    keeps symbolic; the gradients run on the eager tape): a trace is refused, not given
    zeros."""
    if engine.current_tracer() is not None:
        raise DlgValueError(f"dlg.func.{fn} runs eagerly only, not while tracing or compiling "
                            f"(write the batch dimension out, or use the compiled graph's own "
                            f"gradients)", engine.caller_span())


@dataclass
class Level:
    """The fresh inputs of one transform call (flat, with the structure they came in)."""

    inputs: list[Tensor]
    spec: TreeSpec
    outer: bool  # grad mode was on when the transform was called

    @classmethod
    def enter(cls, tree: Any, fn: str) -> Level:
        """Fresh tensors for every leaf of `tree`, which must all be float tensors (`fn`: the
        transform, for errors)."""
        eager_only(fn)
        leaves, spec = flatten(tree)
        outer = engine.grad_enabled()
        fresh = []
        for x in map(foreign_tensors, leaves):  # a torch tensor: a dlg one on its memory
            if not isinstance(x, Tensor):
                raise DlgTypeError(f"Thing passed to transform API must be Tensor, got "
                                   f"{type_name(x)}", engine.caller_span())
            if not x.dtype.is_float:
                raise DlgTypeError(f"only Tensors of floating point dtype can require "
                                   f"gradients, not {x.tensor_type}", engine.caller_span())
            with engine.enable_grad():
                fresh.append(x.view_as(x) if outer and x.requires_grad
                             else x.detach().requires_grad_())
        return cls(fresh, spec, outer)

    @property
    def tree(self) -> Any:
        return unflatten(self.inputs, self.spec)

    def recorded(self, tensors: Sequence[Any]) -> bool:
        """Whether results computed from `tensors` must stay recorded: grad mode was on and
        they reach a tensor requiring grad that is not this level's own."""
        if not self.outer:
            return False
        roots = [t for t in tensors if isinstance(t, Tensor) and t.requires_grad]
        own = {id(x) for x in self.inputs}
        return any(r is None and t.requires_grad and id(t) not in own
                   for t, r in autograd.tape(roots))

    def gradients(self, outs: Sequence[Tensor], seeds: Sequence[Tensor] | None,
                  keep: bool) -> list[Tensor]:
        """d sum <out, seed> / d each fresh input (zeros where unused), detached unless
        `keep` (seeds None: the outputs are one element each)."""
        with engine.enable_grad():
            grads = autograd_grad(outs, tuple(self.inputs), seeds, keep)
        return [release(call("zeros_like", x.detach()) if g is None else g, keep)
                for g, x in zip(grads, self.inputs)]


def release(t: Any, keep: bool) -> Any:
    """A result handed back: detached unless an enclosing level differentiates it."""
    return t.detach() if isinstance(t, Tensor) and not keep else t


def run(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with engine.enable_grad():
        return func(*args, **kwargs)


def split_aux(out: Any, has_aux: bool, fn: str) -> tuple[Any, Any]:
    """(output, aux) of a function called with has_aux (aux's leaves must be tensors)."""
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise DlgTypeError(f"{fn}: output of function f should be a tuple: (output, aux) if "
                           f"has_aux is True", engine.caller_span())
    check_tensors(flatten(out[1])[0], f"{fn}: aux")
    return out


def check_like(values: Sequence[Tensor], refs: Sequence[Tensor], what: str) -> None:
    """Cotangents and tangents take their primal's shape."""
    for i, (v, r) in enumerate(zip(values, refs)):
        if not isinstance(v, Tensor):
            raise DlgTypeError(f"{what}[{i}] must be a Tensor, got {type(v).__name__}",
                               engine.caller_span())
        if tuple(v.shape) != tuple(r.shape):
            raise DlgShapeError(f"Mismatch in shape: {what}[{i}] has a shape of "
                                f"{list(v.shape)} and its primal has a shape of "
                                f"{list(r.shape)}", engine.caller_span())
