"""Pooling modules with torch.nn's arguments: MaxPool1d/2d (dilation, ceil_mode,
return_indices), AvgPool1d/2d (ceil_mode, count_include_pad) and the adaptive pools, which
pick their windows from the input's size."""

from __future__ import annotations

from typing import Any

from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.args import ints
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


def adaptive_pool(x: Tensor, output_size: Any, kind: str, nd: int) -> Tensor:
    """torch's adaptive pooling: output cell i along an axis of size L reads the input from
    floor(i L / out) to ceil((i + 1) L / out). Windows that tile the axis evenly are one
    pool op; otherwise each axis is reduced window by window (the windows are separable)."""
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    spatial = x.shape[-nd:]
    out = tuple(s if o is None else o for o, s in zip(sizes, spatial))
    checked(ints, out, nd, "output_size")
    if all(s % o == 0 for s, o in zip(spatial, out)):
        kernel = tuple(s // o for s, o in zip(spatial, out))
        return call(f"{kind}_pool{nd}d", x, kernel, kernel)
    for axis, (size, cells) in enumerate(zip(spatial, out), start=x.ndim - nd):
        windows = [x[(slice(None),) * axis + (slice(i * size // cells,
                                                    -(-(i + 1) * size // cells)),)]
                   for i in range(cells)]
        reduced = [call("mean" if kind == "avg" else "max", w, axis, True) for w in windows]
        x = call("concat", reduced, axis)
    return x


class _AdaptivePool(Module):
    kind, nd = "avg", 2

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_pool(x, self.output_size, self.kind, self.nd)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePool):
    kind, nd = "avg", 1


class AdaptiveAvgPool2d(_AdaptivePool):
    kind, nd = "avg", 2


class AdaptiveMaxPool1d(_AdaptivePool):
    kind, nd = "max", 1


class AdaptiveMaxPool2d(_AdaptivePool):
    kind, nd = "max", 2
