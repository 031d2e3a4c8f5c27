"""Optimizers as graph updates: torch.optim's SGD, Adam, AdamW and RMSprop, step for step.

`apply_optimizer` emits, after a gradient graph, the new value of every parameter and of the
optimizer's state, and appends them to `Graph.updates`; the runtime writes them back in place.
State is held in non-trainable `param` nodes named like torch's state_dict entries, prefixed:
`optimizer.step` and `optimizer.lr` (scalars), `optimizer.<param>.momentum_buffer`, `.exp_avg`,
`.exp_avg_sq`, `.max_exp_avg_sq`, `.square_avg`, `.grad_avg`. The learning rate is state, so a
schedule changes it between steps without rebuilding the graph; the other hyper-parameters are
constants. Each rule below is the single-tensor loop of torch/optim/<name>.py written as IR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlg.ir.builder import Builder
from dlg.ir.dtypes import DType
from dlg.ir.graph import Value
from dlg.ir.ops.common import scalar
from dlg.ir.train_spec import OptimizerSpec
from dlg.ir.types import TensorType

PREFIX = "optimizer."


@dataclass
class OptimizerState:
    """The state params an optimizer added to the graph, with their starting values."""

    initial: dict[str, np.ndarray] = field(default_factory=dict)
    types: dict[str, TensorType] = field(default_factory=dict)


class _Emitter:
    """Makes state params and records their updates, for one optimizer in one graph."""

    def __init__(self, b: Builder, state: OptimizerState):
        self.b = b
        self.state = state

    def slot(self, name: str, t: TensorType, value: float = 0.0) -> Value:
        full = PREFIX + name
        self.state.initial[full] = np.full(tuple(int(d) for d in t.shape), value, t.dtype.np)
        self.state.types[full] = t
        return self.b.param(full, t, trainable=False)


def apply_optimizer(b: Builder, spec: OptimizerSpec, params: Mapping[str, Value],
                    grads: Mapping[str, Value]) -> OptimizerState:
    """Emit one optimizer step for every param in `grads` (params without a gradient are left
    alone, as torch skips params whose .grad is None); returns the state it created."""
    state = OptimizerState()
    e = _Emitter(b, state)
    f32 = TensorType(DType.f32, ())
    step = e.slot("step", f32)
    lr = e.slot("lr", f32, float(spec.hyper["lr"]))
    new_step = b.add(step, scalar(b, 1.0, step))
    b.graph.updates.append((PREFIX + "step", new_step))
    rule = UPDATE_RULES[spec.name]
    for name, g in grads.items():
        p = params[name]
        t = b.type_of(p)
        ctx = _Param(e, name, t, lr, _as(b, lr, t), step, new_step)
        b.graph.updates.append((name, rule(b, ctx, p, g, **spec.hyper)))
    return state


def _as(b: Builder, v: Value, t: TensorType) -> Value:
    return v if b.type_of(v).dtype == t.dtype else b.cast(v, dtype=t.dtype)


@dataclass
class _Param:
    """What a rule needs about one parameter: its state slots, lr and the step counts."""

    e: _Emitter
    name: str
    type: TensorType
    lr_state: Value  # the f32 `optimizer.lr`
    lr: Value  # the same in the param's dtype
    step: Value  # f32: steps taken before this one
    new_step: Value  # f32: this step's number (1 on the first step)

    def slot(self, kind: str) -> Value:
        return self.e.slot(f"{self.name}.{kind}", self.type)

    def set(self, kind: str, value: Value) -> Value:
        self.e.b.graph.updates.append((f"{PREFIX}{self.name}.{kind}", value))
        return value


def _c(b: Builder, value: float, like: Value) -> Value:
    return scalar(b, value, like)


def _lerp(b: Builder, start: Value, end: Value, weight: float) -> Value:
    """torch.lerp's formula (the torch.optim rules use `lerp_` for some running averages)."""
    if weight < 0.5:
        return b.add(start, b.mul(b.sub(end, start), _c(b, weight, start)))
    rest = float(1 - np.float32(weight))  # torch computes 1 - weight in the tensor's precision
    return b.sub(end, b.mul(b.sub(end, start), _c(b, rest, start)))


def _f64(b: Builder, v: Value) -> Value:
    """Scalar hyper-parameter arithmetic that torch does in Python floats: f64 here too."""
    return b.cast(v, dtype=DType.f64)


def _sgd(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, momentum: float,
         dampening: float, weight_decay: float, nesterov: bool) -> Value:
    if weight_decay:
        g = b.add(g, b.mul(p, _c(b, weight_decay, p)))
    if momentum:
        buf = s.slot("momentum_buffer")
        later = b.add(b.mul(buf, _c(b, momentum, p)), b.mul(g, _c(b, 1 - dampening, p)))
        first = b.eq(s.step, _c(b, 0.0, s.step))  # torch starts the buffer at the gradient
        buf = s.set("momentum_buffer", b.where(first, g, later))
        g = b.add(g, b.mul(buf, _c(b, momentum, p))) if nesterov else buf
    return b.sub(p, b.mul(g, s.lr))


def _adam(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, betas: tuple[float, float],
          eps: float, weight_decay: float, amsgrad: bool, decoupled: bool = False) -> Value:
    beta1, beta2 = betas
    dt = s.type.dtype
    lr64 = _f64(b, s.lr_state)
    if weight_decay and decoupled:
        keep = b.sub(_c(b, 1.0, lr64), b.mul(lr64, _c(b, weight_decay, lr64)))
        p = b.mul(p, b.cast(keep, dtype=dt))
    elif weight_decay:
        g = b.add(g, b.mul(p, _c(b, weight_decay, p)))
    m = s.set("exp_avg", _lerp(b, s.slot("exp_avg"), g, 1 - beta1))
    v = s.set("exp_avg_sq", b.add(b.mul(s.slot("exp_avg_sq"), _c(b, beta2, p)),
                                  b.mul(b.mul(g, g), _c(b, 1 - beta2, p))))
    if amsgrad:
        v = s.set("max_exp_avg_sq", b.maximum(s.slot("max_exp_avg_sq"), v))
    # bias corrections from the incremented step, in f64 as torch computes them in Python floats
    n = _f64(b, s.new_step)
    correction1 = b.sub(_c(b, 1.0, n), b.pow(_c(b, beta1, n), n))
    correction2 = b.sub(_c(b, 1.0, n), b.pow(_c(b, beta2, n), n))
    step_size = b.cast(b.div(lr64, correction1), dtype=dt)
    denom = b.add(b.div(b.sqrt(v), b.cast(b.sqrt(correction2), dtype=dt)), _c(b, eps, p))
    return b.sub(p, b.mul(b.div(m, denom), step_size))


def _adamw(b: Builder, s: _Param, p: Value, g: Value, **hyper: Any) -> Value:
    return _adam(b, s, p, g, decoupled=True, **hyper)


def _rmsprop(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, alpha: float, eps: float,
             weight_decay: float, momentum: float, centered: bool) -> Value:
    if weight_decay:
        g = b.add(g, b.mul(p, _c(b, weight_decay, p)))
    sq = s.set("square_avg", b.add(b.mul(s.slot("square_avg"), _c(b, alpha, p)),
                                   b.mul(b.mul(g, g), _c(b, 1 - alpha, p))))
    if centered:
        mean = s.set("grad_avg", _lerp(b, s.slot("grad_avg"), g, 1 - alpha))
        sq = b.sub(sq, b.mul(mean, mean))
    avg = b.add(b.sqrt(sq), _c(b, eps, p))
    if momentum:
        buf = s.set("momentum_buffer", b.add(b.mul(s.slot("momentum_buffer"), _c(b, momentum, p)),
                                             b.div(g, avg)))
        return b.sub(p, b.mul(buf, s.lr))
    return b.sub(p, b.mul(b.div(g, avg), s.lr))


UPDATE_RULES: dict[str, Callable[..., Value]] = {"SGD": _sgd, "Adam": _adam, "AdamW": _adamw,
                                                 "RMSprop": _rmsprop}
