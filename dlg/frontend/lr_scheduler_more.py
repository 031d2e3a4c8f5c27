"""More of torch.optim.lr_scheduler, eager only (lr_scheduler.py holds the base and the schedules a
.dlg train section can declare too): MultiplicativeLR, PolynomialLR, CosineAnnealingWarmRestarts,
CyclicLR and ChainedScheduler, each with torch's arithmetic step for step."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend.engine import caller_span
from dlg.frontend.lr_scheduler import (
    LambdaLR,
    LRScheduler,
    ReduceLROnPlateau,
    Schedulers,
    check_optimizer,
    per_group,
)
from dlg.frontend.optim import Optimizer


class MultiplicativeLR(LambdaLR):
    """lr multiplied by lr_lambda(epoch) at each step, one function or one per group."""

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._lrs()
        return [lr * f(self.last_epoch) for f, lr in zip(self.lr_lambdas, self._lrs())]


class PolynomialLR(LRScheduler):
    """The initial lr times (1 - epoch / total_iters)^power, then constant."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, n = self.last_epoch, self.total_iters
        if self._is_initial or t > n:
            return self._lrs()
        decay = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [lr * decay for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        done = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base * (1.0 - done) ** self.power for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from the initial lr to eta_min over T_i epochs, restarting each time;
    T_i starts at T_0 and is multiplied by T_mult at each restart. `step(epoch)` may take a
    fraction of an epoch."""

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1,  # noqa: N803
                 eta_min: float = 0.0, last_epoch: int = -1):
        if not isinstance(T_0, int) or T_0 <= 0:
            raise DlgValueError(f"Expected positive integer T_0, but got {T_0}", caller_span())
        if not isinstance(T_mult, int) or T_mult < 1:
            raise DlgValueError(f"Expected integer T_mult >= 1, but got {T_mult}", caller_span())
        self.T_0 = self.T_i = T_0
        self.T_mult, self.eta_min = T_mult, eta_min
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur
                                                                     / self.T_i)) / 2
                for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur, self.T_i = self.T_cur % self.T_i, self.T_i * self.T_mult
        elif epoch < 0:
            raise DlgValueError(f"Expected non-negative epoch, but got {epoch}", caller_span())
        elif epoch < self.T_0:
            self.T_i, self.T_cur = self.T_0, epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:  # the restart epoch falls in: T_0 (T_mult^n - 1) / (T_mult - 1) <= epoch
            n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** n
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._lrs()


class CyclicLR(LRScheduler):
    """lr cycling between base_lr and max_lr (up for step_size_up steps, down for
    step_size_down), the amplitude scaled per cycle (triangular: 1, triangular2: halved each
    cycle) or per step (exp_range: gamma^step), or by `scale_fn`; with cycle_momentum, momentum
    (or Adam's beta1) cycles the other way. Stepped after every batch."""

    MODES = ("triangular", "triangular2", "exp_range")

    def __init__(self, optimizer: Optimizer, base_lr: float | Sequence[float],
                 max_lr: float | Sequence[float], step_size_up: int = 2000,
                 step_size_down: int | None = None, mode: str = "triangular",
                 gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None,
                 scale_mode: str = "cycle", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.8,
                 max_momentum: float | Sequence[float] = 0.9, last_epoch: int = -1):
        check_optimizer(optimizer)
        if mode not in self.MODES and scale_fn is None:
            raise DlgValueError(f"CyclicLR: mode must be one of {', '.join(self.MODES)} (or give "
                                f"scale_fn), got {mode!r}", caller_span())
        groups = optimizer.param_groups
        base_lrs = per_group(base_lr, groups)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, groups):
                group["lr"] = lr
        self.max_lrs = per_group(max_lr, groups)
        up = float(step_size_up)
        self.total_size = up + (float(step_size_down) if step_size_down is not None else up)
        self.step_ratio = up / self.total_size
        self.mode, self.gamma, self._scale_fn_custom = mode, gamma, scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else (
            "iterations" if mode == "exp_range" else "cycle")
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise DlgValueError("optimizer must support momentum or beta1 with "
                                    "`cycle_momentum` option enabled", caller_span())
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = per_group(base_momentum, groups)
            self.max_momentums = per_group(max_momentum, groups)
            if last_epoch == -1:
                for high, low, group in zip(self.max_momentums, self.base_momentums, groups):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x: float) -> float:
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x if self.mode == "exp_range" else 1.0

    def _set_momentum(self, group: dict[str, Any], value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self) -> list[float]:
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        rise = x / self.step_ratio if x <= self.step_ratio else (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        if self.cycle_momentum:
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums,
                                        self.max_momentums):
                self._set_momentum(group, high - (high - low) * rise * scale)
        return [base + (top - base) * rise * scale
                for base, top in zip(self.base_lrs, self.max_lrs)]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "_scale_fn_custom"}


class ChainedScheduler(Schedulers):
    """Steps every scheduler in turn at each step, so their factors compose."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None):
        if not schedulers:
            raise DlgValueError("ChainedScheduler expects at least one scheduler to be chained, "
                                "but got no scheduler", caller_span())
        optimizer = optimizer or schedulers[0].optimizer
        for i, s in enumerate(schedulers):
            if isinstance(s, ReduceLROnPlateau) or s.optimizer is not optimizer:
                raise DlgValueError(f"ChainedScheduler takes schedulers of one optimizer, not "
                                    f"ReduceLROnPlateau; got {type(s).__name__} at index {i}",
                                    caller_span())
        self._schedulers, self.optimizer = list(schedulers), optimizer
        self._last_lr = self._lrs()

    def step(self) -> None:  # type: ignore[override]
        for s in self._schedulers:
            s.step()
        self._last_lr = self._lrs()
