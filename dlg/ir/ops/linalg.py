"""Linear algebra: `matmul`, with exactly NumPy's `np.matmul` semantics.

A primitive (not a reduce of a broadcast product) because it gets a blocked, packed kernel in
codegen. Batch dims broadcast; a 1-D operand is a vector (a 1 is prepended to the left operand or
appended to the right one, then dropped from the result). The reference accumulates floats in
float64 and rounds once to the input dtype, so it is a sharper oracle than a float32 product.
"""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.ops.common import FLOATS, NUMERIC, broadcast_shapes, require_dtype, same_dtype
from dlg.ir.ops.opdef import defop
from dlg.ir.types import TensorType


def _matmul_infer(x: TensorType, y: TensorType) -> TensorType:
    dtype = same_dtype("matmul", x, y)
    require_dtype("matmul", x, NUMERIC, "inputs")
    if x.rank == 0 or y.rank == 0:
        raise DlgShapeError(f"matmul: operands must have rank >= 1: {x} @ {y}")
    xs = (1,) + x.shape if x.rank == 1 else x.shape
    ys = y.shape + (1,) if y.rank == 1 else y.shape
    if xs[-1] != ys[-2]:
        raise DlgShapeError(f"matmul: inner dims differ: {x} @ {y}")
    try:
        batch = broadcast_shapes("matmul", xs[:-2], ys[:-2])
    except DlgShapeError:
        raise DlgShapeError(f"matmul: batch dims do not broadcast: {x} @ {y}") from None
    rows = (xs[-2],) if x.rank > 1 else ()
    cols = (ys[-1],) if y.rank > 1 else ()
    return TensorType(dtype, batch + rows + cols)


def _matmul_ref(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype in [t.np for t in FLOATS]:
        return np.asarray(np.matmul(x.astype(np.float64), y.astype(np.float64))).astype(x.dtype)
    return np.asarray(np.matmul(x, y)).astype(x.dtype, copy=False)


MATMUL = defop("matmul", ("x", "y"), _matmul_infer, ref=_matmul_ref,
               doc="np.matmul: batched, broadcasting, with 1-D vector cases.")
