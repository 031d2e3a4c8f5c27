"""`dlg.optim`: torch.optim's optimizers with PyTorch's interface (param_groups with per-group
options, state, zero_grad, step, state_dict, add_param_group), whose update is the graph the
compiler uses (`dlg.compiler.optimizers`), run by the interpreter: one implementation of each
optimizer. (LBFGS, whose step re-evaluates a closure, is the exception: frontend/lbfgs.py.)

A group's options other than `lr` are constants of its update graph, built once and rebuilt
when they change (OneCycleLR moves `momentum`); `lr` is fed on every step, so schedulers only
write `group["lr"]`. torch counts steps per parameter; the graph counts one step for all it
updates, so parameters whose counts differ (one lacked a gradient on some step) step apart.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from dlg.compiler.optimizers import PREFIX, apply_optimizer
from dlg.errors import DlgTypeError, DlgValueError, Span
from dlg.foreign import is_foreign, type_name
from dlg.frontend import engine, versions
from dlg.frontend.handles import RemovableHandle, add_hook
from dlg.frontend.tensor import Tensor
from dlg.frontend.tiering import Tier
from dlg.ir.builder import Builder
from dlg.ir.graph import Graph
from dlg.ir.train_spec import OPTIMIZER_DEFAULTS, OptimizerSpec, make_optimizer
from dlg.ir.types import TensorType
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

STEP, LR = PREFIX + "step", PREFIX + "lr"
# f32 scalars in torch's state, whatever the param's dtype
SCALARS = ("step", "mu_product", "eta", "mu")


class Optimizer:
    """The base of dlg.optim's optimizers; `name` picks the update rule."""

    name = ""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], *args: Any,
                 **defaults: Any):
        span = engine.caller_span()
        if args:  # torch's positional options: Adam(params, 1e-3), SGD(params, 0.1, 0.9)
            names = _POSITIONAL.get(self.name, ())
            if len(args) > len(names):
                raise DlgTypeError(f"{self.name}() takes {len(names) + 1} positional arguments "
                                   f"({', '.join(('params', *names))}), got {len(args) + 1}",
                                   span)
            for name, value in zip(names, args):
                if name in defaults:
                    raise DlgTypeError(f"{self.name}() got multiple values for argument "
                                       f"{name!r}", span)
                defaults[name] = value
        kernels = {k: defaults.pop(k) for k in _KERNELS if k in defaults}
        self.defaults = {**self._defaults(defaults, span), **self._kernels(kernels, span)}
        if self.name in _GROUP_KEYS:  # torch's order of a group's keys
            self.defaults = {k: self.defaults[k] for k in _GROUP_KEYS[self.name]}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Tensor]] = {}
        self._graphs: dict[tuple[int, tuple[int, ...]], _Update] = {}
        groups = list(params)
        if not groups:
            raise DlgValueError(f"{self.name} got an empty parameter list", span)
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)

    def __repr__(self) -> str:
        """torch's text: each group after a newline of its own, its options sorted."""
        text = f"{type(self).__name__} ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            text += "".join(f"    {k}: {v}\n" for k, v in sorted(group.items()) if k != "params")
        return text + ")"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (the defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise DlgTypeError(f"{self.name}: a parameter group is a dict, not "
                               f"{type(param_group).__name__}", engine.caller_span())
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        if not all(isinstance(p, Tensor) for p in params):
            hint = ("; a torch module's parameters are trained by torch.optim, a dlg module's "
                    "by dlg.optim" if any(map(is_foreign, params)) else "")
            raise DlgTypeError(f"{self.name} optimizes tensors; got "
                               f"{', '.join(sorted({type_name(p) for p in params}))}{hint}",
                               engine.caller_span())
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params} | seen) != len(params) + len(seen):
            raise DlgValueError("some parameters appear in more than one parameter group",
                                engine.caller_span())
        group = {**param_group, "params": params}  # torch's order: the given keys first
        group.update((k, v) for k, v in self.defaults.items() if k not in group)
        self._check(group)
        self.param_groups.append(group)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # LBFGS's own step runs the hooks too
            cls.step = _with_step_hooks(cls.__dict__["step"])  # type: ignore[method-assign]

    def register_step_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """torch's: `hook(optimizer, args, kwargs)` before each step (args start with the
        optimizer, as torch's); it may return new `(args, kwargs)` for the step."""
        return add_hook(self.__dict__.setdefault("_step_pre_hooks", {}), hook)

    def register_step_post_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """torch's: `hook(optimizer, args, kwargs)` after each step."""
        return add_hook(self.__dict__.setdefault("_step_post_hooks", {}), hook)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns `closure()` if given."""
        loss = closure() if closure is not None else None
        for index, group in enumerate(self.param_groups):
            by_step: dict[float, list[int]] = {}
            for i, p in enumerate(group["params"]):
                if p.grad is not None:
                    by_step.setdefault(self._count(p), []).append(i)
            for count, members in by_step.items():
                self._update(index, group, tuple(members), count)
        return loss

    @property
    def spec(self) -> OptimizerSpec:
        """The optimizer as a train section's `optimizer = ...` (what `dlg.trace_train` keeps)."""
        specs = {str(self._spec(g)) for g in self.param_groups}
        if len(specs) > 1:
            raise DlgValueError(f"{self.name}: a traced training step takes one set of options, "
                                f"not one per parameter group ({'; '.join(sorted(specs))})",
                                engine.caller_span())
        return self._spec(self.param_groups[0])

    # -- state_dict -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's layout: `state` by parameter index (counted across groups), `param_groups`
        with each group's options and its parameters' indices."""
        params = [p for g in self.param_groups for p in g["params"]]
        groups, start = [], 0
        for g in self.param_groups:
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
        hidden = ("step",) if self.name == "SGD" else ()  # torch's SGD counts no steps
        return {"state": {i: {k: v for k, v in self.state[p].items() if k not in hidden}
                          for i, p in enumerate(params) if p in self.state},
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what `state_dict()` gave (from dlg or torch): values are copied."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise DlgValueError(f"loaded state dict has {len(groups)} parameter groups, the "
                                f"optimizer {len(self.param_groups)}", engine.caller_span())
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise DlgValueError("loaded state dict contains a parameter group that doesn't "
                                "match the size of optimizer's group", engine.caller_span())
        index = {i: p for saved, g in zip(groups, self.param_groups)
                 for i, p in zip(saved["params"], g["params"])}
        self.state = {}
        for i, entries in state_dict["state"].items():
            p = index[int(i)]
            self.state[p] = {k: _state_tensor(v, np.float32 if k in SCALARS else
                                              p.numpy_view().dtype)
                             for k, v in entries.items() if v is not None}
            if self.state[p]:  # SGD's: a momentum buffer means the first step was taken
                self.state[p].setdefault("step", Tensor.of(np.float32(1)))
        self.param_groups = [{**{k: tuple(v) if isinstance(v, list) else v  # betas, etas, ...
                                 for k, v in saved.items() if k != "params"},
                              "params": g["params"]} for saved, g in zip(groups, self.param_groups)]

    # -- the update graphs ------------------------------------------------------------------------
    def _defaults(self, given: dict[str, Any], span: Span | None) -> dict[str, Any]:
        """The constructor's options, checked, with torch's defaults filled in (its int zeros
        as ints: print(optimizer) shows `weight_decay: 0`)."""
        hyper = dict(make_optimizer(self.name, given, span).hyper)
        hyper.update((k, 0) for k in _INT_ZEROS.get(self.name, ()) if k not in given)
        return hyper

    def _kernels(self, given: dict[str, Any], span: Span | None) -> dict[str, Any]:
        """torch's options that choose kernels or tracing, not results (foreach, fused,
        capturable, differentiable), checked, with torch's defaults for those this optimizer
        takes; AdamW's group also says decoupled_weight_decay=True, as torch's does."""
        takes = {k: v for k, v in _KERNEL_DEFAULTS.items() if k in _GROUP_KEYS.get(self.name, ())}
        for key, value in given.items():
            if key not in takes:
                raise DlgTypeError(f"{self.name} has no option {key!r} (torch's takes "
                                   f"{', '.join(takes) or 'none of ' + ', '.join(_KERNELS)})",
                                   span)
            if value not in (None, True, False):
                raise DlgTypeError(f"{self.name}: {key} is None, True or False, not {value!r}",
                                   span)
        if given.get("capturable"):
            raise DlgValueError(f"{self.name}: capturable=True (steps a CUDA graph can capture) "
                                f"needs CUDA parameters, as in torch; dlg's eager tensors live "
                                f"on the CPU", span)
        if given.get("differentiable"):
            raise DlgValueError(f"{self.name}: differentiable=True (autograd through the "
                                f"optimizer's step) is not supported: dlg's steps update the "
                                f"parameters outside the tape", span)
        if given.get("fused") and given.get("foreach"):
            raise DlgValueError("`fused` and `foreach` cannot be `True` together (as in torch)",
                                span)
        fixed = {"decoupled_weight_decay": True} if self.name == "AdamW" else {}
        return {**takes, **given, **fixed}

    def _check(self, group: dict[str, Any]) -> None:
        """Refuse a parameter group's bad options."""
        self._kernels({k: group[k] for k in _KERNELS if k in group}, engine.caller_span())
        self._spec(group)

    def _spec(self, group: dict[str, Any]) -> OptimizerSpec:
        return make_optimizer(self.name, {k: group[k] for k in OPTIMIZER_DEFAULTS[self.name]},
                              engine.caller_span())

    def _count(self, p: Tensor) -> float:
        state = self.state.get(p)
        return float(state["step"].numpy_view()) if state and "step" in state else 0.0

    def _update(self, index: int, group: dict[str, Any], members: tuple[int, ...],
                count: float) -> None:
        params = [group["params"][i] for i in members]
        update = self._graph(index, group, members)
        lr = np.asarray(group["lr"], update.lr_dtype)
        native = update.tier.compiled()
        if native is not None and self._update_in_place(native, update, members, params, lr,
                                                        count):
            return
        values: dict[str, Any] = {STEP: np.float32(count), LR: lr}
        inputs = {}
        for i, p in zip(members, params):
            values[f"p{i}"] = _parts(p.numpy_view())
            inputs[f"g{i}"] = _parts(p.grad.numpy_view())  # type: ignore[union-attr]
            state = self.state.get(p, {})
            for kind, initial in update.initial[i].items():  # torch's initial state
                values[f"{PREFIX}p{i}.{kind}"] = (_parts(state[kind].numpy_view())
                                                  if kind in state else initial)
        with update.tier.interpreting():
            _, updates = Interpreter().run(update.graph, inputs, values)
        for i, p in zip(members, params):
            state = self.state.setdefault(p, {})
            state["step"] = Tensor.of(np.float32(updates[STEP]))
            versions.written(p)  # a tape that read p before this step is stale, as in torch
            np.copyto(_parts(p.numpy_view()), updates[f"p{i}"])
            head = f"{PREFIX}p{i}."
            state.update({name[len(head):]: Tensor.of(_joined(value, p)) for name, value
                          in updates.items() if name.startswith(head)})

    def _update_in_place(self, native: NativeGraph, update: _Update, members: tuple[int, ...],
                         params: list[Tensor], lr: np.ndarray, count: float) -> bool:
        """The compiled update, writing the parameters and their state in place (as torch's
        in-place ops do); False, with nothing done, where it cannot: before the first step
        made the state, or where an array is not contiguous, aligned and apart from the others
        (a view of another parameter) and native code cannot write it in place."""
        step = np.array(count, np.float32)
        values: dict[str, np.ndarray] = {STEP: step, LR: lr}
        inputs: dict[str, np.ndarray] = {}
        for i, p in zip(members, params):
            state = self.state.get(p, {})
            if any(kind not in state for kind in update.initial[i]):
                return False
            values[f"p{i}"] = _parts(p.numpy_view())
            values.update((f"{PREFIX}p{i}.{kind}", _parts(state[kind].numpy_view()))
                          for kind in update.initial[i])
            inputs[f"g{i}"] = _parts(p.grad.numpy_view())  # type: ignore[union-attr]
        if not _writable_apart(list(values.values())):
            return False
        native(inputs, values)
        for p in params:
            self.state.setdefault(p, {})["step"] = Tensor.of(np.float32(step))
            versions.written(p)
        return True

    def _graph(self, index: int, group: dict[str, Any], members: tuple[int, ...]) -> _Update:
        spec = self._spec(group)
        cached = self._graphs.get((index, members))
        if cached is not None and _constants(cached.spec) == _constants(spec):
            return cached  # lr is fed: a scheduler moving it keeps the graph
        g = Graph(self.name)
        b = Builder(g)
        types = {i: _parts_type(group["params"][i].tensor_type) for i in members}
        params = {f"p{i}": b.param(f"p{i}", types[i]) for i in members}
        grads = {f"p{i}": b.input(f"g{i}", types[i]) for i in members}
        state = apply_optimizer(b, spec, params, grads)
        initial: dict[int, dict[str, np.ndarray]] = {i: {} for i in members}
        for name, value in state.initial.items():  # "optimizer.p3.exp_avg"
            p, _, kind = name[len(PREFIX):].rpartition(".")
            if p:
                initial[int(p[1:])][kind] = value
        self._graphs[(index, members)] = _Update(spec, g, initial, state.initial[LR].dtype,
                                                 Tier(g))
        return self._graphs[(index, members)]


def _parts(array: np.ndarray) -> np.ndarray:
    """A complex array as torch's optimizers see it (view_as_real): its real and imaginary
    parts along a new last axis, sharing memory, so every update is the real one per part and
    writes the parameter in place; a real array as it is."""
    if array.dtype.kind != "c":
        return array
    return array.reshape(array.shape + (1,)).view(array.real.dtype)


def _parts_type(t: TensorType) -> TensorType:
    return TensorType(t.dtype.real, t.shape + (2,)) if t.dtype.is_complex else t


def _joined(value: np.ndarray, p: Tensor) -> np.ndarray:
    """A state array made for `_parts(p)` back in p's complex layout (torch keeps complex
    state for complex parameters)."""
    if not p.dtype.is_complex:
        return value
    return np.ascontiguousarray(value).view(p.dtype.np).reshape(p.numpy_view().shape)


def _constants(spec: OptimizerSpec) -> dict[str, Any]:
    """The options an update graph holds as constants: all but lr (its initial values of
    lr-started state are replaced on a parameter's first step by the fed lr)."""
    return {k: v for k, v in spec.hyper.items() if k != "lr"}


class _Update(NamedTuple):
    """One group's update graph for some of its parameters, their initial state, and its tier
    (compiled once hot: one pass over each array instead of a NumPy temporary per op; Adam on a
    784-256-10 MLP, one core: 3.5 -> 0.2 ms a step)."""

    spec: OptimizerSpec
    graph: Graph
    initial: dict[int, dict[str, np.ndarray]]
    lr_dtype: np.dtype  # the fed lr's: f64 when a param is
    tier: Tier


def _writable_apart(arrays: list[np.ndarray]) -> bool:
    """Whether native code can update these arrays in place: each C-contiguous, aligned and
    writeable, no two overlapping in memory."""
    spans = []
    for a in arrays:
        flags = a.flags  # each .flags and .ctypes makes an object: ~2 us an array a step
        if not (flags.c_contiguous and flags.writeable and flags.aligned):
            return False
        start = a.__array_interface__["data"][0]
        spans.append((start, start + a.nbytes))
    spans.sort()
    return all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def _state_tensor(value: Any, dtype: Any) -> Tensor:
    """A loaded state entry (a dlg or torch tensor), copied."""
    return Tensor.of(np.array(value.detach().numpy() if hasattr(value, "detach") else value,
                           dtype=dtype))


def _optimizer(name: str) -> type[Optimizer]:
    return type(name, (Optimizer,), {"name": name, "__doc__": f"torch.optim.{name}: "
                                     f"{', '.join(OPTIMIZER_DEFAULTS[name])}.",
                                     "__signature__": _signature(name)})


def _signature(name: str) -> inspect.Signature:
    """torch's signature of an optimizer (what `inspect.signature` shows: train_gpt2.py looks
    for 'fused' in it): params, the positional options, then the keyword-only ones."""
    P = inspect.Parameter
    defaults = {**OPTIMIZER_DEFAULTS[name], **_KERNEL_DEFAULTS,
                **dict.fromkeys(_INT_ZEROS.get(name, ()), 0)}
    return inspect.Signature(
        [P("params", P.POSITIONAL_OR_KEYWORD)]
        + [P(k, P.POSITIONAL_OR_KEYWORD, default=defaults[k]) for k in _POSITIONAL[name]]
        + [P(k, P.KEYWORD_ONLY, default=defaults[k]) for k in _KEYWORD_ONLY[name].split()])


# torch's options that pick kernels or tracing, not results, with torch's defaults
_KERNEL_DEFAULTS = {"foreach": None, "fused": None, "capturable": False, "differentiable": False}
_KERNELS = tuple(_KERNEL_DEFAULTS)
# the keys of a parameter group, in torch 2.13's order
_GROUP_KEYS = {name: tuple(keys.split()) for name, keys in {
    "SGD": "lr momentum dampening weight_decay nesterov maximize foreach differentiable fused",
    "Adam": "lr betas eps weight_decay amsgrad maximize foreach capturable differentiable fused "
            "decoupled_weight_decay",
    "AdamW": "lr betas eps weight_decay amsgrad maximize foreach capturable differentiable fused "
             "decoupled_weight_decay",
    "RMSprop": "lr momentum alpha eps centered weight_decay capturable foreach maximize "
               "differentiable",
    "Adagrad": "lr lr_decay eps weight_decay initial_accumulator_value foreach maximize "
               "differentiable fused",
    "Adadelta": "lr rho eps weight_decay maximize capturable foreach differentiable",
    "Adamax": "lr betas eps weight_decay foreach maximize differentiable capturable",
    "NAdam": "lr betas eps weight_decay momentum_decay decoupled_weight_decay maximize foreach "
             "capturable differentiable",
    "RAdam": "lr betas eps weight_decay maximize foreach capturable decoupled_weight_decay "
             "differentiable",
    "ASGD": "lr lambd alpha t0 weight_decay foreach maximize differentiable capturable",
    "Rprop": "lr etas step_sizes foreach maximize differentiable capturable",
    "Adafactor": "lr beta2_decay eps d weight_decay foreach maximize",
}.items()}


# torch's positional parameters after `params`, in order
_POSITIONAL = {
    "SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
    "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad"),
    "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad"),
    "RMSprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "capturable",
                "foreach", "maximize", "differentiable"),
    "Adadelta": ("lr", "rho", "eps", "weight_decay", "foreach"),
    "Adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "foreach"),
    "Adamax": ("lr", "betas", "eps", "weight_decay", "foreach"),
    "NAdam": ("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"),
    "RAdam": ("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
    "Rprop": ("lr", "etas", "step_sizes"),
    "ASGD": ("lr", "lambd", "alpha", "t0", "weight_decay", "foreach", "maximize",
             "differentiable", "capturable"),
    "Adafactor": ("lr", "beta2_decay", "eps", "d", "weight_decay"),
}

# torch's defaults that are the int 0 (dlg's table has 0.0)
_INT_ZEROS = {
    "SGD": ("momentum", "dampening", "weight_decay"), "Adam": ("weight_decay",),
    "RMSprop": ("weight_decay", "momentum"), "Adadelta": ("weight_decay",),
    "Adagrad": ("lr_decay", "weight_decay", "initial_accumulator_value"),
    "Adamax": ("weight_decay",), "NAdam": ("weight_decay",), "RAdam": ("weight_decay",),
    "ASGD": ("weight_decay",),
}
# torch's keyword-only parameters, in order
_KEYWORD_ONLY = {
    "SGD": "maximize foreach differentiable fused",
    "Adam": "foreach maximize capturable differentiable fused decoupled_weight_decay",
    "AdamW": "maximize foreach capturable differentiable fused",
    "RMSprop": "", "ASGD": "",
    "Adagrad": "maximize differentiable fused",
    "Adadelta": "capturable maximize differentiable",
    "Adamax": "maximize differentiable capturable",
    "NAdam": "foreach maximize capturable differentiable",
    "RAdam": "foreach maximize capturable differentiable",
    "Rprop": "capturable foreach maximize differentiable",
    "Adafactor": "foreach maximize",
}


def _with_step_hooks(step: Callable[..., Any]) -> Callable[..., Any]:
    """`step` running the optimizer's step pre- and post-hooks around it (once, however the
    steps of subclasses call each other)."""
    @functools.wraps(step)
    def run(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        pre, post = self.__dict__.get("_step_pre_hooks"), self.__dict__.get("_step_post_hooks")
        if not (pre or post) or self.__dict__.get("_in_step"):
            return step(self, *args, **kwargs)
        full = (self, *args)  # torch's hooks see the step's arguments with the optimizer first
        for hook in list((pre or {}).values()):
            result = hook(self, full, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise DlgTypeError(f"a step pre-hook returns None or (args, kwargs), got "
                                       f"{result!r}", engine.caller_span())
                full, kwargs = result
        self.__dict__["_in_step"] = True
        try:
            out = step(*full, **kwargs)
        finally:
            self.__dict__["_in_step"] = False
        for hook in list((post or {}).values()):
            hook(self, full, kwargs)
        return out
    return run


Optimizer.step = _with_step_hooks(Optimizer.step)  # type: ignore[method-assign]

SGD = _optimizer("SGD")
Adam = _optimizer("Adam")
AdamW = _optimizer("AdamW")
RMSprop = _optimizer("RMSprop")
Adadelta = _optimizer("Adadelta")
Adagrad = _optimizer("Adagrad")
Adamax = _optimizer("Adamax")
NAdam = _optimizer("NAdam")
RAdam = _optimizer("RAdam")
Rprop = _optimizer("Rprop")
ASGD = _optimizer("ASGD")
Adafactor = _optimizer("Adafactor")
