"""Shape and movement functions: reshape (-1 resolved, symbolic dims kept), flatten, permute,
transpose, squeeze/unsqueeze, broadcast_to, concat/stack/split, pad, take. `squeeze` of an axis
that is not 1 leaves it (PyTorch); `broadcast_to` keeps a dim given as -1 (PyTorch's expand)."""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import axes, describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.ops.shape import (
    BROADCAST_TO,
    CONCAT,
    FLATTEN,
    PAD,
    RESHAPE,
    SPLIT,
    SQUEEZE,
    STACK,
    TAKE,
    TRANSPOSE,
    UNSQUEEZE,
)
from dlg.ir.shapes import exact_div, numel


def reshape(F: Front, x: Any, *shape: Any) -> Any:
    """reshape(x, 2, -1) or reshape(x, (2, -1)): one dim may be -1, the rest of the elements."""
    t = F.type_of(tensor(F, x, "reshape's argument"))
    dims = list(args.shape(F, shape))
    holes = [i for i, d in enumerate(dims) if d == -1]
    if len(holes) > 1:
        raise DlgShapeError("reshape: only one dim can be -1")
    if holes:
        known = numel([d for d in dims if d != -1])
        rest = exact_div(numel(t.shape), known) if known != 0 else None
        if rest is None:
            raise DlgShapeError(f"reshape: cannot reshape {t} to "
                                f"[{', '.join(str(d) for d in dims)}]: {numel(t.shape)} "
                                f"elements do not divide by {known}")
        dims[holes[0]] = rest
    for d in dims:
        if isinstance(d, int) and d < 0:
            raise DlgShapeError(f"reshape: bad dim {d}")
    return F.emit(RESHAPE, x, shape=tuple(dims))


def flatten(F: Front, x: Any, start_axis: int = 1, end_axis: int = -1) -> Any:
    """Merge axes start_axis..end_axis into one (nn.Flatten's default; torch.flatten starts
    at 0, which the eager `dlg.flatten` keeps)."""
    return F.emit(FLATTEN, tensor(F, x, "flatten's argument"),
                  start_axis=args.axis(F, start_axis, "start_axis"),
                  end_axis=args.axis(F, end_axis, "end_axis"))


def permute(F: Front, x: Any, *perm: Any) -> Any:
    """permute(x, 2, 0, 1) or permute(x, (2, 0, 1)): output axis i is input axis perm[i]."""
    order = perm[0] if len(perm) == 1 and isinstance(perm[0], (tuple, list)) else perm
    if not all(map(is_int, order)):
        raise DlgTypeError(f"permute takes ints, got {', '.join(describe(F, p) for p in order)}")
    return F.emit(TRANSPOSE, tensor(F, x, "permute's argument"), perm=tuple(order))


def transpose(F: Front, x: Any, dim0: int = -2, dim1: int = -1) -> Any:
    """Swap two axes (the last two by default)."""
    t = F.type_of(tensor(F, x, "transpose's argument"))
    perm = list(range(t.rank))
    for d in (args.axis(F, dim0, "dim0"), args.axis(F, dim1, "dim1")):
        if not -t.rank <= d < t.rank:
            raise DlgShapeError(f"transpose: axis {d} is out of range for {t}")
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return F.emit(TRANSPOSE, x, perm=tuple(perm))


def T(F: Front, x: Any) -> Any:  # noqa: N802  (the .dlg spelling)
    """T(w): swap the last two axes (w.T for a matrix), as in `x @ T(weight)`."""
    t = F.type_of(tensor(F, x, "T's argument"))
    if t.rank < 2:
        raise DlgShapeError(f"T needs a tensor of rank >= 2, got {t}")
    return transpose(F, x, -2, -1)


def squeeze(F: Front, x: Any, axis: Any = None) -> Any:
    """Drop size-1 axes: all of them, or those of `axis` that are 1 (others stay, as in
    PyTorch)."""
    t = F.type_of(tensor(F, x, "squeeze's argument"))
    picked = axes(F, axis)
    if picked is not None:
        picked = tuple(a for a in picked if not (-t.rank <= a < t.rank and
                                                 isinstance(t.shape[a], int) and t.shape[a] != 1))
        if not picked:
            return x
    return F.emit(SQUEEZE, x, axes=picked)


def unsqueeze(F: Front, x: Any, axis: Any) -> Any:
    """Insert size-1 axes at `axis` (an int or a tuple, positions in the result)."""
    return F.emit(UNSQUEEZE, tensor(F, x, "unsqueeze's argument"), axes=axes(F, axis))


def broadcast_to(F: Front, x: Any, *shape: Any) -> Any:
    """NumPy broadcasting to `shape`; a -1 keeps x's dim there (PyTorch's expand)."""
    t = F.type_of(tensor(F, x, "broadcast_to's argument"))
    dims = args.shape(F, shape)
    lead = len(dims) - t.rank
    dims = tuple(t.shape[i - lead] if d == -1 and i >= lead else d for i, d in enumerate(dims))
    return F.emit(BROADCAST_TO, x, shape=dims)


def _tensors(F: Front, xs: Any, name: str) -> list[Any]:
    if not isinstance(xs, (tuple, list)) or not xs:
        raise DlgTypeError(f"{name} takes a tuple of tensors, e.g. {name}((a, b), axis=0)")
    return [tensor(F, x, f"each item of {name}") for x in xs]


def concat(F: Front, xs: Any, axis: int = 0) -> Any:
    """Join tensors along an existing axis."""
    return F.emit(CONCAT, *_tensors(F, xs, "concat"), axis=axis)


def stack(F: Front, xs: Any, axis: int = 0) -> Any:
    """Join equal tensors along a new axis."""
    return F.emit(STACK, *_tensors(F, xs, "stack"), axis=axis)


def split(F: Front, x: Any, sections: Any, axis: int = 0) -> tuple[Any, ...]:
    """split(x, 4, axis=1): 4 equal parts (torch.chunk); split(x, (2, 3)): parts of those
    sizes."""
    t = F.type_of(tensor(F, x, "split's argument"))
    if not -t.rank <= args.axis(F, axis) < t.rank:
        raise DlgShapeError(f"split: axis {axis} is out of range for {t}")
    dim = t.shape[axis]
    if is_int(sections):
        if sections <= 0 or not isinstance(dim, int) or dim % sections:
            raise DlgShapeError(f"split: axis {axis} of {t} does not divide into "
                                f"{sections} equal parts")
        sizes = (dim // sections,) * sections
    elif isinstance(sections, (tuple, list)) and all(map(is_int, sections)):
        sizes = tuple(sections)
    else:
        raise DlgTypeError(f"split takes a number of parts or a tuple of sizes, got "
                           f"{describe(F, sections)}")
    return F.emit(SPLIT, x, axis=axis, sizes=sizes)


def pad(F: Front, x: Any, pads: Any, value: float = 0.0) -> Any:
    """Constant padding: one (before, after) pair per axis."""
    return F.emit(PAD, tensor(F, x, "pad's argument"), pads=pads, value=value)


def take(F: Front, x: Any, indices: Any, axis: int = 0) -> Any:
    """The slices of x at `indices` along `axis` (NumPy's take, torch.index_select)."""
    return F.emit(TAKE, tensor(F, x, "take's argument"), tensor(F, indices, "take's indices"),
                  axis=axis)
