"""torch.autograd.gradcheck and gradgradcheck: a function's gradients (its autograd.Function's
backward, or the recorded ops' VJPs) against central finite differences, input by input and
output by output, in the precision of the inputs (float64 for the check to mean anything, as in
torch). The analytical Jacobian is one `grad` per output element (a one-hot seed, the kept
gradient graph); the numerical one perturbs each input element by +-eps. gradgradcheck checks
the gradient function itself (`grad(..., create_graph=True)` of random output gradients)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlg.autograd import grad
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.engine import caller_span
from dlg.frontend.tensor import Tensor
from dlg.ir.dtypes import DType


class GradcheckError(DlgValueError):
    """A gradient that does not match its finite differences (torch's GradcheckError)."""


def _tuple(value: Any) -> tuple:
    return (value,) if isinstance(value, Tensor) else tuple(value)


def _refused(options: dict[str, bool]) -> None:
    for name, on in options.items():
        if on:
            raise DlgValueError(f"gradcheck: {name}=True is not supported by dlg (it checks "
                                f"reverse-mode gradients against finite differences only)",
                                caller_span())


def _outputs(func: Callable[..., Any], inputs: Sequence[Any]) -> list[Tensor]:
    return [o for o in _tuple(func(*inputs)) if isinstance(o, Tensor)]


def _coords(array: Any) -> np.ndarray:
    """An array's real coordinates, flat: a complex element is two, its real and imaginary
    parts (torch checks complex functions as functions of those)."""
    a = np.asarray(array)
    if a.dtype.kind == "c":
        return np.stack([a.real, a.imag], -1).astype(np.float64).reshape(-1)
    return a.astype(np.float64).reshape(-1)


def _from_coords(coords: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype.kind == "c":
        pairs = coords.reshape(like.shape + (2,))
        return (pairs[..., 0] + 1j * pairs[..., 1]).astype(like.dtype)
    return coords.reshape(like.shape).astype(like.dtype)


def _numerical(func: Callable[..., Any], inputs: tuple, i: int, eps: float) -> list[np.ndarray]:
    """d outputs / d inputs[i] by central differences: one [out coordinates, in coordinates]
    per output (a complex element's coordinates are its real and imaginary parts)."""
    x = inputs[i]
    base = np.array(x.detach().numpy())
    flat = _coords(base)
    columns: list[list[np.ndarray]] = []
    for j in range(flat.size):
        sides = []
        for step in (eps, -eps):
            moved = flat.copy()
            moved[j] += step
            changed = list(inputs)
            changed[i] = Tensor.of(_from_coords(moved, base), requires_grad=x.requires_grad)
            sides.append([_coords(o.detach().numpy()) for o in _outputs(func, changed)])
        columns.append([(a - b) / (2 * eps) for a, b in zip(*sides)])
    n_out = len(columns[0]) if columns else 0
    return [np.stack([c[k] for c in columns], axis=1) if columns else np.zeros((0, 0))
            for k in range(n_out)]


def _analytical(outputs: list[Tensor], wanted: list[Tensor]) -> list[list[np.ndarray]]:
    """[output][input] Jacobians from one seeded gradient per output coordinate: a complex
    output's real part seeded with 1, its imaginary part with 1j (backward of Re(out conj(v))),
    a complex input's gradient dL/dx + i dL/dy read as its two coordinates."""
    jacobians = []
    for out in outputs:
        rows: list[list[np.ndarray]] = [[] for _ in wanted]
        dtype = out.tensor_type.dtype
        parts = 2 if dtype.is_complex else 1
        differentiable = out.requires_grad and dtype.is_inexact
        for k in range(out.numel() * parts if differentiable else 0):
            seed = np.zeros(out.tensor_type.shape, dtype.np)
            seed.reshape(-1)[k // parts] = 1j if k % parts else 1
            gradients = grad([out], wanted, [seed], allow_unused=True)
            for row, t, g in zip(rows, wanted, gradients):
                row.append(np.zeros(_coords(t.detach().numpy()).size) if g is None
                           else _coords(g.detach().numpy()))
        jacobians.append([np.stack(r) if r else np.zeros(
            (_coords(out.detach().numpy()).size, _coords(t.detach().numpy()).size))
            for r, t in zip(rows, wanted)])
    return jacobians


def gradcheck(func: Callable[..., Any], inputs: Any, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
              check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True,
              fast_mode: bool = False, masked: bool | None = None) -> bool:
    """torch.autograd.gradcheck: True when every Jacobian of `func`'s outputs with respect to the
    inputs requiring grad equals its finite differences (|a - n| <= atol + rtol |n|); otherwise
    a GradcheckError naming the output and input, or False without `raise_exception`. Slow mode
    always (`fast_mode` checks a projection of what this checks in full)."""
    _refused({"check_batched_grad": check_batched_grad, "check_forward_ad": check_forward_ad,
              "check_batched_forward_grad": check_batched_forward_grad, "masked": bool(masked)})
    inputs = _tuple(inputs)
    index = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not index:
        raise DlgValueError("gradcheck expects at least one input tensor to require gradient, "
                            "but none of them have requires_grad=True.", caller_span())
    for i in index:
        if inputs[i].tensor_type.dtype is not DType.f64:
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating "
                          "point. This check will likely fail if all the inputs are not of "
                          "double precision floating point.", stacklevel=2)
    if not check_backward_ad:
        return True
    with engine.enable_grad():
        outputs = _outputs(func, inputs)
        analytical = _analytical(outputs, [inputs[i] for i in index])
        numerical = [_numerical(func, inputs, i, eps) for i in index]
    for k, out in enumerate(outputs):
        for n, i in enumerate(index):
            a, num = analytical[k][n], numerical[n][k]
            if out.requires_grad or not np.allclose(num, 0, rtol=0, atol=atol):
                if not np.allclose(a, num, rtol=rtol, atol=atol):
                    message = (f"Jacobian mismatch for output {k} with respect to input {i},\n"
                               f"numerical:{num}\nanalytical:{a}\n")
                    if not out.requires_grad:
                        message = (f"Numerical gradient for function expected to be zero: "
                                   f"output {k} does not require grad but depends on input "
                                   f"{i}:\n{num}\n")
                    if raise_exception:
                        raise GradcheckError(message, caller_span())
                    return False
    return True


def gradgradcheck(func: Callable[..., Any], inputs: Any, grad_outputs: Any = None, *,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  gen_non_contig_grad_outputs: bool = False, raise_exception: bool = True,
                  nondet_tol: float = 0.0, check_undefined_grad: bool = True,
                  check_grad_dtypes: bool = False, check_batched_grad: bool = False,
                  check_fwd_over_rev: bool = False, check_rev_over_rev: bool = True,
                  fast_mode: bool = False, masked: bool = False) -> bool:
    """torch.autograd.gradgradcheck: gradcheck of the function taking (inputs, grad_outputs) to
    the inputs' gradients `grad(func(inputs), inputs, grad_outputs, create_graph=True)`; the
    output gradients are random normal draws (requiring grad) unless given."""
    _refused({"check_batched_grad": check_batched_grad, "check_fwd_over_rev": check_fwd_over_rev,
              "masked": bool(masked)})
    inputs = _tuple(inputs)
    index = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    with engine.enable_grad():
        outputs = [o for o in _outputs(func, inputs) if o.requires_grad]
    if grad_outputs is None:
        rng = engine.rng()
        grad_outputs = tuple(
            Tensor.of(rng.standard_normal(o.shape).astype(o.tensor_type.dtype.np),
                      requires_grad=True) for o in outputs)
    grad_outputs = _tuple(grad_outputs)
    n = len(inputs)

    def first_gradients(*args: Any) -> tuple[Tensor, ...]:
        ins, seeds = args[:n], args[n:]
        outs = [o for o in _outputs(func, ins) if o.requires_grad]
        gradients = grad(outs, [ins[i] for i in index], seeds, create_graph=True,
                         allow_unused=True)
        return tuple(g for g in gradients if g is not None)

    if not check_rev_over_rev:
        return True
    return gradcheck(first_gradients, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
