"""Diagonals with PyTorch's names: diagonal, diag_embed, diag, diagflat, trace and block_diag.

A diagonal is the `diagonal` op (ir/ops/linalg.py: a take of the two axes flattened, and a view
of x in eager Python, as torch's). diag_embed is the reverse, a gather: x padded with one zero,
each position of the new matrices reading its diagonal element or that zero. Their gradients are
take's scatter and pad's slice. block_diag pads each block with zeros to the full width at its
column offset and stacks the rows (concat), so its gradient is pad's slice too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.arrange import axis_of, gather, known_numel, known_size
from dlg.functions.front import Front
from dlg.functions.pointwise import promoted
from dlg.functions.reduce import sum_
from dlg.functions.shape import movedim
from dlg.ir.ops.linalg import DIAGONAL
from dlg.ir.dtypes import DType
from dlg.ir.ops.shape import CONCAT, PAD, RESHAPE
from dlg.ir.types import TensorType


def _offset(F: Front, value: Any, name: str) -> int:
    if not is_int(value):
        raise DlgTypeError(f"{name}: the diagonal offset must be an int, got {describe(F, value)}")
    return int(value)


def _two_axes(F: Front, t: TensorType, dim1: Any, dim2: Any, name: str) -> tuple[int, int]:
    a, b = axis_of(F, t, dim1, name), axis_of(F, t, dim2, name)
    if a == b:
        raise DlgValueError(f"{name}: dim1 and dim2 must differ, both are {a}")
    return a, b


def diagonal(F: Front, x: Any, offset: Any = 0, dim1: Any = 0, dim2: Any = 1) -> Any:
    """The diagonal of the matrices in axes dim1 and dim2, as a last axis; offset > 0 is above
    the main diagonal, < 0 below."""
    return _diagonal(F, "diagonal", x, offset, dim1, dim2)


def _diagonal(F: Front, name: str, x: Any, offset: Any, dim1: Any, dim2: Any) -> Any:
    t = F.type_of(tensor(F, x, f"{name}'s argument"))
    if t.rank < 2:
        raise DlgShapeError(f"{name} needs at least 2 dims, got {t}")
    k = _offset(F, offset, name)
    a, b = _two_axes(F, t, dim1, dim2, name)
    for axis in (a, b):  # static, or refused under this function's name
        known_size(t, axis, name)
    return F.emit(DIAGONAL, x, offset=k, dim1=a, dim2=b)


def diag_embed(F: Front, x: Any, offset: Any = 0, dim1: Any = -2, dim2: Any = -1) -> Any:
    """Matrices (in axes dim1 and dim2 of the result) whose `offset` diagonal is x's last axis,
    zero elsewhere."""
    t = F.type_of(tensor(F, x, "diag_embed's argument"))
    if t.rank < 1:
        raise DlgShapeError("diag_embed needs at least 1 dim, got a 0-d tensor")
    k = _offset(F, offset, "diag_embed")
    out = TensorType(t.dtype, (*t.shape, 1))  # the result's rank, for its dims
    a, b = _two_axes(F, out, dim1, dim2, "diag_embed")
    n = known_size(t, t.rank - 1, "diag_embed")
    m = n + abs(k)
    row, col = np.divmod(np.arange(m * m), m)
    source = np.where(col - row == k, np.minimum(row, col), n)  # n: the zero padded on
    padded = F.emit(PAD, x, pads=((0, 0),) * (t.rank - 1) + ((0, 1),), value=0.0)
    square = F.emit(RESHAPE, gather(F, padded, source, t.rank - 1), shape=(*t.shape[:-1], m, m))
    return movedim(F, square, (t.rank - 1, t.rank), (a, b))


def diag(F: Front, x: Any, diagonal: Any = 0) -> Any:
    """A 1-d x as the `diagonal` of a square matrix; a 2-d x's `diagonal` as a vector."""
    t = F.type_of(tensor(F, x, "diag's argument"))
    if t.rank == 1:
        return diag_embed(F, x, diagonal, 0, 1)
    if t.rank == 2:
        return _diagonal(F, "diag", x, diagonal, 0, 1)
    raise DlgShapeError(f"diag takes a 1-d or 2-d tensor, got {t}")


def diagflat(F: Front, x: Any, offset: Any = 0) -> Any:
    """The flattened x as the `offset` diagonal of a square matrix."""
    t = F.type_of(tensor(F, x, "diagflat's argument"))
    return diag_embed(F, F.emit(RESHAPE, x, shape=(known_numel(t, "diagflat"),)), offset, 0, 1)


def trace(F: Front, x: Any) -> Any:
    """The sum of a matrix's main diagonal (integers summed as int64)."""
    t = F.type_of(tensor(F, x, "trace's argument"))
    if t.rank != 2:
        raise DlgShapeError(f"trace takes a 2-d tensor, got {t}")
    return sum_(F, _diagonal(F, "trace", x, 0, 0, 1))


def block_diag(F: Front, *tensors: Any) -> Any:
    """The blocks (each 2-d, a 1-d one a row, a 0-d one 1x1) along the diagonal of one matrix,
    zeros elsewhere, in their promoted dtype (torch.block_diag; no blocks give a 1x0 matrix)."""
    if not tensors:
        return F.lift(np.zeros((1, 0)), DType.f32)
    for i, x in enumerate(tensors):
        tensor(F, x, f"block_diag's tensor {i}")
        if F.type_of(x).rank > 2:
            raise DlgShapeError(f"block_diag: tensor {i} must have 0, 1 or 2 dims, got "
                                f"{F.type_of(x)}")
    blocks = [F.emit(RESHAPE, x, shape=(1,) * (2 - F.type_of(x).rank) + F.type_of(x).shape)
              for x in promoted(F, tensors, [f"block_diag's tensor {i}"
                                             for i in range(len(tensors))])]
    widths = [known_size(F.type_of(b), 1, "block_diag") for b in blocks]
    total, start, rows = sum(widths), 0, []
    for b, w in zip(blocks, widths):
        rows.append(F.emit(PAD, b, pads=((0, 0), (start, total - start - w)), value=0.0))
        start += w
    return F.emit(CONCAT, *rows, axis=0)
