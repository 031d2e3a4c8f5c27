"""What a `train` section declares: label inputs, the loss, metrics and the optimizer.

The hyper-parameter tables follow torch.optim's names and defaults, so a .dlg optimizer line
reads like the PyTorch one. Training itself (autodiff, updates) is built on top of this record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dlg.errors import DlgAttributeError, DlgTypeError, Span

OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": None, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0,
            "nesterov": False},
    "Adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False},
    "AdamW": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
              "amsgrad": False},
    "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False},
}


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    hyper: Mapping[str, Any]
    span: Span | None = field(default=None, compare=False)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyper.items())
        return f"{self.name}({args})"


def make_optimizer(name: str, kwargs: Mapping[str, Any], span: Span | None = None
                   ) -> OptimizerSpec:
    """Check hyper-parameters against the table and fill defaults."""
    defaults = OPTIMIZER_DEFAULTS[name]
    for key in kwargs:
        if key not in defaults:
            raise DlgAttributeError(f"{name}: unknown hyper-parameter {key!r} "
                                    f"(it takes {', '.join(defaults)})", span)
    hyper = {k: kwargs.get(k, v) for k, v in defaults.items()}
    if hyper.get("lr") is None:
        raise DlgAttributeError(f"{name}: the learning rate lr= is required", span)
    for key, value in hyper.items():
        if key == "betas":
            ok = isinstance(value, tuple) and len(value) == 2 and all(
                isinstance(b, (int, float)) and 0 <= b < 1 for b in value)
        elif isinstance(defaults[key], bool):
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise DlgTypeError(f"{name}: bad value {value!r} for {key}", span)
    return OptimizerSpec(name, MappingProxyType(hyper), span)


@dataclass(frozen=True)
class TrainSpec:
    """The train section of a model, with the names of its values in the training graph."""

    labels: tuple[str, ...]
    loss: str
    metrics: tuple[str, ...]
    optimizer: OptimizerSpec | None
    span: Span | None = field(default=None, compare=False)
