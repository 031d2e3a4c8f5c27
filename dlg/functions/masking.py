"""masked_fill: `where(mask, value, x)`, with PyTorch's rules for the value: a number or a 0-d
tensor, converted to x's dtype (a float meeting an int tensor truncates), while the mask, a bool
tensor, broadcasts with x. A composite, so its gradient (to x and to a tensor value) is where's.
index_fill is masked_fill with the mask of an axis's positions that a 1-d index names (counted
by index_add, so an out-of-range position is an error when run eagerly, as in PyTorch).
tril and triu are `where` too, their mask from the positions of the last two axes (running sums
of ones, so a symbolic length works: a causal mask of a traced sequence).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, int_scalar, is_int, is_static, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import INDEX_INTS, normalize_axis
from dlg.ir.ops.gather import INDEX_ADD
from dlg.ir.ops.reduce import NUMEL
from dlg.ir.ops.shape import RESHAPE
from dlg.ir.ops.source import FULL
from dlg.ir.ops.elementwise import ADD, CAST, GE, GT, LE, LT, SUB, WHERE
from dlg.ir.ops.sort import CUMSUM


def masked_fill(F: Front, x: Any, mask: Any, value: Any) -> Any:
    """x with `value` where `mask` is true."""
    t = F.type_of(tensor(F, x, "masked_fill's argument"))
    m = F.type_of(tensor(F, mask, "masked_fill: mask"))
    if m.dtype != DType.bool:
        raise DlgTypeError(f"masked_fill: mask must be a bool tensor, got {m}")
    if F.is_tensor(value):
        v = F.type_of(value)
        if v.rank:
            raise DlgShapeError(f"masked_fill: value must be a number or a 0-d tensor, got {v}")
        fill = value if v.dtype == t.dtype else F.emit(CAST, value, dtype=t.dtype)
    elif is_static(value):
        if t.dtype.is_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = int_scalar(value, t.dtype)  # 300 in uint8: torch's error
        fill = F.lift(np.asarray(value).astype(t.dtype.np), t.dtype)
    else:
        raise DlgTypeError(f"masked_fill: value must be a number or a 0-d tensor, got "
                           f"{describe(F, value)}")
    return F.emit(WHERE, mask, fill, x)


def index_fill(F: Front, x: Any, axis: Any, index: Any, value: Any) -> Any:
    """x with `value` at the positions of a 0-d or 1-d index along `axis` (negative ones from
    the end), as torch.index_fill."""
    t = F.type_of(tensor(F, x, "index_fill's argument"))
    a = normalize_axis("index_fill", args.axis(F, axis, "index_fill: dim"), max(t.rank, 1))
    i = F.type_of(tensor(F, index, "index_fill: index"))
    if i.dtype not in INDEX_INTS or i.rank > 1:
        raise DlgTypeError(f"index_fill: index must be a 0-d or 1-d int64 tensor, got {i}")
    positions = F.emit(RESHAPE, index, shape=(1,)) if i.rank == 0 else index
    count = F.type_of(positions).shape
    if t.rank:
        size = F.emit(NUMEL, x, axes=(a,), dtype=i.dtype)
        negative = F.emit(LT, positions, F.lift(0, i.dtype))
        positions = F.emit(WHERE, negative, F.emit(ADD, positions, size), positions)
    length = t.shape[a] if t.rank else 1
    hits = F.emit(INDEX_ADD, F.emit(FULL, shape=(length,), value=0.0, dtype=i.dtype), positions,
                  F.emit(FULL, shape=count, value=1.0, dtype=i.dtype), axis=0)
    mask = F.emit(GT, hits, F.lift(0, i.dtype))
    along = (length,) + (1,) * (t.rank - a - 1) if t.rank else ()
    return masked_fill(F, x, F.emit(RESHAPE, mask, shape=along), value)


def tril(F: Front, x: Any, diagonal: int = 0) -> Any:
    """The lower triangle of the last two axes: x[..., i, j] where j - i <= diagonal, else 0."""
    return _triangle(F, "tril", x, diagonal, LE)


def triu(F: Front, x: Any, diagonal: int = 0) -> Any:
    """The upper triangle of the last two axes: x[..., i, j] where j - i >= diagonal, else 0."""
    return _triangle(F, "triu", x, diagonal, GE)


def _triangle(F: Front, name: str, x: Any, diagonal: Any, keep_op: Any) -> Any:
    t = F.type_of(tensor(F, x, f"{name}'s argument"))
    if t.rank < 2:
        raise DlgShapeError(f"{name} needs at least 2 dims, got {t}")
    if not is_int(diagonal):
        raise DlgTypeError(f"{name}: diagonal must be an int, got {describe(F, diagonal)}")
    rows, cols = t.shape[-2:]

    def positions(shape: tuple[Any, ...], axis: int) -> Any:
        ones = F.emit(FULL, shape=shape, value=1.0, dtype=DType.i64)
        return F.emit(CUMSUM, ones, axis=axis)  # 1, 2, ...: j - i is the same
    offset = F.emit(SUB, positions((1, cols), 1), positions((rows, 1), 0))
    keep = F.emit(keep_op, offset, F.lift(int(diagonal), DType.i64))
    return F.emit(WHERE, keep, x, F.lift(np.zeros((), t.dtype.np), t.dtype))
