"""Pooling: `max_pool` and `avg_pool` over the last 1 to 3 dims with PyTorch's semantics (its
output-size rule with ceil_mode, avg_pool's divisor), and their backward primitives.

`max_pool_grad(x, g)` routes each window's gradient to the first maximum of the window in
row-major order (PyTorch's choice; padding never receives any); `avg_pool_grad(g)` spreads each
window's gradient evenly over the elements its divisor counted. Pool backward ops are primitives,
not decompositions, because codegen gives them one loop over the windows (a scatter), where a
decomposition would need a window-sized temporary per output.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlg.errors import DlgAttributeError, DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (
    FLOATS,
    NUMERIC,
    SPATIAL_RANKS,
    check_lengths,
    concrete_dims,
    padded,
    require_dtype,
    same_dtype,
    select,
)
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType


# ---- pooling ----------------------------------------------------------------------------------
def pool_sizes(op: str, x: TensorType, kernel: tuple[int, ...], stride: tuple[int, ...],
               padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool,
               any_padding: bool = False) -> list[int]:
    """PyTorch's pooling_output_shape, with its argument checks (pools pad at most half the
    kernel; im2col, `any_padding`, pads as much as it likes)."""
    nd = len(kernel)
    if nd not in SPATIAL_RANKS or x.rank < nd + 1:
        raise DlgShapeError(f"{op}: kernel {list(kernel)} needs 1 to 3 spatial dims and an input "
                            f"of rank at least {nd + 1}, got {x}")
    check_lengths(op, nd, stride=stride, padding=padding, dilation=dilation)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise DlgAttributeError(f"{op}: kernel, stride and dilation must be positive and padding "
                                f"non-negative, got kernel={list(kernel)}, stride={list(stride)}, "
                                f"dilation={list(dilation)}, padding={list(padding)}")
    if not any_padding and any(p > k // 2 for p, k in zip(padding, kernel)):
        raise DlgAttributeError(f"{op}: padding {list(padding)} must be at most half the kernel "
                                f"size {list(kernel)}")
    spatial = concrete_dims(op, x, range(x.rank - nd, x.rank), "spatial dims")
    out = []
    for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        n = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1  # the last window must start inside the input or its left padding
        if n < 1:
            raise DlgShapeError(f"{op}: input {x} is too small for kernel {list(kernel)} "
                                f"(dilation {list(dilation)}, padding {list(padding)})")
        out.append(n)
    return out


def _pads(shape: Sequence[int], out: Sequence[int], kernel: Sequence[int],
          stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]
          ) -> list[tuple[int, int]]:
    """(low, high) padding per spatial dim of `shape`: `padding`, and high enough for
    ceil_mode's last window, which may run past the right padding."""
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    return [(p, max((o - 1) * s + e - p - size, 0))
            for o, s, e, p, size
            in zip(out, stride, extent, padding, shape[len(shape) - len(out):])]


def _windows(x: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             padding: Sequence[int], dilation: Sequence[int], out: Sequence[int], fill: float
             ) -> np.ndarray:
    """[..., *out, *kernel] windows over the last len(kernel) dims of x, padded with `fill`."""
    nd = len(kernel)
    lead = x.ndim - nd
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    pads = _pads(x.shape, out, kernel, stride, padding, dilation)
    xp = padded(x, pads, fill)
    win = sliding_window_view(xp, extent, axis=tuple(range(lead, x.ndim)))
    return win[(slice(None),) * lead
               + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
               + tuple(slice(None, None, d) for d in dilation)]


def _over_windows(win: np.ndarray, nd: int, combine: np.ufunc) -> np.ndarray:
    """`combine` (np.maximum, np.add) folded over the windows' last `nd` axes one kernel
    position at a time: NumPy reduces short trailing axes of a strided view element by element
    (a 2x2 max pool over [64, 16, 28, 28]: 31 ms as `win.max`, 1.3 ms here)."""
    out = None
    for pos in np.ndindex(*win.shape[win.ndim - nd:]):
        term = win[(Ellipsis, *pos)]
        out = term.copy() if out is None else combine(out, term, out=out)
    return out


def _ones_if_empty(dilation: tuple[int, ...], kernel: tuple[int, ...]) -> tuple[int, ...]:
    return dilation or (1,) * len(kernel)


def _max_pool_infer(x: TensorType, *, kernel, stride, padding, dilation, ceil_mode) -> TensorType:
    require_dtype("max_pool", x, NUMERIC)  # torch's max pools take integers (uint8 images)
    out = pool_sizes("max_pool", x, kernel, stride, padding, _ones_if_empty(dilation, kernel),
                      ceil_mode)
    return x.with_shape(x.shape[:x.rank - len(kernel)] + tuple(out))


def _max_pool_ref(x: np.ndarray, *, kernel, stride, padding, dilation, ceil_mode) -> np.ndarray:
    dilation = _ones_if_empty(dilation, kernel)
    t = TensorType(DType.of(x), x.shape)
    out = pool_sizes("max_pool", t, kernel, stride, padding, dilation, ceil_mode)
    win = _windows(x, kernel, stride, padding, dilation, out, _lowest(x.dtype))
    return _over_windows(win, len(kernel), np.maximum)


def _lowest(dtype: np.dtype) -> float:
    """What padding holds for a max: -inf, or an integer dtype's minimum."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


_POOL_ATTRS = {"kernel": Attr("ints"), "stride": Attr("ints"), "padding": Attr("ints"),
               "ceil_mode": Attr("bool", False)}
MAX_POOL = defop("max_pool", ("x",), _max_pool_infer, ref=_max_pool_ref,
                 attrs={**_POOL_ATTRS, "dilation": Attr("ints", ())},
                 vjp=lambda b, n, g: (b.max_pool_grad(n.inputs[0], g, **n.attrs),),
                 traits={Trait.WINDOW},
                 doc="PyTorch's max_pool1d/2d/3d over the last 1 to 3 dims; dilation () means 1s.")


def _avg_pool_infer(x: TensorType, *, kernel, stride, padding, ceil_mode, count_include_pad
                    ) -> TensorType:
    require_dtype("avg_pool", x, FLOATS)
    out = pool_sizes("avg_pool", x, kernel, stride, padding, (1,) * len(kernel), ceil_mode)
    return x.with_shape(x.shape[:x.rank - len(kernel)] + tuple(out))


def avg_divisor(shape: Sequence[int], out: Sequence[int], kernel, stride, padding,
                 count_include_pad: bool) -> np.ndarray:
    """PyTorch's divisor per output position: the window clipped to the padded input, or to
    the input itself."""
    nd = len(kernel)
    divisor = np.ones((), np.float64)
    for axis, (o, k, s, p) in enumerate(zip(out, kernel, stride, padding)):
        start = np.arange(o) * s - p
        size = shape[len(shape) - nd + axis]
        end = np.minimum(start + k, size + p)
        count = end - start if count_include_pad else np.minimum(end, size) - np.maximum(start, 0)
        divisor = np.multiply.outer(divisor, count)
    return divisor


def _avg_pool_ref(x: np.ndarray, *, kernel, stride, padding, ceil_mode, count_include_pad
                  ) -> np.ndarray:
    nd = len(kernel)
    ones = (1,) * nd
    t = TensorType(DType.of(x), x.shape)
    out = pool_sizes("avg_pool", t, kernel, stride, padding, ones, ceil_mode)
    win = _windows(x.astype(np.float64), kernel, stride, padding, ones, out, 0.0)
    total = _over_windows(win, nd, np.add)
    divisor = avg_divisor(x.shape, out, kernel, stride, padding, count_include_pad)
    return (total / divisor).astype(x.dtype)


AVG_POOL = defop("avg_pool", ("x",), _avg_pool_infer, ref=_avg_pool_ref,
                 attrs={**_POOL_ATTRS, "count_include_pad": Attr("bool", True)},
                 vjp=lambda b, n, g: (b.avg_pool_grad(g, shape=b.type_of(n.inputs[0]).shape,
                                                      **n.attrs),),
                 traits={Trait.WINDOW},
                 doc="PyTorch's avg_pool1d/2d/3d over the last 1 to 3 dims, with its divisor "
                     "rules.")


# ---- backward -----------------------------------------------------------------------------------
def _scatter_windows(shape: Sequence[int], values: np.ndarray, kernel: Sequence[int],
                     stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                     dtype: np.dtype, chosen: np.ndarray | None = None) -> np.ndarray:
    """Add values[..., *out] (one per window) into zeros of `shape` at every element of its
    window, or with `chosen` only at the kernel position (row-major index) it names; padding
    receives nothing; the sums are returned in `dtype`. One add into a strided slice of a
    padded buffer per kernel position, in row-major order: np.add.at scatters element by
    element (a 2x2 max pool's gradient over [64, 16, 28, 28]: 16-23 ms, here 2.2 ms)."""
    nd = len(kernel)
    out = values.shape[values.ndim - nd:]
    pads = _pads(shape, out, kernel, stride, padding, dilation)
    lead = tuple(shape[:len(shape) - nd])
    total = np.zeros(lead + tuple(size + lo + hi for size, (lo, hi)
                                  in zip(shape[len(lead):], pads)), values.dtype)
    for i, pos in enumerate(np.ndindex(*kernel)):
        view = total[(Ellipsis, *(slice(k * d, k * d + (o - 1) * s + 1, s)
                                  for k, d, o, s in zip(pos, dilation, out, stride)))]
        view += values if chosen is None else select(chosen == i, values)
    inside = total[(Ellipsis, *(slice(lo, lo + size)
                                for size, (lo, _) in zip(shape[len(lead):], pads)))]
    return np.ascontiguousarray(inside, dtype)


def _first_max(win: np.ndarray, nd: int) -> np.ndarray:
    """The row-major kernel position of each window's first maximum, a NaN counting as the
    maximum (np.argmax's rule), folded over the kernel positions without masks: argmax over
    the windows' flattened trailing axes copies the strided view and reduces its short axis
    element by element (2x2 windows over [64, 16, 28, 28]: 6.2 ms as argmax, 0.9 ms here)."""
    kernel = win.shape[win.ndim - nd:]
    index = np.min_scalar_type(int(np.prod(kernel)) - 1)
    best = first = None
    for i, pos in enumerate(np.ndindex(*kernel)):
        term = win[(Ellipsis, *pos)]
        if best is None:
            best, first = term.copy(), np.zeros(term.shape, index)
            continue
        later = ~(term <= best) & (best == best)  # larger, or a NaN after no NaN
        np.maximum(first, later * index.type(i), out=first)  # i exceeds every earlier index
        np.maximum(best, term, out=best)  # NaN stays once met, as argmax's first NaN does
    return first


def _max_pool_grad_infer(x: TensorType, g: TensorType, **attrs) -> TensorType:
    same_dtype("max_pool_grad", x, g)
    expected = _max_pool_infer(x, **attrs)
    if g.shape != expected.shape:
        raise DlgShapeError(f"max_pool_grad: gradient {g} does not match the pooled {expected}")
    return x


def _max_pool_grad_ref(x: np.ndarray, g: np.ndarray, *, kernel, stride, padding, dilation,
                       ceil_mode) -> np.ndarray:
    dilation = _ones_if_empty(dilation, kernel)
    nd = len(kernel)
    out = g.shape[g.ndim - nd:]
    win = _windows(x, kernel, stride, padding, dilation, out, -np.inf)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    # Windows that share no element receive one value each: no sum to widen.
    disjoint = all(s >= e for s, e in zip(stride, extent))
    values = g if disjoint else g.astype(np.float64)
    return _scatter_windows(x.shape, values, kernel, stride, padding, dilation, x.dtype,
                            chosen=_first_max(win, nd))


MAX_POOL_GRAD = defop(
    "max_pool_grad", ("x", "g"), _max_pool_grad_infer, ref=_max_pool_grad_ref,
    attrs={**_POOL_ATTRS, "dilation": Attr("ints", ())}, traits={Trait.OWN_KERNEL},
    doc="max_pool's backward: each window's gradient goes to its first maximum. No VJP of its "
        "own (second derivatives through max pooling are not supported).")


def _avg_pool_grad_infer(g: TensorType, *, shape, kernel, stride, padding, ceil_mode,
                         count_include_pad) -> TensorType:
    x = g.with_shape(tuple(shape))
    expected = _avg_pool_infer(x, kernel=kernel, stride=stride, padding=padding,
                               ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    if g.shape != expected.shape:
        raise DlgShapeError(f"avg_pool_grad: gradient {g} does not match avg_pool of {x}, "
                            f"which is {expected}")
    return x


def _avg_pool_grad_ref(g: np.ndarray, *, shape, kernel, stride, padding, ceil_mode,
                       count_include_pad) -> np.ndarray:
    nd = len(kernel)
    out = g.shape[g.ndim - nd:]
    share = g.astype(np.float64) / avg_divisor(shape, out, kernel, stride, padding,
                                                 count_include_pad)
    ones = (1,) * nd
    return _scatter_windows(shape, share, kernel, stride, padding, ones, g.dtype)


AVG_POOL_GRAD = defop(
    "avg_pool_grad", ("g",), _avg_pool_grad_infer, ref=_avg_pool_grad_ref,
    attrs={**_POOL_ATTRS, "count_include_pad": Attr("bool", True), "shape": Attr("dims")},
    traits={Trait.OWN_KERNEL},
    vjp=lambda b, n, g: (b.avg_pool(g, **{k: v for k, v in n.attrs.items() if k != "shape"}),),
    doc="avg_pool's backward (its transpose): each window's gradient shared over the elements "
        "its divisor counted; avg_pool is in turn this op's VJP.")
