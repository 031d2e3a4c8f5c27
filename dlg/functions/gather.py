"""Gathers and scatters by an index tensor, with PyTorch's arguments: gather, scatter_add,
scatter, index_select, index_add, take_along_dim (dim before index, as torch writes them).

Their ops (dlg/ir/ops/gather.py, take and scatter_add in shape.py) need tensors of rank >= 1:
a 0-d operand is read as a 1-element vector and the result given back at the shape PyTorch
gives. Index values are checked against the axis when the op runs (an eager call raises a
DlgValueError naming the index; compiled code clamps them).
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import INDEX_INTS, broadcast_shapes, normalize_axis
from dlg.ir.ops.elementwise import ADD, CAST, LT, WHERE
from dlg.ir.ops.gather import GATHER, INDEX_ADD, SCATTER, SCATTER_ADD_ALONG
from dlg.ir.ops.reduce import NUMEL
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, SLICE, TAKE
from dlg.ir.shapes import Shape, numel


def _index(F: Front, index: Any, op: str) -> Any:
    """The index argument: an int32 or int64 tensor (an empty one of any integer dtype, which
    torch lets pass: it indexes nothing)."""
    if F.is_tensor(index) and F.type_of(index).dtype.is_int and numel(F.type_of(index).shape) == 0:
        return F.emit(CAST, index, dtype=DType.i64)
    if not F.is_tensor(index) or F.type_of(index).dtype not in INDEX_INTS:
        what = describe(F, index)
        raise DlgTypeError(f"{op}: index must be an int64 (or int32) tensor, got {what}")
    return index


def as_vector(F: Front, x: Any) -> Any:
    """A 0-d tensor as a 1-element vector; others as they are."""
    return F.emit(RESHAPE, x, shape=(1,)) if F.type_of(x).rank == 0 else x


def shaped_like(F: Front, y: Any, shape: Shape) -> Any:
    """`y` back at the shape PyTorch gives (0-d where the operands were)."""
    return y if F.type_of(y).shape == tuple(shape) else F.emit(RESHAPE, y, shape=tuple(shape))


def leading_part(F: Front, src: Any, index: Any, op: str) -> Any:
    """The part of `src` the index covers: PyTorch's scatters read src's leading elements where
    src is larger than the index."""
    s, i = F.type_of(src), F.type_of(index)
    if s.rank != i.rank:
        raise DlgShapeError(f"{op}: src {s} must have the rank of index {i}")
    axes = [a for a, (n, m) in enumerate(zip(s.shape, i.shape)) if n != m]
    for a in axes:
        n, m = s.shape[a], i.shape[a]
        if not (isinstance(n, int) and isinstance(m, int) and n > m):
            raise DlgShapeError(f"{op}: src {s} is smaller than index {i} on axis {a}")
    if not axes:
        return src
    return F.emit(SLICE, src, axes=tuple(axes), starts=(0,) * len(axes),
                  stops=tuple(i.shape[a] for a in axes), steps=(1,) * len(axes))


def gather(F: Front, x: Any, axis: int, index: Any, sparse_grad: bool = False) -> Any:
    """out[i][j] = x[index[i][j]][j] along `axis` (torch.gather); the output has index's shape.
    `sparse_grad` is accepted and has no effect (gradients are dense)."""
    x = tensor(F, x, "gather's argument")
    index = _index(F, index, "gather")
    y = F.emit(GATHER, as_vector(F, x), as_vector(F, index), axis=args.axis(F, axis))
    return shaped_like(F, y, F.type_of(index).shape)


def scatter_add(F: Front, x: Any, axis: int, index: Any, src: Any) -> Any:
    """x with src[i][j] added at [index[i][j]][j] along `axis` (torch.scatter_add); repeated
    positions add up."""
    x = tensor(F, x, "scatter_add's argument")
    index = _index(F, index, "scatter_add")
    src = leading_part(F, tensor(F, src, "scatter_add's src"), index, "scatter_add")
    y = F.emit(SCATTER_ADD_ALONG, as_vector(F, x), as_vector(F, index), as_vector(F, src),
               axis=args.axis(F, axis))
    return shaped_like(F, y, F.type_of(x).shape)


def scatter(F: Front, x: Any, axis: int, index: Any, src: Any = None, value: Any = None,
            reduce: str | None = None) -> Any:
    """x with src[i][j] (or a scalar value) written at [index[i][j]][j] along `axis`
    (torch.scatter); reduce="add" adds instead. Where an index repeats, the last value written
    in index order stays, as on PyTorch's CPU."""
    x = tensor(F, x, "scatter's argument")
    index = _index(F, index, "scatter")
    if (src is None) == (value is None):
        raise DlgTypeError("scatter takes one of src (a tensor or a number) and value")
    new = src if value is None else value
    if reduce is not None:
        args.choice(F, reduce, ("add",), "scatter: reduce")
    t = F.type_of(x)
    if not F.is_tensor(new):
        if not args.is_static(new):
            raise DlgTypeError(f"scatter: src must be a tensor or a number, got "
                               f"{describe(F, new)}")
        new = F.lift(args.weak(new, t.dtype), t.dtype)
    elif F.type_of(new).rank or F.type_of(index).rank == 0:  # a 0-d src is a value
        new = as_vector(F, leading_part(F, new, index, "scatter"))
    if F.type_of(new).rank == 0:
        shape = (1,) if F.type_of(index).rank == 0 else F.type_of(index).shape
        new = F.emit(BROADCAST_TO, new, shape=shape)
    op = SCATTER if reduce is None else SCATTER_ADD_ALONG
    y = F.emit(op, as_vector(F, x), as_vector(F, index), new, axis=args.axis(F, axis))
    return shaped_like(F, y, t.shape)


def index_select(F: Front, x: Any, axis: int, index: Any) -> Any:
    """The slices of x at the positions in a 1-d index along `axis` (torch.index_select:
    dim before index; `take(x, indices, axis)` takes it last)."""
    x = tensor(F, x, "index_select's argument")
    if F.is_tensor(axis):
        raise DlgTypeError("index_select takes dim before index (PyTorch's order); "
                           "take(x, indices, axis) takes the axis last")
    index = _index(F, index, "index_select")
    if F.type_of(index).rank > 1:
        raise DlgShapeError(f"index_select: index must be 0-d or 1-d, got {F.type_of(index)}")
    y = F.emit(TAKE, as_vector(F, x), as_vector(F, index), axis=args.axis(F, axis))
    return shaped_like(F, y, F.type_of(x).shape) if F.type_of(x).rank == 0 else y


def index_add(F: Front, x: Any, axis: int, index: Any, source: Any, alpha: Any = 1) -> Any:
    """x plus alpha times the slices of source added at the positions of a 1-d index along
    `axis` (torch.index_add); repeated positions add up."""
    x = tensor(F, x, "index_add's argument")
    index = _index(F, index, "index_add")
    source = tensor(F, source, "index_add's source")
    if not args.is_number(alpha):
        raise DlgTypeError(f"index_add: alpha must be a number, got {describe(F, alpha)}")
    y = F.emit(INDEX_ADD, as_vector(F, x), as_vector(F, index), as_vector(F, source),
               axis=args.axis(F, axis), alpha=alpha)
    return shaped_like(F, y, F.type_of(x).shape)


def _from_end(F: Front, indices: Any, x: Any, axis: int) -> Any:
    """Negative indices counted from the end of x's axis (its length read at run time)."""
    dtype = F.type_of(indices).dtype
    size = F.emit(NUMEL, x, axes=(axis,), dtype=dtype)
    negative = F.emit(LT, indices, F.lift(0, dtype))
    return F.emit(WHERE, negative, F.emit(ADD, indices, size), indices)


def take_along_dim(F: Front, x: Any, indices: Any, axis: Any = None) -> Any:
    """gather along `axis` after broadcasting x and indices against each other on the other
    axes (torch.take_along_dim); with no axis, of the flattened tensors. Negative indices count
    from the end, as PyTorch's own samples of take_along_dim expect."""
    x = tensor(F, x, "take_along_dim's argument")
    indices = _index(F, indices, "take_along_dim")
    t, i = F.type_of(x), F.type_of(indices)
    if axis is None:
        flat = [F.emit(RESHAPE, v, shape=(numel(s.shape),)) for v, s in ((x, t), (indices, i))]
        return F.emit(GATHER, flat[0], _from_end(F, flat[1], flat[0], 0), axis=0)
    a = args.axis(F, axis)
    if t.rank != i.rank:
        raise DlgShapeError(f"take_along_dim: indices {i} must have the rank of x {t}")
    if t.rank == 0:
        return gather(F, x, a, indices)
    a = normalize_axis("take_along_dim", a, t.rank)
    indices = _from_end(F, indices, x, a)
    rest = broadcast_shapes("take_along_dim", *(s.shape[:a] + s.shape[a + 1:] for s in (t, i)))
    x, indices = (v if s.shape[:a] + s.shape[a + 1:] == rest else
                  F.emit(BROADCAST_TO, v, shape=rest[:a] + (s.shape[a],) + rest[a:])
                  for v, s in ((x, t), (indices, i)))
    return F.emit(GATHER, x, indices, axis=a)
