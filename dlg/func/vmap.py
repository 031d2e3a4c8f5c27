"""torch.func.vmap by a loop: dlg has no batching rules, so the function runs once per element
of the mapped dimension, on the arguments sliced there (`select`), and each output's results
are stacked at its out_dim. The cost is a Python loop of that many calls; the result is torch's
(slices and stack are differentiable ops, so a gradient through vmap, or grad inside it, works).

What a loop cannot see, it reads from values: an output whose out_dim is None must be the same
at every element (torch refuses one computed from a batched input), and randomness='error'
refuses a call that draws from dlg's random stream. 'same' gives every element the draws of
the first, 'different' fresh draws per element."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call, foreign_tensors
from dlg.func.level import eager_only
from dlg.func.pytree import TreeSpec, broadcast_prefix, flatten, unflatten

__all__ = ["vmap"]

RANDOMNESS = ("error", "different", "same")


def check_randomness(randomness: Any) -> None:
    if randomness not in RANDOMNESS:
        raise DlgValueError(f"Only allowed values for randomness are 'error', 'different', or "
                            f"'same'. Got {randomness}", engine.caller_span())


def vmap(func: Callable[..., Any], in_dims: Any = 0, out_dims: Any = 0,
         randomness: str = "error", *, chunk_size: int | None = None) -> Callable[..., Any]:
    """`func` mapped over a dimension of its positional arguments: `in_dims` (an int or None
    for every tensor, or a tuple with one entry per argument, each an int, None or a container
    matching that argument) names it per tensor, None for one passed whole; `out_dims` (the
    same, for the outputs) where the mapped dimension goes in each output. Keyword arguments
    are passed whole. Runs `func` once per element (see the module's docstring); `chunk_size`
    changes how torch batches, not the result."""
    check_randomness(randomness)
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size > 0):
        raise DlgValueError(f"vmap: chunk_size should be None or greater than 0. (got "
                            f"{chunk_size})", engine.caller_span())
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        eager_only("vmap")
        leaves, spec, dims, size = _mapped_inputs(name, args, in_dims)
        elements = [_element(leaves, dims, i) for i in range(size)]
        if size == 0:  # no element to run: zeros learn the outputs' structure and shapes
            elements = [[call("zeros", _without(x, d), dtype=x.dtype) if d is not None else x
                         for x, d in zip(leaves, dims)]]
        results = _run_all(func, [unflatten(e, spec) for e in elements], kwargs, randomness)
        return _stacked(name, results, out_dims, size)

    return wrapper


def _mapped_inputs(name: str, args: tuple[Any, ...], in_dims: Any
                   ) -> tuple[list[Any], TreeSpec, list[int | None], int]:
    """The arguments' leaves and structure, each leaf's mapped dimension (None: passed whole)
    and the batch size, with torch's checks."""
    head = f"vmap({name}, in_dims={in_dims}, ...)(<inputs>)"
    if not args:
        raise DlgValueError(f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add "
                            f"inputs, or you are trying to vmap over a function with no "
                            f"inputs. The latter is unsupported.", engine.caller_span())
    if not (isinstance(in_dims, (int, tuple)) and not isinstance(in_dims, bool)):
        raise DlgValueError(f"{head}: expected `in_dims` to be int or a (potentially nested) "
                            f"tuple matching the structure of inputs, got: {type(in_dims)}.",
                            engine.caller_span())
    leaves, spec = flatten(args)
    leaves = [foreign_tensors(x) for x in leaves]  # torch tensors: dlg's on their memory
    dims = broadcast_prefix(in_dims, spec)
    if dims is None:
        raise DlgValueError(f"{head}: in_dims is not compatible with the structure of "
                            f"`inputs`. in_dims has structure {flatten(in_dims)[1]} but inputs "
                            f"has structure {spec}.", engine.caller_span())
    sizes = []
    for i, (x, d) in enumerate(zip(leaves, dims)):
        if d is None:
            continue
        if not isinstance(d, int) or isinstance(d, bool):
            raise DlgValueError(f"{head}: Got in_dim={d} for an input but in_dim must be "
                                f"either an integer dimension or None.", engine.caller_span())
        if not isinstance(x, Tensor):
            raise DlgTypeError(f"{head}: Got in_dim={d} for an input but the input is of type "
                               f"{type(x)}. We cannot vmap over non-Tensor arguments, please "
                               f"use None as the respective in_dim", engine.caller_span())
        if not -x.dim() <= d < x.dim():
            raise DlgValueError(f"{head}: Got in_dim={d} for some input, but that input is a "
                                f"Tensor of dimensionality {x.dim()} so expected in_dim to "
                                f"satisfy -{x.dim()} <= in_dim < {x.dim()}.",
                                engine.caller_span())
        dims[i] = d % x.dim()
        sizes.append(int(x.shape[dims[i]]))
    if not sizes:
        raise DlgValueError("vmap: Expected at least one Tensor to vmap over",
                            engine.caller_span())
    if len(set(sizes)) > 1:
        raise DlgValueError(f"vmap: Expected all tensors to have the same size in the mapped "
                            f"dimension, got sizes {sizes} for the mapped dimension",
                            engine.caller_span())
    return leaves, spec, dims, sizes[0]


def _element(leaves: list[Any], dims: list[int | None], i: int) -> list[Any]:
    return [x if d is None else x.select(d, i) for x, d in zip(leaves, dims)]


def _without(x: Tensor, d: int) -> tuple[int, ...]:
    return tuple(n for k, n in enumerate(x.shape) if k != d)


def _run_all(func: Callable[..., Any], elements: list[tuple[Any, ...]],
             kwargs: dict[str, Any], randomness: str) -> list[Any]:
    """func on each element's arguments, the random stream handled as `randomness` says."""
    start = engine.rng().bit_generator.state
    results = []
    for args in elements:
        if randomness == "same":
            engine.rng().bit_generator.state = start
        generator = engine.rng()
        before = generator.bit_generator.state
        results.append(func(*args, **kwargs))
        if randomness == "error" and (engine.rng() is not generator
                                      or generator.bit_generator.state != before):
            raise DlgValueError("vmap: called random operation while in randomness error "
                                "mode. Please either use the 'same' or 'different' randomness "
                                "flags on vmap or perform the randomness operation out of vmap",
                                engine.caller_span())
    return results


def _stacked(name: str, results: list[Any], out_dims: Any, size: int) -> Any:
    """Each output's per-element results stacked at its out_dim (taken once where it is
    None), in the outputs' structure."""
    flat = [flatten(r) for r in results]
    spec: TreeSpec = flat[0][1]
    if any(s != spec for _, s in flat):
        raise DlgValueError(f"vmap({name}, ...): `{name}` returned outputs of different "
                            f"structures for different elements: {spec} and "
                            f"{next(s for _, s in flat if s != spec)}", engine.caller_span())
    if not (out_dims is None or isinstance(out_dims, (int, tuple, list, dict))
            ) or isinstance(out_dims, bool):
        raise _bad_out_dims(name, out_dims)
    if isinstance(out_dims, tuple) and len(out_dims) == 1 and spec.is_leaf:
        out_dims = out_dims[0]  # torch's: (d,) for a function returning one tensor
    dims = broadcast_prefix(out_dims, spec)
    if dims is None:
        raise DlgValueError(f"vmap({name}, ..., out_dims={out_dims})(<inputs>): out_dims is not "
                            f"compatible with the structure of `outputs`. out_dims has "
                            f"structure {flatten(out_dims)[1]} but outputs has structure "
                            f"{spec}.", engine.caller_span())
    outs = []
    for k, d in enumerate(dims):
        column = [leaves[k] for leaves, _ in flat]
        if d is None:
            if not all(_same(column[0], v) for v in column[1:]):
                raise DlgValueError(f"vmap({name}, ...): `{name}` can not return a "
                                    f"BatchedTensor when out_dim is None (output {k} differs "
                                    f"between elements)", engine.caller_span())
            outs.append(column[0])
            continue
        if not isinstance(d, int) or isinstance(d, bool):
            raise _bad_out_dims(name, out_dims)
        bad = [v for v in column if not isinstance(v, Tensor)]
        if bad:
            raise DlgTypeError(f"vmap({name}, ...): `{name}` must only return Tensors, got type "
                               f"{type(bad[0])}. Did you mean to set out_dims= to None for "
                               f"output?", engine.caller_span())
        rank = column[0].dim() + 1
        if not -rank <= d < rank:
            raise DlgValueError(f"vmap({name}, ...): Dimension out of range (expected to be in "
                                f"range of [{-rank}, {rank - 1}], but got {d}) for out_dim of "
                                f"output {k}", engine.caller_span())
        stacked = call("stack", column, d % rank)
        outs.append(stacked.narrow(d % rank, 0, 0) if size == 0 else stacked)
    return unflatten(outs, spec)


def _bad_out_dims(name: str, out_dims: Any) -> DlgValueError:
    return DlgValueError(f"vmap({name}, ..., out_dims={out_dims}): `out_dims` must be an int, "
                         f"None or a python collection of ints representing where in the "
                         f"outputs the vmapped dimension should appear.", engine.caller_span())


def _same(a: Any, b: Any) -> bool:
    """Whether two elements' results for an unmapped output are one value."""
    if a is b:
        return True
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return (a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape)
                and bool(np.array_equal(a.detach().numpy(), b.detach().numpy(),
                                        equal_nan=a.dtype.is_float)))
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (a value without a plain truth: not provably equal)
        return False
