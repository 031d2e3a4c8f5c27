"""Pooling modules with torch.nn's arguments: MaxPool1d/2d/3d (dilation, ceil_mode,
return_indices), MaxUnpool1d/2d/3d (their inverse at those indices), AvgPool1d/2d/3d (ceil_mode,
count_include_pad), LPPool1d/2d/3d (power-average) and the adaptive pools."""

from __future__ import annotations

from typing import Any

from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.nn import pool_options


class _MaxPool(Module):
    nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        checked(pool_options, self.nd, kernel_size, stride, padding, ceil_mode)  # .dlg's errors
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Tensor) -> Any:
        indices = {"return_indices": True} if self.return_indices else {}
        return call(f"max_pool{self.nd}d", x, self.kernel_size, self.stride, self.padding,
                    self.dilation, ceil_mode=self.ceil_mode, **indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPool):
    nd = 1


class MaxPool2d(_MaxPool):
    nd = 2


class MaxPool3d(_MaxPool):
    nd = 3


class _MaxUnpool(Module):
    nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        checked(pool_options, self.nd, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = (
            tuple(v) if isinstance(v, (tuple, list)) else (v,) * self.nd  # torch's _pair
            for v in (kernel_size, kernel_size if stride is None else stride, padding))

    def forward(self, x: Tensor, indices: Tensor, output_size: Any = None) -> Tensor:
        return call(f"max_unpool{self.nd}d", x, indices, self.kernel_size, self.stride,
                    self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    nd = 1


class MaxUnpool2d(_MaxUnpool):
    nd = 2


class MaxUnpool3d(_MaxUnpool):
    nd = 3


class _AvgPool(Module):
    nd = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        checked(pool_options, self.nd, kernel_size, stride, padding, ceil_mode)
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return call(f"avg_pool{self.nd}d", x, self.kernel_size, self.stride, self.padding,
                    self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPool):
    nd = 1


class AvgPool2d(_AvgPool):
    nd = 2


class AvgPool3d(_AvgPool):
    nd = 3


class _LPPool(Module):
    """F.lp_pool{nd}d with the norm, window and stride fixed (torch's repr keeps stride=None)."""

    nd = 2

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__()
        checked(pool_options, self.nd, kernel_size, stride, 0, ceil_mode)
        self.norm_type, self.kernel_size, self.stride = norm_type, kernel_size, stride
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return call(f"lp_pool{self.nd}d", x, self.norm_type, self.kernel_size, self.stride,
                    self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPool):
    nd = 1


class LPPool2d(_LPPool):
    nd = 2


class LPPool3d(_LPPool):
    nd = 3


class _AdaptivePool(Module):
    kind, nd = "avg", 2

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Any:
        return call(f"adaptive_{self.kind}_pool{self.nd}d", x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePool):
    kind, nd = "avg", 1


class AdaptiveAvgPool2d(_AdaptivePool):
    kind, nd = "avg", 2


class AdaptiveAvgPool3d(_AdaptivePool):
    kind, nd = "avg", 3


class _AdaptiveMaxPool(_AdaptivePool):
    kind = "max"

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, x: Tensor) -> Any:
        return call(f"adaptive_max_pool{self.nd}d", x, self.output_size, self.return_indices)


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    nd = 3
