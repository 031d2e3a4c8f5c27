"""Pooling and window functions with PyTorch's signatures: max_pool1d/2d/3d (dilation, ceil_mode,
return_indices), max_unpool1d/2d/3d (a scatter at those indices), avg_pool1d/2d/3d (ceil_mode,
count_include_pad, divisor_override), lp_pool1d/2d/3d (power-average, over avg_pool as torch
computes it), the adaptive pools (any output size; torch's bins
start=floor(i*L/out), end=ceil((i+1)*L/out)), unfold (im2col) and fold (col2im).

Regular windows are the max_pool/avg_pool ops. What they cannot say (max pooling's indices,
adaptive bins that do not divide the input, im2col) is a gather: the spatial dims are flattened,
one fill element is appended, and a constant table of flat positions (`WindowTable`, NumPy at
trace time; positions outside the input read the fill) picks every window with one `take`.
Gradients are take's scatter, and the compiled forms are those of take, reductions and argmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions.args import describe, ints, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.functions.nn import pool_options
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import SPATIAL_RANKS, spatial_names
from dlg.ir.ops.elementwise import ABS, ADD, MUL, NEG, POW, RELU, SIGN
from dlg.ir.ops.gather import SCATTER
from dlg.ir.ops.pool import AVG_POOL, MAX_POOL, avg_divisor, pool_sizes
from dlg.ir.ops.reduce import ARGMAX, REDUCE_MAX, REDUCE_SUM
from dlg.ir.ops.source import FULL
from dlg.ir.ops.shape import PAD, RESHAPE, SCATTER_ADD, SLICE, TAKE, TRANSPOSE
from dlg.ir.types import TensorType


@dataclass(frozen=True)
class WindowTable:
    """Flat input positions [out..., K] of each output's window over `spatial` dims; the
    position prod(spatial) (one past the end) stands for padding."""

    spatial: tuple[int, ...]
    out: tuple[int, ...]
    positions: np.ndarray  # [prod(out), K] int64

    @property
    def fill(self) -> int:
        return math.prod(self.spatial)


def sliding_windows(spatial: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...],
                    stride: tuple[int, ...], padding: tuple[int, ...],
                    dilation: tuple[int, ...]) -> WindowTable:
    """Regular windows, in row-major kernel order (PyTorch's for indices and im2col)."""
    axes = [(np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d)  # [out, kernel] per dim
            for o, k, s, p, d in zip(out, kernel, stride, padding, dilation)]
    return _product(spatial, out, axes)


def adaptive_windows(spatial: tuple[int, ...], out: tuple[int, ...]) -> tuple[WindowTable,
                                                                               np.ndarray]:
    """PyTorch's adaptive bins, each padded to the widest by repeating its last position, and
    each position's share of its bin's mean (0 for the repeats)."""
    axes, shares = [], []
    for size, o in zip(spatial, out):
        start = (np.arange(o) * size) // o
        end = -((-(np.arange(o) + 1) * size) // o)
        width = int((end - start).max())
        offset = np.minimum(np.arange(width)[None, :], (end - start - 1)[:, None])
        axes.append(start[:, None] + offset)
        shares.append((np.arange(width)[None, :] < (end - start)[:, None]) / (end - start)[:, None])
    share = shares[0]
    for s in shares[1:]:
        share = (share[:, None, :, None] * s[None, :, None, :]).reshape(
            share.shape[0] * s.shape[0], -1)
    return _product(spatial, out, axes), share


def _product(spatial: tuple[int, ...], out: tuple[int, ...], axes: list[np.ndarray]
             ) -> WindowTable:
    """The windows of the product of per-dim windows (each [out_d, k_d]), flattened."""
    inside = np.ones((1, 1), bool)
    flat = np.zeros((1, 1), np.int64)
    for size, pos in zip(spatial, axes):
        ok = (pos >= 0) & (pos < size)
        inside = (inside[:, None, :, None] & ok[None, :, None, :]).reshape(
            inside.shape[0] * pos.shape[0], -1)
        flat = (flat[:, None, :, None] * size + pos[None, :, None, :]).reshape(inside.shape)
    fill = math.prod(spatial)
    return WindowTable(spatial, out, np.where(inside, flat, fill).astype(np.int64))


def gather_windows(F: Front, x: Any, table: WindowTable, fill: float) -> Any:
    """x [..., *spatial] -> [..., prod(out), K]: every window's elements, `fill` outside."""
    t = F.type_of(x)
    lead = t.shape[:t.rank - len(table.spatial)]
    flat = F.emit(RESHAPE, x, shape=lead + (table.fill,))
    flat = F.emit(PAD, flat, pads=((0, 0),) * len(lead) + ((0, 1),), value=fill)
    return F.emit(TAKE, flat, F.lift(table.positions, DType.i64), axis=len(lead))


def _spatial(F: Front, x: Any, nd: int, name: str) -> tuple[TensorType, tuple[int, ...]]:
    t = F.type_of(tensor(F, x, f"{name}'s input"))
    if t.rank not in (nd + 1, nd + 2):
        raise DlgShapeError(f"{name}: input must be [N, C, {spatial_names(nd)}] or unbatched, "
                            f"got {t}")
    dims = t.shape[t.rank - nd:]
    if not all(isinstance(d, int) for d in dims):
        raise DlgShapeError(f"{name}: the spatial dims must be concrete, got {t}")
    return t, _concrete(dims)


def _concrete(dims: tuple[Any, ...]) -> tuple[int, ...]:
    """Spatial dims already checked to be ints (pools need concrete spatial dims)."""
    return tuple(int(d) for d in dims)


def _argmax_positions(F: Front, windows: Any, table: WindowTable, shape: tuple[Any, ...]) -> Any:
    """The flat input position of each window's first maximum, shaped `shape`."""
    first = F.emit(ARGMAX, windows, axis=-1)  # [..., prod(out)]
    k = table.positions.shape[1]
    row_start = F.lift(np.arange(table.positions.shape[0]) * k, DType.i64)
    picked = F.emit(TAKE, F.lift(table.positions.reshape(-1), DType.i64),
                    F.emit(ADD, first, row_start), axis=0)
    return F.emit(RESHAPE, picked, shape=shape)


# ---- max and average pooling --------------------------------------------------------------------
def _max_pool(nd: int) -> Callable[..., Any]:
    def max_pool(F: Front, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: Any = False, return_indices: Any = False) -> Any:
        name = f"max_pool{nd}d"
        attrs = pool_options(F, nd, kernel_size, stride, padding, ceil_mode)
        attrs["dilation"] = ints(F, dilation, nd, "dilation")
        values = F.emit(MAX_POOL, tensor(F, x, f"{name}'s input"), **attrs)
        if not isinstance(return_indices, bool):
            raise DlgTypeError(f"{name}: return_indices must be a bool, got "
                               f"{describe(F, return_indices)}")
        if not return_indices:
            return values
        t, spatial = _spatial(F, x, nd, name)
        out = _concrete(F.type_of(values).shape[t.rank - nd:])
        table = sliding_windows(spatial, out, attrs["kernel"], attrs["stride"],
                                attrs["padding"], attrs["dilation"])
        dtype = F.type_of(values).dtype
        lowest = -math.inf if dtype.is_float else int(np.iinfo(dtype.np).min)
        windows = gather_windows(F, x, table, lowest)
        return values, _argmax_positions(F, windows, table, F.type_of(values).shape)
    max_pool.__name__ = max_pool.__qualname__ = f"max_pool{nd}d"
    max_pool.__doc__ = (f"PyTorch's F.max_pool{nd}d (padding counts as -inf); with "
                        f"return_indices, also each maximum's index into the flattened "
                        f"spatial input.")
    return max_pool


def _avg_pool(nd: int) -> Callable[..., Any]:
    def avg_pool(F: Front, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: Any = False, count_include_pad: Any = True,
                 divisor_override: Any = None) -> Any:
        name = f"avg_pool{nd}d"
        attrs = pool_options(F, nd, kernel_size, stride, padding, ceil_mode)
        y = F.emit(AVG_POOL, tensor(F, x, f"{name}'s input"),
                   count_include_pad=count_include_pad, **attrs)
        if divisor_override is None:
            return y
        if not is_int(divisor_override) or divisor_override < 1:
            raise DlgTypeError(f"{name}: divisor_override must be a positive int, got "
                               f"{describe(F, divisor_override)}")
        t, spatial = _spatial(F, x, nd, name)
        out = _concrete(F.type_of(y).shape[t.rank - nd:])
        divisor = avg_divisor(spatial, out, attrs["kernel"], attrs["stride"], attrs["padding"],
                              count_include_pad)  # what avg_pool divided by
        return F.emit(MUL, y, F.lift(divisor / divisor_override, t.dtype))
    avg_pool.__name__ = avg_pool.__qualname__ = f"avg_pool{nd}d"
    avg_pool.__doc__ = (f"PyTorch's F.avg_pool{nd}d; divisor_override divides each window's "
                        f"sum by that number instead.")
    return avg_pool


max_pool1d, max_pool2d, max_pool3d = (_max_pool(nd) for nd in SPATIAL_RANKS)
avg_pool1d, avg_pool2d, avg_pool3d = (_avg_pool(nd) for nd in SPATIAL_RANKS)


def _lp_pool(nd: int) -> Callable[..., Any]:
    def lp_pool(F: Front, x: Any, norm_type: Any, kernel_size: Any, stride: Any = None,
                ceil_mode: Any = False) -> Any:
        name = f"lp_pool{nd}d"
        if not is_number(norm_type) or norm_type == 0 or math.isnan(norm_type):
            raise DlgValueError(f"{name}: norm_type must be a nonzero number (inf for the "
                                f"largest magnitude), got {describe(F, norm_type)}")
        x = tensor(F, x, f"{name}'s input")
        attrs = pool_options(F, nd, kernel_size, stride, 0, ceil_mode)
        dtype = F.type_of(x).dtype
        if math.isinf(norm_type):  # the largest |x| of each window, or minus the smallest
            magnitude = F.emit(ABS, x)
            if norm_type > 0:
                return F.emit(MAX_POOL, magnitude, dilation=(1,) * nd, **attrs)
            return F.emit(NEG, F.emit(MAX_POOL, F.emit(NEG, magnitude), dilation=(1,) * nd,
                                      **attrs))
        mean = F.emit(AVG_POOL, F.emit(POW, x, F.lift(norm_type, dtype)),
                      count_include_pad=True, **attrs)
        # sign(mean) * relu(|mean|), as torch: the same values, and no gradient where a
        # window's sum is 0 (relu's gradient there is 0, where pow's would be inf)
        total = F.emit(MUL, F.emit(MUL, F.emit(SIGN, mean), F.emit(RELU, F.emit(ABS, mean))),
                       F.lift(math.prod(attrs["kernel"]), dtype))
        return F.emit(POW, total, F.lift(1.0 / norm_type, dtype))
    lp_pool.__name__ = lp_pool.__qualname__ = f"lp_pool{nd}d"
    lp_pool.__doc__ = (f"PyTorch's F.lp_pool{nd}d: (sum of x^p over each window)^(1/p), computed "
                       f"as torch does (avg_pool{nd}d of x^p times the kernel's size, so a "
                       f"ceil_mode window cut by the edge is scaled up as torch's is); p = inf "
                       f"is the largest |x|.")
    return lp_pool


lp_pool1d, lp_pool2d, lp_pool3d = (_lp_pool(nd) for nd in SPATIAL_RANKS)


# ---- max unpooling ------------------------------------------------------------------------------
def _unpool_size(F: Front, output_size: Any, default: tuple[int, ...], stride: tuple[int, ...],
                 name: str) -> tuple[int, ...]:
    """torch's _unpool_output_size: the default, or `output_size` (its last len(default)
    entries when it also names N and C) within a stride of the default."""
    if output_size is None:
        return default
    nd = len(default)
    sizes = output_size
    if isinstance(sizes, (tuple, list)) and len(sizes) == nd + 2:
        sizes = sizes[2:]
    if not (isinstance(sizes, (tuple, list)) and len(sizes) == nd and all(map(is_int, sizes))):
        raise DlgTypeError(f"{name}: output_size must be {nd} ints (or {nd + 2}), got "
                           f"{describe(F, output_size)}")
    for d, (size, base, step) in enumerate(zip(sizes, default, stride)):
        if not base - step < size < base + step:
            raise DlgShapeError(f"{name}: output_size {tuple(sizes)} is invalid: dim {d} must "
                                f"be between {base - step} and {base + step}, exclusive")
    return tuple(int(v) for v in sizes)


def _max_unpool(nd: int) -> Callable[..., Any]:
    def max_unpool(F: Front, x: Any, indices: Any, kernel_size: Any, stride: Any = None,
                   padding: Any = 0, output_size: Any = None) -> Any:
        name = f"max_unpool{nd}d"
        attrs = pool_options(F, nd, kernel_size, stride, padding)
        t, spatial = _spatial(F, x, nd, name)
        i = F.type_of(tensor(F, indices, f"{name}'s indices"))
        if i.dtype not in (DType.i64, DType.i32) or i.shape != t.shape:
            raise DlgShapeError(f"{name}: indices must be integers of the input's shape {t}, "
                                f"got {i}")
        default = tuple((s - 1) * st - 2 * p + k for s, k, st, p in zip(
            spatial, attrs["kernel"], attrs["stride"], attrs["padding"]))
        out = _unpool_size(F, output_size, default, attrs["stride"], name)
        lead = t.shape[:t.rank - nd]
        flat = (*lead, math.prod(spatial))
        zeros = F.emit(FULL, shape=(*lead, math.prod(out)), value=0.0, dtype=t.dtype)
        y = F.emit(SCATTER, zeros, F.emit(RESHAPE, indices, shape=flat),
                   F.emit(RESHAPE, x, shape=flat), axis=len(lead))
        return F.emit(RESHAPE, y, shape=(*lead, *out))
    max_unpool.__name__ = max_unpool.__qualname__ = f"max_unpool{nd}d"
    max_unpool.__doc__ = (f"PyTorch's F.max_unpool{nd}d: each value written at its index (as "
                          f"max_pool{nd}d's return_indices gives it) into the flattened spatial "
                          f"output of zeros; the gradient reads the output's at the index.")
    return max_unpool


max_unpool1d, max_unpool2d, max_unpool3d = (_max_unpool(nd) for nd in SPATIAL_RANKS)


# ---- adaptive pooling ---------------------------------------------------------------------------
def _output_size(F: Front, output_size: Any, spatial: tuple[int, ...], name: str
                 ) -> tuple[int, ...]:
    """An int, or a tuple whose None entries keep the input's size."""
    nd = len(spatial)
    sizes = (output_size,) * nd if is_int(output_size) else output_size
    if (not isinstance(sizes, (tuple, list)) or len(sizes) != nd
            or not all(s is None or is_int(s) and s > 0 for s in sizes)):
        raise DlgTypeError(f"{name}: output_size must be a positive int or a tuple of {nd} "
                           f"(positive ints or none), got {describe(F, output_size)}")
    return tuple(size if s is None else int(s) for s, size in zip(sizes, spatial))


def _adaptive(kind: str, nd: int) -> Callable[..., Any]:
    name = f"adaptive_{kind}_pool{nd}d"

    def pool(F: Front, x: Any, output_size: Any, return_indices: Any = False) -> Any:
        t, spatial = _spatial(F, x, nd, name)
        out = _output_size(F, output_size, spatial, name)
        if kind == "avg" and return_indices is not False:
            raise DlgTypeError(f"{name} takes no return_indices")
        shape = t.shape[:t.rank - nd] + out
        if all(size % o == 0 for size, o in zip(spatial, out)) and not return_indices:
            kernel = tuple(size // o for size, o in zip(spatial, out))  # regular windows
            op, extra = (MAX_POOL, {}) if kind == "max" else (AVG_POOL, {"count_include_pad":
                                                                          True})
            return F.emit(op, x, kernel=kernel, stride=kernel, padding=(0,) * nd, **extra)
        table, share = adaptive_windows(spatial, out)
        windows = gather_windows(F, x, table, 0.0)
        if kind == "avg":
            mean = F.emit(REDUCE_SUM, F.emit(MUL, windows, F.lift(share, t.dtype)), axes=(-1,))
            return F.emit(RESHAPE, mean, shape=shape)
        values = F.emit(RESHAPE, F.emit(REDUCE_MAX, windows, axes=(-1,)), shape=shape)
        return (values, _argmax_positions(F, windows, table, shape)) if return_indices \
            else values
    pool.__name__ = pool.__qualname__ = name
    pool.__doc__ = (f"PyTorch's F.{name}: output_size bins per spatial dim, bin i covering "
                    f"floor(i*L/out) to ceil((i+1)*L/out).")
    if kind == "avg":  # no return_indices in PyTorch's signature
        def avg(F: Front, x: Any, output_size: Any) -> Any:
            return pool(F, x, output_size)
        avg.__name__, avg.__qualname__, avg.__doc__ = name, name, pool.__doc__
        return avg
    return pool


adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (_adaptive("avg", nd)
                                                                  for nd in SPATIAL_RANKS)
adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (_adaptive("max", nd)
                                                                  for nd in SPATIAL_RANKS)


# ---- im2col and col2im --------------------------------------------------------------------------
def _unfold_table(F: Front, spatial: tuple[int, ...], kernel_size: Any, dilation: Any,
                  padding: Any, stride: Any, name: str) -> WindowTable:
    kernel = ints(F, kernel_size, 2, "kernel_size")
    dilation, padding = ints(F, dilation, 2, "dilation"), ints(F, padding, 2, "padding")
    stride = ints(F, stride, 2, "stride")
    out = tuple(pool_sizes(name, TensorType(DType.f32, (1,) + spatial), kernel, stride, padding,
                           dilation, False, any_padding=True))
    return sliding_windows(spatial, out, kernel, stride, padding, dilation)


def _last_two_swapped(F: Front, x: Any) -> Any:
    rank = F.type_of(x).rank
    return F.emit(TRANSPOSE, x, perm=tuple(range(rank - 2)) + (rank - 1, rank - 2))


def unfold(F: Front, x: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Any:
    """im2col: x [N, C, H, W] -> [N, C * kh * kw, L], each column one window (zero padding),
    channels outermost, as PyTorch's F.unfold."""
    t, spatial = _spatial(F, x, 2, "unfold")
    table = _unfold_table(F, spatial, kernel_size, dilation, padding, stride, "unfold")
    columns = _last_two_swapped(F, gather_windows(F, x, table, 0.0))  # [..., C, K, L]
    length, k = table.positions.shape
    return F.emit(RESHAPE, columns, shape=t.shape[:t.rank - 3] + (t.shape[t.rank - 3] * k, length))


def fold(F: Front, x: Any, output_size: Any, kernel_size: Any, dilation: Any = 1,
         padding: Any = 0, stride: Any = 1) -> Any:
    """col2im, unfold's transpose: x [N, C * kh * kw, L] -> [N, C, *output_size], each
    column added into its window (overlaps sum), as PyTorch's F.fold."""
    t = F.type_of(tensor(F, x, "fold's input"))
    spatial = ints(F, output_size, 2, "output_size")
    table = _unfold_table(F, spatial, kernel_size, dilation, padding, stride, "fold")
    length, k = table.positions.shape
    if t.rank not in (2, 3) or not isinstance(t.shape[-2], int) or t.shape[-2] % k \
            or t.shape[-1] != length:
        raise DlgShapeError(f"fold: input must be [N, C * {k}, {length}] for kernel "
                            f"{kernel_size} and output_size {list(spatial)}, got {t}")
    lead = t.shape[:-2]
    channels = lead + (t.shape[-2] // k,)
    cols = F.emit(RESHAPE, x, shape=channels + (k, length))
    updates = F.emit(RESHAPE, _last_two_swapped(F, cols), shape=channels + (length * k,))
    image = F.emit(SCATTER_ADD, updates, F.lift(table.positions.reshape(-1), DType.i64),
                   axis=len(channels), shape=channels + (table.fill + 1,))
    image = F.emit(SLICE, image, axes=(len(channels),), starts=(0,), stops=(table.fill,),
                   steps=(1,))
    return F.emit(RESHAPE, image, shape=channels + spatial)

