"""Gathers and scatters along one axis with an index of the input's rank (PyTorch's gather,
scatter_add, scatter, index_add).

`gather` reads out[i] = x[i with i[axis] replaced by index[i]]; the output has the index's shape,
and on every other axis the index may be shorter than x (it reads x's leading part, as in
PyTorch). Its transpose `scatter_add_along` adds src[i] into x at the same positions: two
primitives, each the other's VJP, lowered as an expression (gather) and as a scatter kernel.
`scatter` (overwrite) and `index_add` are decompositions: a mask from a scatter_add of ones, then
`where`; and take's transpose (`scatter_add`, shape.py) added to x. Index values must lie in
0..dim-1: the references refuse the rest, compiled code clamps them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    INTS,
    NUMERIC,
    check_indices,
    normalize_axis,
    require_dtype,
    same_dtype,
    scalar,
    zeros_like,
)
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.shapes import Dim
from dlg.ir.types import TensorType

_AXIS = {"axis": Attr("int")}


def _fits(i: Dim, n: Dim) -> bool:
    """An index dim no larger than x's (symbolic dims must be equal)."""
    return i == n or (isinstance(i, int) and isinstance(n, int) and i <= n)


def along_axis(op: str, x: TensorType, index: TensorType, axis: int) -> int:
    """The normalised axis of a gather or scatter of `x` by `index`, after checking the index:
    integer, x's rank, and no larger than x off the axis."""
    require_dtype(op, index, INTS, "index")
    if x.rank == 0 or index.rank != x.rank:
        raise DlgShapeError(f"{op}: index {index} must have the rank of x {x} (at least 1)")
    a = normalize_axis(op, axis, x.rank)
    for d, (i, n) in enumerate(zip(index.shape, x.shape)):
        if d != a and not _fits(i, n):
            raise DlgShapeError(f"{op}: index {index} is larger than x {x} on axis {d}")
    return a


def _positions(x: np.ndarray, index: np.ndarray, axis: int, op: str) -> tuple[Any, ...]:
    """NumPy's index tuple of the elements of `x` that `index` names along `axis`."""
    a = axis % x.ndim
    check_indices(op, index, x.shape[a], a)
    where: list[Any] = list(np.indices(index.shape, sparse=True))
    where[a] = index
    return tuple(where)


# ---- gather -----------------------------------------------------------------------------------
def _gather_infer(x: TensorType, index: TensorType, axis: int) -> TensorType:
    along_axis("gather", x, index, axis)
    return x.with_shape(index.shape)


def _gather_vjp(b: Any, n: Any, g: Any) -> tuple[Any, None]:
    x, index = n.inputs
    return b.scatter_add_along(zeros_like(b, x), index, g, axis=n.attrs["axis"]), None


GATHER = defop("gather", ("x", "index"), _gather_infer, attrs=_AXIS,
               ref=lambda x, index, axis: x[_positions(x, index, axis, "gather")],
               vjp=_gather_vjp, traits={Trait.MOVEMENT},
               doc="out[i] = x[i with i[axis] = index[i]] (torch.gather): a primitive, because "
                   "a decomposition would compare every index with every position.")


# ---- scatter_add_along ------------------------------------------------------------------------
def _scatter_add_infer(x: TensorType, index: TensorType, src: TensorType, axis: int
                       ) -> TensorType:
    along_axis("scatter_add_along", x, index, axis)
    same_dtype("scatter_add_along", x, src)
    require_dtype("scatter_add_along", x, NUMERIC, "x")
    if src.shape != index.shape:
        raise DlgShapeError(f"scatter_add_along: src {src} must have the shape of index {index}")
    return x


def _scatter_add_ref(x: np.ndarray, index: np.ndarray, src: np.ndarray, axis: int
                     ) -> np.ndarray:
    out = x.copy()
    np.add.at(out, _positions(x, index, axis, "scatter_add_along"), src)
    return out


SCATTER_ADD_ALONG = defop(
    "scatter_add_along", ("x", "index", "src"), _scatter_add_infer, attrs=_AXIS,
    ref=_scatter_add_ref, traits={Trait.MOVEMENT, Trait.OWN_KERNEL},
    vjp=lambda b, n, g: (g, None, b.gather(g, n.inputs[1], axis=n.attrs["axis"])),
    doc="gather's transpose (torch.scatter_add): x plus each src[i] added at x[i with i[axis] = "
        "index[i]]; repeated positions add up.")


# ---- scatter (overwrite) ----------------------------------------------------------------------
def _scatter_infer(x: TensorType, index: TensorType, src: TensorType, axis: int) -> TensorType:
    along_axis("scatter", x, index, axis)
    same_dtype("scatter", x, src)
    if src.rank != 0 and src.shape != index.shape:
        raise DlgShapeError(f"scatter: src {src} must have the shape of index {index}, or be a "
                            "scalar")
    return x


def _scatter_decompose(b: Any, x: Any, index: Any, src: Any, axis: int) -> Any:
    """where(some index names this position, the scattered value, x). A scalar src is written
    as is; a tensor src is scattered with scatter_add_along (bools as int32), so repeated
    positions, where PyTorch keeps one of the values, add up here."""
    t, i32 = b.type_of(x), DType.i32
    zeros = b.full(shape=t.shape, value=0.0, dtype=i32)
    ones = b.full(shape=b.type_of(index).shape, value=1.0, dtype=i32)
    hit = b.gt(b.scatter_add_along(zeros, index, ones, axis=axis), scalar(b, 0.0, zeros))
    if b.type_of(src).rank == 0:
        return b.where(hit, src, x)
    if t.dtype == DType.bool:
        flags = b.scatter_add_along(zeros, index, b.cast(src, dtype=i32), axis=axis)
        return b.where(hit, b.gt(flags, scalar(b, 0.0, zeros)), x)
    return b.where(hit, b.scatter_add_along(zeros_like(b, x), index, src, axis=axis), x)


SCATTER = defop("scatter", ("x", "index", "src"), _scatter_infer, attrs=_AXIS,
                decompose=_scatter_decompose, traits={Trait.MOVEMENT},
                doc="x with src[i] (or the scalar src) written at x[i with i[axis] = index[i]] "
                    "(torch.scatter).")


# ---- index_add --------------------------------------------------------------------------------
def _index_add_infer(x: TensorType, index: TensorType, source: TensorType, axis: int,
                     alpha: float) -> TensorType:
    require_dtype("index_add", index, INTS, "index")
    same_dtype("index_add", x, source)
    require_dtype("index_add", x, NUMERIC, "x")
    if index.rank != 1 or x.rank == 0:
        raise DlgShapeError(f"index_add: index {index} must be 1-d and x {x} at least 1-d")
    a = normalize_axis("index_add", axis, x.rank)
    if source.shape != x.shape[:a] + index.shape + x.shape[a + 1:]:
        raise DlgShapeError(f"index_add: source {source} must be x {x} with axis {a} as long as "
                            f"index {index}")
    return x


def _index_add_decompose(b: Any, x: Any, index: Any, source: Any, axis: int, alpha: float
                         ) -> Any:
    if alpha != 1:
        source = b.mul(source, scalar(b, alpha, source))
    return b.add(x, b.scatter_add(source, index, axis=axis, shape=b.type_of(x).shape))


INDEX_ADD = defop("index_add", ("x", "index", "source"), _index_add_infer,
                  attrs={**_AXIS, "alpha": Attr("float", 1.0)}, decompose=_index_add_decompose,
                  traits={Trait.MOVEMENT},
                  doc="x plus alpha times the slices of source added at positions index along "
                      "axis (torch.index_add): take's transpose added to x.")
