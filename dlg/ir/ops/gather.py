"""Gathers and scatters along one axis with an index of the input's rank (PyTorch's gather,
scatter_add, scatter, index_add).

`gather` reads out[i] = x[i with i[axis] replaced by index[i]]; the output has the index's shape,
and on every other axis the index may be shorter than x (it reads x's leading part, as in
PyTorch). Its transpose `scatter_add_along` adds src[i] into x at the same positions: two
primitives, each the other's VJP, lowered as an expression (gather) and as a scatter kernel.
`scatter` (overwrite) is a scatter kernel too: it writes in index order, so the last of the
values written to one position stays. `index_add` is a decomposition: take's transpose
(`scatter_add`, shape.py) added to x. Index values must lie in
0..dim-1: the references refuse the rest, compiled code clamps them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.ops.common import (
    INDEX_INTS,
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
    require_dtype(op, index, INDEX_INTS, "index")
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
    if src.shape != index.shape:
        raise DlgShapeError(f"scatter: src {src} must have the shape of index {index}")
    return x


def _scatter_ref(x: np.ndarray, index: np.ndarray, src: np.ndarray, axis: int) -> np.ndarray:
    """The writes in index order (NumPy leaves the order of repeated assignments open): of the
    src elements written to one position, the last one stays, as in torch's CPU kernel."""
    out = x.copy()
    where = np.broadcast_arrays(*_positions(x, index, axis, "scatter"))
    flat = np.ravel_multi_index(where, x.shape).ravel()
    _, from_end = np.unique(flat[::-1], return_index=True)
    last = flat.size - 1 - from_end
    out.flat[flat[last]] = src.ravel()[last]
    return out


def _scatter_vjp(b: Any, n: Any, g: Any) -> tuple[Any, None, Any]:
    """x's gradient where nothing was written; every src element's at the position it names,
    overwritten or not (torch's rule)."""
    _, index, _ = n.inputs
    axis = n.attrs["axis"]
    nothing = b.full(shape=b.type_of(index).shape, value=0.0, dtype=b.type_of(g).dtype)
    return b.scatter(g, index, nothing, axis=axis), None, b.gather(g, index, axis=axis)


SCATTER = defop(
    "scatter", ("x", "index", "src"), _scatter_infer, attrs=_AXIS, ref=_scatter_ref,
    vjp=_scatter_vjp, traits={Trait.MOVEMENT, Trait.OWN_KERNEL},
    doc="x with each src[i] written at x[i with i[axis] = index[i]] (torch.scatter), in index "
        "order: the last write to a position wins. A primitive, because no decomposition into "
        "scatter_add_along keeps one of the values written to one position.")


# ---- index_add --------------------------------------------------------------------------------
def _index_add_infer(x: TensorType, index: TensorType, source: TensorType, axis: int,
                     alpha: float) -> TensorType:
    require_dtype("index_add", index, INDEX_INTS, "index")
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
