"""Reductions with PyTorch's arguments: sum, mean, prod, max/amax, min/amin over `axis` (dim),
argmax/argmin, logsumexp, var/std (and with the mean), all/any, count_nonzero, numel.
`max(x, axis)` is the values (PyTorch's amax); the eager `x.max(dim)` adds the indices itself.

Dims follow PyTorch: None or () is every axis (all and any: () is none), negative dims count
from the end, a 0-d tensor takes dim 0 or -1, and a dim out of range or given twice is an error
naming it. Integer sums and products are int64, as PyTorch's; `dtype=` casts first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.functions.args import axes, describe, is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import CAST, NE
from dlg.ir.ops.nn import LOGSUMEXP
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.reduce import (
    ARGMAX,
    ARGMIN,
    NUMEL,
    REDUCE_ALL,
    REDUCE_ANY,
    REDUCE_MAX,
    REDUCE_MEAN,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_STD,
    REDUCE_SUM,
    REDUCE_VAR,
)


def dims(F: Front, x: Any, value: Any, name: str, empty_is_all: bool = True
         ) -> tuple[int, ...] | None:
    """PyTorch's `dim` of a reduction of x, as sorted axes in 0..rank-1 (None: every axis)."""
    given = axes(F, value, f"{name}: axis")
    if given is None or (not given and empty_is_all):
        return None
    rank = F.type_of(x).rank
    bound = max(rank, 1)
    out: list[int] = []
    for d in given:
        if not -bound <= d < bound:
            raise DlgShapeError(f"{name}: dim {d} is out of range for a {rank}-d tensor "
                                f"(dims are {-bound}..{bound - 1})")
        if d % bound in out:
            raise DlgShapeError(f"{name}: dim {d % bound} appears twice in {tuple(given)}")
        out.append(d % bound)
    return tuple(sorted(a for a in out if a < rank))


def with_dtype(F: Front, x: Any, dtype: DType | None) -> Any:
    """x cast to `dtype` (PyTorch's dtype= argument of reductions), or x itself for None."""
    if dtype is None or dtype == F.type_of(x).dtype:
        return x
    if not isinstance(dtype, DType):
        raise DlgTypeError(f"dtype must be a dtype such as f32, got {describe(F, dtype)}")
    return F.emit(CAST, x, dtype=dtype)


def _widened(F: Front, x: Any, dtype: DType | None) -> Any:
    """x cast to `dtype`, or bools and the narrower ints to int64 (PyTorch's sum and prod)."""
    if dtype is None and F.type_of(x).dtype in (DType.bool, DType.u8, DType.i8, DType.i16,
                                                DType.i32):
        dtype = DType.i64
    return with_dtype(F, x, dtype)


def _reduction(name: str, op: OpDef, accumulates: bool) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, keepdims: bool = False,
           dtype: DType | None = None) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        x = _widened(F, x, dtype) if accumulates else with_dtype(F, x, dtype)
        return F.emit(op, x, axes=dims(F, x, axis, name), keepdims=keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The {name} over `axis` (an int, a tuple of ints, or None for all)."
    return fn


sum_ = _reduction("sum", REDUCE_SUM, True)
mean = _reduction("mean", REDUCE_MEAN, False)
prod = _reduction("prod", REDUCE_PROD, True)
max_ = _reduction("max", REDUCE_MAX, False)
min_ = _reduction("min", REDUCE_MIN, False)


def _arg(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        if axis is not None and not is_int(axis):
            raise DlgTypeError(f"{name} takes one axis (an int) or none, got "
                               f"{describe(F, axis)}")
        if axis is not None:
            found = dims(F, x, axis, name)
            axis = found[0] if found else None  # a 0-d tensor's dim 0 is the whole tensor
        return F.emit(op, x, axis=axis, keepdims=keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The index of the first {name[3:]} along `axis` (None: of the flattened x)."
    return fn


argmax = _arg("argmax", ARGMAX)
argmin = _arg("argmin", ARGMIN)


def logsumexp(F: Front, x: Any, axis: Any = -1, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over `axis`, computed without overflow; integers as f32."""
    x = tensor(F, x, "logsumexp's argument")
    if F.type_of(x).dtype.is_complex:
        raise DlgTypeError(f"logsumexp: complex tensors are not supported, got {F.type_of(x)}")
    if not F.type_of(x).dtype.is_float:
        x = F.emit(CAST, x, dtype=DType.f32)
    found = dims(F, x, axis, "logsumexp")
    return F.emit(LOGSUMEXP, x, axes=found, keepdims=keepdims)


def numel(F: Front, x: Any, axis: Any = None, dtype: DType = DType.f32) -> Any:
    """The element count over `axis` as a scalar tensor (a run-time value for symbolic dims)."""
    return F.emit(NUMEL, tensor(F, x, "numel's argument"), axes=axes(F, axis), dtype=dtype)


# ---- statistics --------------------------------------------------------------------------------
def _correction(F: Front, name: str, unbiased: Any, correction: Any) -> float:
    """PyTorch's two spellings of the divisor n - correction: `unbiased` or `correction`."""
    if unbiased is not None and correction is not None:
        raise DlgTypeError(f"{name}: give unbiased or correction, not both")
    if unbiased is not None:
        if not isinstance(unbiased, bool):
            raise DlgTypeError(f"{name}: unbiased must be a bool, got {describe(F, unbiased)}")
        return float(unbiased)
    if correction is None:
        return 1.0
    if not is_number(correction):
        raise DlgTypeError(f"{name}: correction must be a number, got "
                           f"{describe(F, correction)}")
    return float(correction)


def _statistic(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, unbiased: Any = None, keepdims: bool = False,
           correction: Any = None) -> Any:
        if isinstance(axis, bool):  # var(x, True): PyTorch's (input, unbiased) form
            axis, unbiased = None, axis
        x = tensor(F, x, f"{name}'s argument")
        return F.emit(op, x, axes=dims(F, x, axis, name), keepdims=keepdims,
                      correction=_correction(F, name, unbiased, correction))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"The {name} over `axis` with divisor n - correction (1 by default; "
                  "unbiased=False is 0).")
    return fn


var = _statistic("var", REDUCE_VAR)
std = _statistic("std", REDUCE_STD)


def _with_mean(name: str, statistic: Callable[..., Any]) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, unbiased: Any = None, keepdims: bool = False,
           correction: Any = None) -> tuple[Any, Any]:
        if isinstance(axis, bool):
            axis, unbiased = None, axis
        spread = statistic(F, x, axis, unbiased, keepdims, correction)
        return spread, mean(F, x, axis, keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"({name.split('_')[0]}, mean) over `axis`, as PyTorch's {name}."
    return fn


var_mean = _with_mean("var_mean", var)
std_mean = _with_mean("std_mean", std)


# ---- truth -------------------------------------------------------------------------------------
def _truth(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        out = F.emit(op, x, axes=dims(F, x, axis, name, empty_is_all=False), keepdims=keepdims)
        return F.emit(CAST, out, dtype=DType.u8) if F.type_of(x).dtype == DType.u8 else out
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"Whether {name} elements over `axis` are nonzero, as bools (as uint8 for "
                  f"uint8, torch's legacy rule).")
    return fn


all_ = _truth("all", REDUCE_ALL)
any_ = _truth("any", REDUCE_ANY)


def count_nonzero(F: Front, x: Any, axis: Any = None) -> Any:
    """How many elements over `axis` are nonzero, as int64."""
    x = tensor(F, x, "count_nonzero's argument")
    zero = F.lift(False if F.type_of(x).dtype == DType.bool else 0, F.type_of(x).dtype)
    hits = F.emit(CAST, F.emit(NE, x, zero), dtype=DType.i64)
    return F.emit(REDUCE_SUM, hits, axes=dims(F, x, axis, "count_nonzero"), keepdims=False)
