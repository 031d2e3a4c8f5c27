"""`dlg.autograd.functional`: torch's higher-order helpers (`vjp`, `jvp`, `jacobian`, `hessian`,
`vhp`, `hvp`), written on eager `dlg.autograd.grad` as torch writes them on its own: forward-mode
products by the double-vjp trick (the vjp taken against a zero seed that requires grad is linear
in the seed, so differentiating it with respect to the seed along `v` gives J v), Hessians as
Jacobians of recorded (create_graph) gradients. A function takes a tensor or a tuple of tensors
and returns a tensor or a tuple of tensors; results take the shapes and nesting torch gives.

Where torch passes a seed that requires grad as `grad_outputs`, dlg's `grad` takes seeds as
data, so the seed enters as a recorded product instead: the gradient of sum(out * seed).
`vectorize` and the jacobian `strategy` change how torch batches the work, not the result; they
are accepted and the rows are computed one by one (each seed a one-hot row, one gradient graph).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlg.autograd import grad
from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, call

Tensors = tuple[Tensor, ...]

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`."""
    with engine.enable_grad():
        in_tuple, ins = _as_tuple(inputs, "inputs", "vjp")
        ins = _prepare(ins, create_graph, True)
        out_tuple, outs = _as_tuple(func(*ins), "outputs of the user-provided function", "vjp")
        _check_requires_grad(outs, strict)
        seeds = _seeds(v, outs, out_tuple, "vjp", "the user-provided function returns a "
                       "single Tensor with a single element")
    with engine.set_grad_enabled(create_graph or engine.grad_enabled()):
        res = _fill_in_zeros(_grad(outs, ins, seeds, create_graph), ins, strict, create_graph,
                             "back")
    return _unpack(_post(outs, create_graph), out_tuple), _unpack(_post(res, create_graph),
                                                                   in_tuple)


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), J v): the Jacobian-vector product, by the double-vjp trick."""
    with engine.enable_grad():
        in_tuple, ins = _as_tuple(inputs, "inputs", "jvp")
        ins = _prepare(ins, create_graph, True)
        seeds = _seeds(v, ins, in_tuple, "jvp", "the input to the user-provided function is "
                       "a single Tensor with a single element")
        out_tuple, outs = _as_tuple(func(*ins), "outputs of the user-provided function", "jvp")
        _check_requires_grad(outs, strict)
        zeros = tuple(call("zeros_like", o.detach()).requires_grad_() for o in outs)
        grad_ins = _grad(outs, ins, zeros, True)
        if strict:
            for i, g in enumerate(grad_ins):
                if g is None or not g.requires_grad:
                    _strict(f"The gradient with respect to input {i} is independent of the "
                            "inputs of the user-provided function. This is not allowed in "
                            "strict mode.")
    with engine.set_grad_enabled(create_graph or engine.grad_enabled()):
        res = _fill_in_zeros(_grad(grad_ins, zeros, seeds, create_graph), outs, strict,
                             create_graph, "back_trick")
    return _unpack(_post(outs, create_graph), out_tuple), _unpack(_post(res, create_graph),
                                                                   out_tuple)


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """d func / d inputs: for output i and input j a tensor of shape out_i.shape + in_j.shape;
    a tensor for one output and one input, else tuples (over outputs, then inputs) as torch."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise DlgValueError('jacobian: expected strategy to be either "forward-mode" or '
                            f'"reverse-mode", got {strategy!r}', engine.caller_span())
    if strategy == "forward-mode" and create_graph:
        raise DlgValueError("jacobian: `create_graph=True` and `strategy=\"forward-mode\"` are "
                            "not supported together (as in torch); set create_graph=False or "
                            "strategy=\"reverse-mode\"", engine.caller_span())
    if vectorize and strict:
        raise DlgValueError("jacobian: `strict=True` and `vectorize=True` are not supported "
                            "together (as in torch); set one of them to False",
                            engine.caller_span())
    with engine.enable_grad():
        in_tuple, ins = _as_tuple(inputs, "inputs", "jacobian")
        ins = _prepare(ins, create_graph, True)
        out_tuple, outs = _as_tuple(func(*ins), "outputs of the user-provided function",
                                    "jacobian")
        _check_requires_grad(outs, strict)
        rows: list[Tensors] = []
        for i, out in enumerate(outs):
            per_input: list[list[Tensor]] = [[] for _ in ins]
            size = int(out.numel())
            for j in range(size):
                one_hot = np.zeros(size, out.dtype.np)
                one_hot[j] = 1
                row = _grad((out,), ins, (Tensor.of(one_hot.reshape(out.shape)),), create_graph)
                for k, (g, x) in enumerate(zip(row, ins)):
                    if g is None:
                        if strict:
                            _strict(f"Output {i} of the user-provided function is "
                                    f"independent of input {k}. This is not allowed in strict "
                                    "mode.")
                        g = call("zeros_like", x.detach())
                    elif strict and create_graph and not g.requires_grad:
                        _strict(f"The jacobian of the user-provided function is independent "
                                f"of input {i}. This is not allowed in strict mode when "
                                "create_graph=True.")
                    per_input[k].append(g)
            rows.append(tuple(_stacked(gs, out, x) for gs, x in zip(per_input, ins)))
        jac = tuple(_post(row, create_graph) for row in rows)
    return _unpack_nested(jac, out_tuple, in_tuple)


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
            strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The second derivatives of a function returning one element: for inputs i, j a tensor of
    shape in_i.shape + in_j.shape (a tensor for one input, tuples of tuples for a tuple)."""
    in_tuple, ins = _as_tuple(inputs, "inputs", "hessian")

    def single_output(*xs: Tensor) -> Tensor:
        out = _single(func(*xs), "hessian", strict)
        return out.reshape(())

    def jac_func(*xs: Tensor) -> Any:
        jac = jacobian(single_output, xs, create_graph=True)
        if strict:
            for i, g in enumerate(jac):
                if not g.requires_grad:
                    _strict("While computing the hessian, found that the jacobian of the "
                            f"user-provided function with respect to input {i} is independent "
                            "of the input. This is not allowed in strict mode.")
        return jac

    res = jacobian(jac_func, ins, create_graph=create_graph, strict=strict,
                   vectorize=vectorize, strategy=outer_jacobian_strategy)
    return _unpack_nested(res, in_tuple, in_tuple)


def vhp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T H) for a function returning one element."""
    with engine.enable_grad():
        in_tuple, ins, seeds, out, jac = _first_derivative(func, inputs, v, create_graph,
                                                           strict, "vhp")
    with engine.set_grad_enabled(create_graph or engine.grad_enabled()):
        res = _fill_in_zeros(_grad(jac, ins, seeds, create_graph), ins, strict, create_graph,
                             "double_back")
    return _post((out,), create_graph)[0], _unpack(_post(res, create_graph), in_tuple)


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), H v) for a function returning one element, by the double-vjp trick."""
    with engine.enable_grad():
        in_tuple, ins, seeds, out, jac = _first_derivative(func, inputs, v, create_graph,
                                                           strict, "hvp")
        zeros = tuple(call("zeros_like", x.detach()).requires_grad_() for x in ins)
        double_back = _grad(jac, ins, zeros, True)
    with engine.set_grad_enabled(create_graph or engine.grad_enabled()):
        res = _fill_in_zeros(_grad(double_back, zeros, seeds, create_graph), ins, strict,
                             create_graph, "double_back_trick")
    return _post((out,), create_graph)[0], _unpack(_post(res, create_graph), in_tuple)


def _first_derivative(func: Callable[..., Any], inputs: Any, v: Any, create_graph: bool,
                      strict: bool, fn: str) -> tuple[bool, Tensors, Tensors | None, Tensor,
                                                      list[Tensor | None]]:
    """vhp's and hvp's start: (whether inputs was a tuple, the inputs prepared, the seeds v,
    func's one-element output, its gradient with respect to the inputs, recorded)."""
    in_tuple, ins = _as_tuple(inputs, "inputs", fn)
    ins = _prepare(ins, create_graph, True)
    seeds = _seeds(v, ins, in_tuple, fn, "the input to the user-provided function is a single "
                   "Tensor with a single element")
    out = _single(func(*ins), fn, strict)
    return in_tuple, ins, seeds, out, _jacobian_of_scalar(out, ins, strict)


# ---- torch's helpers (torch/autograd/functional.py), on dlg tensors -----------------------------
def _as_tuple(value: Any, what: str, fn: str) -> tuple[bool, Tensors]:
    """(whether `value` was a tuple, its tensors); anything but tensors is torch's TypeError."""
    many = isinstance(value, tuple)
    items = value if many else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"the value at index {i}" if many else f"the given {what}"
            raise DlgTypeError(f"The {what} given to {fn} must be either a Tensor or a tuple of "
                               f"Tensors but {where} has type {type(item).__name__}.",
                               engine.caller_span())
    return many, items


def _prepare(xs: Tensors, create_graph: bool, need_graph: bool) -> Tensors:
    """Fresh leaves to differentiate against; with create_graph, an input that requires grad
    itself (torch takes a view of it), so the results stay differentiable with respect to the
    caller's tensors."""
    return tuple(x if create_graph and x.requires_grad and x.is_leaf else
                 x.view_as(x) if create_graph and x.requires_grad
                 else x.detach().requires_grad_(need_graph and x.dtype.is_float) for x in xs)


def _seeds(v: Any, like: Tensors, many: bool, fn: str, when: str) -> Tensors | None:
    """`v` checked against the tensors it multiplies (None only where they are one element)."""
    if v is None:
        if len(like) != 1 or int(like[0].numel()) != 1:
            raise DlgValueError(f"{fn}: the vector v can only be None if {when}",
                                engine.caller_span())
        return None
    _, vs = _as_tuple(v, "v", fn)
    if len(vs) != len(like):
        raise DlgValueError(f"{fn}: v is a tuple of invalid length: should be {len(like)} but "
                            f"got {len(vs)}" if many else
                            f"{fn}: the given v should contain a single Tensor",
                            engine.caller_span())
    for i, (a, b) in enumerate(zip(vs, like)):
        if a.shape != b.shape:
            raise DlgValueError(f"{fn}: {f'entry {i} in ' if many else ''}v has invalid size: "
                                f"should be {list(b.shape)} but got {list(a.shape)}",
                                engine.caller_span())
    return tuple(a.detach() for a in vs)


def _grad(outs: Sequence[Tensor | None], ins: Tensors, seeds: Sequence[Tensor] | None,
          create_graph: bool) -> list[Tensor | None]:
    """torch's `_autograd_grad`: d sum <out, seed> / d each input (None where unused; no seeds:
    ones, as for one-element outputs); outputs that do not require grad are left out, and where
    none does every result is None. A seed that requires grad enters as a recorded product (the
    double-vjp trick needs its graph)."""
    pairs = [(o, call("ones_like", o.detach()) if seeds is None else seeds[i])
             for i, o in enumerate(outs) if o is not None and o.requires_grad]
    if not pairs:
        return [None] * len(ins)
    if any(s.requires_grad for _, s in pairs):
        total = sum(((o * s).sum() for o, s in pairs[1:]), (pairs[0][0] * pairs[0][1]).sum())
        return list(grad(total, list(ins), create_graph=create_graph, allow_unused=True))
    return list(grad([o for o, _ in pairs], list(ins), [s for _, s in pairs],
                     create_graph=create_graph, allow_unused=True))


def _jacobian_of_scalar(out: Tensor, ins: Tensors, strict: bool) -> list[Tensor | None]:
    jac = _grad((out,), ins, None, True)
    if strict:
        for i, g in enumerate(jac):
            if g is None or not g.requires_grad:
                _strict("While computing the hessian, found that the jacobian of the "
                        f"user-provided function with respect to input {i} is independent of "
                        "the input. This is not allowed in strict mode.")
    return jac


def _single(value: Any, fn: str, strict: bool) -> Tensor:
    """The one-element tensor a function given to hessian/vhp/hvp must return."""
    many, outs = _as_tuple(value, "outputs of the user-provided function", fn)
    _check_requires_grad(outs, strict)
    if many:
        raise DlgValueError(f"The function given to {fn} should return a single Tensor",
                            engine.caller_span())
    if int(outs[0].numel()) != 1:
        raise DlgValueError(f"The Tensor returned by the function given to {fn} should contain "
                            "a single element", engine.caller_span())
    return outs[0]


def _check_requires_grad(outs: Tensors, strict: bool) -> None:
    for i, out in enumerate(outs):
        if strict and not out.requires_grad:
            _strict(f"Output {i} of the user-provided function does not require gradients. The "
                    "outputs must be computed in a differentiable manner from the input when "
                    "running in strict mode.")


_STAGES = {
    "back": "The output of the user-provided function is independent of input {i}.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the "
                  "grad_outputs when using the double backward trick to compute forward mode "
                  "gradients.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry "
                         "{i} in the grad_jacobian.",
}


def _fill_in_zeros(grads: list[Tensor | None], refs: Sequence[Tensor], strict: bool,
                   create_graph: bool, stage: str) -> Tensors:
    """Zeros (of the reference's shape) where a gradient is None; strict mode refuses them."""
    out = []
    for i, g in enumerate(grads):
        if g is None:
            if strict:
                _strict(_STAGES[stage].format(i=i) + " This is not allowed in strict mode.")
            g = call("zeros_like", refs[i].detach())
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            _strict(f"The {what} of the user-provided function is independent of input {i}. "
                    "This is not allowed in strict mode when create_graph=True.")
        out.append(g)
    return tuple(out)


def _strict(message: str) -> None:
    raise DlgValueError(message, engine.caller_span())


def _stacked(rows: list[Tensor], out: Tensor, x: Tensor) -> Tensor:
    return call("stack", rows, 0).reshape(tuple(out.shape) + tuple(x.shape))


def _post(ts: Sequence[Tensor], create_graph: bool) -> Tensors:
    """Results detached unless the caller wants their graph."""
    return tuple(ts) if create_graph else tuple(t.detach() for t in ts)


def _unpack(ts: Tensors, many: bool) -> Any:
    return ts if many else ts[0]


def _unpack_nested(res: tuple[Tensors, ...], outer: bool, inner: bool) -> Any:
    rows = res if inner else tuple(row[0] for row in res)
    return rows if outer else rows[0]
