"""`dlg.cuda.amp`: torch.cuda.amp's deprecated spellings, `autocast(...)` for
`autocast("cuda", ...)` and `GradScaler(...)` for `GradScaler("cuda", ...)`; each warns of the
deprecation as torch does, then is disabled (no CUDA) with torch's warning. `custom_fwd` and
`custom_bwd` are torch.amp's with device_type "cuda", after the same warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from dlg.frontend import amp
from dlg.ir.dtypes import DType


class autocast(amp.autocast):  # noqa: N801  (torch.cuda.amp spelling)
    def __init__(self, enabled: bool = True, dtype: Any = DType.f16,
                 cache_enabled: bool = True):
        warnings.warn("`dlg.cuda.amp.autocast(args...)` is deprecated (as in torch). Please use "
                      "`dlg.amp.autocast('cuda', args...)` instead.", FutureWarning,
                      stacklevel=2)
        super().__init__("cuda", enabled=enabled, dtype=dtype, cache_enabled=cache_enabled)


class GradScaler(amp.GradScaler):
    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 enabled: bool = True):
        warnings.warn("`dlg.cuda.amp.GradScaler(args...)` is deprecated (as in torch). Please "
                      "use `dlg.amp.GradScaler('cuda', args...)` instead.", FutureWarning,
                      stacklevel=2)
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval,
                         enabled)


def custom_fwd(fwd: Callable[..., Any] | None = None, *, cast_inputs: Any = None) -> Any:
    warnings.warn("`dlg.cuda.amp.custom_fwd(args...)` is deprecated (as in torch). Please use "
                  "`dlg.amp.custom_fwd(args..., device_type='cuda')` instead.", FutureWarning,
                  stacklevel=2)
    return amp.custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)


def custom_bwd(bwd: Callable[..., Any] | None = None) -> Any:
    warnings.warn("`dlg.cuda.amp.custom_bwd(args...)` is deprecated (as in torch). Please use "
                  "`dlg.amp.custom_bwd(args..., device_type='cuda')` instead.", FutureWarning,
                  stacklevel=2)
    return amp.custom_bwd(bwd, device_type="cuda")


__all__ = ["GradScaler", "autocast", "custom_bwd", "custom_fwd"]
