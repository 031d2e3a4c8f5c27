"""Mixed precision as torch spells it (`dlg.autocast`, `dlg.amp`, `dlg.cuda.amp`), for programs
that run on a CPU without CUDA, where torch itself computes in float32:

- `autocast("cuda")` (any device dlg has no eager backend for) warns and is disabled, as
  torch's is without CUDA; so is a CPU autocast to a dtype torch's CPU autocast does not take.
- An *enabled* CPU autocast (bfloat16 by default, or float16) would compute some ops in lower
  precision in torch. Eager dlg computes in float32 and has no autocast op policy, so it
  refuses, saying how to turn it off, rather than silently giving other numbers.
- `GradScaler("cuda")` (torch's default) warns and disables itself: `scale` returns its
  argument, `step` calls `optimizer.step()`, the rest are no-ops, as torch's disabled scaler.
  `GradScaler("cpu")` scales for real (torch's CPU scaler): the loss times the scale, gradients
  unscaled before the step, a step with an inf/NaN gradient skipped and the scale backed off.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from enum import Enum
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor
from dlg.ir.dtypes import DType, bfloat16

# torch's device types; dlg's eager tensors live on the cpu alone
DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
                "privateuseone")
_LOWER = (None, bfloat16, DType.f16)  # None: torch's CPU default, bfloat16


class autocast:  # noqa: N801  (torch.autocast spelling)
    """`with autocast(device_type, dtype=None, enabled=True, cache_enabled=None):` or as a
    decorator; on dlg it never changes a dtype (see the module docstring)."""

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        span = engine.caller_span()
        if not isinstance(device_type, str):
            raise DlgTypeError(f"autocast: expected `device_type` of type `str`, got "
                               f"{type(device_type).__name__}", span)
        if device_type not in DEVICE_TYPES:
            raise DlgValueError(f"autocast: unknown device_type {device_type!r}; expected one "
                                f"of {', '.join(DEVICE_TYPES)}", span)
        self.device, self.fast_dtype, self._cache_enabled = device_type, dtype, cache_enabled
        self._enabled = bool(enabled)
        if not self._enabled:
            return
        if device_type != "cpu":
            warnings.warn(f"autocast(device_type={device_type!r}): dlg runs on the CPU "
                          f"({device_type} is not available). Disabling autocast.",
                          stacklevel=_user_stacklevel())
            self._enabled = False
        elif dtype not in _LOWER:
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling "
                          "autocast. CPU Autocast only supports dtypes of bfloat16 and float16 "
                          "(as in torch)", stacklevel=_user_stacklevel())
            self._enabled = False
        else:
            name = "float16" if dtype is DType.f16 else "bfloat16"
            raise DlgValueError(f"autocast(device_type='cpu') to {name}: dlg computes in "
                                "float32 (it has no autocast op policy), so the results would "
                                "not be torch's; pass enabled=False (or leave autocast out) to "
                                "run in float32", span)

    def __enter__(self) -> autocast:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)
        return run


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """False: an autocast dlg accepts is a disabled one."""
    return False


def is_autocast_available(device_type: str) -> bool:
    """False for every device: dlg has no autocast that changes precision."""
    return False


def _device_type(device_type: Any) -> str:
    if not isinstance(device_type, str):
        raise DlgTypeError(f"Expected `device_type` of type `str`, got: "
                           f"`{type(device_type)}`", engine.caller_span())
    return device_type


def custom_fwd(fwd: Callable[..., Any] | None = None, *, device_type: str,
               cast_inputs: Any = None) -> Any:
    """torch.amp.custom_fwd, a decorator of a custom Function's forward: where autocast is on it
    would cast the inputs to `cast_inputs` and run forward without autocast; dlg's autocast is
    never on, so forward runs as written (and backward, under custom_bwd, as well)."""
    _device_type(device_type)
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def forward(*args: Any, **kwargs: Any) -> Any:
        args[0]._fwd_used_autocast = False  # ctx: what custom_bwd reads in torch
        return fwd(*args, **kwargs)
    return forward


def custom_bwd(bwd: Callable[..., Any] | None = None, *, device_type: str) -> Any:
    """torch.amp.custom_bwd: backward runs under forward's autocast state, off on dlg."""
    _device_type(device_type)
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


class GradScaler:
    """torch.amp.GradScaler: disabled (with a warning) for "cuda", real for "cpu"."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0 ** 16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self._device, self._enabled = device, bool(enabled)
        if self._enabled and device != "cpu":
            warnings.warn(f"GradScaler is enabled, but {device} is not available (dlg runs on "
                          "the CPU).  Disabling.", stacklevel=_user_stacklevel())
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise DlgValueError("GradScaler: the growth factor must be > 1.0",
                                    engine.caller_span())
            if backoff_factor >= 1.0:
                raise DlgValueError("GradScaler: the backoff factor must be < 1.0",
                                    engine.caller_span())
        self._init_scale, self._growth_factor = init_scale, growth_factor
        self._backoff_factor, self._growth_interval = backoff_factor, growth_interval
        self._scale: float | None = None
        self._growth_tracker = 0
        self._per_optimizer: dict[int, dict[str, Any]] = {}

    # -- the training step --------------------------------------------------------------------
    def scale(self, outputs: Any) -> Any:
        """The outputs times the scale (a tensor, or tensors in lists and tuples)."""
        if not self._enabled:
            return outputs
        if self._scale is None:
            self._scale = _f32(self._init_scale)
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        raise DlgTypeError("GradScaler.scale: outputs must be a Tensor or an iterable of "
                           "Tensors", engine.caller_span())

    def unscale_(self, optimizer: Any) -> None:
        """Divide the optimizer's gradients by the scale (in place), noting any inf/NaN."""
        if not self._enabled:
            return
        scale = self._check_scale("unscale_")
        state = self._state(optimizer)
        if state["stage"] is OptState.UNSCALED:
            raise DlgValueError("unscale_() has already been called on this optimizer since "
                                "the last update().", engine.caller_span())
        if state["stage"] is OptState.STEPPED:
            raise DlgValueError("unscale_() is being called after step().",
                                engine.caller_span())
        inv = np.float32(np.float64(1.0) / scale)
        found_inf = False
        with engine.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.grad.mul_(float(inv))
                    found_inf |= not bool(np.isfinite(p.grad.numpy_view()).all())
        state["found_inf"], state["stage"] = found_inf, OptState.UNSCALED

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """optimizer.step(...) unless an unscaled gradient is inf/NaN (then skipped)."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise DlgValueError("Closure use is not currently supported if GradScaler is "
                                "enabled.", engine.caller_span())
        self._check_scale("step")
        state = self._state(optimizer)
        if state["stage"] is OptState.STEPPED:
            raise DlgValueError("step() has already been called since the last update().",
                                engine.caller_span())
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        result = None if state["found_inf"] else optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return result

    def update(self, new_scale: float | Tensor | None = None) -> None:
        """Back off the scale after a step with an inf/NaN gradient, grow it after
        `growth_interval` clean ones (or set `new_scale`)."""
        if not self._enabled:
            return
        scale = self._check_scale("update")
        if new_scale is not None:
            self._scale = _f32(new_scale.item() if isinstance(new_scale, Tensor) else new_scale)
        else:
            checked = [s["found_inf"] for s in self._per_optimizer.values()
                       if s["stage"] is not OptState.READY]
            if not checked:
                raise DlgValueError("GradScaler.update: no inf checks were recorded prior to "
                                    "update (call scaler.step(optimizer) first)",
                                    engine.caller_span())
            if any(checked):
                self._scale, self._growth_tracker = _f32(scale * self._backoff_factor), 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale, self._growth_tracker = _f32(scale * self._growth_factor), 0
        self._per_optimizer = {}

    # -- state --------------------------------------------------------------------------------
    def get_scale(self) -> float:
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else self._scale

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        return self._growth_tracker if self._enabled else 0

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """torch's keys; empty for a disabled scaler."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise DlgValueError("The source state dict is empty, possibly because it was saved "
                                "from a disabled instance of GradScaler.", engine.caller_span())
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale = _f32(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._growth_tracker = state_dict["_growth_tracker"]

    def _check_scale(self, what: str) -> float:
        if self._scale is None:
            raise DlgValueError(f"Attempted {what} but the scale is not set. This may indicate "
                                "your script did not use scaler.scale(loss or outputs) earlier "
                                "in the iteration.", engine.caller_span())
        return self._scale

    def _state(self, optimizer: Any) -> dict[str, Any]:
        return self._per_optimizer.setdefault(
            id(optimizer), {"stage": OptState.READY, "found_inf": False})


def _f32(value: float) -> float:
    """The scale as torch keeps it: a float32 number."""
    return float(np.float32(value))


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """`warnings.warn`'s stacklevel that names the first frame outside dlg (the user's line),
    as `engine.caller_span` finds it for errors."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    return level


__all__ = ["GradScaler", "OptState", "autocast", "is_autocast_available", "is_autocast_enabled"]
