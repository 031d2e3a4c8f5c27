"""Tensors made from a shape or a range: full, zeros, ones, *_like, arange, rand, randn.
`zeros(2, 3)` and `zeros((2, 3))` both work; dims may be symbolic (`zeros(shape(x, 0), 4)`)."""

from __future__ import annotations

from typing import Any

from dlg.functions import args
from dlg.functions.args import is_number, tensor
from dlg.functions.front import Front
from dlg.errors import DlgTypeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.source import ARANGE, FULL, RANDOM_NORMAL, RANDOM_UNIFORM


def full(F: Front, shape: Any, value: Any, dtype: DType = DType.f32) -> Any:
    """A tensor of `shape` filled with `value`."""
    if not (is_number(value) or isinstance(value, bool)):
        raise DlgTypeError(f"full's value must be a number, got {args.describe(F, value)}")
    return F.emit(FULL, shape=args.shape(F, (shape,)), value=float(value), dtype=dtype)


def zeros(F: Front, *shape: Any, dtype: DType = DType.f32) -> Any:
    return F.emit(FULL, shape=args.shape(F, shape), value=0.0, dtype=dtype)


def ones(F: Front, *shape: Any, dtype: DType = DType.f32) -> Any:
    return F.emit(FULL, shape=args.shape(F, shape), value=1.0, dtype=dtype)


def zeros_like(F: Front, x: Any) -> Any:
    t = F.type_of(tensor(F, x, "zeros_like's argument"))
    return F.emit(FULL, shape=t.shape, value=0.0, dtype=t.dtype)


def ones_like(F: Front, x: Any) -> Any:
    t = F.type_of(tensor(F, x, "ones_like's argument"))
    return F.emit(FULL, shape=t.shape, value=1.0, dtype=t.dtype)


def arange(F: Front, start: Any, stop: Any = None, step: Any = 1, dtype: DType | None = None
           ) -> Any:
    """arange(5) or arange(start, stop, step); f32 when a bound is a float, else i64 (as
    PyTorch does)."""
    bounds = (start, step) if stop is None else (start, stop, step)
    for v in bounds:
        if not is_number(v):
            raise DlgTypeError(f"arange takes numbers, got {args.describe(F, v)}")
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        dtype = args.number_dtype(bounds)
    return F.emit(ARANGE, start=start, stop=stop, step=step, dtype=dtype)


def rand(F: Front, *shape: Any, dtype: DType = DType.f32) -> Any:
    """Uniform samples in [0, 1), fresh at every run."""
    return F.emit(RANDOM_UNIFORM, shape=args.shape(F, shape), dtype=dtype)


def randn(F: Front, *shape: Any, dtype: DType = DType.f32) -> Any:
    """Standard normal samples, fresh at every run."""
    return F.emit(RANDOM_NORMAL, shape=args.shape(F, shape), dtype=dtype)
