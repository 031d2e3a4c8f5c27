"""Convolution modules: Conv1d/2d/3d with torch.nn's options, padding_mode included (reflect,
replicate and circular pad the input with F.pad, then the convolution pads nothing), and
ConvTranspose1d/2d/3d (F.conv_transposeNd, zero padding only, as in torch)."""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module, init_parameter
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.args import ints
from dlg.functions.nn import conv_options, conv_transpose_options

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _Convolution(Module):
    """What convolutions and transposed convolutions share: weight [out_channels (in_channels
    when transposed), the other // groups, *kernel] drawn as torch draws it, a bias bounded by
    the weight's fan in, and torch's repr."""

    nd = 2
    transposed = False

    def _parameters_for(self, in_channels: int, out_channels: int, kernel: tuple[int, ...],
                        groups: int, bias: bool) -> None:
        if in_channels % groups or out_channels % groups:
            raise DlgValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) "
                                f"must be divisible by groups ({groups})", engine.caller_span())
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        rows, cols = (in_channels, out_channels) if self.transposed else (out_channels,
                                                                          in_channels)
        self.weight = init_parameter("kaiming_uniform", (rows, cols // groups, *kernel),
                                     a=math.sqrt(5))
        k = 1 / math.sqrt(cols // groups * math.prod(kernel))
        self.bias = init_parameter("uniform", (out_channels,), -k, k) if bias else None

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self.nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self.nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _ConvNd(_Convolution):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros"):
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise DlgValueError(f"padding_mode must be one of {PADDING_MODES}, got "
                                f"{padding_mode!r}", engine.caller_span())
        kernel = checked(ints, kernel_size, self.nd, "kernel_size")
        attrs = checked(conv_options, self.nd, stride, padding, dilation, groups)  # .dlg's errors
        self.stride, self.dilation, self.groups = attrs["stride"], attrs["dilation"], groups
        self.padding = attrs.get("auto_pad", attrs.get("padding"))
        self.output_padding, self.padding_mode = (0,) * self.nd, padding_mode
        self._parameters_for(in_channels, out_channels, kernel, groups, bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight, self.bias)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """torch's hook for subclasses: the convolution with this weight and bias (Whisper's
        Conv1d overrides it to cast them to the input's dtype)."""
        padding = self.padding
        if self.padding_mode != "zeros" and padding != "valid":
            flat = tuple(n for pair in reversed(self._pads()) for n in pair)
            x, padding = call("pad", x, flat, mode=self.padding_mode), 0  # last axis first
        return call(f"conv{self.nd}d", x, weight, bias, self.stride, padding, self.dilation,
                    self.groups)

    def _pads(self) -> list[tuple[int, int]]:
        """(before, after) per spatial axis; 'same' puts the odd one after, as torch does."""
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]


class Conv1d(_ConvNd):
    nd = 1


class Conv2d(_ConvNd):
    nd = 2


class Conv3d(_ConvNd):
    nd = 3


class _ConvTransposeNd(_Convolution):
    """conv's transpose (F.conv_transposeNd); `output_size` in forward picks the
    output_padding that gives that size, as torch does."""

    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros"):
        super().__init__()
        if padding_mode != "zeros":
            raise DlgValueError(f"Only 'zeros' padding mode is supported for "
                                f"{type(self).__name__}, got {padding_mode!r}",
                                engine.caller_span())
        kernel = checked(ints, kernel_size, self.nd, "kernel_size")
        attrs = checked(conv_transpose_options, self.nd, stride, padding, output_padding, groups,
                        dilation)
        self.stride, self.padding = attrs["stride"], attrs["padding"]
        self.output_padding, self.dilation = attrs["output_padding"], attrs["dilation"]
        self.groups, self.padding_mode = groups, padding_mode
        self._parameters_for(in_channels, out_channels, kernel, groups, bias)

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        output_padding = self.output_padding if output_size is None else \
            self._output_padding(x, output_size)
        return call(f"conv_transpose{self.nd}d", x, self.weight, self.bias, self.stride,
                    self.padding, output_padding, self.groups, self.dilation)

    def _output_padding(self, x: Tensor, output_size: Any) -> tuple[int, ...]:
        size = tuple(output_size)[-self.nd:]
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(
            x.shape[-self.nd:], self.stride, self.padding, self.dilation, self.kernel_size)]
        if len(size) != self.nd or any(not 0 <= want - low < s for want, low, s in
                                       zip(size, smallest, self.stride)):
            raise DlgValueError(f"{type(self).__name__}: output_size {list(output_size)} must "
                                f"be {self.nd} sizes from {smallest} up to the stride "
                                f"{list(self.stride)} more", engine.caller_span())
        return tuple(want - low for want, low in zip(size, smallest))


class ConvTranspose1d(_ConvTransposeNd):
    nd = 1


class ConvTranspose2d(_ConvTransposeNd):
    nd = 2


class ConvTranspose3d(_ConvTransposeNd):
    nd = 3
