"""`interpolate`: PyTorch's F.interpolate for every mode but antialiasing. Resampling is
separable, so each spatial dim is resampled on its own: the nearest modes gather (`take` with a
constant index vector), the others multiply by a constant [in, out] weight matrix (linear,
bilinear and trilinear are linear per dim, area is adaptive average pooling, bicubic is Keys'
cubic with PyTorch's A = -0.75 and clamped borders). Gradients and compiled forms are those of
take and matmul.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, ints, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.shape import TAKE, TRANSPOSE

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
SPATIAL = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}  # dims the mode needs
CUBIC_A = -0.75


def _source(dst: np.ndarray, scale: float, align_corners: bool, size: int, out: int,
            cubic: bool = False) -> np.ndarray:
    """PyTorch's area_pixel_compute_source_index: the input coordinate of each output."""
    if align_corners:
        return dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    src = (dst + 0.5) * scale - 0.5
    return src if cubic else np.maximum(src, 0.0)


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    """Keys' weights of the neighbours at offsets -1, 0, 1, 2 for a fraction t."""
    a = CUBIC_A

    def near(s: np.ndarray) -> np.ndarray:
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s: np.ndarray) -> np.ndarray:
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def weights(mode: str, size: int, out: int, scale: float, align_corners: bool) -> np.ndarray:
    """The [size, out] matrix resampling one dim."""
    w = np.zeros((size, out))
    dst = np.arange(out, dtype=np.float64)
    cols = np.arange(out)
    if mode == "area":
        start = (cols * size) // out
        end = -((-(cols + 1) * size) // out)
        for o in range(out):
            w[start[o]:end[o], o] = 1.0 / (end[o] - start[o])
        return w
    src = _source(dst, scale, align_corners, size, out, cubic=mode == "bicubic")
    low = np.floor(src).astype(np.int64)
    t = src - low
    if mode == "bicubic":
        for offset, share in zip(range(-1, 3), _cubic(t)):
            np.add.at(w, (np.clip(low + offset, 0, size - 1), cols), share)
        return w
    low = np.minimum(low, size - 1)
    np.add.at(w, (low, cols), 1.0 - t)
    np.add.at(w, (np.minimum(low + 1, size - 1), cols), t)
    return w


def _nearest(mode: str, size: int, out: int, scale: float) -> np.ndarray:
    shift = 0.5 if mode == "nearest-exact" else 0.0
    src = np.floor((np.arange(out, dtype=np.float32) + np.float32(shift)) * np.float32(scale))
    return np.minimum(src, size - 1).astype(np.int64)


def _sizes(F: Front, spatial: tuple[int, ...], size: Any, scale_factor: Any,
           recompute_scale_factor: Any) -> tuple[tuple[int, ...], list[float]]:
    """Output sizes and PyTorch's scale per dim (1 / scale_factor unless recomputed)."""
    nd = len(spatial)
    if (size is None) == (scale_factor is None):
        raise DlgTypeError("interpolate: give either size or scale_factor")
    if size is not None:
        out = ints(F, size, nd, "size")
        return out, [i / o for i, o in zip(spatial, out)]
    factors = (scale_factor,) * nd if is_number(scale_factor) else scale_factor
    if not (isinstance(factors, (tuple, list)) and len(factors) == nd
            and all(is_number(f) and f > 0 for f in factors)):
        raise DlgTypeError(f"interpolate: scale_factor must be a positive number or {nd} of "
                           f"them, got {describe(F, scale_factor)}")
    out = tuple(int(math.floor(i * f)) for i, f in zip(spatial, factors))
    return out, [i / o if recompute_scale_factor else 1.0 / f
                 for i, o, f in zip(spatial, out, factors)]


def interpolate(F: Front, x: Any, size: Any = None, scale_factor: Any = None,
                mode: str = "nearest", align_corners: Any = None,
                recompute_scale_factor: Any = None, antialias: bool = False) -> Any:
    """PyTorch's F.interpolate over x [N, C, *spatial] (antialias is not supported)."""
    t = F.type_of(tensor(F, x, "interpolate's input"))
    args.choice(F, mode, MODES, "interpolate: mode")
    if antialias:
        raise DlgTypeError("interpolate: antialias is not supported")
    nd = t.rank - 2
    if nd not in (1, 2, 3) or SPATIAL.get(mode, nd) != nd \
            or not all(isinstance(d, int) for d in t.shape[2:]):
        needs = f"{SPATIAL[mode]}" if mode in SPATIAL else "1 to 3"
        raise DlgShapeError(f"interpolate: mode {mode!r} needs [N, C] and {needs} concrete "
                            f"spatial dims, got {t}")
    interpolating = mode in SPATIAL
    if interpolating and not t.dtype.is_float:  # the weights would round to 0 in an int dtype
        raise DlgTypeError(f"interpolate: mode {mode!r} takes float input, got {t} (torch's "
                           f"uint8 bilinear/bicubic round fixed-point weights of their own; "
                           f"interpolate x.float() and round, or use mode='nearest')")
    if align_corners is not None and not interpolating:
        raise DlgTypeError(f"interpolate: align_corners is only for the interpolating modes "
                           f"(linear, bilinear, bicubic, trilinear), not {mode!r}")
    spatial = tuple(int(d) for d in t.shape[2:] if isinstance(d, int))
    out, scales = _sizes(F, spatial, size, scale_factor, recompute_scale_factor)
    for axis, (i, o, scale) in enumerate(zip(spatial, out, scales), start=2):
        if mode.startswith("nearest"):
            x = F.emit(TAKE, x, F.lift(_nearest(mode, i, o, scale), DType.i64), axis=axis)
            continue
        last = tuple(a for a in range(t.rank) if a != axis) + (axis,)
        moved = F.emit(TRANSPOSE, x, perm=last)
        w = weights(mode, i, o, scale, bool(align_corners))
        y = F.emit(MATMUL, moved, F.lift(w, t.dtype))
        x = F.emit(TRANSPOSE, y, perm=tuple(int(p) for p in np.argsort(last)))
    return x
