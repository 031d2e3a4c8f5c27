"""`x[...]` in .dlg: indexing and slicing of tensors and of static tuples.

Tensor indexing follows NumPy/PyTorch basic indexing: ints pick (and drop) an axis, slices keep
it, `...` fills the middle, and one integer tensor index gathers along its axis. It lowers to one
`slice` node, then `take`, then `squeeze` for the picked axes.
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError, Span
from dlg.grammar import ast
from dlg.grammar.values import Tensor, describe
from dlg.ir.shapes import Dim, Sym


def index_static(value: Any, items: list[Any], span: Span) -> Any:
    if not isinstance(value, tuple):
        raise DlgTypeError(f"{describe(value)} cannot be indexed", span)
    if len(items) != 1 or isinstance(items[0], ast.EllipsisExpr):
        raise DlgTypeError("a tuple takes one index or slice", span)
    (item,) = items
    if isinstance(item, slice):
        return value[item]
    if isinstance(item, bool) or not isinstance(item, int):
        raise DlgTypeError(f"a tuple index must be an int, got {describe(item)}", span)
    if not -len(value) <= item < len(value):
        raise DlgShapeError(f"index {item} is out of range for a tuple of {len(value)}", span)
    return value[item]


def index_tensor(E: Any, x: Tensor, items: list[Any]) -> Tensor:
    shape = x.type.shape
    items = _expand_ellipsis(items, len(shape))
    axes, starts, stops, steps, picked = [], [], [], [], []
    gather: tuple[int, Tensor] | None = None
    for axis, (item, dim) in enumerate(zip(items, shape)):
        if isinstance(item, Tensor):
            if gather is not None:
                raise DlgTypeError("only one tensor index is supported in x[...]")
            if not item.type.dtype.is_int:
                raise DlgTypeError(f"a tensor index must be i32/i64, got {item.type} "
                                   "(boolean masks give data-dependent shapes)")
            gather = (axis, item)
            continue
        if isinstance(item, slice):
            bounds = _slice_bounds(item, dim)
            if bounds != (0, dim, 1):
                axes.append(axis)
                starts.append(bounds[0])
                stops.append(bounds[1])
                steps.append(bounds[2])
            continue
        if isinstance(item, bool) or not isinstance(item, (int, Sym)):
            raise DlgTypeError(f"an index must be an int, a slice or an integer tensor, got "
                               f"{describe(item)}")
        i = _normalize_index(item, dim, axis)
        axes.append(axis)
        starts.append(i)
        stops.append(i + 1)
        steps.append(1)
        picked.append(axis)
    out = x
    if axes:
        out = E.emit("slice", out, axes=tuple(axes), starts=tuple(starts), stops=tuple(stops),
                     steps=tuple(steps))
    if gather is not None:
        g_axis, idx = gather
        out = E.emit("take", out, idx, axis=g_axis)
        picked = [a + idx.type.rank - 1 if a > g_axis else a for a in picked]
    if picked:
        out = E.emit("squeeze", out, axes=tuple(picked))
    return out


def _expand_ellipsis(items: list[Any], rank: int) -> list[Any]:
    n_ellipsis = sum(isinstance(i, ast.EllipsisExpr) for i in items)
    if n_ellipsis > 1:
        raise DlgTypeError("an index can have only one `...`")
    explicit = len(items) - n_ellipsis
    if explicit > rank:
        raise DlgShapeError(f"too many indices ({explicit}) for a tensor of rank {rank}")
    fill = [slice(None)] * (rank - explicit)
    if n_ellipsis:
        at = next(i for i, x in enumerate(items) if isinstance(x, ast.EllipsisExpr))
        return items[:at] + fill + items[at + 1:]
    return items + fill


def _normalize_index(i: Dim, dim: Dim, axis: int) -> Dim:
    if isinstance(dim, int) and isinstance(i, int):
        if not -dim <= i < dim:
            raise DlgShapeError(f"index {i} is out of range for axis {axis} of size {dim}")
        return i % dim
    return dim + i if isinstance(i, int) and i < 0 else i


def _slice_bounds(s: slice, dim: Dim) -> tuple[Dim, Dim, int]:
    step = 1 if s.step is None else s.step
    if not isinstance(step, int) or step <= 0:
        raise DlgShapeError(f"slice steps must be positive ints, got {step}")
    if isinstance(dim, int) and all(isinstance(v, (int, type(None))) for v in (s.start, s.stop)):
        start, stop, _ = slice(s.start, s.stop, step).indices(dim)
        return start, max(stop, start), step
    if step != 1:
        raise DlgShapeError(f"a slice with step {step} needs a known dim, got {dim}")
    start = 0 if s.start is None else (dim + s.start if _negative(s.start) else s.start)
    stop = dim if s.stop is None else (dim + s.stop if _negative(s.stop) else s.stop)
    return start, stop, step


def _negative(v: Any) -> bool:
    return isinstance(v, int) and v < 0
