"""pixel_shuffle and pixel_unshuffle (PyTorch's sub-pixel convolution reshuffles) and
channel_shuffle (ShuffleNet's): a reshape, a transpose and a reshape, so their gradients and
compiled forms are those ops'."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.ops.shape import RESHAPE, TRANSPOSE
from dlg.ir.types import TensorType


def _checked(F: Front, name: str, x: Any, factor: Any, what: str) -> TensorType:
    t = F.type_of(tensor(F, x, f"{name}'s input"))
    if not is_int(factor) or factor < 1:
        raise DlgTypeError(f"{name}: {what} must be a positive int, got {describe(F, factor)}")
    if t.rank < 3 or not all(isinstance(d, int) for d in t.shape[-3:]):
        raise DlgShapeError(f"{name}: input must be [*, C, H, W] with concrete C, H, W, got {t}")
    return t


def pixel_shuffle(F: Front, x: Any, upscale_factor: Any) -> Any:
    """[*, C * r^2, H, W] -> [*, C, H * r, W * r]: each group of r^2 channels spread over an
    r x r block of pixels."""
    t = _checked(F, "pixel_shuffle", x, upscale_factor, "upscale_factor")
    r, (c, h, w), lead = int(upscale_factor), t.shape[-3:], t.shape[:-3]
    if c % (r * r):
        raise DlgShapeError(f"pixel_shuffle: the {c} channels of {t} must be divisible by "
                            f"upscale_factor squared ({r * r})")
    n = len(lead)
    y = F.emit(RESHAPE, x, shape=(*lead, c // (r * r), r, r, h, w))
    y = F.emit(TRANSPOSE, y, perm=(*range(n), n, n + 3, n + 1, n + 4, n + 2))
    return F.emit(RESHAPE, y, shape=(*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle(F: Front, x: Any, downscale_factor: Any) -> Any:
    """pixel_shuffle's inverse: [*, C, H * r, W * r] -> [*, C * r^2, H, W]."""
    t = _checked(F, "pixel_unshuffle", x, downscale_factor, "downscale_factor")
    r, (c, h, w), lead = int(downscale_factor), t.shape[-3:], t.shape[:-3]
    if h % r or w % r:
        raise DlgShapeError(f"pixel_unshuffle: the height and width of {t} must be divisible "
                            f"by downscale_factor ({r})")
    n = len(lead)
    y = F.emit(RESHAPE, x, shape=(*lead, c, h // r, r, w // r, r))
    y = F.emit(TRANSPOSE, y, perm=(*range(n), n, n + 2, n + 4, n + 1, n + 3))
    return F.emit(RESHAPE, y, shape=(*lead, c * r * r, h // r, w // r))


def channel_shuffle(F: Front, x: Any, groups: Any) -> Any:
    """[N, g * m, *] -> the channels of the g groups interleaved: channel i * m + j moves to
    j * g + i."""
    t = F.type_of(tensor(F, x, "channel_shuffle's input"))
    if not is_int(groups) or groups < 1:
        raise DlgTypeError(f"channel_shuffle: groups must be a positive int, got "
                           f"{describe(F, groups)}")
    if t.rank < 3:
        raise DlgShapeError(f"channel_shuffle: expects input with at least 3 dimensions, got {t}")
    c, g = t.shape[1], int(groups)
    if not isinstance(c, int) or c % g:
        raise DlgShapeError(f"channel_shuffle: number of channels must be divisible by groups; "
                            f"got {c} channels and {g} groups in {t}")
    rest = t.shape[2:]
    y = F.emit(RESHAPE, x, shape=(t.shape[0], g, c // g, *rest))
    y = F.emit(TRANSPOSE, y, perm=(0, 2, 1, *range(3, t.rank + 1)))
    return F.emit(RESHAPE, y, shape=t.shape)
