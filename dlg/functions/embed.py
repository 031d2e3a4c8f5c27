"""torch's functions that write one tensor into a part of another (out of place), and the index
constructors around them: select_scatter, slice_scatter, diagonal_scatter, index_copy,
masked_scatter; tril_indices, triu_indices, combinations, cartesian_prod and unravel_index.

The scatters are one `scatter` at constant positions (select_scatter and a unit-step
slice_scatter a concatenation), so the gradient reaches the kept elements of the input and the
whole source, as in torch; masked_scatter numbers the mask's true elements by a running sum and
gathers the source there. The index constructors take static sizes and give constants.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.arrange import axis_of, gather, known_numel, known_size, meshgrid
from dlg.functions.front import Front
from dlg.functions.gather import scatter
from dlg.functions.shape import concat, movedim, reshape
from dlg.functions.sort import cumsum
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import broadcast_shapes
from dlg.ir.ops.arith import FLOOR_DIVIDE, REMAINDER
from dlg.ir.ops.elementwise import CAST, SUB, WHERE
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, SLICE, STACK, TAKE, UNSQUEEZE


def _same_dtype(F: Front, name: str, x: Any, src: Any) -> tuple[Any, Any]:
    x, src = tensor(F, x, f"{name}'s input"), tensor(F, src, f"{name}'s src")
    if F.type_of(x).dtype != F.type_of(src).dtype:
        raise DlgTypeError(f"{name}: input and src must be one dtype, got {F.type_of(x)} and "
                           f"{F.type_of(src)}")
    return x, src


def _scatter_at(F: Front, name: str, x: Any, src: Any, axis: int, positions: Any) -> Any:
    """x with src written at `positions` (constant ints) along `axis`: src's shape is x's with
    that axis len(positions)."""
    t, s = F.type_of(x), F.type_of(src)
    want = (*t.shape[:axis], len(positions), *t.shape[axis + 1:])
    if tuple(s.shape) != want:
        raise DlgShapeError(f"{name}: src {s} must have the shape {list(want)}")
    view = [1] * t.rank
    view[axis] = len(positions)
    index = F.lift(np.reshape(np.asarray(positions, np.int64), view).tolist(), DType.i64)
    return scatter(F, x, axis, F.emit(BROADCAST_TO, index, shape=s.shape), src)


def select_scatter(F: Front, x: Any, src: Any, axis: Any, index: Any) -> Any:
    """x with src put at x.select(axis, index)."""
    x, src = _same_dtype(F, "select_scatter", x, src)
    t = F.type_of(x)
    a = axis_of(F, t, axis, "select_scatter")
    n = known_size(t, a, "select_scatter")
    if not is_int(index) or not -n <= index < n:
        raise DlgValueError(f"select_scatter: index {index} is out of range for dim {a} of {t}")
    i = int(index) % n
    if F.type_of(src).shape != (*t.shape[:a], *t.shape[a + 1:]):
        raise DlgShapeError(f"select_scatter: src {F.type_of(src)} must have the shape of "
                            f"x.select({a}, {index})")
    parts = [_part(F, x, a, 0, i), F.emit(UNSQUEEZE, src, axes=(a,)), _part(F, x, a, i + 1, n)]
    return concat(F, [p for p in parts if p is not None], a)


def _part(F: Front, x: Any, axis: int, start: int, stop: int) -> Any:
    if stop <= start:
        return None
    return F.emit(SLICE, x, axes=(axis,), starts=(start,), stops=(stop,), steps=(1,))


def slice_scatter(F: Front, x: Any, src: Any, axis: Any = 0, start: Any = None, end: Any = None,
                  step: Any = 1) -> Any:
    """x with src put at x[start:end:step] along `axis`."""
    x, src = _same_dtype(F, "slice_scatter", x, src)
    t = F.type_of(x)
    a = axis_of(F, t, axis, "slice_scatter")
    n = known_size(t, a, "slice_scatter")
    for v, what in ((start, "start"), (end, "end"), (step, "step")):
        if v is not None and not is_int(v):
            raise DlgTypeError(f"slice_scatter: {what} must be an int, got {describe(F, v)}")
    if step is not None and step <= 0:
        raise DlgValueError(f"slice_scatter: step must be positive, got {step}")
    lo, hi, by = slice(start, end, step).indices(n)
    positions = list(range(lo, hi, by))
    if by == 1 and F.type_of(src).shape == (*t.shape[:a], len(positions), *t.shape[a + 1:]):
        parts = [_part(F, x, a, 0, lo), src if positions else None, _part(F, x, a, hi, n)]
        kept = [p for p in parts if p is not None]
        return concat(F, kept, a) if kept else x
    return _scatter_at(F, "slice_scatter", x, src, a, positions)


def diagonal_scatter(F: Front, x: Any, src: Any, offset: Any = 0, dim1: Any = 0,
                     dim2: Any = 1) -> Any:
    """x with src put on the diagonal x.diagonal(offset, dim1, dim2) (its last dim the
    diagonal's)."""
    x, src = _same_dtype(F, "diagonal_scatter", x, src)
    t = F.type_of(x)
    a, b = (axis_of(F, t, d, "diagonal_scatter") for d in (dim1, dim2))
    if a == b or not is_int(offset):
        raise DlgValueError("diagonal_scatter: dim1 and dim2 must differ, offset be an int")
    rows, cols = known_size(t, a, "diagonal_scatter"), known_size(t, b, "diagonal_scatter")
    r0, c0 = max(-offset, 0), max(offset, 0)
    length = max(min(rows - r0, cols - c0), 0)
    moved = movedim(F, x, [a, b], [-2, -1])
    batch = F.type_of(moved).shape[:-2]
    flat = reshape(F, moved, *batch, rows * cols)
    positions = [(r0 + i) * cols + c0 + i for i in range(length)]
    out = _scatter_at(F, "diagonal_scatter", flat, src, t.rank - 2, positions)
    return movedim(F, reshape(F, out, *batch, rows, cols), [-2, -1], [a, b])


def index_copy(F: Front, x: Any, axis: Any, index: Any, source: Any) -> Any:
    """x with the slices of source put at the positions of a 1-d index along `axis`."""
    x, source = _same_dtype(F, "index_copy", x, source)
    if F.type_of(x).rank == 0:  # as a 1-element vector
        out = index_copy(F, reshape(F, x, 1), axis, index, reshape(F, source, -1))
        return reshape(F, out)
    index = tensor(F, index, "index_copy's index")
    t, s, i = F.type_of(x), F.type_of(source), F.type_of(index)
    a = axis_of(F, t, axis, "index_copy")
    if i.rank > 1 or i.dtype not in (DType.i32, DType.i64):
        raise DlgTypeError(f"index_copy: index must be a 0-d or 1-d int64 tensor, got {i}")
    k = 1 if i.rank == 0 else i.shape[0]
    if s.rank != t.rank and not (t.rank == 0 or s.rank == t.rank - 1 and k == 1):
        raise DlgShapeError(f"index_copy: source {s} does not fit index {i} along dim {a} of "
                            f"{t}")
    if s.rank != t.rank:
        source = F.emit(UNSQUEEZE, source, axes=(a,))
    view = [1] * t.rank
    view[a] = k
    at = F.emit(BROADCAST_TO, reshape(F, index, *view), shape=F.type_of(source).shape)
    return scatter(F, x, a, F.emit(CAST, at, dtype=DType.i64), source)


def masked_scatter(F: Front, x: Any, mask: Any, source: Any) -> Any:
    """x with source's elements, in order, put where the mask is true (x and mask broadcast
    together)."""
    x, source = _same_dtype(F, "masked_scatter", x, source)
    mask = tensor(F, mask, "masked_scatter's mask")
    if F.type_of(mask).dtype != DType.bool:
        raise DlgTypeError(f"masked_scatter: mask must be a bool tensor, got {F.type_of(mask)}")
    shape = broadcast_shapes("masked_scatter", F.type_of(x).shape, F.type_of(mask).shape)
    x, mask = (v if F.type_of(v).shape == shape else F.emit(BROADCAST_TO, v, shape=shape)
               for v in (x, mask))
    flat = reshape(F, mask, -1)
    count = cumsum(F, flat, 0)
    at = F.emit(SUB, count, F.lift(1, DType.i64))
    at = F.emit(WHERE, flat, at, F.lift(0, DType.i64))
    values = F.emit(TAKE, reshape(F, source, -1), at, axis=0)
    return F.emit(WHERE, mask, reshape(F, values, *shape), x)


# ---- index constructors ------------------------------------------------------------------------
def _triangle_indices(name: str, keep: Any) -> Any:
    def fn(F: Front, row: Any, col: Any, offset: Any = 0, dtype: Any = DType.i64) -> Any:
        for v, what in ((row, "row"), (col, "col"), (offset, "offset")):
            if not is_int(v):
                raise DlgTypeError(f"{name}: {what} must be an int, got {describe(F, v)}")
        if dtype not in (DType.i32, DType.i64):
            raise DlgTypeError(f"{name}: dtype must be int32 or int64, got {describe(F, dtype)}")
        r, c = np.nonzero(keep(np.ones((max(row, 0), max(col, 0)), bool), offset))
        if not r.size:
            return F.emit(RESHAPE, F.lift([], dtype), shape=(2, 0))
        return F.lift(np.stack([r, c]).astype(np.int64).tolist(), dtype)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The (row, column) indices of the {'lower' if 'tril' in name else 'upper'} "
                  "triangle of a row x col matrix (offset: the diagonal), as a 2 x n tensor.")
    return fn


tril_indices = _triangle_indices("tril_indices", np.tril)
triu_indices = _triangle_indices("triu_indices", np.triu)


def combinations(F: Front, x: Any, r: Any = 2, with_replacement: Any = False) -> Any:
    """The r-element combinations of a 1-d tensor's elements, in itertools' order, as rows."""
    x = tensor(F, x, "combinations's input")
    t = F.type_of(x)
    if t.rank != 1:
        raise DlgShapeError(f"combinations: expects a 1-d tensor, got {t}")
    if not is_int(r) or r < 0:
        raise DlgValueError(f"combinations: r must be an int >= 0, got {describe(F, r)}")
    n = known_numel(t, "combinations")
    make = itertools.combinations_with_replacement if with_replacement else (
        itertools.combinations)
    rows = np.array(list(make(range(n), r)) if r else [], np.int64).reshape(-1, max(r, 1))
    if r == 0 or not rows.size:  # torch's empty results: [0] for r = 0, [0, r] for r > n
        empty = F.emit(SLICE, x, axes=(0,), starts=(0,), stops=(0,), steps=(1,))
        return empty if r == 0 else F.emit(RESHAPE, empty, shape=(0, r))
    return F.emit(STACK, *(gather(F, x, rows[:, j], 0) for j in range(r)), axis=1)


def cartesian_prod(F: Front, *tensors: Any) -> Any:
    """Every tuple of one element of each 1-d tensor, in lexicographic order, as rows (a
    single tensor is itself)."""
    xs = [tensor(F, v, "cartesian_prod's tensors") for v in tensors]
    if not xs or any(F.type_of(v).rank != 1 for v in xs):
        raise DlgShapeError("cartesian_prod: expects one or more 1-d tensors")
    if len(xs) == 1:
        return xs[0]
    grids = meshgrid(F, *xs, indexing="ij")
    return F.emit(STACK, *(reshape(F, g, -1) for g in grids), axis=1)


def unravel_index(F: Front, indices: Any, shape: Any) -> tuple[Any, ...]:
    """The coordinates of flat indices in a tensor of `shape`: one int64 tensor per dim (any
    integer dtype's indices, as torch's)."""
    indices = tensor(F, indices, "unravel_index's indices")
    if not F.type_of(indices).dtype.is_int:
        raise DlgTypeError(f"unravel_index: indices must be an int tensor, got "
                           f"{F.type_of(indices)}")
    if F.type_of(indices).dtype != DType.i64:
        indices = F.emit(CAST, indices, dtype=DType.i64)
    dims = (shape,) if is_int(shape) else tuple(shape) if isinstance(shape, (list, tuple)) else ()
    if not all(is_int(d) and d >= 0 for d in dims):
        raise DlgTypeError(f"unravel_index: shape must be ints >= 0, got {describe(F, shape)}")
    dtype = F.type_of(indices).dtype
    out = []
    rest = indices
    for d in reversed(dims):
        size = F.lift(int(d), dtype)
        out.append(F.emit(REMAINDER, rest, size))
        rest = F.emit(FLOOR_DIVIDE, rest, size)
    return tuple(reversed(out))
