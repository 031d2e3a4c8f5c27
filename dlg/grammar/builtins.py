"""The builtins of the .dlg language: the shared user-facing functions (`dlg.functions`) under
their names, the elaborator being their front door, plus what only .dlg has: static helpers
(range, len, int, float, ntuple, shape), sum/max/min/prod of static tuples and numbers, and the
optimizers and schedules of train sections.

A builtin is called as `fn(E, *args, **kwargs)` after `dlg.functions.call.bind` has checked the
arguments against its signature.
"""

from __future__ import annotations

import builtins
import inspect
import math
from collections.abc import Callable
from typing import Any

from dlg.errors import DlgTypeError
from dlg.functions import FUNCTIONS
from dlg.functions.args import is_number
from dlg.grammar.layer_lists import LayerList
from dlg.grammar.values import Builtin, GraphTensor, describe
from dlg.ir.dtypes import DType
from dlg.ir.shapes import Sym
from dlg.ir.train_spec import (
    OPTIMIZER_DEFAULTS,
    SCHEDULE_DEFAULTS,
    make_optimizer,
    make_schedule,
)

BUILTINS: dict[str, Any] = {d.value: d for d in DType}
BUILTINS.update({name: Builtin(name, fn) for name, fn in FUNCTIONS.items()})


def builtin(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        BUILTINS[name] = Builtin(name, fn)
        return fn
    return register


# ---- reductions of static values: sum((1, 2, 3)), max(a, b) --------------------------------
def _or_static(name: str, static: Callable[..., Any]) -> None:
    """`name` on a tensor is the shared function; on a static tuple or numbers, Python's."""
    shared = FUNCTIONS[name]

    def fn(E: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, GraphTensor) or kwargs:
            return shared(E, x, *args, **kwargs)
        values = x if isinstance(x, tuple) and not args else (x, *args)
        if not values or not all(is_number(v) for v in values):
            raise DlgTypeError(f"{name} takes a tensor, a tuple of numbers or numbers, got "
                               f"{', '.join(describe(v) for v in (x, *args))}")
        return static(values)
    fn.__signature__ = inspect.signature(shared)  # type: ignore[attr-defined]
    BUILTINS[name] = Builtin(name, fn)


_or_static("sum", builtins.sum)
_or_static("max", builtins.max)
_or_static("min", builtins.min)
_or_static("prod", math.prod)


# ---- static helpers -------------------------------------------------------------------------
@builtin("shape")
def _shape(E: Any, x: Any, axis: int | None = None) -> Any:
    if not isinstance(x, GraphTensor):
        raise DlgTypeError(f"shape's argument must be a tensor, got {describe(x)}")
    dims = x.type.shape
    return dims if axis is None else dims[axis]


@builtin("range")
def _range(E: Any, *args: Any) -> tuple[int, ...]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool)
                                           for a in args):
        raise DlgTypeError("range takes 1 to 3 ints")
    return tuple(range(*args))


@builtin("ntuple")
def _ntuple(E: Any, value: Any, n: int) -> tuple[Any, ...]:
    """ntuple(3, 2) == (3, 3); a tuple of length n passes through (PyTorch's _pair)."""
    if isinstance(value, tuple):
        if len(value) != n:
            raise DlgTypeError(f"expected {n} values, got {len(value)}")
        return value
    return (value,) * n


@builtin("len")
def _len(E: Any, value: Any) -> int:
    if isinstance(value, tuple):
        return len(value)
    if isinstance(value, LayerList):  # for i in range(len(blocks)), as in PyTorch
        return len(value.children)
    if isinstance(value, GraphTensor) and value.type.rank:
        return value.type.shape[0]
    raise DlgTypeError(f"len needs a tuple, a layer list or a tensor, got {describe(value)}")


@builtin("str")
def _str(E: Any, value: Any) -> str:
    """A number, dim, string, bool or tuple of them as text: assert messages name values."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_str(E, v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str, Sym)):
        return str(value)
    raise DlgTypeError(f"str needs a number, a dim, a string or a tuple, got {describe(value)}")


@builtin("int")
def _int(E: Any, value: Any) -> int:
    if not is_number(value):
        raise DlgTypeError(f"int needs a number, got {describe(value)}")
    return int(value)


@builtin("float")
def _float(E: Any, value: Any) -> float:
    if not is_number(value):
        raise DlgTypeError(f"float needs a number, got {describe(value)}")
    return float(value)


# ---- optimizers (train sections) ----------------------------------------------------------------
def _train_builtin(name: str, make: Any) -> None:
    def fn(E: Any, **hyper: Any) -> Any:
        return make(name, hyper, E.user_span)
    BUILTINS[name] = Builtin(name, fn)


for _name in OPTIMIZER_DEFAULTS:
    _train_builtin(_name, make_optimizer)
for _name in SCHEDULE_DEFAULTS:
    _train_builtin(_name, make_schedule)
