"""torch.func's reverse-mode transforms (`grad`, `grad_and_value`, `vjp`) and `jvp`, on dlg's
eager tape: each call runs the function once on fresh inputs (`level.Level`) and differentiates
the recorded ops with `dlg.autograd`'s gradient graphs, recorded (create_graph) only when an
enclosing gradient needs them, so grad(grad(f)), MAML's inner steps and a backward through a
transform work. dlg has no forward mode: `jvp` is the double-vjp trick (the vjp against a zero
cotangent that requires grad is linear in it; its gradient along the tangents is J v)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call
from dlg.func.level import (Argnums, Level, check_like, check_tensors, release, replaced, run,
                            selected, split_aux)
from dlg.func.pytree import flatten, unflatten

__all__ = ["grad", "grad_and_value", "jvp", "vjp"]


def grad_and_value(func: Callable[..., Any], argnums: Argnums = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """A function returning (gradient, value) of `func`, whose output must be a one-element
    0-d tensor, with respect to the arguments at `argnums` (each a tensor or a container of
    them; the gradient has its structure, a tuple of them for a tuple argnums). With has_aux,
    `func` returns (output, aux) and the value is (output, aux). Keyword arguments are passed
    through, not differentiated."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        level = Level.enter(selected(args, argnums), "grad")
        out, aux = split_aux(run(func, replaced(args, argnums, level.tree), kwargs), has_aux,
                             "grad_and_value(f)(*args)")
        if not isinstance(out, Tensor):
            raise DlgTypeError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                               f"Tensor, got {type(out).__name__}", engine.caller_span())
        if out.dim() != 0:
            raise DlgShapeError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                                f"scalar Tensor, got tensor with {out.dim()} dims. Maybe you "
                                f"wanted to use the vjp or jacrev APIs instead?",
                                engine.caller_span())
        keep = level.recorded([out, *flatten(aux)[0]])
        gradient = unflatten(level.gradients([out], None, keep), level.spec)
        value = release(out, keep)
        if has_aux:
            return gradient, (value, _released(aux, keep))
        return gradient, value

    return wrapper


def grad(func: Callable[..., Any], argnums: Argnums = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """torch.func.grad: `grad_and_value`'s gradient alone ((gradient, aux) with has_aux)."""
    both = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gradient, value = both(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return wrapper


def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """(func(*primals), vjp_fn) (and aux with has_aux): vjp_fn(cotangents), cotangents shaped
    as the output (a tensor or a container of them), returns a tuple with the gradient of
    sum <output, cotangents> for each primal. vjp_fn may be called many times."""
    level = Level.enter(primals, "vjp")
    out, aux = split_aux(run(func, level.tree, {}), has_aux, "vjp(f, *primals)")
    outs, out_spec = flatten(out)
    check_tensors(outs, "vjp(f, *primals): expected f(*primals) to return only tensors")
    keep = level.recorded([*outs, *flatten(aux)[0]])

    def vjp_fn(cotangents: Any, retain_graph: bool = True, create_graph: bool | None = None
               ) -> tuple[Any, ...]:
        seeds, spec = flatten(cotangents)
        if spec != out_spec:
            raise DlgValueError(f"Expected pytree structure of cotangents to be the same as "
                                f"pytree structure of outputs to the function. cotangents: "
                                f"{spec}, primal output: {out_spec}", engine.caller_span())
        check_like(seeds, outs, "cotangents")
        recorded = keep or (level.outer and engine.grad_enabled()
                            and any(s.requires_grad for s in seeds))
        if create_graph is not None:
            recorded = create_graph
        return unflatten(level.gradients(outs, seeds, recorded), level.spec)

    result = (_released(out, keep), vjp_fn)
    return (*result, _released(aux, keep)) if has_aux else result


def jvp(func: Callable[..., Any], primals: Any, tangents: Any, *, strict: bool = False,
        has_aux: bool = False) -> tuple[Any, ...]:
    """(func(*primals), J tangents) (and aux with has_aux): the Jacobian-vector product,
    `tangents` shaped as `primals` (a tuple, each entry a tensor or a container of them); the
    product is shaped as the output. `strict` is accepted and ignored, as torch does."""
    if not isinstance(primals, tuple):
        raise DlgTypeError("jvp(f, primals, tangents): Expected primals to be a tuple. E.g. it "
                           "should be valid to call f(*primals).", engine.caller_span())
    seeds, spec = flatten(tangents)
    if spec != flatten(primals)[1]:
        raise DlgValueError(f"jvp(f, primals, tangents): Expected primals and tangents to have "
                            f"the same python structure. For example, if primals is a tuple "
                            f"of 3 tensors, tangents also must be. Got primals with structure "
                            f"{flatten(primals)[1]} and tangents with structure {spec}",
                            engine.caller_span())
    level = Level.enter(primals, "jvp")
    check_like(seeds, level.inputs, "tangents")
    out, aux = split_aux(run(func, level.tree, {}), has_aux, "jvp(f, primals, tangents)")
    outs, out_spec = flatten(out)
    check_tensors(outs, "jvp(f, primals, tangents): expected f(*primals) to return only "
                        "tensors")
    keep = level.recorded([*outs, *flatten(aux)[0]]) or (
        level.outer and any(s.requires_grad for s in seeds))
    product = unflatten(forward_product(level, outs, seeds, keep), out_spec)
    result = (_released(out, keep), product)
    return (*result, _released(aux, keep)) if has_aux else result


def forward_product(level: Level, outs: list[Tensor], tangents: list[Tensor],
                    keep: bool) -> list[Tensor]:
    """J tangents for each output, by the double-vjp trick: g(u) = u^T J is recorded with a
    zero cotangent u that requires grad, and the gradient of <g(u), tangents> in u is J
    tangents (zeros for outputs the inputs do not reach)."""
    with engine.enable_grad():
        zeros = [call("zeros_like", o.detach()).requires_grad_(o.dtype.is_float) for o in outs]
        pulled = level.gradients(outs, zeros, True)
        products = Level(zeros, flatten(zeros)[1], level.outer).gradients(
            pulled, tangents, keep)
    return products


def _released(tree: Any, keep: bool) -> Any:
    leaves, spec = flatten(tree)
    return unflatten([release(x, keep) for x in leaves], spec)
