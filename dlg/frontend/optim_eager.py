"""torch.optim's Rprop, ASGD and Adafactor (torch 2.5's), run eagerly: each step is torch's
single-tensor loop in NumPy on the parameters' arrays, in their dtype. They have no update graph
in `dlg.compiler.optimizers` (their steps read norms and counters back as Python numbers), so a
traced training step refuses them; param_groups, state and state_dict are torch's, as for the
other optimizers. `EagerOptimizer` is also LBFGS's base (frontend/lbfgs.py)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError, Span
from dlg.frontend import engine
from dlg.frontend.optim import Optimizer
from dlg.frontend.tensor import Tensor
from dlg.ir.train_spec import OPTIMIZER_DEFAULTS, OptimizerSpec

Arrays = dict[str, np.ndarray]


class EagerOptimizer(Optimizer):
    """An optimizer updating each parameter with a gradient in place, in NumPy. Subclasses give
    `DEFAULTS` (torch's), `_problem` (what is wrong with a group's options), `_initial` (a
    parameter's first state) and `_update` (one step of one parameter)."""

    DEFAULTS: dict[str, Any] = {}

    def _defaults(self, given: dict[str, Any], span: Span | None) -> dict[str, Any]:
        for key in given:
            if key not in self.DEFAULTS:
                close = difflib.get_close_matches(key, list(self.DEFAULTS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise DlgTypeError(f"{self.name} has no option {key!r}{hint} (it takes "
                                   f"{', '.join(self.DEFAULTS)})", span)
        return {**self.DEFAULTS, **given}

    def _check(self, group: dict[str, Any]) -> None:
        problem = self._problem(group)
        if problem is not None:
            raise DlgValueError(f"{self.name}: {problem}", engine.caller_span())

    def _problem(self, group: dict[str, Any]) -> str | None:
        return None if group["lr"] >= 0 else f"Invalid learning rate: {group['lr']}"

    @property
    def spec(self) -> OptimizerSpec:
        raise DlgValueError(f"{self.name} runs eagerly only: a traced training step takes one "
                            f"of {', '.join(OPTIMIZER_DEFAULTS)}", engine.caller_span())

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns `closure()` if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.numpy_view()
                state = self.state.setdefault(p, {})
                if not state:
                    state.update({k: Tensor(v) for k, v in self._initial(group, p).items()})
                self._update(group, p.numpy_view(), -grad if group["maximize"] else grad,
                             {k: v.numpy_view() for k, v in state.items()})
        return loss

    def _initial(self, group: dict[str, Any], p: Tensor) -> Arrays:
        raise NotImplementedError

    def _update(self, group: dict[str, Any], p: np.ndarray, grad: np.ndarray,
                state: Arrays) -> None:
        raise NotImplementedError


def _count() -> np.ndarray:
    """A step counter: torch's f32 scalar."""
    return np.zeros((), np.float32)


def _lerp(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start += weight * (end - start) in place, in the two forms torch's lerp kernel uses."""
    w = start.dtype.type(weight)
    if weight < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


class Rprop(EagerOptimizer):
    """Resilient backpropagation: each element's step size grows by etas[1] while its gradient
    keeps its sign and shrinks by etas[0] when it flips (that step then skipped), within
    step_sizes; the parameter moves by its step size against the gradient's sign."""

    name = "Rprop"
    DEFAULTS = {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50), "maximize": False}

    def _problem(self, group: dict[str, Any]) -> str | None:
        low, high = group["etas"]
        if not 0.0 < low < 1.0 < high:
            return f"Invalid eta values: {low}, {high}"
        return super()._problem(group)

    def _initial(self, group: dict[str, Any], p: Tensor) -> Arrays:
        array = p.numpy_view()
        return {"step": _count(), "prev": np.zeros_like(array),
                "step_size": np.full_like(array, group["lr"])}

    def _update(self, group: dict[str, Any], p: np.ndarray, grad: np.ndarray,
                state: Arrays) -> None:
        minus, plus = (p.dtype.type(eta) for eta in group["etas"])
        state["step"][...] += 1
        sign = np.sign(grad * state["prev"])
        factor = np.where(sign > 0, plus, np.where(sign < 0, minus, p.dtype.type(1)))
        np.clip(state["step_size"] * factor, *group["step_sizes"], out=state["step_size"])
        grad = np.where(factor == minus, p.dtype.type(0), grad)
        p -= np.sign(grad) * state["step_size"]
        state["prev"][...] = grad


class ASGD(EagerOptimizer):
    """Averaged SGD: SGD with a decaying step eta = lr / (1 + lambd lr t)^alpha and weight
    decay lambd, keeping in `ax` the average of the iterates from step t0 on."""

    name = "ASGD"
    DEFAULTS = {"lr": 1e-2, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6, "weight_decay": 0.0,
                "maximize": False}

    def _problem(self, group: dict[str, Any]) -> str | None:
        if group["weight_decay"] < 0:
            return f"Invalid weight_decay value: {group['weight_decay']}"
        return super()._problem(group)

    def _initial(self, group: dict[str, Any], p: Tensor) -> Arrays:
        return {"step": _count(), "eta": np.float32(group["lr"]) + _count(),
                "mu": np.ones((), np.float32), "ax": np.zeros_like(p.numpy_view())}

    def _update(self, group: dict[str, Any], p: np.ndarray, grad: np.ndarray,
                state: Arrays) -> None:
        lr, lambd, alpha = group["lr"], group["lambd"], group["alpha"]
        real = p.dtype.type
        state["step"][...] += 1
        if group["weight_decay"] != 0:
            grad = grad + real(group["weight_decay"]) * p
        eta = float(state["eta"])
        p *= real(1 - lambd * eta)
        p += real(-eta) * grad
        if float(state["mu"]) != 1:
            state["ax"] += (p - state["ax"]) * state["mu"]
        else:
            state["ax"][...] = p
        step = float(state["step"])
        state["eta"][...] = lr / ((1 + lambd * lr * step) ** alpha)
        state["mu"][...] = 1 / max(1, step - group["t0"])


class Adafactor(EagerOptimizer):
    """Adafactor as torch 2.5 has it: the second moment of a matrix (or a stack of them) kept
    factored as row and column means, of a vector in full; the step is lr-capped by
    1/sqrt(step), scaled by the parameter's RMS and clipped by its own RMS over d."""

    name = "Adafactor"
    DEFAULTS = {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
                "weight_decay": 0.0, "maximize": False}

    def _problem(self, group: dict[str, Any]) -> str | None:
        eps1, eps2 = group["eps"]
        checks = [(group["beta2_decay"] <= 0, "beta2_decay should be <= 0", group["beta2_decay"]),
                  (eps1 is None or eps1 >= 0, "epsilon1 should be >= 0", eps1),
                  (eps2 >= 0, "epsilon2 should be >= 0", eps2),
                  (group["d"] >= 1, "Clipping threshold d should be >= 1", group["d"]),
                  (group["weight_decay"] >= 0, "weight_decay should be >= 0",
                   group["weight_decay"])]
        bad = [f"{why} but is: {value}" for ok, why, value in checks if not ok]
        return bad[0] if bad else super()._problem(group)

    def _initial(self, group: dict[str, Any], p: Tensor) -> Arrays:
        array = p.numpy_view()
        if array.ndim < 2:
            return {"step": _count(), "variance": np.zeros_like(array)}
        shape = array.shape
        return {"step": _count(), "row_var": np.zeros(shape[:-1] + (1,), array.dtype),
                "col_var": np.zeros(shape[:-2] + (1,) + shape[-1:], array.dtype)}

    def _update(self, group: dict[str, Any], p: np.ndarray, grad: np.ndarray,
                state: Arrays) -> None:
        lr = group["lr"]
        eps1, eps2 = group["eps"]
        eps1 = np.finfo(p.dtype).eps if eps1 is None else eps1
        real = p.dtype.type
        state["step"][...] += 1
        step = float(state["step"])
        decay = step ** group["beta2_decay"]
        alpha = max(eps2, float(np.linalg.norm(p)) / p.size ** 0.5) * min(lr, 1 / step ** 0.5)
        if group["weight_decay"] != 0:
            p *= real(1 - lr * group["weight_decay"])
        if grad.ndim > 1:
            for axis, key in ((-1, "row_var"), (-2, "col_var")):
                norm = np.linalg.norm(grad, axis=axis, keepdims=True)
                _lerp(state[key], norm * norm / real(grad.shape[axis]), decay)
            rows = state["row_var"]
            estimate = (rows @ state["col_var"]) / np.maximum(rows.mean(axis=-2, keepdims=True),
                                                              real(eps1))
        else:
            _lerp(state["variance"], grad * grad, decay)
            estimate = state["variance"].copy()
        update = real(1) / np.sqrt(np.maximum(estimate, real(eps1 * eps1))) * grad
        clip = max(1.0, float(np.linalg.norm(update)) / (update.size ** 0.5 * group["d"]))
        p += real(-alpha / clip) * update
