"""Linear algebra: `matmul`, with exactly NumPy's `np.matmul` semantics, and `diagonal`.

A primitive (not a reduce of a broadcast product) because it gets a blocked, packed kernel in
codegen. Batch dims broadcast; a 1-D operand is a vector (a 1 is prepended to the left operand or
appended to the right one, then dropped from the result). The reference accumulates floats in
float64 and rounds once to the input dtype, so it is a sharper oracle than a float32 product;
`exact=False` (eager Python's choice: `Interpreter(exact=False)`) multiplies in the inputs'
dtype (at least float32), as PyTorch does.

`diagonal` is a decomposition (a take of the diagonal's constant positions in the two axes
flattened); it is an op of its own so that eager Python can give it as a view of x, as torch's
`x.diagonal()` is (an in-place op on it writes into x).
"""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    NUMERIC,
    broadcast_shapes,
    normalize_axis,
    require_dtype,
    same_dtype,
    sum_to_shape,
    working_dtype,
)
from dlg.ir.ops.complexes import COMPLEX, conj
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.ops.shape import TRANSPOSE
from dlg.ir.types import TensorType


def _matmul_infer(x: TensorType, y: TensorType) -> TensorType:
    dtype = same_dtype("matmul", x, y)
    require_dtype("matmul", x, NUMERIC + COMPLEX, "inputs")
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


_FLOATS_NP = frozenset(t.np for t in FLOATS)


def _matmul_ref(x: np.ndarray, y: np.ndarray, *, exact: bool = True) -> np.ndarray:
    if x.dtype.kind == "c":
        work = np.dtype(np.complex128) if exact else x.dtype
        return np.asarray(np.matmul(x.astype(work, copy=False), y.astype(work, copy=False))
                          ).astype(x.dtype, copy=False)
    if x.dtype in _FLOATS_NP:
        work = working_dtype(x.dtype, exact)
        return np.asarray(np.matmul(x.astype(work, copy=False), y.astype(work, copy=False))
                          ).astype(x.dtype, copy=False)
    return np.asarray(np.matmul(x, y)).astype(x.dtype, copy=False)


def _last_two_swapped(b, v):
    rank = b.type_of(v).rank
    return b.transpose(v, perm=tuple(range(rank - 2)) + (rank - 1, rank - 2))


def _transposed_matrix(b, v) -> bool:
    """Whether v is a matrix made by swapping another's axes (a linear layer's W^T)."""
    node = b.graph.node(v)
    return node.op is TRANSPOSE and b.type_of(v).rank == 2


def _matmul_vjp(b, n, g):
    """dx = g @ y^T, dy = x^T @ g on operands made at least 2-D (vectors get their 1 back, as
    np.matmul does); the autodiff pass sums broadcast batch dims back. An operand that is a
    transposed matrix (x @ W^T) gets its cotangent as the transpose of the product in W's
    layout, (g^T @ x)^T, so that the transpose's own VJP cancels it and dW is made in the
    layout W is read and updated in (the optimizer read x^T @ g across its columns). Complex
    operands enter conjugated (dx = g @ y^H, torch's convention)."""
    x, y = n.inputs
    tx, ty = b.type_of(x), b.type_of(y)
    x2 = conj(b, b.reshape(x, shape=(1,) + tx.shape) if tx.rank == 1 else x)
    y2 = conj(b, b.reshape(y, shape=ty.shape + (1,)) if ty.rank == 1 else y)
    gt = b.type_of(g).shape
    if tx.rank == 1:
        gt = gt[:len(gt) - (ty.rank > 1)] + (1,) + gt[len(gt) - (ty.rank > 1):]
    if ty.rank == 1:
        gt = gt + (1,)
    g2 = b.reshape(g, shape=gt)
    dx = (_last_two_swapped(b, b.matmul(y2, _last_two_swapped(b, g2)))
          if _transposed_matrix(b, x) and ty.rank == 2 else
          b.matmul(g2, _last_two_swapped(b, y2)))
    dy = (_last_two_swapped(b, b.matmul(_last_two_swapped(b, g2), x2))
          if _transposed_matrix(b, y) and tx.rank == 2 else
          b.matmul(_last_two_swapped(b, x2), g2))
    return (_to_operand(b, dx, b.type_of(x2).shape, tx),
            _to_operand(b, dy, b.type_of(y2).shape, ty))


def _to_operand(b, d, promoted, t):
    """A cotangent of a 2-D-promoted operand back to the operand: broadcast batch dims summed,
    a vector's added 1 dropped."""
    return b.reshape(sum_to_shape(b, d, promoted), shape=t.shape)


MATMUL = defop("matmul", ("x", "y"), _matmul_infer, ref=_matmul_ref, vjp=_matmul_vjp,
               traits={Trait.CONTRACTION},
               doc="np.matmul: batched, broadcasting, with 1-D vector cases.")


# ---- diagonal ---------------------------------------------------------------------------------
def _diagonal_axes(shape: tuple, offset: int, dim1: int, dim2: int) -> tuple[int, int, int]:
    """The two axes (normalised) and the diagonal's length; both axes must be static."""
    a, b = (normalize_axis("diagonal", d, len(shape)) for d in (dim1, dim2))
    rows, cols = shape[a], shape[b]
    if a == b or not (isinstance(rows, int) and isinstance(cols, int)):
        raise DlgShapeError(f"diagonal: dims {dim1} and {dim2} of shape {list(shape)} must be "
                            "two static axes")
    return a, b, max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))


def _diagonal_infer(x: TensorType, offset: int, dim1: int, dim2: int) -> TensorType:
    a, b, n = _diagonal_axes(x.shape, offset, dim1, dim2)
    return x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in (a, b)) + (n,))


def _diagonal_decompose(b, x, offset: int, dim1: int, dim2: int):
    """The two axes moved last and flattened, read at the diagonal's flat positions."""
    t = b.type_of(x)
    a, c, n = _diagonal_axes(t.shape, offset, dim1, dim2)
    rest = [i for i in range(t.rank) if i not in (a, c)]
    cols = t.shape[c]
    flat = b.reshape(b.transpose(x, perm=(*rest, a, c)),
                     shape=(*(t.shape[i] for i in rest), t.shape[a] * cols))
    i = np.arange(n)
    positions = (i + max(-offset, 0)) * cols + i + max(offset, 0)
    return b.take(flat, b.constant(positions, DType.i64), axis=len(rest))


def diagonal_view(x: np.ndarray, offset: int, dim1: int, dim2: int) -> np.ndarray:
    """The diagonal as a writable NumPy view of x (np.diagonal's is read-only): from its first
    element, x's memory stepped by the two axes' strides at once."""
    a, b, n = _diagonal_axes(x.shape, offset, dim1, dim2)
    corner = [slice(None)] * x.ndim
    corner[a], corner[b] = slice(max(-offset, 0), None), slice(max(offset, 0), None)
    rest = [i for i in range(x.ndim) if i not in (a, b)]
    return np.lib.stride_tricks.as_strided(
        x[tuple(corner)], (*(x.shape[i] for i in rest), n),
        (*(x.strides[i] for i in rest), x.strides[a] + x.strides[b]))


DIAGONAL = defop("diagonal", ("x",), _diagonal_infer,
                 attrs={"offset": Attr("int", 0), "dim1": Attr("int", 0), "dim2": Attr("int", 1)},
                 decompose=_diagonal_decompose, traits={Trait.MOVEMENT},
                 doc="The offset diagonal of the matrices in axes dim1 and dim2, as a last axis "
                     "(torch.diagonal).")
