"""Order statistics, NaN-skipping reductions, scans, searches and counts with PyTorch's names:
median, nanmedian, nansum, nanmean, aminmax, cummax, cummin, logcumsumexp, bucketize,
searchsorted, isin, histc and histogram.

median sorts (NaN sorts last, so a NaN's rank is the count of the numbers) and reads the lower
middle, or the first NaN where there is one, as PyTorch does; the median of all elements
shares its gradient among the elements equal to it, as PyTorch's does. cummax and cummin
compare every pair of positions along the axis (quadratic in its length: fine for the scans of
a model, not for long series) and read the values at the indices, so the gradient goes to each
index, as in PyTorch. bucketize and searchsorted count the boundaries below each value, NaN
counted past them all, as PyTorch's binary search places it. isin compares every element with
every test element (the product of their sizes: fine for a vocabulary filter, not for millions).
logcumsumexp is a log-depth scan (Hillis-Steele) of logaddexp over shifted copies, so it stays
exact where a running sum of exp(x - max) would underflow. histc bins each element by torch's
division, (x - min) * bins / (max - min), and adds the in-range ones with one scatter_add;
histogram counts the edges at or below each element instead (torch's search after its guess).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import describe, tensor
from dlg.functions.arrange import axis_of, known_numel, known_size
from dlg.functions.creation import linspace
from dlg.functions.front import Front
from dlg.functions.pointwise import logaddexp, promoted
from dlg.functions.reduce import all_, any_, max_, min_, sum_
from dlg.functions.shape import movedim
from dlg.functions.sort import Sorted, kthvalue, sort
from dlg.ir.dtypes import DType
from dlg.ir.ops.arith import FLOOR_DIVIDE, ISNAN
from dlg.ir.ops.elementwise import (
    ADD,
    CAST,
    DIV,
    EQ,
    GE,
    GT,
    LE,
    LOGICAL_AND,
    LOGICAL_NOT,
    LOGICAL_OR,
    LT,
    MAXIMUM,
    MINIMUM,
    MUL,
    SUB,
    WHERE,
)
from dlg.ir.ops.custom import STOP_GRADIENT
from dlg.ir.ops.gather import GATHER
from dlg.ir.ops.reduce import REDUCE_ANY, REDUCE_MAX, REDUCE_MIN, REDUCE_SUM
from dlg.ir.ops.shape import PAD, RESHAPE, SCATTER_ADD, SLICE, SQUEEZE, UNSQUEEZE
from dlg.ir.ops.source import FULL
from dlg.ir.shapes import numel


# ---- NaN-skipping reductions -------------------------------------------------------------------
def _numbers(F: Front, x: Any) -> Any:
    """x with NaN as 0 (x itself when it cannot hold a NaN)."""
    if not F.type_of(x).dtype.is_float:
        return x
    return F.emit(WHERE, F.emit(ISNAN, x), F.lift(0, F.type_of(x).dtype), x)


def nansum(F: Front, x: Any, axis: Any = None, keepdims: bool = False,
           dtype: DType | None = None) -> Any:
    """The sum over `axis` with NaN counted as 0."""
    return sum_(F, _numbers(F, tensor(F, x, "nansum's argument")), axis, keepdims, dtype)


def nanmean(F: Front, x: Any, axis: Any = None, keepdims: bool = False,
            dtype: DType | None = None) -> Any:
    """The mean over `axis` of the numbers that are not NaN (NaN where there are none)."""
    t = F.type_of(tensor(F, x, "nanmean's argument"))
    if not t.dtype.is_float:
        raise DlgTypeError(f"nanmean: the input must be a float tensor, got {t}")
    total = nansum(F, x, axis, keepdims, dtype)
    present = F.emit(LOGICAL_NOT, F.emit(ISNAN, x))
    count = sum_(F, present, axis, keepdims, F.type_of(total).dtype)
    return F.emit(DIV, total, count)


# ---- median ------------------------------------------------------------------------------------
def median(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The lower median of all elements (a 0-d tensor), or (values, indices) along `axis`;
    NaN where a NaN is among them."""
    return _median_of(F, "median", x, axis, keepdims)


def nanmedian(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """median of the numbers that are not NaN (NaN where there are none)."""
    return _median_of(F, "nanmedian", x, axis, keepdims)


def _median_of(F: Front, name: str, x: Any, axis: Any, keepdims: Any) -> Any:
    x = tensor(F, x, f"{name}'s argument")
    t = F.type_of(x)
    if axis is None:
        flat = F.emit(RESHAPE, x, shape=(known_numel(t, name),))
        return _shared(F, flat, _median(F, name, flat, 0, False).values)
    return _median(F, name, x, axis_of(F, t, axis, name), bool(keepdims))


def _shared(F: Front, x: Any, value: Any) -> Any:
    """`value`, with its gradient shared evenly by the elements of the 1-d x equal to it (NaNs
    for a NaN), as PyTorch's median of all elements does: value + sum(x - value) / count over
    them is value exactly, and its gradient to each of them 1 / count."""
    if not F.type_of(x).dtype.is_float:
        return value
    equal = F.emit(LOGICAL_OR, F.emit(EQ, x, value), F.emit(LOGICAL_AND, F.emit(ISNAN, x),
                                                            F.emit(ISNAN, value)))
    zero = F.lift(0, F.type_of(x).dtype)
    spread = F.emit(REDUCE_SUM, F.emit(WHERE, equal, F.emit(SUB, x, value), zero), axes=None,
                    keepdims=False)
    count = F.emit(REDUCE_SUM, F.emit(CAST, equal, dtype=F.type_of(x).dtype), axes=None,
                   keepdims=False)
    return F.emit(ADD, value, F.emit(DIV, spread, count))


def _median(F: Front, name: str, x: Any, a: int, keepdims: bool) -> Sorted:
    t = F.type_of(x)
    size = known_size(t, a, name) if t.rank else 1
    if size == 0:
        raise DlgShapeError(f"{name}: dim {a} of {t} is empty")
    middle = (size - 1) // 2
    if not t.dtype.is_float or t.rank == 0:
        return kthvalue(F, x, middle + 1, a, keepdims)
    values, indices = sort(F, x, a)
    numbers = F.emit(LOGICAL_NOT, F.emit(ISNAN, x))
    ranked = F.emit(REDUCE_SUM, F.emit(CAST, numbers, dtype=DType.i64), axes=(a,), keepdims=True)
    if name == "nanmedian":  # the middle of the numbers; the first NaN where there are none
        half = F.emit(FLOOR_DIVIDE, F.emit(SUB, ranked, F.lift(1, DType.i64)),
                      F.lift(2, DType.i64))
        at = F.emit(MAXIMUM, half, F.lift(0, DType.i64))
    else:  # the first NaN, else the middle
        at = F.emit(WHERE, F.emit(LT, ranked, F.lift(size, DType.i64)), ranked,
                    F.lift(middle, DType.i64))
    picked = [F.emit(GATHER, v, at, axis=a) for v in (values, indices)]
    if not keepdims:
        picked = [F.emit(SQUEEZE, v, axes=(a,)) for v in picked]
    return Sorted(*picked)


# ---- both extremes ----------------------------------------------------------------------------
class MinMax(NamedTuple):
    """What aminmax returns: torch.return_types.aminmax's two fields."""

    min: Any
    max: Any


def aminmax(F: Front, x: Any, *, axis: Any = None, keepdims: bool = False) -> MinMax:
    """(min, max) of all elements, or along the one `axis` (torch.aminmax); each gradient goes
    to the elements equal to its extreme, shared evenly, as amin's and amax's do."""
    x = tensor(F, x, "aminmax's argument")
    t = F.type_of(x)
    if axis is not None:
        if not args.is_int(axis):
            raise DlgTypeError(f"aminmax: dim must be an int, got {describe(F, axis)}")
        a = axis_of(F, t, axis, "aminmax")
        if t.rank and t.shape[a] == 0:
            raise DlgShapeError(f"aminmax: dim {a} of {t} is empty")
    elif numel(t.shape) == 0:
        raise DlgShapeError(f"aminmax: the input {t} is empty; give a dim of nonzero size")
    low, high = (all_, any_) if t.dtype == DType.bool else (min_, max_)
    return MinMax(low(F, x, axis, keepdims), high(F, x, axis, keepdims))


# ---- running extremes --------------------------------------------------------------------------
def _running(name: str, reduce_op: Any) -> Callable[..., Sorted]:
    def fn(F: Front, x: Any, axis: Any) -> Sorted:
        x = tensor(F, x, f"{name}'s argument")
        t = F.type_of(x)
        a = axis_of(F, t, axis, name)
        if t.rank == 0:
            return Sorted(x, F.lift(0, DType.i64))
        last = movedim(F, x, a, -1)
        values, indices = _scan(F, last, known_size(t, a, name), reduce_op)
        return Sorted(movedim(F, values, -1, a), movedim(F, indices, -1, a))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The running {name[3:]}imum along `axis` and the index where it was last "
                  "reached (a NaN, once met, is the running value).")
    return fn


def _scan(F: Front, x: Any, n: int, reduce_op: Any) -> tuple[Any, Any]:
    """(values, indices) of a running extreme along x's last axis: [..., i, j] pairs the i-th
    result with the j-th element, and the j past i read x[..., i] (already among the seen, so
    no sentinel value is needed for any dtype)."""
    t = F.type_of(x)
    work = x if t.dtype != DType.bool else F.emit(CAST, x, dtype=DType.i32)
    j = np.arange(n)
    seen = F.lift((j[None, :] <= j[:, None]).tolist(), DType.bool)  # (i, j): j <= i
    row = F.emit(UNSQUEEZE, work, axes=(t.rank - 1,))  # (..., 1, n): x[..., j]
    column = F.emit(UNSQUEEZE, work, axes=(t.rank,))  # (..., n, 1): x[..., i]
    running = F.emit(reduce_op, F.emit(WHERE, seen, row, column), axes=(t.rank,),
                     keepdims=True)  # (..., n, 1)
    hit = F.emit(EQ, row, running)
    if F.type_of(work).dtype.is_float:
        hit = F.emit(LOGICAL_OR, hit, F.emit(LOGICAL_AND, F.emit(ISNAN, row),
                                             F.emit(ISNAN, running)))
    where = F.emit(WHERE, F.emit(LOGICAL_AND, hit, seen), F.lift(j.tolist(), DType.i64),
                   F.lift(-1, DType.i64))
    indices = F.emit(REDUCE_MAX, where, axes=(t.rank,), keepdims=False)
    return F.emit(GATHER, x, indices, axis=t.rank - 1), indices


cummax = _running("cummax", REDUCE_MAX)
cummin = _running("cummin", REDUCE_MIN)


def logcumsumexp(F: Front, x: Any, axis: Any) -> Any:
    """log(cumsum(exp(x))) along `axis`, without overflow or underflow: step k adds (by
    logaddexp) the running value 2^k places back, -inf before the start, so after
    ceil(log2(n)) steps each place holds the log-sum-exp of all places up to it."""
    x = tensor(F, x, "logcumsumexp's argument")
    t = F.type_of(x)
    if not t.dtype.is_float:
        raise DlgTypeError(f"logcumsumexp: the input must be a float tensor, got {t}")
    a = axis_of(F, t, axis, "logcumsumexp")
    if t.rank == 0:
        return x
    n = known_size(t, a, "logcumsumexp")
    out, k = x, 1
    while k < n:
        head = F.emit(SLICE, out, axes=(a,), starts=(0,), stops=(n - k,), steps=(1,))
        back = F.emit(PAD, head, pads=tuple((k, 0) if i == a else (0, 0) for i in range(t.rank)),
                      value=-np.inf)
        out, k = logaddexp(F, out, back), 2 * k
    return out


# ---- searching sorted values -------------------------------------------------------------------
def _positions(F: Front, name: str, sequence: Any, values: Any, right: bool,
               out_int32: bool) -> Any:
    """For each of `values` (..., k), how many of `sequence` (..., m) lie below it (at or below
    it with `right`), counted along the last axis."""
    s, v = promoted(F, (sequence, values), (f"{name}'s boundaries", f"{name}'s input"))
    t = F.type_of(v)
    below = F.emit(LOGICAL_NOT, F.emit(GT if right else GE, F.emit(UNSQUEEZE, s, axes=(
        F.type_of(s).rank - 1,)), F.emit(UNSQUEEZE, v, axes=(t.rank,))))
    count = F.emit(REDUCE_SUM, F.emit(CAST, below, dtype=DType.i64), axes=(t.rank,),
                   keepdims=False)
    return F.emit(CAST, count, dtype=DType.i32) if out_int32 else count


def _flags(F: Front, name: str, right: Any, out_int32: Any) -> tuple[bool, bool]:
    for value, what in ((right, "right"), (out_int32, "out_int32")):
        if not isinstance(value, bool):
            raise DlgTypeError(f"{name}: {what} must be true or false, got {describe(F, value)}")
    return right, out_int32


def bucketize(F: Front, x: Any, boundaries: Any, out_int32: Any = False, right: Any = False
              ) -> Any:
    """The bucket of each element of x among the sorted 1-d `boundaries`: how many of them
    are below it (at or below it with `right`)."""
    right, out_int32 = _flags(F, "bucketize", right, out_int32)
    b = F.type_of(tensor(F, boundaries, "bucketize's boundaries"))
    if b.rank != 1:
        raise DlgShapeError(f"bucketize: boundaries must be 1-d, got {b}")
    if not F.is_tensor(x):
        x = promoted(F, (boundaries, x), ("bucketize's boundaries", "bucketize's input"))[1]
    t = F.type_of(x)
    row = F.emit(RESHAPE, x, shape=(1, known_numel(t, "bucketize")))  # a row for the one sequence
    out = _positions(F, "bucketize", F.emit(UNSQUEEZE, boundaries, axes=(0,)), row, right,
                     out_int32)
    return F.emit(RESHAPE, out, shape=t.shape)


def searchsorted(F: Front, sorted_sequence: Any, x: Any, out_int32: Any = False,
                 right: Any = False, side: Any = None, sorter: Any = None) -> Any:
    """Where each value of x would go in `sorted_sequence` (1-d, or one sorted row per leading
    index of x) to keep it sorted: the first place (the last with right=True or side='right').
    `sorter` holds the indices that sort an unsorted sequence."""
    right, out_int32 = _flags(F, "searchsorted", right, out_int32)
    if side is not None:
        args.choice(F, side, ("left", "right"), "searchsorted: side")
        if right and side == "left":
            raise DlgValueError("searchsorted: side='left' and right=True contradict each other")
        right = side == "right"
    s = F.type_of(tensor(F, sorted_sequence, "searchsorted's sorted_sequence"))
    if s.rank == 0:
        raise DlgShapeError("searchsorted: sorted_sequence must have at least 1 dim")
    if sorter is not None:
        sorted_sequence = F.emit(GATHER, sorted_sequence,
                                 tensor(F, sorter, "searchsorted's sorter"), axis=s.rank - 1)
    if s.rank == 1:
        return bucketize(F, x, sorted_sequence, out_int32, right)
    t = F.type_of(tensor(F, x, "searchsorted's input"))
    if t.shape[:-1] != s.shape[:-1]:
        raise DlgShapeError(f"searchsorted: the leading dims of sorted_sequence {s} and the "
                            f"input {t} must match")
    return _positions(F, "searchsorted", sorted_sequence, x, right, out_int32)



def isin(F: Front, elements: Any, test_elements: Any, assume_unique: Any = False,
         invert: Any = False) -> Any:
    """Whether each of `elements` is among `test_elements` (torch.isin; either may be a number),
    at their common dtype; `invert` asks whether it is not. `assume_unique` changes nothing."""
    if not (F.is_tensor(elements) or F.is_tensor(test_elements)):
        raise DlgTypeError("isin: elements or test_elements must be a tensor")
    if not isinstance(invert, bool):
        raise DlgTypeError(f"isin: invert must be true or false, got {describe(F, invert)}")
    e, s = promoted(F, (elements, test_elements), ("isin's elements", "isin's test_elements"))
    t = F.type_of(e)
    tests = F.emit(RESHAPE, s, shape=(numel(F.type_of(s).shape),))
    found = F.emit(REDUCE_ANY, F.emit(EQ, F.emit(UNSQUEEZE, e, axes=(t.rank,)), tests),
                   axes=(t.rank,), keepdims=False)
    return F.emit(LOGICAL_NOT, found) if invert else found


# ---- histogram ---------------------------------------------------------------------------------
def histc(F: Front, x: Any, bins: Any = 100, min: Any = 0, max: Any = 0) -> Any:  # noqa: A002
    """The counts of x's elements in `bins` equal bins over [min, max] (torch.histc), in x's
    dtype; elements outside the range (and NaN) are left out, max itself falls in the last bin.
    min == max means the data's range (widened by 1 each way when all elements are equal).
    Counts have no gradient."""
    x = tensor(F, x, "histc's argument")
    t = F.type_of(x)
    if not t.dtype.is_float:
        raise DlgTypeError(f"histc: the input must be a float tensor, got {t}")
    if not args.is_int(bins) or bins <= 0:
        raise DlgValueError(f"histc: bins must be a positive int, got {describe(F, bins)}")
    for value, what in ((min, "min"), (max, "max")):
        if not args.is_number(value) or not np.isfinite(value):
            raise DlgValueError(f"histc: {what} must be a finite number, got "
                                f"{describe(F, value)}")
    if min > max:
        raise DlgValueError(f"histc: max must be larger than min, got min={min}, max={max}")
    flat = F.emit(RESHAPE, x, shape=(numel(t.shape),))
    if min == max and numel(t.shape) != 0:  # the data's range (NaN in it counts nothing)
        low = F.emit(REDUCE_MIN, flat, axes=None, keepdims=False)
        high = F.emit(REDUCE_MAX, flat, axes=None, keepdims=False)
        same = F.emit(EQ, low, high)
        low = F.emit(WHERE, same, F.emit(SUB, low, F.lift(1, t.dtype)), low)
        high = F.emit(WHERE, same, F.emit(ADD, high, F.lift(1, t.dtype)), high)
    else:
        low, high = (F.lift(float(v), t.dtype) for v in ((min - 1, max + 1) if min == max
                                                           else (min, max)))
    inside = F.emit(LOGICAL_AND, F.emit(GE, flat, low), F.emit(LE, flat, high))
    scaled = F.emit(DIV, F.emit(MUL, F.emit(SUB, flat, low), F.lift(float(bins), t.dtype)),
                    F.emit(SUB, high, low))
    scaled = F.emit(WHERE, inside, scaled, F.lift(0, t.dtype))  # no NaN or inf cast to int
    at = F.emit(MINIMUM, F.emit(CAST, scaled, dtype=DType.i64), F.lift(int(bins) - 1, DType.i64))
    counts = F.emit(SCATTER_ADD, F.emit(CAST, inside, dtype=t.dtype), at, axis=0,
                    shape=(int(bins),))
    return counts


class Histogram(NamedTuple):
    """What histogram returns: torch.return_types.histogram's two fields."""

    hist: Any
    bin_edges: Any


def histogram(F: Front, x: Any, bins: Any = 100, *, range: Any = None,  # noqa: A002
              weight: Any = None, density: Any = False) -> Histogram:
    """x's elements counted (their `weight`s summed) in bins (torch.histogram): `bins` equal
    bins over `range`, the data's min and max by default (widened by 0.5 each way when they are
    equal), or the bins between the edges of a 1-d tensor `bins`. An element falls in the bin
    whose left edge is at or below it and whose right edge above it, the last bin taking its
    right edge too; elements outside the edges (and NaN) count nothing. `density` divides by the
    total and by each bin's width. The edges come in x's dtype; neither result has a gradient."""
    x = tensor(F, x, "histogram's argument")
    t = F.type_of(x)
    if t.dtype not in (DType.f32, DType.f64):
        raise DlgTypeError(f"histogram: the input must be a float32 or float64 tensor, got {t}")
    if not isinstance(density, bool):
        raise DlgTypeError(f"histogram: density must be true or false, got "
                           f"{describe(F, density)}")
    flat = F.emit(RESHAPE, F.emit(STOP_GRADIENT, x), shape=(numel(t.shape),))
    if F.is_tensor(bins):
        if range is not None:
            raise DlgTypeError("histogram: range goes with a number of bins, not with a tensor "
                               "of bin edges")
        edges = F.emit(STOP_GRADIENT, bins)
        e = F.type_of(edges)
        if e.rank != 1 or known_size(e, 0, "histogram") < 2:
            raise DlgShapeError(f"histogram: the bin edges must be a 1-d tensor of at least 2, "
                                f"got {e}")
        if e.dtype is not t.dtype:
            raise DlgTypeError(f"histogram: the input ({t.dtype}) and the bin edges "
                               f"({e.dtype}) must have the same dtype")
        n = e.shape[0] - 1
    else:
        if not args.is_int(bins) or bins <= 0:
            raise DlgValueError(f"histogram: bins must be a positive int or a 1-d tensor of "
                                f"edges, got {describe(F, bins)}")
        n = int(bins)
        edges = linspace(F, *_histogram_range(F, flat, range), n + 1, dtype=t.dtype)
    if weight is None:
        weight = F.emit(FULL, shape=(numel(t.shape),), value=1.0, dtype=t.dtype)
    else:
        w = F.type_of(tensor(F, weight, "histogram's weight"))
        if w.shape != t.shape or w.dtype is not t.dtype:
            raise DlgShapeError(f"histogram: the weight {w} must have the input's shape and "
                                f"dtype, {t}")
        weight = F.emit(RESHAPE, F.emit(STOP_GRADIENT, weight), shape=(numel(t.shape),))
    first = F.emit(SLICE, edges, axes=(0,), starts=(0,), stops=(1,), steps=(1,))
    last = F.emit(SLICE, edges, axes=(0,), starts=(n,), stops=(n + 1,), steps=(1,))
    inside = F.emit(LOGICAL_AND, F.emit(GE, flat, first), F.emit(LE, flat, last))
    at = F.emit(SUB, _positions(F, "histogram", edges, flat, True, False), F.lift(1, DType.i64))
    at = F.emit(WHERE, inside, F.emit(MINIMUM, at, F.lift(n - 1, DType.i64)),
                F.lift(0, DType.i64))
    hist = F.emit(SCATTER_ADD, F.emit(WHERE, inside, weight, F.lift(0, t.dtype)), at, axis=0,
                  shape=(n,))
    if density:
        widths = F.emit(SUB, F.emit(SLICE, edges, axes=(0,), starts=(1,), stops=(n + 1,),
                                    steps=(1,)),
                        F.emit(SLICE, edges, axes=(0,), starts=(0,), stops=(n,), steps=(1,)))
        total = F.emit(REDUCE_SUM, hist, axes=None, keepdims=False)
        hist = F.emit(DIV, F.emit(DIV, hist, total), widths)
    return Histogram(hist, edges)


def _histogram_range(F: Front, flat: Any, range: Any) -> tuple[Any, Any]:  # noqa: A002
    """histogram's outer edges: `range`'s two finite numbers, or the data's min and max (0 and
    1 for no data), widened by 0.5 each way when they are equal."""
    if range is None:
        if known_numel(F.type_of(flat), "histogram") == 0:
            return 0.0, 1.0
        dtype = F.type_of(flat).dtype
        low = F.emit(REDUCE_MIN, flat, axes=None, keepdims=False)
        high = F.emit(REDUCE_MAX, flat, axes=None, keepdims=False)
        same = F.emit(EQ, low, high)
        return (F.emit(WHERE, same, F.emit(SUB, low, F.lift(0.5, dtype)), low),
                F.emit(WHERE, same, F.emit(ADD, high, F.lift(0.5, dtype)), high))
    if (not isinstance(range, (tuple, list)) or len(range) != 2
            or not all(args.is_number(v) and np.isfinite(v) for v in range)):
        raise DlgValueError(f"histogram: range must be two finite numbers (min, max), got "
                            f"{describe(F, range)}")
    low, high = (float(v) for v in range)
    if low > high:
        raise DlgValueError(f"histogram: min should not exceed max, got min {low} max {high}")
    return (low - 0.5, high + 0.5) if low == high else (low, high)
