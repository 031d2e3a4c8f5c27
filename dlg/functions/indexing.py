"""`x[...]` on a tensor, one implementation for both front doors: NumPy's and PyTorch's meaning.

Ints pick a position and drop the axis (negative ones count from the end), slices keep it (any
step; a negative one walks backwards), None adds an axis of 1, `...` stands for the axes not
named, and integer tensors (or lists of ints) on neighbouring axes gather together: their
positions (negatives from the end) broadcast against each other, and the broadcast dims take
the axes' place (`logits[arange(n), labels]`; PyTorch's rule; NumPy moves them to the front
when an int stands apart from the tensor, as in `x[0, :, i]`). A symbolic axis takes ints,
`T-1`-style bounds and steps of 1 or -1 (`x[:, -1]`, `x[:, :T-1]`, `x[:, ::-1]`); its bounds are
taken as given, where NumPy would clamp them to the axis.

The result is a few ops: one `slice` for every int and slice, one `take` for the tensor indices
(several merge their axes into one and their positions into one flat position) and one
`reshape` that drops the picked axes and adds the new ones.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import ADD, CAST, LT, MUL, WHERE
from dlg.ir.ops.shape import RESHAPE, SLICE, TAKE
from dlg.ir.shapes import Dim, Sym, numel
from dlg.ir.types import TensorType

_GATHERED = object()  # where the tensor index's dims go in the result
_LISTS = (list, tuple, range, np.ndarray)  # static positions (or bools), lifted to a tensor


@dataclass
class _Plan:
    """What `x[items]` does, axis by axis: the one slice, the gather, the result's dims."""

    axes: list[int] = field(default_factory=list)
    starts: list[Dim] = field(default_factory=list)
    stops: list[Dim] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    gathers: list[tuple[int, Any]] = field(default_factory=list)  # (axis, integer tensor)
    dims: list[Any] = field(default_factory=list)  # result dims; _GATHERED for the index's

    def cut(self, axis: int, start: Dim, stop: Dim, step: int) -> None:
        self.axes.append(axis)
        self.starts.append(start)
        self.stops.append(stop)
        self.steps.append(step)

    def keep(self, axis: int, dim: Dim, start: Dim, stop: Dim, step: int) -> None:
        """A sliced axis: cut where the bounds are not the whole axis; its length kept."""
        if (start, stop, step) != (0, dim, 1):
            self.cut(axis, start, stop, step)
        self.dims.append(_length(start, stop, step))


def index(F: Front, x: Any, items: Sequence[Any]) -> Any:
    """`x[items]`: `items` holds ints, symbolic dims, slices, None, Ellipsis, tensors of the
    front `F` and lists of ints or bools (the comma-separated parts of the subscript)."""
    t = F.type_of(x)
    plan = _basic_plan(items, t.shape)
    if plan is not None:
        return _emit(F, x, plan)
    expanded = _expand_ellipsis(list(items), t)
    plan = _Plan()
    axis = 0
    for item in expanded:
        if item is None:
            plan.dims.append(1)
            continue
        dim = t.shape[axis]
        if isinstance(item, slice):
            plan.keep(axis, dim, *_slice_bounds(F, item, dim, axis, t))
        elif F.is_tensor(item) or isinstance(item, _LISTS):
            if plan.gathers and (plan.dims[-1] is not _GATHERED
                                 or plan.gathers[-1][0] != axis - 1):
                raise DlgTypeError("tensor indices must be on neighbouring axes in x[...] "
                                   "(x[:, i, j], not x[i, :, j])")
            plan.gathers.append((axis, _index_tensor(F, item, dim, axis, t)))
            if len(plan.gathers) == 1:
                plan.dims.append(_GATHERED)
        else:
            i = _position(F, item, dim, axis, t)
            plan.cut(axis, i, i + 1, 1)
        axis += 1
    plan.dims += t.shape[axis:]
    return _emit(F, x, plan)


def is_basic(item: Any) -> bool:
    """A plain int, or a slice of plain ints: the items of a loop's `x[i]` and `x[:, :k]`."""
    cls = item.__class__
    if cls is int:
        return True
    if cls is not slice:
        return False
    start, stop, step = item.start, item.stop, item.step  # no generator: ~0.4 us an item
    return ((start is None or start.__class__ is int) and (stop is None or stop.__class__ is int)
            and (step is None or step.__class__ is int))


def _basic_plan(items: Sequence[Any], shape: tuple[Dim, ...]) -> _Plan | None:
    """`index`'s plan where every item `is_basic`, in range, on axes of known size: the
    general walk's result without its generality (an eager op's Python is most of a small
    one's time); None for anything else, which the general walk plans or refuses."""
    if len(items) > len(shape) or not all(map(is_basic, items)):
        return None
    plan = _Plan()
    for axis, item in enumerate(items):
        dim = shape[axis]
        if not isinstance(dim, int):
            return None
        if item.__class__ is int:
            if not -dim <= item < dim:
                return None
            plan.cut(axis, item % dim, item % dim + 1, 1)
            continue
        if item.step == 0:
            return None
        plan.keep(axis, dim, *_indices(item, dim))
    plan.dims += shape[len(items):]
    return plan


def _emit(F: Front, x: Any, plan: _Plan) -> Any:
    out = x
    if plan.axes:
        out = F.emit(SLICE, out, axes=tuple(plan.axes), starts=tuple(plan.starts),
                     stops=tuple(plan.stops), steps=tuple(plan.steps))
    dims = plan.dims
    if plan.gathers:
        out, indices, axis = _merged(F, out, plan.gathers)
        out = F.emit(TAKE, out, indices, axis=axis)
        at = next(k for k, d in enumerate(dims) if d is _GATHERED)
        dims = dims[:at] + list(F.type_of(indices).shape) + dims[at + 1:]
    if tuple(dims) != F.type_of(out).shape:
        out = F.emit(RESHAPE, out, shape=tuple(dims))
    return out


def _merged(F: Front, x: Any, gathers: list[tuple[int, Any]]) -> tuple[Any, Any, int]:
    """x with the gathered (neighbouring) axes as one, the positions as one flat position into
    it, and that axis (one gather: x, its positions and its axis as they are)."""
    shape = F.type_of(x).shape
    first = gathers[0][0]
    flat = None
    if len(gathers) == 1:
        return x, gathers[0][1], first
    for axis, indices in gathers:
        if F.type_of(indices).dtype != DType.i64:  # one dtype for the arithmetic
            indices = F.emit(CAST, indices, dtype=DType.i64)
        flat = indices if flat is None else F.emit(ADD, F.emit(MUL, flat, _size(F, shape[axis])),
                                                   indices)
    last = gathers[-1][0]
    merged = tuple(shape[:first]) + (numel(shape[first:last + 1]),) + tuple(shape[last + 1:])
    return F.emit(RESHAPE, x, shape=merged), flat, first


def _size(F: Front, dim: Dim) -> Any:
    if isinstance(dim, Sym):
        raise DlgShapeError(f"tensor indices on neighbouring axes need known sizes; an axis "
                            f"after the first is the symbolic {dim}")
    return F.lift(dim, DType.i64)


def _expand_ellipsis(items: list[Any], t: TensorType) -> list[Any]:
    """`...` replaced by the `slice(None)`s it stands for; too many indices caught here."""
    n_ellipsis = sum(item is Ellipsis for item in items)
    if n_ellipsis > 1:
        raise DlgTypeError("an index can have only one `...`")
    used = sum(item is not None and item is not Ellipsis for item in items)
    if used > t.rank:
        raise DlgShapeError(f"too many indices for {t}: {used} given, it has {t.rank} "
                            f"{'axis' if t.rank == 1 else 'axes'}")
    fill = [slice(None)] * (t.rank - used)
    if not n_ellipsis:
        return items + fill
    at = next(k for k, item in enumerate(items) if item is Ellipsis)
    return items[:at] + fill + items[at + 1:]


def _position(F: Front, item: Any, dim: Dim, axis: int, t: TensorType) -> Dim:
    """An int index as a position in 0..dim-1 (symbolic where the dim or the index is)."""
    i = _static_int(F, item, "an index must be an int, a slice, `...`, a new axis or an integer "
                          "tensor")
    if isinstance(dim, int) and isinstance(i, int):
        if not -dim <= i < dim:
            raise DlgShapeError(f"index {i} is out of range for axis {axis} of {t}")
        return i % dim
    return dim + i if isinstance(i, int) and i < 0 else i


def _slice_bounds(F: Front, s: slice, dim: Dim, axis: int, t: TensorType
                  ) -> tuple[Dim, Dim, int]:
    """(start, stop, step) as `slice.indices` gives them (the `slice` op's bounds); an empty
    range is (0, 0, 1)."""
    step = 1 if s.step is None else _static_int(F, s.step, "a slice step must be an int")
    if isinstance(step, Sym):
        raise DlgTypeError(f"a slice step must be an int, got the symbolic dim {step}")
    if step == 0:
        raise DlgValueError("slice step cannot be zero")
    start, stop = (None if v is None else _static_int(F, v, "slice bounds must be static ints")
                   for v in (s.start, s.stop))
    if isinstance(dim, int) and not isinstance(start, Sym) and not isinstance(stop, Sym):
        return _indices(slice(start, stop, step), dim)
    first, end = (0, dim) if step > 0 else (dim - 1, -1)
    start = first if start is None else _from_end(start, dim)
    stop = end if stop is None else _from_end(stop, dim)
    if abs(step) != 1 and not (isinstance(start, int) and isinstance(stop, int)):
        raise DlgShapeError(f"a slice with step {step} on axis {axis} of {t} needs int bounds, "
                            f"got {start}:{stop}")
    return start, stop, step


def _indices(s: slice, dim: int) -> tuple[int, int, int]:
    """`s.indices(dim)`, an empty range as (0, 0, 1)."""
    start, stop, step = s.indices(dim)
    return (start, stop, step) if _length(start, stop, step) else (0, 0, 1)


def _from_end(bound: Dim, dim: Dim) -> Dim:
    return dim + bound if isinstance(bound, int) and bound < 0 else bound


def _length(start: Dim, stop: Dim, step: int) -> Dim:
    if isinstance(start, int) and isinstance(stop, int):
        return len(range(start, stop, step))
    return (stop - start) * step  # |step| is 1 here


def _index_tensor(F: Front, item: Any, dim: Dim, axis: int, t: TensorType) -> Any:
    """An integer tensor of positions: a tensor of the front, or a list lifted to one."""
    if isinstance(item, _LISTS):
        return F.lift(_static_positions(item, dim, axis, t), DType.i64)
    it = F.type_of(item)
    if it.dtype == DType.bool:
        raise DlgTypeError(f"a boolean mask {it} as an index gives a shape that depends on its "
                           "values; use where(mask, x, 0), or integer indices")
    if not it.dtype.is_int:
        raise DlgTypeError(f"a tensor index must be i32/i64, got {it}")
    if not isinstance(dim, int):
        return item
    zero = F.lift(0, it.dtype)  # torch's negative positions count from the end
    return F.emit(WHERE, F.emit(LT, item, zero), F.emit(ADD, item, F.lift(dim, it.dtype)), item)


def _static_positions(item: Any, dim: Dim, axis: int, t: TensorType) -> np.ndarray:
    """A list of ints (negatives count from the end), or of bools picking where they are true."""
    values = np.asarray(item)
    if values.dtype == np.bool_:
        if values.shape != (dim,):
            raise DlgShapeError(f"a boolean list index needs one bool per element of axis {axis} "
                                f"of {t}, got {len(values)}")
        return np.flatnonzero(values)
    if values.dtype.kind not in "iu" and values.size:
        raise DlgTypeError(f"a list index must hold ints or bools, got {values.tolist()!r}")
    values = values.astype(np.int64)
    if isinstance(dim, int):
        bad = (values < -dim) | (values >= dim)
        if bad.any():
            raise DlgShapeError(f"index {values[bad].flat[0]} is out of range for axis {axis} of "
                                f"{t}")
        return values % max(dim, 1)
    if (values < 0).any():
        raise DlgShapeError(f"negative indices in a list need a known size, but axis {axis} of "
                            f"{t} is symbolic")
    return values


def _static_int(F: Front, value: Any, what: str) -> Dim:
    """An int (NumPy's too) or a symbolic dim; anything else is a DlgTypeError."""
    if isinstance(value, Sym):
        return value
    if is_int(value):
        return operator.index(value)
    raise DlgTypeError(f"{what}, got {describe(F, value)}")


def select(F: Front, x: Any, axis: Any, position: Any) -> Any:
    """x[..., position, ...] at `axis`, that axis dropped (torch.select: an int position,
    negative from the end)."""
    if not F.is_tensor(x):
        raise DlgTypeError(f"select's argument must be a tensor, got {describe(F, x)}")
    rank = F.type_of(x).rank
    if rank == 0:
        raise DlgShapeError("select cannot be applied to a 0-d tensor")
    if not is_int(axis) or not -rank <= axis < rank:
        raise DlgTypeError(f"select: dim must be an int in [{-rank}, {rank}), got "
                           f"{describe(F, axis)}")
    if not (is_int(position) or isinstance(position, Sym)):
        raise DlgTypeError(f"select: index must be an int, got {describe(F, position)}")
    return index(F, x, (slice(None),) * (int(axis) % rank) + (position,))
