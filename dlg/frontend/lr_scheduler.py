"""Learning-rate schedulers with torch.optim.lr_scheduler's interface and arithmetic: each
`step()` writes `param_groups[i]["lr"]`, which the optimizer feeds to its update graph.

As in torch, `step()` is chainable (it scales the groups' current lr, so schedulers compose and
SequentialLR hands over between them), and `step(epoch)` uses the closed form; the closed forms
of the schedules a .dlg train section can declare are the compiler's (`train_spec.scheduled_lr`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend.engine import caller_span
from dlg.frontend.optim import Optimizer
from dlg.ir.train_spec import make_schedule, scheduled_lr


def check_optimizer(optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise DlgTypeError(f"{type(optimizer).__name__} is not an Optimizer", caller_span())


class LRScheduler:
    """The base: `base_lrs` are the groups' `initial_lr`, `last_epoch` counts steps from -1."""

    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        check_optimizer(optimizer)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise DlgValueError(f"param_groups[{i}] has no 'initial_lr' to resume from at "
                                    f"last_epoch={last_epoch}", caller_span())
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The groups' learning rates for `last_epoch`, from their current ones."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form() if hasattr(self, "_closed_form") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._lrs()

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


class _Closed(LRScheduler):
    """A schedule a train section can declare too: its closed form is the compiler's."""

    def __init__(self, optimizer: Optimizer, last_epoch: int, **hyper: Any):
        self._spec = make_schedule(type(self).__name__, hyper, caller_span())
        self.__dict__.update(hyper)
        super().__init__(optimizer, last_epoch)

    def _closed_form(self) -> list[float]:
        return [scheduled_lr(self._spec, base, self.last_epoch) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        """Without the compiler's spec (made from the hyper-parameters, which are saved), so
        the state is plain data that checkpoints hold."""
        return {k: v for k, v in super().state_dict().items() if k != "_spec"}


class StepLR(_Closed):
    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        super().__init__(optimizer, last_epoch, step_size=step_size, gamma=gamma)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]


class MultiStepLR(_Closed):
    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1):
        milestones = tuple(sorted(milestones))
        super().__init__(optimizer, last_epoch, milestones=milestones, gamma=gamma)

    def get_lr(self) -> list[float]:
        times = Counter(self.milestones)[self.last_epoch]
        return [lr * self.gamma ** times for lr in self._lrs()] if times else self._lrs()


class ExponentialLR(_Closed):
    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        super().__init__(optimizer, last_epoch, gamma=gamma)

    def get_lr(self) -> list[float]:
        return self._lrs() if self._is_initial else [lr * self.gamma for lr in self._lrs()]


class CosineAnnealingLR(_Closed):
    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 last_epoch: int = -1):
        super().__init__(optimizer, last_epoch, T_max=T_max, eta_min=eta_min)

    def get_lr(self) -> list[float]:
        t, T, low = self.last_epoch, self.T_max, self.eta_min  # noqa: N806
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and t > 0:
            return self._closed_form()
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - low) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - low) + low for lr in self._lrs()]


class LambdaLR(LRScheduler):
    """lr = initial lr * lr_lambda(epoch), one function or one per group."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1):
        check_optimizer(optimizer)
        count = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * count
        if len(lambdas) != count:
            raise DlgValueError(f"expected {count} lr_lambdas, got {len(lambdas)}", caller_span())
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "lr_lambdas"}


class ConstantLR(LRScheduler):
    """lr * factor until epoch `total_iters`, then lr."""

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1):
        if not 0 <= factor <= 1:
            raise DlgValueError(f"ConstantLR: factor must be in [0, 1], got {factor}",
                                caller_span())
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._lrs()]
        if self.last_epoch != self.total_iters:
            return self._lrs()
        return [lr * (1.0 / self.factor) for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        reached = self.last_epoch >= self.total_iters
        return [base * (self.factor + reached * (1 - self.factor)) for base in self.base_lrs]


class LinearLR(LRScheduler):
    """lr * a factor going linearly from `start_factor` to `end_factor` over `total_iters`."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise DlgValueError(f"LinearLR: start_factor must be in (0, 1] and end_factor in "
                                f"[0, 1], got {start_factor} and {end_factor}", caller_span())
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        start, end, n = self.start_factor, self.end_factor, self.total_iters
        if self.last_epoch == 0:
            return [lr * start for lr in self._lrs()]
        if self._is_initial or self.last_epoch > n:
            return self._lrs()
        scale = 1.0 + (end - start) / (n * start + (self.last_epoch - 1) * (end - start))
        return [lr * scale for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base * (self.start_factor + (self.end_factor - self.start_factor) * done)
                for base in self.base_lrs]


class Schedulers(LRScheduler):
    """A scheduler stepping others (SequentialLR, ChainedScheduler): its state holds theirs."""

    _schedulers: list[LRScheduler]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        return {**state, "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        for s, saved in zip(self._schedulers, state.pop("_schedulers")):
            s.load_state_dict(saved)
        self.__dict__.update(state)


class SequentialLR(Schedulers):
    """Hands over from one scheduler to the next at each milestone."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1):
        check_optimizer(optimizer)
        if not schedulers or len(milestones) != len(schedulers) - 1:
            raise DlgValueError(f"SequentialLR takes one more scheduler than milestones, got "
                                f"{len(schedulers)} and {len(milestones)}", caller_span())
        if any(isinstance(s, ReduceLROnPlateau) or s.optimizer is not optimizer
               for s in schedulers):
            raise DlgValueError("SequentialLR takes schedulers of its own optimizer, "
                                "not ReduceLROnPlateau", caller_span())
        self._schedulers, self._milestones = list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:  # undo the steps the schedulers took when made
            group["lr"] = group["initial_lr"]
        for s in self._schedulers:
            s.last_epoch -= 1
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:  # type: ignore[override]
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class OneCycleLR(LRScheduler):
    """The 1cycle policy, stepped after every batch: lr rises from max_lr / div_factor to max_lr,
    then anneals to initial_lr / final_div_factor, while momentum (or beta1) cycles the other way.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        check_optimizer(optimizer)
        span = caller_span()
        if total_steps is None and (epochs is None or steps_per_epoch is None):
            raise DlgValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch",
                                span)
        self.total_steps = total_steps if total_steps is not None else epochs * steps_per_epoch
        if self.total_steps < 1 or not 0 <= pct_start <= 1 or anneal_strategy not in (
                "cos", "linear"):
            raise DlgValueError(f"OneCycleLR: bad total_steps ({self.total_steps}), pct_start "
                                f"({pct_start}) or anneal_strategy ({anneal_strategy!r})", span)
        up = float(pct_start * self.total_steps) - 1
        self._phases = ([(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                         (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                          "base_momentum", "max_momentum"),
                         (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum",
                          "max_momentum")] if three_phase else
                        [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                         (self.total_steps - 1, "max_lr", "min_lr", "base_momentum",
                          "max_momentum")])
        self.anneal_strategy = anneal_strategy
        self.cycle_momentum = cycle_momentum
        self.use_beta1 = "betas" in optimizer.defaults
        if cycle_momentum and not self.use_beta1 and "momentum" not in optimizer.defaults:
            raise DlgValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or "
                                "betas", span)
        groups = optimizer.param_groups
        if last_epoch == -1:
            for group, top, high, low in zip(groups, per_group(max_lr, groups),
                                             per_group(max_momentum, groups),
                                             per_group(base_momentum, groups)):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if cycle_momentum:
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise DlgValueError(f"OneCycleLR: tried to step {step} times; total_steps is "
                                f"{self.total_steps}", caller_span())
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr0, lr1, m0, m1) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[lr0], group[lr1], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m0], group[m1], pct))
                    break
                start = end
        return lrs


def per_group(value: float | Sequence[float], groups: list[dict[str, Any]]) -> list[float]:
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise DlgValueError(f"expected {len(groups)} values, one per parameter group, got "
                                f"{len(value)}", caller_span())
        return list(value)
    return [value] * len(groups)


class ReduceLROnPlateau(LRScheduler):
    """Multiplies lr by `factor` once the metric passed to `step(metric)` has not improved for
    `patience` epochs."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0, eps: float = 1e-8):
        check_optimizer(optimizer)
        if factor >= 1.0 or mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise DlgValueError(f"ReduceLROnPlateau: factor must be < 1 ({factor}), mode min or "
                                f"max ({mode!r}), threshold_mode rel or abs "
                                f"({threshold_mode!r})", caller_span())
        self.optimizer = optimizer
        self.min_lrs = per_group(min_lr, optimizer.param_groups)
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.last_epoch = 0
        self._last_lr = self._lrs()
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, low in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(float(group["lr"]) * self.factor, low)
                if float(group["lr"]) - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _is_better(self, a: float) -> bool:
        best, t = self.best, self.threshold
        if self.threshold_mode == "rel":
            return a < best * (1 - t) if self.mode == "min" else a > best * (1 + t)
        return a < best - t if self.mode == "min" else a > best + t
