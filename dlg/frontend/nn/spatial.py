"""Modules that move or resample pixels without weights: PixelShuffle/PixelUnshuffle,
ChannelShuffle, the
padding modules (ZeroPad, ConstantPad, ReflectionPad, ReplicationPad, CircularPad; 1d, 2d and
3d),
Upsample (and its two fixed-mode forms), Unfold and Fold. Each is its dlg.nn.functional
namesake with torch.nn's options and repr."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError
from dlg.frontend import engine
from dlg.frontend.nn.module import Module
from dlg.frontend.tensor import Tensor, call, checked
from dlg.functions.args import ints


class PixelShuffle(Module):
    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return call("pixel_shuffle", x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class ChannelShuffle(Module):
    """ShuffleNet's shuffle: the channels of `groups` groups interleaved."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return call("channel_shuffle", x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class PixelUnshuffle(Module):
    def __init__(self, downscale_factor: int):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return call("pixel_unshuffle", x, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


# ---- padding ------------------------------------------------------------------------------------
class _PadNd(Module):
    """F.pad over the last `nd` axes of [N, C, ...] or unbatched [C, ...]; `padding` is an int
    for every side or torch's flat tuple (left, right[, top, bottom[, front, back]])."""

    nd = 1
    mode = "constant"
    value: float | None = None  # the constant modes' fill

    def __init__(self, padding: Any):
        super().__init__()
        self.padding = checked(ints, padding, 2 * self.nd, "padding")

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in (self.nd + 1, self.nd + 2):
            raise DlgShapeError(f"{type(self).__name__} expects a {self.nd + 1}-d or "
                                f"{self.nd + 2}-d input, got shape {list(x.shape)}",
                                engine.caller_span())
        return call("pad", x, self.padding, mode=self.mode, value=self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: Any, value: float):
        super().__init__(padding)
        self.value = value

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    nd = 1


class ConstantPad2d(_ConstantPadNd):
    nd = 2


class ConstantPad3d(_ConstantPadNd):
    nd = 3


class ZeroPad1d(ConstantPad1d):
    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad3d(ConstantPad3d):
    def __init__(self, padding: Any):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    nd, mode = 1, "reflect"


class ReflectionPad2d(_PadNd):
    nd, mode = 2, "reflect"


class ReflectionPad3d(_PadNd):
    nd, mode = 3, "reflect"


class ReplicationPad1d(_PadNd):
    nd, mode = 1, "replicate"


class ReplicationPad2d(_PadNd):
    nd, mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    nd, mode = 3, "replicate"


class CircularPad1d(_PadNd):
    nd, mode = 1, "circular"


class CircularPad2d(_PadNd):
    nd, mode = 2, "circular"


class CircularPad3d(_PadNd):
    nd, mode = 3, "circular"


# ---- resampling and patches -------------------------------------------------------------------
class Upsample(Module):
    """F.interpolate with the size or scale factor fixed when the module is made."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor: Any = tuple(float(s) for s in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None

    def forward(self, x: Tensor) -> Tensor:
        return call("interpolate", x, self.size, self.scale_factor, self.mode, self.align_corners,
                    recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        info = (f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None
                else f"size={self.size!r}")
        return f"{info}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class Unfold(Module):
    """im2col: [N, C, H, W] -> [N, C * kernel, windows] (F.unfold)."""

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = (kernel_size, dilation,
                                                                      padding, stride)

    def forward(self, x: Tensor) -> Tensor:
        return call("unfold", x, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """col2im, Unfold's transpose: [N, C * kernel, windows] -> [N, C, *output_size]."""

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, x: Tensor) -> Tensor:
        return call("fold", x, self.output_size, self.kernel_size, self.dilation, self.padding,
                    self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")
