"""Reductions: sum, mean, prod, max, min over `axis` (None: all), argmax/argmin, logsumexp,
numel. `max(x, axis)` is the values (PyTorch's amax); the eager `x.max(dim)` adds the indices
itself, as PyTorch returns both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dlg.errors import DlgTypeError
from dlg.functions.args import axes, describe, is_int, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.elementwise import CAST
from dlg.ir.ops.nn import LOGSUMEXP
from dlg.ir.ops.opdef import OpDef
from dlg.ir.ops.reduce import (
    ARGMAX,
    ARGMIN,
    NUMEL,
    REDUCE_MAX,
    REDUCE_MEAN,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_SUM,
)


def _reduction(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        if op is REDUCE_SUM and F.type_of(x).dtype == DType.bool:
            x = F.emit(CAST, x, dtype=DType.i64)  # PyTorch counts booleans
        return F.emit(op, x, axes=axes(F, axis, f"{name}: axis"), keepdims=keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The {name} over `axis` (an int, a tuple of ints, or None for all)."
    return fn


sum_ = _reduction("sum", REDUCE_SUM)
mean = _reduction("mean", REDUCE_MEAN)
prod = _reduction("prod", REDUCE_PROD)
max_ = _reduction("max", REDUCE_MAX)
min_ = _reduction("min", REDUCE_MIN)


def _arg(name: str, op: OpDef) -> Callable[..., Any]:
    def fn(F: Front, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = tensor(F, x, f"{name}'s argument")
        if axis is not None and not is_int(axis):
            raise DlgTypeError(f"{name} takes one axis (an int) or none, got "
                               f"{describe(F, axis)}")
        return F.emit(op, x, axis=axis, keepdims=keepdims)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"The index of the first {name[3:]} along `axis` (None: of the flattened x)."
    return fn


argmax = _arg("argmax", ARGMAX)
argmin = _arg("argmin", ARGMIN)


def logsumexp(F: Front, x: Any, axis: Any = -1, keepdims: bool = False) -> Any:
    """log(sum(exp(x))) over `axis`, computed without overflow."""
    return F.emit(LOGSUMEXP, tensor(F, x, "logsumexp's argument"), axes=axes(F, axis),
                  keepdims=keepdims)


def numel(F: Front, x: Any, axis: Any = None, dtype: DType = DType.f32) -> Any:
    """The element count over `axis` as a scalar tensor (a run-time value for symbolic dims)."""
    return F.emit(NUMEL, tensor(F, x, "numel's argument"), axes=axes(F, axis), dtype=dtype)
