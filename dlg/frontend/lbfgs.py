"""torch.optim.LBFGS, run eagerly: `step(closure)` re-evaluates the model through the closure
(which zeroes the gradients, computes the loss, calls backward and returns it) up to max_iter
times, stepping along a limited-memory BFGS direction with a fixed step (lr) or a strong-Wolfe
line search. The arithmetic is torch's, line for line, on float32 NumPy vectors (its 0-d tensors
are NumPy's float32 scalars, which promote with Python numbers as torch's do). It is the one
optimizer without an update graph: a step is a loop of closure calls, so a traced training step
refuses it."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError, Span
from dlg.frontend import engine, versions
from dlg.frontend.optim import Optimizer
from dlg.frontend.tensor import Tensor
from dlg.ir.train_spec import OptimizerSpec


def _value(loss: Any) -> float:
    """The closure's loss as a number (without float()'s warning on a tensor requiring grad:
    the closure's loss always does)."""
    return float(loss.detach() if isinstance(loss, Tensor) else loss)

Objective = Callable[[list[np.ndarray], Any, np.ndarray], tuple[float, np.ndarray]]


def _cubic_interpolate(x1: Any, f1: Any, g1: Any, x2: Any, f2: Any, g2: Any,
                       bounds: tuple[Any, Any] | None = None) -> Any:
    """The minimiser of the cubic through two points with their slopes, within `bounds`."""
    low, high = bounds if bounds is not None else (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(at, low), high)


def _strong_wolfe(obj: Objective, x: list[np.ndarray], t: Any, d: np.ndarray, f: float,
                  g: np.ndarray, gtd: Any, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9, max_ls: int = 25
                  ) -> tuple[float, np.ndarray, Any, int]:
    """torch's line search: a step t meeting the strong Wolfe conditions, bracketed and then
    zoomed by cubic interpolation; (loss, gradient, t, evaluations)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj(x, t, d)
    evals, gtd_new = 1, g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done, ls_iter = False, 0
    while ls_iter < max_ls:  # bracket a step
        rose = f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev)
        if not rose and abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if rose or gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        t_prev, t = t, _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                          bounds=(t + 0.01 * (t - t_prev), t * 10))
        f_prev, g_prev, gtd_prev = f_new, g_new.copy(), gtd_new
        f_new, g_new = obj(x, t, d)
        evals, gtd_new, ls_iter = evals + 1, g_new.dot(d), ls_iter + 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insufficient = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:  # zoom into the bracket
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1],
                               bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:  # too close to an end
            if insufficient or t >= max(bracket) or t <= min(bracket):
                t = (max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket))
                     else min(bracket) + eps)
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = obj(x, t, d)
        evals, gtd_new, ls_iter = evals + 1, g_new.dot(d), ls_iter + 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new.copy(), gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new.copy(), gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGS(Optimizer):
    """L-BFGS over all the parameters as one vector (one parameter group); its state (the
    curvature pairs, the last direction and step) is kept under the first parameter, as torch
    keeps it."""

    name = "LBFGS"
    DEFAULTS = {"lr": 1, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-7,
                "tolerance_change": 1e-9, "history_size": 100, "line_search_fn": None}

    def __init__(self, params: Any, lr: float = 1, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        super().__init__(params, lr=lr, max_iter=max_iter,
                         max_eval=max_iter * 5 // 4 if max_eval is None else max_eval,
                         tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                         history_size=history_size, line_search_fn=line_search_fn)
        if len(self.param_groups) != 1:
            raise DlgValueError("LBFGS doesn't support per-parameter options (parameter "
                                "groups)", engine.caller_span())
        self._params: list[Tensor] = self.param_groups[0]["params"]

    def _defaults(self, given: dict[str, Any], span: Span | None) -> dict[str, Any]:
        for key in given:
            if key not in self.DEFAULTS:
                close = difflib.get_close_matches(key, list(self.DEFAULTS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise DlgTypeError(f"{self.name} has no option {key!r}{hint} (it takes "
                                   f"{', '.join(self.DEFAULTS)})", span)
        return {**self.DEFAULTS, **given}

    def _check(self, group: dict[str, Any]) -> None:
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise DlgValueError(f"LBFGS: only 'strong_wolfe' is supported, got "
                                f"{group['line_search_fn']!r}", engine.caller_span())
        if not group["lr"] >= 0:
            raise DlgValueError(f"LBFGS: Invalid learning rate: {group['lr']}",
                                engine.caller_span())

    @property
    def spec(self) -> OptimizerSpec:
        raise DlgValueError("LBFGS runs eagerly only (its step re-evaluates a closure): a traced "
                            "training step takes another optimizer", engine.caller_span())

    # -- the parameters as one vector --------------------------------------------------------------
    def _flat_grad(self) -> np.ndarray:
        return np.concatenate([np.zeros(p.numel(), p.numpy_view().dtype) if p.grad is None
                               else p.grad.numpy_view().ravel() for p in self._params])

    def _add_grad(self, t: Any, d: np.ndarray) -> None:
        offset = 0
        for p in self._params:
            versions.written(p)  # as every optimizer's write: older tapes are stale
            view = p.numpy_view()
            view += view.dtype.type(t) * d[offset:offset + view.size].reshape(view.shape)
            offset += view.size

    def _evaluate(self, closure: Callable[[], Any], x: list[np.ndarray], t: Any,
                  d: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and gradient at x + t d; the parameters are left at x."""
        self._add_grad(t, d)
        loss = _value(closure())
        grad = self._flat_grad()
        for p, value in zip(self._params, x):
            versions.written(p)
            np.copyto(p.numpy_view(), value)
        return loss, grad

    def step(self, closure: Callable[[], Any]) -> Any:  # type: ignore[override]
        """Up to max_iter L-BFGS iterations; returns the closure's first loss."""
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = closure()
        loss = _value(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        h_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, h_diag = -flat_grad, 1
                state.update(old_dirs=[], old_stps=[], ro=[])
            else:
                d, h_diag = self._direction(state, flat_grad, prev_flat_grad, d, t, h_diag)
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:  # not a descent direction
                break
            evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x = [p.numpy_view().copy() for p in self._params]
                loss, flat_grad, t, evals = _strong_wolfe(
                    lambda x, t, d: self._evaluate(closure, x, t, d), x, t, d, loss, flat_grad,
                    gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                converged = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                converged = False
                if n_iter != max_iter:
                    loss = _value(closure())
                    flat_grad = self._flat_grad()
                    converged = np.abs(flat_grad).max() <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals
            if (n_iter == max_iter or current_evals >= max_eval or converged
                    or np.abs(d * t).max() <= tolerance_change
                    or abs(loss - prev_loss) < tolerance_change):
                break
        state.update(d=d, t=t, H_diag=h_diag, prev_flat_grad=prev_flat_grad,
                     prev_loss=prev_loss)
        return orig_loss

    def _direction(self, state: dict[str, Any], flat_grad: np.ndarray,
                   prev_flat_grad: np.ndarray, d: np.ndarray, t: Any, h_diag: Any
                   ) -> tuple[np.ndarray, Any]:
        """The next direction by the two-loop recursion, after adding the last step's
        curvature pair (when it is positive) to the history; and the new H_diag."""
        old_dirs, old_stps, ro = state["old_dirs"], state["old_stps"], state["ro"]
        history = self.param_groups[0]["history_size"]
        y = flat_grad - prev_flat_grad
        s = d * t
        ys = y.dot(s)
        if ys > 1e-10:
            if len(old_dirs) == history:
                old_dirs.pop(0)
                old_stps.pop(0)
                ro.pop(0)
            old_dirs.append(y)
            old_stps.append(s)
            ro.append(1.0 / ys)
            h_diag = ys / y.dot(y)
        al = state.setdefault("al", [None] * history)
        q = -flat_grad
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = old_stps[i].dot(q) * ro[i]
            q += -al[i] * old_dirs[i]
        r = q * h_diag
        for i in range(len(old_dirs)):
            be_i = old_dirs[i].dot(r) * ro[i]
            r += (al[i] - be_i) * old_stps[i]
        return r, h_diag

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what `state_dict()` gave (from dlg or torch): tensors become NumPy arrays."""
        state = state_dict["state"]
        saved = dict(state.get(0, state.get("0", {})))
        self.param_groups = [{**state_dict["param_groups"][0], "params": self._params}]
        self.state = {self._params[0]: {k: _numpy(v) for k, v in saved.items()}} if saved else {}


def _numpy(value: Any) -> Any:
    """A loaded state entry: tensors as float32 NumPy values, lists of them element by element."""
    if isinstance(value, list):
        return [_numpy(v) for v in value]
    if hasattr(value, "detach"):
        value = value.detach().numpy()
    elif isinstance(value, Tensor):
        value = value.numpy_view()
    return value.astype(np.float32).copy() if isinstance(value, np.ndarray) else value
