"""NumPy's stacking and splitting spellings that torch took over, as compositions of reshape,
concat, split and flip: atleast_1d/2d/3d, hstack, vstack/row_stack, dstack, column_stack,
hsplit, vsplit, dsplit, ravel, fliplr, flipud, broadcast_tensors and split_with_sizes.

The stacks promote their tensors to one dtype first, as torch's cat does.
"""

from __future__ import annotations

from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.front import Front
from dlg.functions.pointwise import promoted
from dlg.functions.shape import concat, reshape, tensor_split
from dlg.functions.shape import split_sizes as sized_split
from dlg.functions.sort import flip
from dlg.ir.ops.common import broadcast_shapes
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE


def _listed(F: Front, name: str, tensors: tuple[Any, ...]) -> tuple[list[Any], bool]:
    """The tensors of f(x), f(x, y, ...) or f([x, y, ...]), and whether one was given alone."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return [tensor(F, t, f"{name}'s tensors") for t in tensors[0]], False
    return [tensor(F, t, f"{name}'s tensors") for t in tensors], len(tensors) == 1


def _at_least(F: Front, x: Any, rank: int) -> Any:
    t = F.type_of(x)
    if t.rank >= rank:
        return x
    shape = {(0, 1): (1,), (0, 2): (1, 1), (1, 2): (1, *t.shape), (0, 3): (1, 1, 1),
             (1, 3): (1, *t.shape, 1), (2, 3): (*t.shape, 1)}[t.rank, rank]
    return F.emit(RESHAPE, x, shape=shape)


def _atleast(rank: int) -> Any:
    def fn(F: Front, *tensors: Any) -> Any:
        xs, alone = _listed(F, f"atleast_{rank}d", tensors)
        out = tuple(_at_least(F, x, rank) for x in xs)
        return out[0] if alone else out
    fn.__name__ = fn.__qualname__ = f"atleast_{rank}d"
    fn.__doc__ = (f"Each tensor with at least {rank} dims (NumPy's placement of the new ones); "
                  "one tensor for one given, else a tuple.")
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def _stacked(F: Front, name: str, tensors: Any) -> list[Any]:
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise DlgTypeError(f"{name}: expects a non-empty list or tuple of tensors, got "
                           f"{describe(F, tensors)}")
    xs = [tensor(F, t, f"{name}'s tensors") for t in tensors]
    return promoted(F, xs, [f"{name}'s tensors"] * len(xs))


def hstack(F: Front, tensors: Any) -> Any:
    """The tensors joined column-wise: along dim 1, or dim 0 when all are 1-d."""
    xs = [_at_least(F, x, 1) for x in _stacked(F, "hstack", tensors)]
    return concat(F, xs, 0 if all(F.type_of(x).rank == 1 for x in xs) else 1)


def vstack(F: Front, tensors: Any) -> Any:
    """The tensors joined row-wise (dim 0), 0-d and 1-d ones as rows first."""
    return concat(F, [_at_least(F, x, 2) for x in _stacked(F, "vstack", tensors)], 0)


def dstack(F: Front, tensors: Any) -> Any:
    """The tensors joined depth-wise (dim 2), each made at least 3-d first."""
    return concat(F, [_at_least(F, x, 3) for x in _stacked(F, "dstack", tensors)], 2)


def column_stack(F: Front, tensors: Any) -> Any:
    """The tensors as columns side by side: 0-d and 1-d ones become (n, 1) columns."""
    xs = _stacked(F, "column_stack", tensors)
    cols = [reshape(F, x, -1, 1) if F.type_of(x).rank < 2 else x for x in xs]
    return concat(F, cols, 1)


def _split(name: str, axis: int, rank: int) -> Any:
    def fn(F: Front, x: Any, indices_or_sections: Any) -> tuple[Any, ...]:
        t = F.type_of(tensor(F, x, f"{name}'s argument"))
        if t.rank < rank:
            raise DlgShapeError(f"{name}: needs a tensor of at least {rank} dims, got {t}")
        a = 0 if name == "hsplit" and t.rank == 1 else axis
        if is_int(indices_or_sections):
            n, dim = int(indices_or_sections), t.shape[a]
            if n <= 0 or is_int(dim) and dim % n:
                raise DlgValueError(f"{name}: dim {a} of {t} does not split into "
                                    f"{indices_or_sections} equal parts")
        return tensor_split(F, x, indices_or_sections, a)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"x split along dim {axis}{' (dim 0 of a 1-d x)' if name == 'hsplit' else ''}"
                  f": into n equal parts, or at a list of indices (tensor_split).")
    return fn


hsplit, vsplit, dsplit = _split("hsplit", 1, 1), _split("vsplit", 0, 2), _split("dsplit", 2, 3)


def ravel(F: Front, x: Any) -> Any:
    """x as one dim."""
    return reshape(F, tensor(F, x, "ravel's argument"), -1)


def fliplr(F: Front, x: Any) -> Any:
    """x reversed along dim 1 (at least 2 dims)."""
    if F.type_of(tensor(F, x, "fliplr's argument")).rank < 2:
        raise DlgShapeError(f"fliplr: needs a tensor of at least 2 dims, got {F.type_of(x)}")
    return flip(F, x, 1)


def flipud(F: Front, x: Any) -> Any:
    """x reversed along dim 0 (at least 1 dim)."""
    if F.type_of(tensor(F, x, "flipud's argument")).rank < 1:
        raise DlgShapeError(f"flipud: needs a tensor of at least 1 dim, got {F.type_of(x)}")
    return flip(F, x, 0)


def broadcast_tensors(F: Front, *tensors: Any) -> tuple[Any, ...]:
    """The tensors broadcast to their common shape."""
    xs, _ = _listed(F, "broadcast_tensors", tensors)
    shape: tuple[Any, ...] = ()
    for x in xs:
        shape = broadcast_shapes("broadcast_tensors", shape, F.type_of(x).shape)
    return tuple(x if F.type_of(x).shape == shape else F.emit(BROADCAST_TO, x, shape=shape)
                 for x in xs)


def split_with_sizes(F: Front, x: Any, split_sizes: Any, axis: int = 0) -> tuple[Any, ...]:
    """x split along `axis` into parts of the listed sizes (which add up to the dim)."""
    if not isinstance(split_sizes, (list, tuple)):
        raise DlgTypeError(f"split_with_sizes: split_sizes must be a list of ints, got "
                           f"{describe(F, split_sizes)}")
    return sized_split(F, x, list(split_sizes), axis)
