"""torch.func's Jacobians: `jacrev`, `jacfwd` and `hessian`, built from one-hot reverse-mode
rows on a `level.Level`, so they nest (jacrev(jacrev(f)), vmap(jacrev(f))) and an enclosing
gradient reaches through them. dlg has no forward mode: jacfwd is the same matrix computed
by rows (a column by the double-vjp trick would cost one gradient more per column)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call
from dlg.func.level import (Argnums, Level, check_tensors, release, replaced, run, selected,
                            split_aux)
from dlg.func.pytree import flatten, unflatten
from dlg.func.vmap import check_randomness

__all__ = ["hessian", "jacfwd", "jacrev"]


def jacrev(func: Callable[..., Any], argnums: Argnums = 0, *, has_aux: bool = False,
           chunk_size: int | None = None, _preallocate_and_copy: bool = False
           ) -> Callable[..., Any]:
    """The Jacobian of `func` with respect to the arguments at `argnums`: for each output
    tensor (in the output's structure) the argument's structure (a tuple of them for a tuple
    argnums) holding d out / d arg, of shape out.shape + arg.shape. With has_aux, `func`
    returns (output, aux) and so does the Jacobian function. `chunk_size` changes how torch
    batches the rows, not the result: rows are computed one at a time."""
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size > 0):
        raise DlgValueError("jacrev: `chunk_size` should be greater than 0.",
                            engine.caller_span())
    return _jacobian(func, argnums, has_aux, "jacrev")


def jacfwd(func: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False, *,
           randomness: str = "error") -> Callable[..., Any]:
    """torch.func.jacfwd: the Jacobian as `jacrev` gives it, computed by reverse-mode rows
    (dlg has no forward mode). The function runs once, so `randomness` (checked) changes
    nothing."""
    check_randomness(randomness)
    return _jacobian(func, argnums, has_aux, "jacfwd")


def hessian(func: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """torch.func.hessian: jacfwd(jacrev(func, argnums), argnums); for a one-element output
    and argument x, shape x.shape + x.shape."""
    return jacfwd(jacrev(func, argnums), argnums)


def _jacobian(func: Callable[..., Any], argnums: Argnums, has_aux: bool,
              fn: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        level = Level.enter(selected(args, argnums), fn)
        out, aux = split_aux(run(func, replaced(args, argnums, level.tree), kwargs), has_aux,
                             f"{fn}(f)(*args)")
        outs, out_spec = flatten(out)
        check_tensors(outs, "vjp(f, *primals): expected f(*primals) to return only tensors")
        keep = level.recorded([*outs, *flatten(aux)[0]])
        jac = unflatten([unflatten(_rows(level, o, keep), level.spec) for o in outs], out_spec)
        if has_aux:
            leaves, spec = flatten(aux)
            return jac, unflatten([release(x, keep) for x in leaves], spec)
        return jac

    return wrapper


def _rows(level: Level, out: Tensor, keep: bool) -> list[Tensor]:
    """d out / d each input, of shape out.shape + input.shape: one gradient per element of
    `out`, seeded with its one-hot."""
    size = int(out.numel())
    per_input: list[list[Tensor]] = [[] for _ in level.inputs]
    for j in range(size):
        one_hot = np.zeros(size, out.dtype.np)
        one_hot[j] = 1
        seed = Tensor.of(one_hot.reshape(tuple(out.shape)))
        for rows, g in zip(per_input, level.gradients([out], [seed], keep)):
            rows.append(g)
    return [call("stack", rows, 0).reshape(tuple(out.shape) + tuple(x.shape)) if rows
            else release(call("zeros", tuple(out.shape) + tuple(x.shape), dtype=x.dtype), keep)
            for rows, x in zip(per_input, level.inputs)]
