"""Convolution modules: Conv1d/2d with torch.nn's options, padding_mode included (reflect,
replicate and circular pad the input with F.pad, then the convolution pads nothing)."""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, init_parameter
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.args import ints
from dlg.functions.nn import conv_options

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros"):
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise DlgValueError(f"padding_mode must be one of {PADDING_MODES}, got "
                                f"{padding_mode!r}", engine.caller_span())
        kernel = checked(ints, kernel_size, self.nd, "kernel_size")
        attrs = checked(conv_options, self.nd, stride, padding, dilation, groups)  # .dlg's errors
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.dilation, self.groups = attrs["stride"], attrs["dilation"], groups
        self.padding = attrs.get("auto_pad", attrs.get("padding"))
        self.padding_mode = padding_mode
        self.weight = init_parameter("kaiming_uniform",
                                     (out_channels, in_channels // groups, *kernel), a=math.sqrt(5))
        k = 1 / math.sqrt(in_channels // groups * math.prod(kernel))
        self.bias = init_parameter("uniform", (out_channels,), -k, k) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        padding = self.padding
        if self.padding_mode != "zeros" and padding != "valid":
            flat = tuple(n for pair in reversed(self._pads()) for n in pair)
            x, padding = call("pad", x, flat, mode=self.padding_mode), 0  # last axis first
        return call(f"conv{self.nd}d", x, self.weight, self.bias, self.stride, padding,
                    self.dilation, self.groups)

    def _pads(self) -> list[tuple[int, int]]:
        """(before, after) per spatial axis; 'same' puts the odd one after, as torch does."""
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self.nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.nd:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2
