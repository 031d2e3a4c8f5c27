"""Ordering and scans along one axis: sort (values and indices), topk, cumsum, cumprod.

Orders are PyTorch's: a sort is stable (ties keep their input order, ascending and descending
alike) and NaN counts as larger than every number (last ascending, first descending, as torch
places it). `sort` and the scans are primitives with kernels of their own (one row at a time);
`topk` is the first k of a sort. Scans run in the input's dtype; the user-facing functions
accumulate f16/f32 in a wider float, as PyTorch does on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgValueError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import NUMERIC, normalize_axis, require_dtype, scalar, zeros_like
from dlg.ir.ops.complexes import COMPLEX
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType

ORDERED = NUMERIC + (DType.bool,)


def _axis(op: str, x: TensorType, axis: int) -> int:
    if x.rank == 0:
        raise DlgShapeError(f"{op}: needs an axis to run along, got the scalar {x}")
    return normalize_axis(op, axis, x.rank)


# ---- sort -------------------------------------------------------------------------------------
def _sort_infer(x: TensorType, axis: int, descending: bool) -> tuple[TensorType, TensorType]:
    require_dtype("sort", x, ORDERED)
    _axis("sort", x, axis)
    return x, TensorType(DType.i64, x.shape)


def stable_order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """The positions that sort `x` along `axis`, ties in input order, NaN largest."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # reversed input, stable ascending, reversed again: descending with ties in input order
    n = x.shape[axis]
    backwards = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return n - 1 - np.flip(backwards, axis)


def _sort_ref(x: np.ndarray, axis: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    order = stable_order(x, axis, descending).astype(np.int64)
    return np.take_along_axis(x, order, axis=axis), order


def _sort_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """The values' cotangent put back where each value came from: read at the inverse
    permutation (the order that sorts the indices)."""
    g_values = g[0]
    _, indices = n.outs
    axis = n.attrs["axis"]
    _, inverse = b.sort(indices, axis=axis, descending=False)
    return (b.gather(g_values, inverse, axis=axis),)


SORT = defop("sort", ("x",), _sort_infer, attrs={"axis": Attr("int", -1),
                                                "descending": Attr("bool", False)},
             ref=_sort_ref, vjp=_sort_vjp,
             traits={Trait.OWN_KERNEL, Trait.MULTI_OUTPUT},
             doc="(values, indices) along `axis`: stable, NaN largest (PyTorch's order).")


# ---- topk -------------------------------------------------------------------------------------
def _topk_infer(x: TensorType, k: int, axis: int, largest: bool
                ) -> tuple[TensorType, TensorType]:
    require_dtype("topk", x, ORDERED)
    a = _axis("topk", x, axis)
    size = x.shape[a]
    if k < 0 or isinstance(size, int) and k > size:
        raise DlgValueError(f"topk: k={k} is out of range for axis {axis} of size {size} of {x}")
    shape = x.shape[:a] + (k,) + x.shape[a + 1:]
    return x.with_shape(shape), TensorType(DType.i64, shape)


def _topk_decompose(b: Any, x: Any, k: int, axis: int, largest: bool) -> tuple[Any, Any]:
    values, indices = b.sort(x, axis=axis, descending=largest)
    first = {"axes": (axis,), "starts": (0,), "stops": (k,), "steps": (1,)}
    return b.slice(values, **first), b.slice(indices, **first)


TOPK = defop("topk", ("x",), _topk_infer,
             attrs={"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("bool", True)},
             decompose=_topk_decompose, traits={Trait.MULTI_OUTPUT},
             doc="The k largest (or smallest) along `axis`, in order: a sort's first k.")


# ---- cumulative sum and product ---------------------------------------------------------------
def _scan_infer(name: str, allowed: tuple[DType, ...] = NUMERIC) -> Any:
    def infer(x: TensorType, axis: int, **attrs: Any) -> TensorType:
        require_dtype(name, x, allowed)
        _axis(name, x, axis)
        return x
    return infer


def _cumsum_ref(x: np.ndarray, axis: int, reverse: bool) -> np.ndarray:
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=x.dtype), axis).copy()
    return np.cumsum(x, axis=axis, dtype=x.dtype)


CUMSUM = defop("cumsum", ("x",), _scan_infer("cumsum", NUMERIC + COMPLEX),
               attrs={"axis": Attr("int"), "reverse": Attr("bool", False)}, ref=_cumsum_ref,
               vjp=lambda b, n, g: (b.cumsum(g, axis=n.attrs["axis"],
                                             reverse=not n.attrs["reverse"]),),
               traits={Trait.OWN_KERNEL},
               doc="Running sums along `axis` (from the far end with `reverse`).")


def _cumprod_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """Exact with zeros in x, as PyTorch: before a row's first zero, sum_{i>=k} g_i out_i / x_k
    (x_k is not zero there); at the first zero, sum_{i>=k} g_i prod_{j<=i, j!=k} x_j, which is
    the cumprod of x with that zero made one; after it, zero (every product holds it)."""
    x, axis = n.inputs[0], n.attrs["axis"]
    zero = b.eq(x, zeros_like(b, x))
    seen = b.cumsum(b.cast(zero, dtype=DType.i64), axis=axis)
    before = b.eq(seen, b.full(shape=(), value=0, dtype=DType.i64))
    first = b.logical_and(zero, b.eq(seen, b.full(shape=(), value=1, dtype=DType.i64)))
    one = scalar(b, 1.0, x)
    at_before = b.div(b.cumsum(b.mul(g, n.out), axis=axis, reverse=True),
                      b.where(before, x, one))
    skipped = b.cumprod(b.where(first, one, x), axis=axis)
    at_first = b.cumsum(b.mul(g, skipped), axis=axis, reverse=True)
    return (b.where(before, at_before, b.where(first, at_first, zeros_like(b, x))),)


CUMPROD = defop("cumprod", ("x",), _scan_infer("cumprod"), attrs={"axis": Attr("int")},
                ref=lambda x, axis: np.cumprod(x, axis=axis, dtype=x.dtype), vjp=_cumprod_vjp,
                traits={Trait.OWN_KERNEL}, doc="Running products along `axis`.")
