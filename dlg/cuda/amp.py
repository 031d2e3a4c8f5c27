"""`dlg.cuda.amp`: torch.cuda.amp's deprecated spellings, `autocast(...)` for
`autocast("cuda", ...)` and `GradScaler(...)` for `GradScaler("cuda", ...)`; each warns of the
deprecation as torch does, then is disabled (no CUDA) with torch's warning."""

from __future__ import annotations

import warnings
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


__all__ = ["GradScaler", "autocast"]
