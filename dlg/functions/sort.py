"""Ordering and scans along one axis: sort, argsort, msort, topk, kthvalue, cumsum, cumprod and
flip, with PyTorch's semantics (dlg/ir/ops/sort.py has the order: stable, NaN largest).

A 0-d tensor is a row of one, as in PyTorch (axis 0 or -1). sort, topk and kthvalue return
`Sorted(values, indices)` (torch.return_types' fields). The scans take `dtype=` (the input is
cast first), integers and bools scan in int64, and f16/f32 accumulate in the next wider float,
as PyTorch does on the CPU, so long sums do not drift. flip is one slice with negative steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import CAST
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.shape import INDEX, RESHAPE, SLICE, UNSQUEEZE
from dlg.ir.ops.sort import CUMPROD, CUMSUM, SORT, TOPK
from dlg.ir.types import TensorType

WIDER = {DType.f16: DType.f32, DType.f32: DType.f64}  # PyTorch's CPU accumulation types


class Sorted(NamedTuple):
    """What sort, topk and kthvalue return: torch.return_types' two fields."""

    values: Any
    indices: Any


def _checked_axis(F: Front, t: TensorType, axis: Any, name: str) -> int:
    """`axis` of t (negatives count from the end); a 0-d t has axis 0 (and -1)."""
    a = args.axis(F, axis, f"{name}: axis")
    rank = max(t.rank, 1)
    if not -rank <= a < rank:
        raise DlgShapeError(f"{name}: axis {a} is out of range for {t}")
    return a % rank


def _by_rows(F: Front, x: Any, run: Callable[[Any], tuple[Any, ...]]) -> tuple[Any, ...]:
    """run(x) with a 0-d x seen as a row of one, its results made 0-d again."""
    if F.type_of(x).rank:
        return run(x)
    outs = run(F.emit(RESHAPE, x, shape=(1,)))
    return tuple(F.emit(RESHAPE, o, shape=()) for o in outs)


def _flag(F: Front, value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise DlgTypeError(f"{what} must be true or false, got {describe(F, value)}")
    return value


def sort(F: Front, x: Any, axis: Any = -1, descending: Any = False, stable: Any = False
         ) -> Sorted:
    """(values, indices) in ascending order along `axis` (descending with `descending`); ties
    keep their order whatever `stable` says, and NaN counts as the largest value."""
    x = tensor(F, x, "sort's argument")
    a = _checked_axis(F, F.type_of(x), axis, "sort")
    descending = _flag(F, descending, "sort: descending")
    _flag(F, stable, "sort: stable")
    return Sorted(*_by_rows(F, x, lambda r: F.emit(SORT, r, axis=a, descending=descending)))


def argsort(F: Front, x: Any, axis: Any = -1, descending: Any = False, stable: Any = False
            ) -> Any:
    """The indices that sort x along `axis` (sort's second result)."""
    return sort(F, x, axis, descending, stable).indices


def msort(F: Front, x: Any) -> Any:
    """x sorted along its first axis (torch.msort)."""
    return sort(F, x, 0).values


def _count(F: Front, k: Any, name: str) -> int:
    if not is_int(k):
        raise DlgTypeError(f"{name}: k must be an int, got {describe(F, k)}")
    return int(k)


def topk(F: Front, x: Any, k: Any, axis: Any = -1, largest: Any = True, sorted: Any = True
         ) -> Sorted:
    """The k largest (smallest with largest=false) along `axis` and their indices, largest
    first; always in order, which `sorted=False` allows."""
    x = tensor(F, x, "topk's argument")
    t = F.type_of(x)
    k, a = _count(F, k, "topk"), _checked_axis(F, t, axis, "topk")
    largest = _flag(F, largest, "topk: largest")
    _flag(F, sorted, "topk: sorted")
    size = t.shape[a] if t.rank else 1
    if k < 0 or isinstance(size, int) and k > size:
        raise DlgValueError(f"topk: k={k} is out of range for axis {a} of size {size} of {t}")
    if t.rank == 0:  # PyTorch gives the scalar back for k 0 and 1 alike
        k = 1
    return Sorted(*_by_rows(F, x, lambda r: F.emit(TOPK, r, k=k, axis=a, largest=largest)))


def kthvalue(F: Front, x: Any, k: Any, axis: Any = -1, keepdims: Any = False) -> Sorted:
    """The k-th smallest value along `axis` (k counts from 1) and its index."""
    x = tensor(F, x, "kthvalue's argument")
    t = F.type_of(x)
    k, a = _count(F, k, "kthvalue"), _checked_axis(F, t, axis, "kthvalue")
    size = t.shape[a] if t.rank else 1
    if k < 1 or isinstance(size, int) and k > size:
        raise DlgValueError(f"kthvalue: k={k} is out of range 1..{size} for axis {a} of {t}")
    values, indices = sort(F, x, a)
    if t.rank == 0:
        return Sorted(values, indices)
    picked = [F.emit(INDEX, v, axis=a, index=k - 1) for v in (values, indices)]
    if _flag(F, keepdims, "kthvalue: keepdims"):
        picked = [F.emit(UNSQUEEZE, v, axes=(a,)) for v in picked]
    return Sorted(*picked)


def _scan(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any, dtype: Any = None) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        a = _checked_axis(F, F.type_of(x), axis, name)
        have = F.type_of(x).dtype
        want = have if have.is_inexact else DType.i64
        if dtype is not None:
            if not isinstance(dtype, DType) or dtype == DType.bool:
                raise DlgTypeError(f"{name}: dtype must be a dlg number dtype such as "
                                   f"dlg.float64 (f64 in .dlg), got {describe(F, dtype)}")
            want = dtype
        wide = WIDER.get(want, want)
        if have != wide:
            x = F.emit(CAST, x, dtype=wide)
        (out,) = _by_rows(F, x, lambda r: (F.emit(op, r, axis=a),))
        return out if wide == want else F.emit(CAST, out, dtype=want)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The running {name[3:]} along `axis`, in `dtype` (x's dtype; int64 for ints "
                  "and bools), accumulated as PyTorch does.")
    return fn


cumsum = _scan("cumsum", CUMSUM)
cumprod = _scan("cumprod", CUMPROD)


def flip(F: Front, x: Any, dims: Any, *more: Any) -> Any:
    """x reversed along `dims` (an int, a tuple of ints, or several ints: x.flip(0, 1))."""
    x = tensor(F, x, "flip's argument")
    t = F.type_of(x)
    given = (dims,) + more if is_int(dims) else tuple(dims) if isinstance(
        dims, (tuple, list)) and not more else None
    if given is None or not all(map(is_int, given)):
        raise DlgTypeError(f"flip: dims must be ints, got {describe(F, dims)}")
    axes = [_checked_axis(F, t, d, "flip") for d in given]
    if len(set(axes)) != len(axes):
        raise DlgValueError(f"flip: dims {list(given)} name an axis twice")
    if t.rank == 0 or not axes:
        return x
    return F.emit(SLICE, x, axes=tuple(axes), starts=tuple(t.shape[a] - 1 for a in axes),
                  stops=(-1,) * len(axes), steps=(-1,) * len(axes))
