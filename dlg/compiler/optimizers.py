"""Optimizers as graph updates: torch.optim's SGD, Adam, AdamW, RMSprop, Adadelta, Adagrad,
Adamax, NAdam, RAdam, Rprop, ASGD and Adafactor, step for step.

`apply_optimizer` emits, after a gradient graph, the new value of every parameter and of the
optimizer's state, and appends them to `Graph.updates`; the runtime writes them back in place.
State is held in non-trainable `param` nodes named like torch's state_dict entries, prefixed:
`optimizer.step` and `optimizer.lr` (f32 scalars, lr f64 where a param is f64),
`optimizer.<param>.momentum_buffer`, `.exp_avg`,
`.exp_avg_sq`, `.max_exp_avg_sq`, `.square_avg`, `.grad_avg`, `.acc_delta`, `.sum`, `.exp_inf`,
`.mu_product`, `.prev`, `.step_size`, `.eta`, `.mu`, `.ax`, `.row_var`, `.col_var`, `.variance`.
The learning rate is state, so a
schedule changes it between steps without rebuilding the graph; the other hyper-parameters are
constants. Each rule below is the single-tensor loop of torch/optim/<name>.py written as IR, its
products and quotients in torch's order (torch's CPU kernels fuse some of them into FMAs, which
dlg rounds twice: about an ulp per step). What torch computes from the step count or a norm
as Python floats (ASGD's eta and mu, Adafactor's decay, relative step size and clipping) is f64
arithmetic in the graph on the step counter and on reductions, so no rule reads a value back.
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
    # torch's lr is a Python float: f64 where a param is f64 (an f32 lr would round 0.1 there)
    wide = any(b.type_of(p).dtype is DType.f64 for p in params.values())
    lr = e.slot("lr", TensorType(DType.f64, ()) if wide else f32, float(spec.hyper["lr"]))
    new_step = b.add(step, scalar(b, 1.0, step))
    b.graph.updates.append((PREFIX + "step", new_step))
    rule = UPDATE_RULES[spec.name]
    hyper = dict(spec.hyper)
    maximize = hyper.pop("maximize", False)  # every torch rule starts by negating the gradient
    for name, g in grads.items():
        p = params[name]
        t = b.type_of(p)
        ctx = _Param(e, name, t, lr, _as(b, lr, t), step, new_step)
        if maximize:
            g = b.neg(g)
        b.graph.updates.append((name, rule(b, ctx, p, g, **hyper)))
    return state


def _as(b: Builder, v: Value, t: TensorType) -> Value:
    return v if b.type_of(v).dtype == t.dtype else b.cast(v, dtype=t.dtype)


@dataclass
class _Param:
    """What a rule needs about one parameter: its state slots, lr and the step counts."""

    e: _Emitter
    name: str
    type: TensorType
    lr_state: Value  # `optimizer.lr`: f32, or f64 when a param is
    lr: Value  # the same in the param's dtype
    step: Value  # f32: steps taken before this one
    new_step: Value  # f32: this step's number (1 on the first step)

    def slot(self, kind: str, value: float = 0.0, t: TensorType | None = None) -> Value:
        """A state tensor like the param (or of type `t`), starting at `value`."""
        return self.e.slot(f"{self.name}.{kind}", t or self.type, value)

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


def _to(b: Builder, v: Value, like: Value) -> Value:
    """An f64 scalar as a Python float meets a tensor in torch: rounded to its dtype."""
    return b.cast(v, dtype=b.type_of(like).dtype)


def _l2(b: Builder, g: Value, p: Value, weight_decay: float) -> Value:
    """`grad.add(param, alpha=weight_decay)`: weight decay folded into the gradient."""
    return b.add(g, b.mul(p, _c(b, weight_decay, p))) if weight_decay else g


def _decay(b: Builder, s: _Param, p: Value, g: Value, weight_decay: float, decoupled: bool
           ) -> tuple[Value, Value]:
    """(p, g) after the Adam family's weight decay: decoupled (AdamW) or folded into g (L2)."""
    if decoupled:
        return _shrink(b, s, p, weight_decay), g
    return p, _l2(b, g, p, weight_decay)


def _moments(b: Builder, s: _Param, g: Value, beta1: float, beta2: float) -> tuple[Value, Value]:
    """The Adam family's running averages of g (`exp_avg`) and of g * g (`exp_avg_sq`)."""
    return (s.set("exp_avg", _lerp(b, s.slot("exp_avg"), g, 1 - beta1)),
            s.set("exp_avg_sq", _ema_sq(b, s.slot("exp_avg_sq"), g, beta2)))


def _shrink(b: Builder, s: _Param, p: Value, weight_decay: float) -> Value:
    """`param.mul_(1 - lr * weight_decay)`: decoupled weight decay (AdamW), in f64 as in torch."""
    if not weight_decay:
        return p
    lr64 = _f64(b, s.lr_state)
    return b.mul(p, _to(b, b.sub(_c(b, 1.0, lr64), b.mul(lr64, _c(b, weight_decay, lr64))), p))


def _ema_sq(b: Builder, avg: Value, x: Value, decay: float) -> Value:
    """`avg.mul_(decay).addcmul_(x, x, value=1 - decay)`, multiplied in torch's order."""
    return b.add(b.mul(avg, _c(b, decay, avg)), b.mul(b.mul(x, _c(b, 1 - decay, x)), x))


def _addcdiv(b: Builder, p: Value, t1: Value, t2: Value, value: Value) -> Value:
    """`p.addcdiv_(t1, t2, value=-value)`, i.e. p - value * t1 / t2, in torch's order."""
    return b.sub(p, b.div(b.mul(t1, _to(b, value, p)), t2))


def _corrections(b: Builder, s: _Param, *betas: float) -> list[Value]:
    """`1 - beta ** step` for each beta, step counted from 1, in f64."""
    n = _f64(b, s.new_step)
    return [b.sub(_c(b, 1.0, n), b.pow(_c(b, beta, n), n)) for beta in betas]


def _sgd(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, momentum: float,
         dampening: float, weight_decay: float, nesterov: bool) -> Value:
    g = _l2(b, g, p, weight_decay)
    if momentum:
        buf = s.slot("momentum_buffer")
        later = b.add(b.mul(buf, _c(b, momentum, p)), b.mul(g, _c(b, 1 - dampening, p)))
        first = b.eq(s.step, _c(b, 0.0, s.step))  # torch starts the buffer at the gradient
        buf = s.set("momentum_buffer", b.where(first, g, later))
        g = b.add(g, b.mul(buf, _c(b, momentum, p))) if nesterov else buf
    return b.sub(p, b.mul(g, s.lr))


def _adam(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, betas: tuple[float, float],
          eps: float, weight_decay: float, amsgrad: bool, decoupled_weight_decay: bool = False
          ) -> Value:
    beta1, beta2 = betas
    p, g = _decay(b, s, p, g, weight_decay, decoupled_weight_decay)
    m, v = _moments(b, s, g, beta1, beta2)
    if amsgrad:
        v = s.set("max_exp_avg_sq", b.maximum(s.slot("max_exp_avg_sq"), v))
    correction1, correction2 = _corrections(b, s, beta1, beta2)
    step_size = b.div(_f64(b, s.lr_state), correction1)
    denom = b.add(b.div(b.sqrt(v), _to(b, b.sqrt(correction2), p)), _c(b, eps, p))
    return _addcdiv(b, p, m, denom, step_size)


def _adamw(b: Builder, s: _Param, p: Value, g: Value, **hyper: Any) -> Value:
    return _adam(b, s, p, g, decoupled_weight_decay=True, **hyper)


def _rmsprop(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, alpha: float, eps: float,
             weight_decay: float, momentum: float, centered: bool) -> Value:
    g = _l2(b, g, p, weight_decay)
    sq = s.set("square_avg", _ema_sq(b, s.slot("square_avg"), g, alpha))
    if centered:
        mean = s.set("grad_avg", _lerp(b, s.slot("grad_avg"), g, 1 - alpha))
        sq = b.sub(sq, b.mul(mean, mean))
    avg = b.add(b.sqrt(sq), _c(b, eps, p))
    if momentum:
        buf = s.set("momentum_buffer", b.add(b.mul(s.slot("momentum_buffer"), _c(b, momentum, p)),
                                             b.div(g, avg)))
        return b.sub(p, b.mul(buf, s.lr))
    return b.sub(p, b.div(b.mul(g, s.lr), avg))


def _adadelta(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, rho: float, eps: float,
              weight_decay: float) -> Value:
    g = _l2(b, g, p, weight_decay)
    sq = s.set("square_avg", _ema_sq(b, s.slot("square_avg"), g, rho))
    std = b.sqrt(b.add(sq, _c(b, eps, p)))
    acc = s.slot("acc_delta")
    delta = b.mul(b.div(b.sqrt(b.add(acc, _c(b, eps, p))), std), g)
    s.set("acc_delta", _ema_sq(b, acc, delta, rho))
    return b.sub(p, b.mul(delta, s.lr))


def _adagrad(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, lr_decay: float,
             weight_decay: float, initial_accumulator_value: float, eps: float) -> Value:
    g = _l2(b, g, p, weight_decay)
    total = s.set("sum", b.add(s.slot("sum", initial_accumulator_value), b.mul(g, g)))
    std = b.add(b.sqrt(total), _c(b, eps, p))
    n = _f64(b, s.new_step)  # clr = lr / (1 + (step - 1) * lr_decay)
    slowdown = b.add(_c(b, 1.0, n), b.mul(b.sub(n, _c(b, 1.0, n)), _c(b, lr_decay, n)))
    return _addcdiv(b, p, g, std, b.div(_f64(b, s.lr_state), slowdown))


def _adamax(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, betas: tuple[float, float],
            eps: float, weight_decay: float) -> Value:
    beta1, beta2 = betas
    g = _l2(b, g, p, weight_decay)
    m = s.set("exp_avg", _lerp(b, s.slot("exp_avg"), g, 1 - beta1))
    norm = s.set("exp_inf", b.maximum(b.mul(s.slot("exp_inf"), _c(b, beta2, p)),
                                      b.add(b.abs(g), _c(b, eps, p))))
    (correction1,) = _corrections(b, s, beta1)
    return _addcdiv(b, p, m, norm, b.div(_f64(b, s.lr_state), correction1))


def _nadam(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, betas: tuple[float, float],
           eps: float, weight_decay: float, momentum_decay: float, decoupled_weight_decay: bool
           ) -> Value:
    beta1, beta2 = betas
    p, g = _decay(b, s, p, g, weight_decay, decoupled_weight_decay)
    n = _f64(b, s.new_step)

    def mu_at(step: Value) -> Value:  # beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
        decay = b.pow(_c(b, 0.96, n), b.mul(step, _c(b, momentum_decay, n)))
        return b.mul(_c(b, beta1, n), b.sub(_c(b, 1.0, n), b.mul(_c(b, 0.5, n), decay)))

    mu, mu_next = mu_at(n), mu_at(b.add(n, _c(b, 1.0, n)))
    product = s.slot("mu_product", 1.0, TensorType(DType.f32, ()))  # an f32 tensor in torch
    product = _f64(b, s.set("mu_product", b.mul(product, _to(b, mu, product))))
    m, v = _moments(b, s, g, beta1, beta2)
    (correction2,) = _corrections(b, s, beta2)
    denom = b.add(b.sqrt(b.div(v, _to(b, correction2, v))), _c(b, eps, p))
    one, lr64 = _c(b, 1.0, n), _f64(b, s.lr_state)
    grad_size = b.div(b.mul(lr64, b.sub(one, mu)), b.sub(one, product))
    p = _addcdiv(b, p, g, denom, grad_size)
    avg_size = b.div(b.mul(lr64, mu_next), b.sub(one, b.mul(product, mu_next)))
    return _addcdiv(b, p, m, denom, avg_size)


def _radam(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, betas: tuple[float, float],
           eps: float, weight_decay: float, decoupled_weight_decay: bool) -> Value:
    beta1, beta2 = betas
    p, g = _decay(b, s, p, g, weight_decay, decoupled_weight_decay)
    m, v = _moments(b, s, g, beta1, beta2)
    correction1, correction2 = _corrections(b, s, beta1, beta2)
    corrected = b.mul(b.div(m, _to(b, correction1, m)), s.lr)
    # the variance is tractable once rho_t > 5; torch then rectifies the adaptive step
    n = _f64(b, s.new_step)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = b.sub(_c(b, rho_inf, n), b.div(b.mul(b.mul(_c(b, 2.0, n), n),
                                                  b.pow(_c(b, beta2, n), n)), correction2))
    ratio = b.div(b.mul(b.mul(b.sub(rho_t, _c(b, 4.0, n)), b.sub(rho_t, _c(b, 2.0, n))),
                        _c(b, rho_inf, n)),
                  b.mul(_c(b, (rho_inf - 4) * (rho_inf - 2), n), rho_t))
    rect = b.sqrt(b.maximum(ratio, _c(b, 0.0, n)))  # the clamp only guards the unused branch
    adaptive = b.mul(_to(b, b.sqrt(correction2), p),
                     b.div(_c(b, 1.0, p), b.add(b.sqrt(v), _c(b, eps, p))))
    rectified = b.mul(b.mul(corrected, adaptive), _to(b, rect, p))
    return b.sub(p, b.where(b.gt(rho_t, _c(b, 5.0, n)), rectified, corrected))


def _first(b: Builder, s: _Param, initial: Value, slot: Value) -> Value:
    """A state torch fills on a parameter's first step (from the lr then): `initial` then."""
    return b.where(b.eq(s.step, _c(b, 0.0, s.step)), _to(b, initial, slot), slot)


def _rprop(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, etas: tuple[float, float],
           step_sizes: tuple[float, float]) -> Value:
    minus, plus = etas
    zero = _c(b, 0.0, p)
    sign = b.sign(b.mul(g, s.slot("prev")))  # did the gradient keep its sign?
    factor = b.where(b.gt(sign, zero), _c(b, plus, p),
                     b.where(b.lt(sign, zero), _c(b, minus, p), _c(b, 1.0, p)))
    size = b.mul(_first(b, s, s.lr, s.slot("step_size", lr)), factor)
    size = s.set("step_size", b.minimum(b.maximum(size, _c(b, step_sizes[0], p)),
                                        _c(b, step_sizes[1], p)))
    g = s.set("prev", b.where(b.lt(sign, zero), zero, g))  # a flipped sign skips this step
    return b.sub(p, b.mul(b.sign(g), size))


def _asgd(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, lambd: float, alpha: float,
          t0: float, weight_decay: float) -> Value:
    f32 = TensorType(DType.f32, ())  # eta and mu are f32 tensors in torch, read as floats
    eta = _f64(b, _first(b, s, s.lr_state, s.slot("eta", lr, f32)))
    mu = s.slot("mu", 1.0, f32)
    g = _l2(b, g, p, weight_decay)
    p = b.mul(p, _to(b, b.sub(_c(b, 1.0, eta), b.mul(_c(b, lambd, eta), eta)), p))
    p = b.sub(p, b.mul(g, _to(b, eta, p)))
    ax = s.slot("ax")  # the average of the iterates: p itself up to step t0 + 2
    averaged = b.add(ax, b.mul(b.sub(p, ax), _to(b, mu, p)))
    s.set("ax", b.where(b.eq(mu, _c(b, 1.0, mu)), p, averaged))
    n, lr64 = _f64(b, s.new_step), _f64(b, s.lr_state)  # lr / (1 + lambd * lr * step) ** alpha
    decayed = b.pow(b.add(_c(b, 1.0, n), b.mul(b.mul(_c(b, lambd, n), lr64), n)),
                    _c(b, alpha, n))
    s.set("eta", _to(b, b.div(lr64, decayed), mu))
    s.set("mu", _to(b, b.div(_c(b, 1.0, n), b.maximum(_c(b, 1.0, n),
                                                       b.sub(n, _c(b, t0, n)))), mu))
    return p


def _norm(b: Builder, x: Value, axes: tuple[int, ...] | None = None) -> Value:
    """The 2-norm over `axes` (all when None), kept as reduced axes of size 1."""
    return b.sqrt(b.reduce_sum(b.mul(x, x), axes=axes, keepdims=axes is not None))


def _lerp_by(b: Builder, start: Value, end: Value, weight: Value) -> Value:
    """`start.lerp_(end, weight)` for a weight the graph computes (f64, a float in torch):
    `_lerp`'s two formulas, chosen by |weight| < 0.5 in the tensor's precision."""
    w = _to(b, weight, start)
    diff = b.sub(end, start)
    small = b.add(start, b.mul(diff, w))
    large = b.sub(end, b.mul(diff, b.sub(_c(b, 1.0, w), w)))
    return b.where(b.lt(b.abs(w), _c(b, 0.5, w)), small, large)


def _adafactor(b: Builder, s: _Param, p: Value, g: Value, *, lr: float, beta2_decay: float,
               eps: tuple[float | None, float], d: float, weight_decay: float) -> Value:
    eps1 = float(np.finfo(s.type.dtype.np).eps) if eps[0] is None else eps[0]
    shape = tuple(int(n) for n in s.type.shape)
    n, lr64 = _f64(b, s.new_step), _f64(b, s.lr_state)
    one = _c(b, 1.0, n)
    decay = b.pow(n, _c(b, beta2_decay, n))  # 1 - beta2 at this step
    rho = b.minimum(lr64, b.div(one, b.pow(n, _c(b, 0.5, n))))
    rms = b.div(_f64(b, _norm(b, p)), _c(b, float(np.prod(shape)) ** 0.5, n))
    alpha = b.mul(b.maximum(_c(b, eps[1], n), rms), rho)  # relative step: scaled by p's RMS
    p = _shrink(b, s, p, weight_decay)
    if len(shape) > 1:  # g * g's second moment factored: its means along rows and columns
        means = []
        for axis, kind, kept in ((-1, "row_var", shape[:-1] + (1,)),
                                 (-2, "col_var", shape[:-2] + (1,) + shape[-1:])):
            mean = b.div(b.square(_norm(b, g, (axis,))), _c(b, float(shape[axis]), g))
            var = s.slot(kind, t=TensorType(s.type.dtype, kept))
            means.append(s.set(kind, _lerp_by(b, var, mean, decay)))
        row, col = means
        scale = b.reduce_mean(row, axes=(-2,), keepdims=True)
        estimate = b.div(b.mul(row, col), b.maximum(scale, _c(b, eps1, row)))
    else:
        estimate = s.set("variance", _lerp_by(b, s.slot("variance"), b.mul(g, g), decay))
    update = b.mul(b.rsqrt(b.maximum(estimate, _c(b, eps1 * eps1, p))), g)
    clip = b.div(_f64(b, _norm(b, update)), _c(b, float(np.prod(shape)) ** 0.5 * d, n))
    return b.sub(p, b.mul(update, _to(b, b.div(alpha, b.maximum(one, clip)), p)))


UPDATE_RULES: dict[str, Callable[..., Value]] = {
    "SGD": _sgd, "Adam": _adam, "AdamW": _adamw, "RMSprop": _rmsprop, "Adadelta": _adadelta,
    "Adagrad": _adagrad, "Adamax": _adamax, "NAdam": _nadam, "RAdam": _radam, "Rprop": _rprop,
    "ASGD": _asgd, "Adafactor": _adafactor}
