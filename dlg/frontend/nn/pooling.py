"""Pooling modules: MaxPool1d/2d, AvgPool1d/2d with torch.nn's arguments."""

from __future__ import annotations

from typing import Any

from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.nn import pool_options


class _Pool(Module):
    kind, nd = "max", 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *args: Any,
                 **kwargs: Any):
        super().__init__()
        self.args, self.kwargs = (kernel_size, stride, padding, *args), kwargs
        checked(pool_options, self.nd, kernel_size, stride, padding)  # .dlg's errors

    def forward(self, x: Tensor) -> Tensor:
        return call(f"{self.kind}_pool{self.nd}d", x, *self.args, **self.kwargs)

    def extra_repr(self) -> str:
        k, s, p = self.args[:3]
        return f"kernel_size={k}, stride={s if s is not None else k}, padding={p}"


class MaxPool1d(_Pool):
    """(kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False), as torch."""

    kind, nd = "max", 1


class MaxPool2d(_Pool):
    kind, nd = "max", 2


class AvgPool1d(_Pool):
    """(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True)."""

    kind, nd = "avg", 1


class AvgPool2d(_Pool):
    kind, nd = "avg", 2
