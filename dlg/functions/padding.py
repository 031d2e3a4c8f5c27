"""`pad`: PyTorch's F.pad for both front doors. The pads are PyTorch's flat tuple, last axis
first ((left, right) of the last axis, then (top, bottom) of the one before, ...), or .dlg's
one (before, after) pair per axis; a flat tuple of ints and a tuple of pairs cannot be confused,
so one function takes both. Negative pads crop.

Constant padding is the `pad` op (and a `slice` where a pad is negative); reflect, replicate and
circular padding gather each padded axis with a constant index vector (`take`), so their
gradients (take's scatter) and compiled forms come with them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.shape import PAD, SLICE, TAKE
from dlg.ir.shapes import Dim
from dlg.ir.types import TensorType

MODES = ("constant", "reflect", "replicate", "circular")


def pad_pairs(F: Front, t: TensorType, pad: Any) -> list[tuple[int, int]]:
    """One (before, after) pair per axis of `t` from PyTorch's flat pads or .dlg's pairs."""
    if isinstance(pad, (tuple, list)) and pad and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(map(is_int, p)) for p in pad):
        if len(pad) != t.rank:
            raise DlgShapeError(f"pad: {len(pad)} (before, after) pairs for the {t.rank} axes "
                                f"of {t}")
        return [(int(lo), int(hi)) for lo, hi in pad]
    if not isinstance(pad, (tuple, list)) or not all(map(is_int, pad)):
        raise DlgTypeError(f"pad must be a tuple of ints (last axis first) or of (before, "
                           f"after) pairs, got {describe(F, pad)}")
    if len(pad) % 2 or len(pad) // 2 > t.rank:
        raise DlgShapeError(f"pad: {len(pad)} pads must come in pairs, at most two per axis of "
                            f"{t}")
    pairs = [(0, 0)] * t.rank
    for i in range(len(pad) // 2):
        pairs[t.rank - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pairs


def _source_index(mode: str, size: int, lo: int, hi: int) -> np.ndarray:
    """The input position each output position of a padded axis reads."""
    j = np.arange(-lo, size + hi)
    if mode == "replicate":
        return np.clip(j, 0, size - 1)
    if mode == "circular":
        return j % size
    period = 2 * (size - 1)  # reflect: mirror about the first and the last element
    r = np.abs(j) % period if period else np.zeros_like(j)
    return np.where(r < size, r, period - r)


def _check_size(mode: str, axis: int, size: Dim, lo: int, hi: int, t: TensorType) -> int:
    if not isinstance(size, int):
        raise DlgShapeError(f"pad: {mode} padding needs a concrete size, got axis {axis} of {t}")
    limit = size - 1 if mode == "reflect" else size
    if mode != "replicate" and max(lo, hi) > limit or size == 0:
        raise DlgShapeError(f"pad: {mode} padding of ({lo}, {hi}) on axis {axis} must be at "
                            f"most {limit} for {t}")
    return size


def pad(F: Front, x: Any, pad: Any, mode: str = "constant", value: Any = None) -> Any:
    """PyTorch's F.pad: pads (flat, last axis first, or .dlg's pairs), mode constant (with
    `value`, default 0), reflect, replicate or circular; negative pads crop (first, but for
    replicate, whose clamped positions give the same result)."""
    t = F.type_of(tensor(F, x, "pad's argument"))
    pairs = pad_pairs(F, t, pad)
    args.choice(F, mode, MODES, "pad: mode")
    if mode != "constant" and value is not None:
        raise DlgTypeError(f"pad: mode {mode!r} takes no value, got {describe(F, value)}")
    if value is not None and not is_number(value):
        raise DlgTypeError(f"pad: value must be a number, got {describe(F, value)}")
    if mode == "replicate":  # clamped positions: a crop needs no slice (and may empty an axis)
        return _gather(F, x, t, mode, pairs)
    crops = [(axis, -min(lo, 0), t.shape[axis] + min(hi, 0))
             for axis, (lo, hi) in enumerate(pairs) if lo < 0 or hi < 0]
    if crops:
        axes, starts, stops = zip(*crops)
        x = F.emit(SLICE, x, axes=axes, starts=starts, stops=stops, steps=(1,) * len(crops))
        t = F.type_of(x)
    pairs = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if mode == "constant":
        if any(lo or hi for lo, hi in pairs):
            x = F.emit(PAD, x, pads=tuple(pairs), value=0.0 if value is None else float(value))
        return x
    return _gather(F, x, t, mode, pairs)


def _gather(F: Front, x: Any, t: TensorType, mode: str, pairs: list[tuple[int, int]]) -> Any:
    """Each padded axis read through its constant source-index vector."""
    for axis, (lo, hi) in enumerate(pairs):
        if lo or hi:
            size = _check_size(mode, axis, t.shape[axis], lo, hi, t)
            index = F.lift(_source_index(mode, size, lo, hi).tolist(), DType.i64)
            x = F.emit(TAKE, x, index, axis=axis)
    return x
