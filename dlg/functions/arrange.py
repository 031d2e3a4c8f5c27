"""Rearranging elements with PyTorch's names: roll, rot90, repeat_interleave, diff and meshgrid;
and the trapezoidal rule on diff's slices (trapezoid, cumulative_trapezoid).

Each is a composite: roll and repeat_interleave gather an axis through a constant index vector
(`take`, as reflect padding does), rot90 is flip and transpose, diff subtracts two slices and
meshgrid broadcasts reshaped vectors, so their gradients and compiled forms are those ops'.
Index vectors are made here, so the axes they read need a known size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.functions.pointwise import promoted
from dlg.functions.shape import transpose
from dlg.functions.sort import flip
from dlg.ir.dtypes import DType, promote_types
from dlg.ir.ops.elementwise import ADD, CAST, DIV, MUL, NE, SUB
from dlg.ir.ops.reduce import REDUCE_SUM
from dlg.ir.ops.shape import BROADCAST_TO, CONCAT, RESHAPE, SLICE, TAKE
from dlg.ir.ops.sort import CUMSUM
from dlg.ir.types import TensorType


def axis_of(F: Front, t: TensorType, axis: Any, name: str) -> int:
    """`axis` of t counted from 0 (negatives from the end); a 0-d t has axis 0 (and -1)."""
    a = args.axis(F, axis, f"{name}: dim")
    if not -max(t.rank, 1) <= a < max(t.rank, 1):
        raise DlgShapeError(f"{name}: dim {a} is out of range for {t}")
    return a % max(t.rank, 1)


def known_size(t: TensorType, axis: int, name: str) -> int:
    size = t.shape[axis]
    if not isinstance(size, int):
        raise DlgShapeError(f"{name}: dim {axis} of {t} is symbolic; {name} needs a known size")
    return size


def known_numel(t: TensorType, name: str) -> int:
    """How many elements t has (every size must be known)."""
    return int(np.prod([known_size(t, a, name) for a in range(t.rank)], dtype=np.int64))


def gather(F: Front, x: Any, positions: np.ndarray, axis: int) -> Any:
    """x read along `axis` at constant `positions`."""
    return F.emit(TAKE, x, F.lift(positions.astype(np.int64).tolist(), DType.i64), axis=axis)


def _ints(F: Front, value: Any, what: str) -> tuple[int, ...]:
    """An int or a tuple of ints, as a tuple."""
    given = args.axes(F, value, what)
    if given is None:
        raise DlgTypeError(f"{what} must be an int or a tuple of ints, got none")
    return given


def roll(F: Front, x: Any, shifts: Any, dims: Any = None) -> Any:
    """x shifted by `shifts` along `dims`, elements leaving one end entering at the other; with
    no dims, the flattened x is rolled and reshaped back."""
    t = F.type_of(tensor(F, x, "roll's argument"))
    steps = _ints(F, shifts, "roll: shifts")
    if dims is None:
        if len(steps) != 1:
            raise DlgValueError(f"roll: without dims, shifts must be one int, got {list(steps)}")
        flat = roll(F, F.emit(RESHAPE, x, shape=(known_numel(t, "roll"),)), steps[0], 0)
        return F.emit(RESHAPE, flat, shape=t.shape)
    axes = [axis_of(F, t, a, "roll") for a in _ints(F, dims, "roll: dims")]
    if len(axes) != len(steps):
        raise DlgValueError(f"roll: {len(steps)} shifts for {len(axes)} dims")
    if t.rank == 0:
        return x
    for axis, step in zip(axes, steps):
        size = known_size(t, axis, "roll")
        if size and step % size:
            x = gather(F, x, (np.arange(size) - step) % size, axis)
    return x


def rot90(F: Front, x: Any, k: Any = 1, dims: Any = (0, 1)) -> Any:
    """x turned by k quarter turns in the plane of `dims`, from the first axis to the second."""
    t = F.type_of(tensor(F, x, "rot90's argument"))
    if not is_int(k):
        raise DlgTypeError(f"rot90: k must be an int, got {describe(F, k)}")
    plane = _ints(F, dims, "rot90: dims")
    if len(plane) != 2 or t.rank < 2:
        raise DlgShapeError(f"rot90: dims must name two axes of a tensor of 2 or more dims, "
                            f"got {list(plane)} for {t}")
    a, b = (axis_of(F, t, d, "rot90") for d in plane)
    if a == b:
        raise DlgValueError(f"rot90: dims must differ, got {list(plane)}")
    turns = int(k) % 4
    if turns == 1:
        return transpose(F, flip(F, x, b), a, b)
    if turns == 2:
        return flip(F, x, (a, b))
    if turns == 3:
        return transpose(F, flip(F, x, a), a, b)
    return x


def repeat_interleave(F: Front, x: Any, repeats: Any, axis: Any = None,
                      output_size: Any = None) -> Any:
    """Each element (slice along `axis`) repeated `repeats` times in place: an int, or one
    count per element (a list; the eager frontend reads a tensor's values into one). With no
    axis, the flattened x."""
    t = F.type_of(tensor(F, x, "repeat_interleave's argument"))
    if axis is None:
        x = F.emit(RESHAPE, x, shape=(known_numel(t, "repeat_interleave"),))
        t, axis = F.type_of(x), 0
    a = axis_of(F, t, axis, "repeat_interleave")
    if t.rank == 0:
        x, t = F.emit(RESHAPE, x, shape=(1,)), TensorType(t.dtype, (1,))
    size = known_size(t, a, "repeat_interleave")
    if F.is_tensor(repeats):
        raise DlgTypeError("repeat_interleave: repeats must be an int or a list of ints (a "
                           "tensor of repeats is read eagerly only, not in a graph)")
    counts = _ints(F, repeats, "repeat_interleave: repeats")
    if isinstance(repeats, (tuple, list)) and len(counts) not in (1, size):
        raise DlgShapeError(f"repeat_interleave: {len(counts)} repeats for {size} elements "
                            f"along dim {a} of {t}")
    if any(c < 0 for c in counts):
        raise DlgValueError(f"repeat_interleave: repeats must not be negative, got "
                            f"{list(counts)}")
    positions = np.repeat(np.arange(size), counts if len(counts) == size else counts[0])
    if output_size is not None and output_size != len(positions):
        raise DlgValueError(f"repeat_interleave: output_size {output_size} is not the "
                            f"{len(positions)} elements the repeats make")
    return gather(F, x, positions, a)


def diff(F: Front, x: Any, n: Any = 1, axis: Any = -1, prepend: Any = None,
         append: Any = None) -> Any:
    """The n-th forward difference along `axis` (x[i+1] - x[i], or != for bools), after
    `prepend` and `append` are joined to x along it."""
    t = F.type_of(tensor(F, x, "diff's argument"))
    if t.rank == 0:
        raise DlgShapeError("diff needs a tensor of at least 1 dim, got a 0-d tensor")
    a = axis_of(F, t, axis, "diff")
    if not is_int(n) or n < 0:
        raise DlgValueError(f"diff: n must be a non-negative int, got {describe(F, n)}")
    parts = [(v, what) for v, what in ((prepend, "prepend"), (x, "input"), (append, "append"))
             if v is not None]
    for v, what in parts:
        if F.type_of(tensor(F, v, f"diff's {what}")).rank != t.rank:
            raise DlgShapeError(f"diff: {what} must have the input's {t.rank} dims, got "
                                f"{F.type_of(v)}")
    if n == 0:  # PyTorch's: x itself, prepend and append unused
        return x
    joined = promoted(F, [v for v, _ in parts], [f"diff's {w}" for _, w in parts])
    out = joined[0] if len(joined) == 1 else F.emit(CONCAT, *joined, axis=a)
    for _ in range(int(n)):
        length = known_size(F.type_of(out), a, "diff")
        if length == 0:
            break
        later, earlier = (F.emit(SLICE, out, axes=(a,), starts=(lo,), stops=(lo + length - 1,),
                                 steps=(1,)) for lo in (1, 0))
        op = NE if F.type_of(out).dtype == DType.bool else SUB
        out = F.emit(op, later, earlier)
    return out


def meshgrid(F: Front, *tensors: Any, indexing: Any = "ij") -> tuple[Any, ...]:
    """One grid per 0-d or 1-d tensor, each varying along its own axis: the i-th along axis i
    ('ij'), or with the first two axes swapped ('xy', Cartesian)."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    args.choice(F, indexing, ("ij", "xy"), "meshgrid: indexing")
    types = [F.type_of(tensor(F, v, f"meshgrid's tensor {i}")) for i, v in enumerate(tensors)]
    if not types:
        raise DlgValueError("meshgrid needs at least one tensor")
    for ty in types:
        if ty.rank > 1 or ty.dtype != types[0].dtype:
            raise DlgTypeError(f"meshgrid takes 0-d or 1-d tensors of one dtype, got "
                               f"{', '.join(map(str, types))}")
    order = list(range(len(types)))
    if indexing == "xy" and len(order) > 1:
        order[0], order[1] = 1, 0
    sizes = [ty.shape[0] if ty.rank else 1 for ty in types]
    shape = tuple(sizes[i] for i in order)
    grids = []
    for i, v in enumerate(tensors):
        at = order.index(i)
        view = tuple(sizes[i] if j == at else 1 for j in range(len(shape)))
        grids.append(F.emit(BROADCAST_TO, F.emit(RESHAPE, v, shape=view), shape=shape))
    return tuple(grids)



def trapezoid(F: Front, y: Any, x: Any = None, dx: Any = None, axis: Any = -1) -> Any:
    """The trapezoidal rule along `axis`: samples `y` at the points `x` (1-d along the axis, or
    broadcast against y), or spaced `dx` apart (1 by default); torch's formulas, in torch's
    dtypes: integer sums and differences wrap in their dtype, sums of ints are int64, halving
    makes floats (float32 for ints)."""
    y, pairs, width, a = _trapezoids(F, "trapezoid", y, x, dx, axis)
    size = known_size(F.type_of(y), a, "trapezoid")
    real = _real(F.type_of(y).dtype)
    if size == 0:  # no samples: zeros, of y's dtype
        return F.emit(REDUCE_SUM, y, axes=(a,))
    if isinstance(width, float):  # (sum(y) - (y[0] + y[-1]) / 2) * dx
        ends = F.emit(ADD, *(F.emit(REDUCE_SUM, _along(F, y, a, lo, lo + 1), axes=(a,))
                             for lo in (0, size - 1)))
        inner = F.emit(SUB, _as(F, _sum(F, y, a), real),
                       F.emit(MUL, _as(F, ends, real), F.lift(0.5, real)))
        return F.emit(MUL, inner, F.lift(width, real))
    products = F.emit(MUL, *_common(F, width, pairs))
    real = _real(F.type_of(products).dtype)
    return F.emit(DIV, _as(F, _sum(F, products, a), real), F.lift(2.0, real))


def cumulative_trapezoid(F: Front, y: Any, x: Any = None, dx: Any = None, axis: Any = -1
                         ) -> Any:
    """The running trapezoidal rule along `axis` (one fewer element there than y), in torch's
    dtypes as trapezoid's."""
    y, pairs, width, a = _trapezoids(F, "cumulative_trapezoid", y, x, dx, axis)
    if isinstance(width, float):
        real = _real(F.type_of(y).dtype)
        return F.emit(CUMSUM, F.emit(MUL, F.lift(width / 2.0, real), _as(F, pairs, real)),
                      axis=a)
    products = F.emit(MUL, *_common(F, width, pairs))
    real = _real(F.type_of(products).dtype)
    return F.emit(CUMSUM, F.emit(DIV, _as(F, products, real), F.lift(2.0, real)), axis=a)


def _real(dtype: DType) -> DType:
    """The float dtype a trapezoid of `dtype` values comes out in."""
    return dtype if dtype.is_float else DType.f32


def _as(F: Front, v: Any, dtype: DType) -> Any:
    return v if F.type_of(v).dtype == dtype else F.emit(CAST, v, dtype=dtype)


def _sum(F: Front, v: Any, axis: int) -> Any:
    """torch's sum along `axis`: integers in int64."""
    wide = DType.i64 if F.type_of(v).dtype.is_int else F.type_of(v).dtype
    return F.emit(REDUCE_SUM, _as(F, v, wide), axes=(axis,))


def _common(F: Front, *values: Any) -> list[Any]:
    """Tensors at their promoted dtype (uint8 differences times int8 sums: int16)."""
    dtype = promote_types(*(F.type_of(v).dtype for v in values))
    return [_as(F, v, dtype) for v in values]


def _trapezoids(F: Front, name: str, y: Any, x: Any, dx: Any, axis: Any
                ) -> tuple[Any, Any, Any, int]:
    """(y, y[1:] + y[:-1] along the axis, the widths: a number or x's differences shaped to
    broadcast, the axis). Each in its own dtype, as torch computes them: uint8's x[1] - x[0]
    below 0 wraps to 256 more, an int8 pair sum past 127 to 256 less."""
    t = F.type_of(tensor(F, y, f"{name}'s y"))
    if x is not None and dx is not None:
        raise DlgTypeError(f"{name}: give the sample points x or their spacing dx, not both")
    if t.dtype == DType.bool or (x is not None and F.type_of(
            tensor(F, x, f"{name}'s x")).dtype == DType.bool):
        raise DlgTypeError(f"{name}: received a bool input for `y` or `x`, but bool is not "
                           "supported")
    if t.rank == 0:
        raise DlgShapeError(f"{name}: y needs at least 1 dimension, got a 0-d tensor")
    a = axis_of(F, t, axis, name)
    size = known_size(t, a, name)
    y = tensor(F, y, f"{name}'s y")
    if x is None:
        if dx is not None and not is_number(dx):
            raise DlgTypeError(f"{name}: dx must be a number, got {describe(F, dx)}")
        width: Any = 1.0 if dx is None else float(dx)
    else:
        x = tensor(F, x, f"{name}'s x")
        tx = F.type_of(x)
        if tx.rank == 1:
            if tx.shape[0] != size:
                raise DlgShapeError(f"{name}: There must be one `x` value for each sample "
                                    f"point, got {tx} for {size} points")
            x = F.emit(RESHAPE, x, shape=tuple(size if d == a else 1 for d in range(t.rank)))
        elif tx.rank < t.rank:
            x = F.emit(RESHAPE, x, shape=(1,) * (t.rank - tx.rank) + tuple(tx.shape))
        n = known_size(F.type_of(x), a, name)
        width = F.emit(SUB, _along(F, x, a, min(1, n), n), _along(F, x, a, 0, max(n - 1, 0)))
    pairs = F.emit(ADD, _along(F, y, a, min(1, size), size), _along(F, y, a, 0, max(size - 1, 0)))
    return y, pairs, width, a


def _along(F: Front, x: Any, axis: int, start: int, stop: int) -> Any:
    return F.emit(SLICE, x, axes=(axis,), starts=(start,), stops=(stop,), steps=(1,))
