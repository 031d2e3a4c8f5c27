"""`affine_grid` and `grid_sample`: PyTorch's spatial-transformer functions (2-d and 3-d), composed
of existing ops, so their gradients and compiled forms are those ops'.

affine_grid is one matmul: a constant base grid, a row (x, y[, z], 1) per output position on
PyTorch's linspace over [-1, 1], times theta^T. grid_sample turns each grid coordinate into an
input position (PyTorch's grid_sampler_compute_source_index: unnormalised by align_corners, then
clipped for 'border' or reflected and clipped for 'reflection') and reads the input, its spatial
dims flattened, with one `gather` per neighbour: the 2^nd corners around the position (bilinear,
weights from position - floor(position)) or the nearest pixel (half to even, as nearbyint). A
neighbour outside the input gets weight 0 ('zeros' padding) and reads a clamped position. floor
and round carry no gradient, so the grid's gradient is the weights' and the input's is gather's
scatter, as in PyTorch's backward.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions import args
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import FMOD, ROUND
from dlg.ir.ops.common import FLOATS
from dlg.ir.ops.elementwise import (
    ABS,
    ADD,
    CAST,
    DIV,
    EQ,
    FLOOR,
    GE,
    LE,
    LOGICAL_AND,
    MAXIMUM,
    MINIMUM,
    MUL,
    SUB,
    WHERE,
)
from dlg.ir.ops.gather import GATHER
from dlg.ir.ops.linalg import MATMUL
from dlg.ir.ops.shape import BROADCAST_TO, RESHAPE, SPLIT, TRANSPOSE
from dlg.ir.shapes import Dim

MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")


def _align_corners(F: Front, align_corners: Any, name: str) -> bool:
    """PyTorch's default (None) is False."""
    if align_corners is not None and not isinstance(align_corners, bool):
        raise DlgTypeError(f"{name}: align_corners must be a bool or none, got "
                           f"{describe(F, align_corners)}")
    return bool(align_corners)


# ---- affine_grid --------------------------------------------------------------------------------
def _linspace(steps: int, align_corners: bool, dtype: np.dtype) -> np.ndarray:
    """PyTorch's linspace_from_neg_one: pixel centres in [-1, 1], or the corners' grid, rounded
    as PyTorch rounds them in `dtype`. Bit for bit matters here: an identity theta (how the
    spatial transformer tutorial starts) samples exactly at pixel centres, where bilinear
    sampling has a kink, so a point one ulp off takes its grid gradient from the other side."""
    if steps <= 1:
        return np.zeros(steps, dtype)
    step = dtype.type(2) / dtype.type(steps - 1)
    # at::linspace: -1 + step * i up to halfway, 1 - step * (steps - 1 - i) after, each a fused
    # multiply-add (one rounding), done here in a type that holds the product exactly
    wide = np.longdouble if dtype == np.float64 else np.float64
    i = np.arange(steps).astype(wide)
    points = np.where(i < steps // 2, wide(-1) + wide(step) * i,
                      wide(1) - wide(step) * (wide(steps - 1) - i)).astype(dtype)
    return points if align_corners else points * dtype.type(steps - 1) / dtype.type(steps)


def affine_grid(F: Front, theta: Any, size: Any, align_corners: Any = None) -> Any:
    """PyTorch's F.affine_grid: theta [N, 2, 3] (or [N, 3, 4]) and an output size [N, C, H, W]
    (or [N, C, D, H, W]) -> the sampling grid [N, H, W, 2] (or [N, D, H, W, 3]) of x, y[, z]."""
    t = F.type_of(tensor(F, theta, "affine_grid's theta"))
    corners = _align_corners(F, align_corners, "affine_grid")
    if (not isinstance(size, (tuple, list)) or len(size) not in (4, 5)
            or not all(is_int(s) and s > 0 for s in size[1:])):
        raise DlgTypeError(f"affine_grid: size must be [N, C, H, W] or [N, C, D, H, W] with "
                           f"positive C and spatial sizes, got {describe(F, size)}")
    nd = len(size) - 2
    if t.dtype not in FLOATS or t.shape[1:] != (nd, nd + 1) or t.shape[0] != size[0]:
        raise DlgShapeError(f"affine_grid: theta must be a float [N, {nd}, {nd + 1}] batch of "
                            f"affine matrices with N = size[0] for size {list(size)}, got {t}")
    spatial = tuple(int(s) for s in size[2:])
    axes = np.meshgrid(*(_linspace(s, corners, t.dtype.np) for s in spatial), indexing="ij")
    base = np.stack([*reversed(axes), np.ones(spatial, t.dtype.np)], axis=-1).reshape(-1, nd + 1)
    moved = F.emit(MATMUL, F.lift(base, t.dtype), F.emit(TRANSPOSE, theta, perm=(0, 2, 1)))
    return F.emit(RESHAPE, moved, shape=(t.shape[0], *spatial, nd))


# ---- grid_sample --------------------------------------------------------------------------------
def _op(F: Front, op: Any, x: Any, y: Any) -> Any:
    """op(x, y) with a number y lifted to x's dtype."""
    return F.emit(op, x, F.lift(float(y), F.type_of(x).dtype) if args.is_number(y) else y)


def _clip(F: Front, pos: Any, size: int) -> Any:
    """PyTorch's clip_coordinates: pos within [0, size - 1], no gradient where clipped."""
    top = F.lift(float(size - 1), F.type_of(pos).dtype)
    inside = F.emit(WHERE, _op(F, GE, pos, size - 1), top, pos)
    return F.emit(WHERE, _op(F, LE, pos, 0), F.lift(0.0, F.type_of(pos).dtype), inside)


def _reflect(F: Front, pos: Any, twice_low: int, twice_high: int) -> Any:
    """PyTorch's reflect_coordinates: pos mirrored at low and high (given doubled) until it lies
    between them."""
    if twice_low == twice_high:  # one pixel with align_corners: everything maps onto it
        return _op(F, MUL, pos, 0)
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    distance = F.emit(ABS, _op(F, SUB, pos, low))
    extra = _op(F, FMOD, distance, span)
    flips = F.emit(FLOOR, _op(F, DIV, distance, span))
    odd = _op(F, SUB, flips, _op(F, MUL, F.emit(FLOOR, _op(F, MUL, flips, 0.5)), 2))
    return F.emit(WHERE, _op(F, EQ, odd, 0), _op(F, ADD, extra, low),
                  _op(F, ADD, _op(F, SUB, F.lift(span, F.type_of(pos).dtype), extra), low))


def _unnormalise(F: Front, coord: Any, size: int, align_corners: bool, nd: int) -> Any:
    """A grid coordinate in [-1, 1] as a position along an input dim of `size` pixels, rounded as
    PyTorch's CPU kernels round it: the 2-d one is (coord + 1) * half size (- 0.5 as one fused
    multiply-add without align_corners), the 3-d one grid_sampler_unnormalize. Equal in exact
    arithmetic, but a grid point on a pixel centre (an identity affine_grid) must fall on
    PyTorch's side of floor, or its gradient is the other one-sided derivative."""
    shifted = _op(F, ADD, coord, 1)
    if nd == 3:
        if align_corners:
            return _op(F, MUL, _op(F, DIV, shifted, 2), size - 1)
        return _op(F, DIV, _op(F, SUB, _op(F, MUL, shifted, size), 1), 2)
    if align_corners:
        return _op(F, MUL, shifted, (size - 1) / 2)
    dtype = F.type_of(coord).dtype
    if dtype != DType.f32:  # float64 would need a wider type still: one more rounding here
        return _op(F, SUB, _op(F, MUL, shifted, size / 2), 0.5)
    # a float32 times a half size and less 0.5 is exact in float64: one rounding, as in fma
    wide = _op(F, SUB, _op(F, MUL, F.emit(CAST, shifted, dtype=DType.f64), size / 2), 0.5)
    return F.emit(CAST, wide, dtype=dtype)


def _source(F: Front, coord: Any, size: int, padding_mode: str, align_corners: bool,
            nd: int) -> Any:
    """PyTorch's grid_sampler_compute_source_index: a grid coordinate in [-1, 1] as a position
    along an input dim of `size` pixels, clipped or reflected by padding_mode."""
    pos = _unnormalise(F, coord, size, align_corners, nd)
    if padding_mode == "border":
        return _clip(F, pos, size)
    if padding_mode == "reflection":
        low, high = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        return _clip(F, _reflect(F, pos, low, high), size)
    return pos


def _neighbours(F: Front, pos: Any, mode: str) -> list[tuple[Any, Any]]:
    """(input index as a float, weight or None for 1) of each neighbour along one dim."""
    if mode == "nearest":
        return [(F.emit(ROUND, pos), None)]
    low = F.emit(FLOOR, pos)
    frac = F.emit(SUB, pos, low)
    one = F.lift(1.0, F.type_of(pos).dtype)
    return [(low, F.emit(SUB, one, frac)), (_op(F, ADD, low, 1), frac)]


def _read(F: Front, flat: Any, corner: tuple[tuple[Any, Any], ...], spatial: tuple[int, ...],
          shape: tuple[Dim, ...]) -> Any:
    """One neighbour's input values [N, C, P] times its weight (0 outside the input)."""
    dtype = F.type_of(flat).dtype
    inside, position, weight = None, None, None
    for (index, w), size in zip(corner, spatial):
        ok = F.emit(LOGICAL_AND, _op(F, GE, index, 0), _op(F, LE, index, size - 1))
        inside = ok if inside is None else F.emit(LOGICAL_AND, inside, ok)
        clamped = F.emit(CAST, _op(F, MINIMUM, _op(F, MAXIMUM, index, 0), size - 1),
                         dtype=DType.i64)
        position = clamped if position is None else F.emit(
            ADD, F.emit(MUL, position, F.lift(size, DType.i64)), clamped)
        weight = w if weight is None else F.emit(MUL, weight, w)  # None: nearest's 1
    zero = F.lift(0.0, dtype)
    weight = F.emit(WHERE, inside, F.lift(1.0, dtype) if weight is None else weight, zero)
    values = F.emit(GATHER, flat, F.emit(BROADCAST_TO, position, shape=shape), axis=2)
    return F.emit(MUL, values, weight)


def grid_sample(F: Front, x: Any, grid: Any, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: Any = None) -> Any:
    """PyTorch's F.grid_sample: input [N, C, H, W] read at grid [N, H_out, W_out, 2] (x, y in
    [-1, 1]) -> [N, C, H_out, W_out]; 3-d likewise (5-d input, grid [..., 3], 'bilinear' is
    trilinear)."""
    t = F.type_of(tensor(F, x, "grid_sample's input"))
    g = F.type_of(tensor(F, grid, "grid_sample's grid"))
    args.choice(F, mode, MODES, "grid_sample: mode")
    args.choice(F, padding_mode, PADDING_MODES, "grid_sample: padding_mode")
    corners = _align_corners(F, align_corners, "grid_sample")
    nd = t.rank - 2
    if nd not in (2, 3) or g.rank != t.rank or g.shape[-1] != nd or g.shape[0] != t.shape[0]:
        raise DlgShapeError(f"grid_sample: input [N, C, H, W] takes a grid [N, H_out, W_out, 2] "
                            f"(a 5-d input a grid [N, D_out, H_out, W_out, 3]), got input {t} "
                            f"and grid {g}")
    if t.dtype not in FLOATS or g.dtype != t.dtype:
        raise DlgTypeError(f"grid_sample: input and grid must be floats of one dtype, got "
                           f"{t} and {g}")
    if not all(isinstance(d, int) for d in (*t.shape[1:], *g.shape[1:])):
        raise DlgShapeError(f"grid_sample: channels and spatial dims must be concrete, got "
                            f"input {t} and grid {g}")
    n, c, spatial, out = t.shape[0], int(t.shape[1]), tuple(int(d) for d in t.shape[2:]), \
        tuple(int(d) for d in g.shape[1:-1])
    points = math.prod(out)
    flat = F.emit(RESHAPE, x, shape=(n, c, math.prod(spatial)))
    coords = F.emit(SPLIT, grid, axis=-1, sizes=(1,) * nd)  # x first: the last spatial dim's
    positions = [_source(F, F.emit(RESHAPE, coord, shape=(n, 1, points)), size, padding_mode,
                         corners, nd) for coord, size in zip(reversed(coords), spatial)]
    total = None
    for corner in itertools.product(*(_neighbours(F, p, mode) for p in positions)):
        part = _read(F, flat, corner, spatial, (n, c, points))
        total = part if total is None else F.emit(ADD, total, part)
    return F.emit(RESHAPE, total, shape=(n, c, *out))
