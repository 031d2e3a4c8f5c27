"""PyTorch's ops whose result shape depends on the data: `x[mask]`, masked_select, nonzero,
argwhere, one-argument where, unique, unique_consecutive and bincount. Eager only: they read
the values here, so a traced or .dlg graph (static shapes, symbolic batch) cannot hold them,
and tracing one is a clear error naming what to use instead.

What is selected is found with NumPy; the values are then gathered with the registry's `take`
at those constant positions, so `x[mask]` and masked_select carry gradients like any gather.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from dlg import foreign
from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, apply, call, foreign_array
from dlg.ir.dtypes import DType
from dlg.ir.ops.shape import RESHAPE, TAKE


def values_of(name: str, x: Any) -> np.ndarray:
    """The data of `x` (a tensor, array or list); while tracing, the error that says why
    `name` cannot be traced."""
    if not isinstance(x, Tensor):
        return foreign_array(x) if foreign.is_foreign(x) else np.asarray(x)
    try:
        return x.numpy_view()
    except engine.TraceHazard:
        raise DlgValueError(f"{name}'s result has a shape that depends on the data, which a "
                            f"traced graph cannot have (its shapes are fixed or symbolic); use "
                            f"where(mask, x, 0), masked_fill or a fixed-size topk instead",
                            engine.caller_span()) from None


def byte_masks(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """`items` with each uint8 tensor or array read as the bool mask `item != 0`, as torch still
    reads them (with its deprecation warning; NumPy would take the bytes as positions)."""
    if not any(isinstance(i, (Tensor, np.ndarray)) and i.dtype in (DType.u8, np.uint8)
               for i in items):
        return items
    warnings.warn("indexing with dtype uint8 is deprecated (as in torch); use a bool mask",
                  UserWarning, stacklevel=3)
    return tuple(i != 0 if isinstance(i, (Tensor, np.ndarray)) and i.dtype in (DType.u8, np.uint8)
                 else i for i in items)


def mask_positions(items: tuple[Any, ...], shape: tuple[Any, ...]) -> tuple[Any, ...]:
    """`items` of `x[items]` with each boolean mask (a tensor with data, or a nested array or
    list of bools; a uint8 one too, `byte_masks`) replaced by the positions of its true
    elements, one int64 array per axis it covers, which the indexing gathers as neighbouring
    tensor indices: torch's meaning."""
    items = byte_masks(items)
    masks = [_is_mask(item) for item in items]
    if not any(masks):
        return items
    covers = [np.ndim(values_of("x[mask]", item)) if mask else
              0 if item is None or item is Ellipsis else 1 for item, mask in zip(items, masks)]
    out: list[Any] = []
    for k, (item, mask) in enumerate(zip(items, masks)):
        if not mask:
            out.append(item)
            continue
        m = values_of("x[mask]", item)
        axis = len(shape) - sum(covers[k:]) if Ellipsis in items[:k] else sum(covers[:k])
        if axis < 0 or tuple(shape[axis:axis + m.ndim]) != m.shape:
            raise DlgShapeError(f"the shape of the mask {list(m.shape)} does not match the "
                                f"tensor's {list(shape)} at axis {axis}", engine.caller_span())
        out.extend(np.nonzero(m))
    return tuple(out)


def _is_mask(item: Any) -> bool:
    """A bool tensor, or a nested list or array of bools (a flat one is dlg.functions' own
    static index, read the same way in .dlg)."""
    if isinstance(item, Tensor):
        return item.dtype == DType.bool
    if isinstance(item, (list, tuple, np.ndarray)):
        return np.ndim(item) > 1 and np.asarray(item).dtype == np.bool_
    return False


def masked_select(x: Tensor, mask: Any) -> Tensor:
    """The elements of x where the mask (broadcast with x) is true, as a 1-d tensor."""
    m = values_of("masked_select", mask)
    if m.dtype != np.bool_:
        raise DlgTypeError(f"masked_select: mask must be a bool tensor, got {m.dtype}",
                           engine.caller_span())
    try:
        shape = np.broadcast_shapes(tuple(x.shape), m.shape)
    except ValueError:
        raise DlgShapeError(f"masked_select: the mask {list(m.shape)} does not broadcast with "
                            f"{list(x.shape)}", engine.caller_span()) from None
    whole = call("broadcast_to", x, shape) if tuple(x.shape) != shape else x
    flat = apply(RESHAPE, whole, shape=(int(np.prod(shape)),))
    return apply(TAKE, flat, Tensor.of(np.flatnonzero(np.broadcast_to(m, shape))), axis=0)


def nonzero(x: Any, *, as_tuple: bool = False) -> Any:
    """The positions of the non-zero elements: [count, ndim] int64, or one 1-d tensor per axis
    (`as_tuple`, one-argument where's result)."""
    values = values_of("nonzero", x)
    positions = np.nonzero(values) if values.ndim else np.nonzero(values.reshape(1))[:0]
    if as_tuple:
        return tuple(Tensor.of(p.astype(np.int64)) for p in positions)
    count = np.count_nonzero(values)
    return Tensor.of(np.stack(positions, axis=1).astype(np.int64) if positions else
                  np.zeros((count, 0), np.int64))


def argwhere(x: Any) -> Tensor:
    return nonzero(x)


def unique(x: Any, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim: int | None = None) -> Any:
    """The distinct values (sorted, as torch's CPU unique always is), with each element's
    position among them and each value's count when asked; along `dim`, distinct slices."""
    values = values_of("unique", x)
    axis = None if dim is None else _axis("unique", dim, values.ndim)
    kept, inverse, counts = np.unique(values, return_inverse=True, return_counts=True, axis=axis)
    return _unique_result(kept, inverse, counts, values, axis, return_inverse, return_counts)


def unique_consecutive(x: Any, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None) -> Any:
    """Each run of equal consecutive values (or slices along `dim`) once."""
    values = values_of("unique_consecutive", x)
    axis = None if dim is None else _axis("unique_consecutive", dim, values.ndim)
    runs = values.reshape(-1) if axis is None else np.moveaxis(values, axis, 0)
    starts_run = np.ones(len(runs), bool)
    changed = runs[1:] != runs[:-1]
    starts_run[1:] = changed.reshape(len(changed), -1).any(axis=1) if changed.ndim > 1 else changed
    starts = np.flatnonzero(starts_run)
    kept = runs[starts] if axis is None else np.moveaxis(runs[starts], 0, axis)
    counts = np.diff(np.append(starts, len(runs)))
    return _unique_result(kept, np.cumsum(starts_run) - 1, counts, values, axis,
                          return_inverse, return_counts)


def _unique_result(kept: np.ndarray, inverse: np.ndarray, counts: np.ndarray,
                   values: np.ndarray, axis: int | None, return_inverse: bool,
                   return_counts: bool) -> Any:
    """torch's result: the values alone, or a tuple with the inverse (the input's shape, or
    one per slice along `axis`) and the counts."""
    out: list[Tensor] = [Tensor.of(kept)]
    if return_inverse:
        shape = values.shape if axis is None else (-1,)
        out.append(Tensor.of(inverse.reshape(shape).astype(np.int64)))
    if return_counts:
        out.append(Tensor.of(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(x: Any, weights: Any = None, minlength: int = 0) -> Tensor:
    """How often each non-negative int occurs (the sum of `weights` there, when given: f32
    weights give f32, others f64, as in torch)."""
    values = values_of("bincount", x)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise DlgTypeError(f"bincount: needs a 1-d tensor of ints, got {values.dtype} of "
                           f"shape {list(values.shape)}", engine.caller_span())
    if values.size and values.min() < 0:
        raise DlgValueError("bincount: the values must not be negative", engine.caller_span())
    if weights is None:
        return Tensor.of(np.bincount(values, minlength=minlength).astype(np.int64))
    w = values_of("bincount", weights)
    if w.shape != values.shape:
        raise DlgShapeError(f"bincount: weights {list(w.shape)} must match the input "
                            f"{list(values.shape)}", engine.caller_span())
    dtype = np.float32 if w.dtype == np.float32 else np.float64
    return Tensor.of(np.bincount(values, w, minlength).astype(dtype))


def _axis(name: str, dim: int, ndim: int) -> int:
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise DlgShapeError(f"{name}: dim {dim} is out of range for a {ndim}-d tensor",
                            engine.caller_span())
    return dim % max(ndim, 1)
