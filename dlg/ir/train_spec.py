"""What a `train` section declares: label inputs, the loss, metrics and the optimizer.

The hyper-parameter tables follow torch.optim's names and defaults, so a .dlg optimizer line
reads like the PyTorch one. Training itself (autodiff, updates) is built on top of this record.
"""

from __future__ import annotations

import bisect
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dlg.errors import DlgAttributeError, DlgTypeError, Span

OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
            "nesterov": False, "maximize": False},
    "Adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False, "maximize": False, "decoupled_weight_decay": False},
    "AdamW": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
              "amsgrad": False, "maximize": False},
    "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False, "maximize": False},
    "Adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False},
    "Adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10, "maximize": False},
    "Adamax": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
               "maximize": False},
    "NAdam": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
              "momentum_decay": 4e-3, "decoupled_weight_decay": False, "maximize": False},
    "RAdam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
              "decoupled_weight_decay": False, "maximize": False},
    "Rprop": {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50), "maximize": False},
    "ASGD": {"lr": 1e-2, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6, "weight_decay": 0.0,
             "maximize": False},
    "Adafactor": {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
                  "weight_decay": 0.0, "maximize": False},
}


def _pair(value: Any, first: Callable[[Any], bool], second: Callable[[Any], bool]) -> bool:
    return (isinstance(value, tuple) and len(value) == 2 and first(value[0])
            and second(value[1]))


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v >= low


def _beta(value: Any) -> bool:
    return _number(value) and 0 <= value < 1


# Options whose values are not a number >= 0 or a bool: (is it valid, what it must be), by
# option or by "Optimizer.option", with torch's ranges.
_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "betas": (lambda v: _pair(v, _beta, _beta), "two numbers in [0, 1)"),
    "etas": (lambda v: _pair(v, _number, _number) and 0 < v[0] < 1 < v[1],
             "(etaminus, etaplus) with 0 < etaminus < 1 < etaplus"),
    "step_sizes": (lambda v: _pair(v, _at_least(0), _at_least(0)),
                   "(smallest, largest), both >= 0"),
    "beta2_decay": (lambda v: _number(v) and v <= 0, "a number <= 0"),
    "d": (_at_least(1), "a clipping threshold >= 1"),
    "Adafactor.eps": (lambda v: _pair(v, lambda e: e is None or _at_least(0)(e), _at_least(0)),
                      "(eps1 or none, eps2), both >= 0"),
}


@dataclass(frozen=True)
class HyperSpec:
    """A call like `SGD(lr=0.01)` in a train section: a name and checked hyper-parameters."""

    name: str
    hyper: Mapping[str, Any]
    span: Span | None = field(default=None, compare=False)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{self.name}({args})"


class OptimizerSpec(HyperSpec):
    """`optimizer = ...`: one of OPTIMIZER_DEFAULTS."""


def make_optimizer(name: str, kwargs: Mapping[str, Any], span: Span | None = None
                   ) -> OptimizerSpec:
    """Check hyper-parameters against the table and fill defaults."""
    hyper = _hyper(name, OPTIMIZER_DEFAULTS[name], kwargs, span)
    for key, value in hyper.items():
        valid, needs = _VALUES.get(f"{name}.{key}") or _VALUES.get(key) or (None, "")
        if valid is not None:
            ok = valid(value)
        elif isinstance(OPTIMIZER_DEFAULTS[name][key], bool):
            ok = isinstance(value, bool)
        else:
            ok = _number(value) and value >= 0
        if not ok:
            raise DlgTypeError(f"{name}: bad value {value!r} for {key}"
                               + (f" (it takes {needs})" if needs else ""), span)
    return OptimizerSpec(name, MappingProxyType(hyper), span)


def _hyper(name: str, defaults: Mapping[str, Any], kwargs: Mapping[str, Any], span: Span | None
           ) -> dict[str, Any]:
    """Keyword arguments checked against a table of defaults (None: required), filled in."""
    for key in kwargs:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DlgAttributeError(f"{name}: unknown hyper-parameter {key!r} "
                                    f"(it takes {', '.join(defaults)}){hint}", span)
    hyper = {k: kwargs.get(k, v) for k, v in defaults.items()}
    for key, value in hyper.items():
        if value is None:
            raise DlgAttributeError(f"{name}: {key}= is required", span)
    return hyper


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- learning-rate schedules: torch.optim.lr_scheduler stepped once per epoch ------------------
SCHEDULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "StepLR": {"step_size": None, "gamma": 0.1},
    "MultiStepLR": {"milestones": None, "gamma": 0.1},
    "ExponentialLR": {"gamma": None},
    "CosineAnnealingLR": {"T_max": None, "eta_min": 0.0},
}


class ScheduleSpec(HyperSpec):
    """`schedule = ...`: one of SCHEDULE_DEFAULTS."""


def make_schedule(name: str, kwargs: Mapping[str, Any], span: Span | None = None
                  ) -> ScheduleSpec:
    hyper = _hyper(name, SCHEDULE_DEFAULTS[name], kwargs, span)
    for key, value in hyper.items():
        if key in ("step_size", "T_max"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key == "milestones":
            ok = isinstance(value, tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) \
                and list(value) == sorted(value)
        else:
            ok = _number(value) and value >= 0
        if not ok:
            raise DlgTypeError(f"{name}: bad value {value!r} for {key}", span)
    return ScheduleSpec(name, MappingProxyType(hyper), span)


def scheduled_lr(schedule: ScheduleSpec | None, base_lr: float, epoch: int) -> float:
    """The learning rate during epoch `epoch` (0-based) when the scheduler steps once per
    epoch, in the closed forms torch documents."""
    if schedule is None:
        return base_lr
    h = schedule.hyper
    if schedule.name == "StepLR":
        return base_lr * h["gamma"] ** (epoch // h["step_size"])
    if schedule.name == "MultiStepLR":
        return base_lr * h["gamma"] ** bisect.bisect_right(h["milestones"], epoch)
    if schedule.name == "ExponentialLR":
        return base_lr * h["gamma"] ** epoch
    eta_min = h["eta_min"]
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / h["T_max"])) / 2


@dataclass(frozen=True)
class TrainSpec:
    """The train section of a model, with the names of its values in the training graph."""

    labels: tuple[str, ...]
    loss: str
    metrics: tuple[str, ...]
    optimizer: OptimizerSpec | None
    span: Span | None = field(default=None, compare=False)
    schedule: ScheduleSpec | None = None
