"""ONNX import entries: shapes, movement, indexing, padding and constants.

Where ONNX takes a shape, axes, pads or slice bounds as an input (from opset 5/10/11/13 on),
the entry reads it as a static value (`OnnxNode.static`); on static data (shape arithmetic)
the entries compute with NumPy, object arrays carrying symbolic dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.functions.gather import gather
from dlg.functions.indexing import index
from dlg.functions.padding import pad
from dlg.functions.shape import broadcast_to, reshape, split, tile
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, CAST, LT, WHERE
from dlg.ir.ops.nn import ONE_HOT
from dlg.ir.ops.shape import CONCAT, SQUEEZE, TAKE, TRANSPOSE, UNSQUEEZE
from dlg.ir.ops.source import FULL
from dlg.ir.shapes import numel
from dlg.onnx.node import Handler, OnnxNode, elem_dtype
from dlg.onnx.types import onnx_module

BIG = 2 ** 62  # slice bounds beyond this mean "to the end" (exporters write INT64_MAX)


def _dims(values: list[Any]) -> np.ndarray:
    """Dims as a static array: int64, or object when one is symbolic."""
    if all(isinstance(d, int) for d in values):
        return np.asarray(values, np.int64)
    out = np.empty(len(values), object)
    out[:] = values
    return out


# ---- constants and shapes ---------------------------------------------------------------------
def _constant(n: OnnxNode) -> Any:
    for key, kind in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                      ("value_int", np.int64), ("value_ints", np.int64)):
        if key in n.attrs:
            return np.asarray(n.attrs[key], kind)
    raise n.error(f"only tensor and number constants are supported, not {sorted(n.attrs)}")


def _constant_of_shape(n: OnnxNode) -> Any:
    """A known array, or for a symbolic shape (an RNN's zero state of batch N) a `full`."""
    value = n.attr("value", np.zeros(1, np.float32)).reshape(-1)
    shape = n.ints(0, "shape")
    if all(isinstance(d, int) for d in shape):
        return np.full(shape, value[0], value.dtype)
    dtype = elem_dtype(onnx_module().helper.np_dtype_to_tensor_dtype(value.dtype),
                       "ConstantOfShape's value")
    return n.F.emit(FULL, shape=tuple(shape), value=float(value[0]), dtype=dtype)


def _shape(n: OnnxNode) -> Any:
    dims = list(n.type(0).shape) if not n.is_static(0) else list(n.statics()[0].shape)
    start, end = n.attr("start", 0), n.attr("end", len(dims))
    return _dims(dims[start:end])


def _size(n: OnnxNode) -> Any:
    size = numel(n.type(0).shape)
    return np.asarray(size, np.int64 if isinstance(size, int) else object)


def _range(n: OnnxNode) -> Any:
    start, limit, delta = (n.static(i, what) for i, what in enumerate(("start", "limit", "delta")))
    return np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype)


def _identity(n: OnnxNode) -> Any:
    return n.statics()[0] if n.all_static() else n.x(0)


# ---- reshaping --------------------------------------------------------------------------------
def _reshape(n: OnnxNode) -> Any:
    shape = n.ints(1, "shape")
    if n.is_static(0):
        data = n.statics()[0]
        src = list(data.shape)
    else:
        data, src = None, list(n.type(0).shape)
    if not n.attr("allowzero", 0):  # 0 copies the input's dim there
        shape = [src[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(shape)]
    if data is not None:
        return data.reshape([int(d) for d in shape])
    return reshape(n.F, n.x(0), tuple(shape))


def _flatten(n: OnnxNode) -> Any:
    t = n.type(0)
    axis = n.attr("axis", 1)
    axis = axis + t.rank if axis < 0 else axis
    return reshape(n.F, n.x(0), (numel(t.shape[:axis]), numel(t.shape[axis:])))


def _depth_to_space(n: OnnxNode) -> Any:
    """[N, C, H, W] -> [N, C/b^2, H*b, W*b]: depth-column-row (DCR) or column-row-depth (CRD)
    order of the channels."""
    b, t = n.attr("blocksize"), n.type(0)
    N, C, H, W = t.shape  # noqa: N806
    if n.attr("mode", "DCR") == "DCR":
        y = reshape(n.F, n.x(0), (N, b, b, C // (b * b), H, W))
        y = n.F.emit(TRANSPOSE, y, perm=(0, 3, 4, 1, 5, 2))
    else:
        y = reshape(n.F, n.x(0), (N, C // (b * b), b, b, H, W))
        y = n.F.emit(TRANSPOSE, y, perm=(0, 1, 4, 2, 5, 3))
    return reshape(n.F, y, (N, C // (b * b), H * b, W * b))


def _space_to_depth(n: OnnxNode) -> Any:
    """DepthToSpace's inverse, in the same channel orders."""
    b, t = n.attr("blocksize"), n.type(0)
    N, C, H, W = t.shape  # noqa: N806
    y = reshape(n.F, n.x(0), (N, C, H // b, b, W // b, b))
    perm = (0, 3, 5, 1, 2, 4) if n.attr("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    y = n.F.emit(TRANSPOSE, y, perm=perm)
    return reshape(n.F, y, (N, C * b * b, H // b, W // b))


def _transpose(n: OnnxNode) -> Any:
    perm = n.attr("perm") or list(reversed(range(n.type(0).rank)))
    return n.F.emit(TRANSPOSE, n.x(0), perm=tuple(perm))


def _axes_of(n: OnnxNode, what: str) -> list[int] | None:
    """Squeeze/Unsqueeze axes: an attribute before opset 13, then an input."""
    if n.opset < 13:
        axes = n.attr("axes")
    else:
        axes = n.ints(1, what) if n.has(1) else None
    return None if axes is None else [int(a) for a in axes]


def _squeeze(n: OnnxNode) -> Any:
    axes = _axes_of(n, "axes")
    if n.is_static(0):
        data = n.statics()[0]
        return np.squeeze(data, axis=None if axes is None else tuple(axes))
    rank = n.type(0).rank
    return n.F.emit(SQUEEZE, n.x(0), axes=None if axes is None else tuple(a % rank for a in axes))


def _unsqueeze(n: OnnxNode) -> Any:
    axes = _axes_of(n, "axes") or []
    if n.is_static(0):
        return np.expand_dims(n.statics()[0], tuple(axes))
    rank = n.type(0).rank + len(axes)
    return n.F.emit(UNSQUEEZE, n.x(0), axes=tuple(sorted(a % rank for a in axes)))


def _concat(n: OnnxNode) -> Any:
    axis = n.attr("axis", 0)
    if n.all_static():
        return np.concatenate(n.statics(), axis=axis)
    return n.F.emit(CONCAT, *n.xs(), axis=axis % n.type(0).rank)


def _split(n: OnnxNode) -> Any:
    t = n.type(0)
    axis = n.attr("axis", 0) % t.rank
    if n.opset < 13:
        sizes = n.attr("split")
    else:
        sizes = n.ints(1, "split") if n.has(1) else None
    if sizes is None:
        parts = n.attr("num_outputs", n.num_outputs)
        dim = t.shape[axis]
        if isinstance(dim, int) and dim % parts:  # opset 18: the last part is smaller
            size = -(-dim // parts)
            sizes = [min(size, dim - i * size) for i in range(parts)]
        else:
            return split(n.F, n.x(0), parts, axis)
    return split(n.F, n.x(0), tuple(int(s) for s in sizes), axis)


def _expand(n: OnnxNode) -> Any:
    """Broadcast both ways: the input's dims and the shape's, aligned at the right."""
    shape, t = n.ints(1, "shape"), n.type(0)
    rank = max(len(shape), t.rank)
    mine = [1] * (rank - t.rank) + list(t.shape)
    want = [1] * (rank - len(shape)) + list(shape)
    out = tuple(m if isinstance(w, int) and w == 1 else w for m, w in zip(mine, want))
    return broadcast_to(n.F, n.x(0), out)


def _tile(n: OnnxNode) -> Any:
    return tile(n.F, n.x(0), tuple(n.ints(1, "repeats")))


# ---- indexing ---------------------------------------------------------------------------------
def _slice(n: OnnxNode) -> Any:
    if n.opset < 10:
        starts, ends, axes, steps = n.attr("starts"), n.attr("ends"), n.attr("axes"), None
    else:
        starts, ends = n.ints(1, "starts"), n.ints(2, "ends")
        axes = n.ints(3, "axes") if n.has(3) else None
        steps = n.ints(4, "steps") if n.has(4) else None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if n.is_static(0):
        data = n.statics()[0]
        items = [slice(None)] * data.ndim
        for a, s, e, st in zip(axes, starts, ends, steps):
            items[a] = slice(s, e, st)
        return data[tuple(items)]
    t = n.type(0)
    items = [slice(None)] * t.rank
    for a, s, e, st in zip(axes, starts, ends, steps):
        s = None if isinstance(s, int) and abs(s) >= BIG else s
        e = None if isinstance(e, int) and abs(e) >= BIG else e
        items[a % t.rank] = slice(s, e, st)
    return index(n.F, n.x(0), items)


def _gather(n: OnnxNode) -> Any:
    axis = n.attr("axis", 0)
    if n.all_static():
        data, indices = n.statics()
        return np.take(data, indices.astype(np.int64), axis=axis)
    t = n.type(0)
    axis %= t.rank
    if n.is_static(1):  # negative indices count from the end
        indices = n.static(1, "indices").astype(np.int64)
        dim = t.shape[axis]
        if (indices < 0).any() and isinstance(dim, int):
            indices = np.where(indices < 0, indices + dim, indices)
        return n.F.emit(TAKE, n.x(0), n.F.lift(indices, DType.i64), axis=axis)
    return n.F.emit(TAKE, n.x(0), _from_end(n, n.x(1), t.shape[axis]), axis=axis)


def _from_end(n: OnnxNode, indices: Any, dim: Any) -> Any:
    """Negative indices counted from the end of an axis of size `dim` (known)."""
    if not isinstance(dim, int):
        return indices
    zero = n.F.lift(0, n.F.type_of(indices).dtype)
    size = n.F.lift(dim, n.F.type_of(indices).dtype)
    return n.F.emit(WHERE, n.F.emit(LT, indices, zero), n.F.emit(ADD, indices, size), indices)


def _gather_elements(n: OnnxNode) -> Any:
    t = n.type(0)
    axis = n.attr("axis", 0) % t.rank
    return gather(n.F, n.x(0), axis, _from_end(n, n.x(1), t.shape[axis]))


def _one_hot(n: OnnxNode) -> Any:
    """values[1] where the new axis (at `axis`) equals the index (negative ones counted from
    the end), values[0] elsewhere."""
    depth = int(n.static(1, "depth").reshape(-1)[0])
    off, on = n.static(2, "values").reshape(-1)[:2]
    dtype = elem_dtype(onnx_module().helper.np_dtype_to_tensor_dtype(np.asarray(on).dtype),
                       "OneHot's values")
    indices = n.F.emit(CAST, n.x(0), dtype=DType.i64)
    indices = _from_end(n, indices, depth)
    hit = n.F.emit(ONE_HOT, indices, num_classes=depth, dtype=DType.bool)
    rank = n.type(0).rank + 1
    axis = n.attr("axis", -1) % rank
    if axis != rank - 1:
        perm = [*range(axis), rank - 1, *range(axis, rank - 1)]
        hit = n.F.emit(TRANSPOSE, hit, perm=tuple(perm))
    return n.F.emit(WHERE, hit, n.F.lift(on.item(), dtype), n.F.lift(off.item(), dtype))


def _trilu(n: OnnxNode) -> Any:
    """x where column - row >= k (upper) or <= k (lower) in the last two axes, else 0."""
    t = n.type(0)
    k = int(n.static(1, "k").reshape(-1)[0]) if n.has(1) else 0
    rows, cols = t.shape[-2:]
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise n.error(f"Trilu needs known sizes of the last two axes, got {t}")
    offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = offset >= k if n.attr("upper", 1) else offset <= k
    return n.F.emit(WHERE, n.F.lift(keep, DType.bool), n.x(0),
                    n.F.lift(0, t.dtype))


# ---- padding ----------------------------------------------------------------------------------
PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
             "wrap": "circular"}


def _pad(n: OnnxNode) -> Any:
    """pads are [begin of each axis..., end of each axis...] (only `axes`' from opset 18)."""
    t = n.type(0)
    if n.opset < 11:
        pads, value, axes = n.attr("pads"), n.attr("value", 0.0), None
    else:
        pads = n.ints(1, "pads")
        value = n.static(2, "constant_value").reshape(-1)[0].item() if n.has(2) else 0.0
        axes = n.ints(3, "axes") if n.has(3) else None
    axes = [a % t.rank for a in axes] if axes is not None else list(range(t.rank))
    pairs = [(0, 0)] * t.rank
    for k, a in enumerate(axes):
        pairs[a] = (int(pads[k]), int(pads[k + len(axes)]))
    mode = n.attr("mode", "constant")
    if mode not in PAD_MODES:
        raise n.error(f"pad mode {mode!r} is not one of {sorted(PAD_MODES)}")
    return pad(n.F, n.x(0), pairs, PAD_MODES[mode], float(value) if mode == "constant" else None)


OPS: dict[str, Handler] = {
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Shape": _shape,
    "Size": _size, "Range": _range, "Identity": _identity, "Reshape": _reshape,
    "Flatten": _flatten, "Transpose": _transpose, "DepthToSpace": _depth_to_space,
    "SpaceToDepth": _space_to_depth,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split,
    "Expand": _expand, "Tile": _tile, "Slice": _slice, "Gather": _gather,
    "GatherElements": _gather_elements, "Pad": _pad, "OneHot": _one_hot, "Trilu": _trilu,
}
