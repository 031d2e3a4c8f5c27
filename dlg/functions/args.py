"""Reading the arguments of user-facing functions: one parser per kind of argument, so a bad
stride, axis, shape or operand gives the same message from a .dlg file and from Python.

Python numbers meet tensors as weak types (JAX's term): a number takes the dtype of the tensor
it meets. A float meeting an integer tensor and a bool meeting a numeric one are errors here;
the eager frontend first promotes as PyTorch does (`dlg/frontend/tensor.py`), so the numbers
it hands on always fit.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.functions.front import Front
from dlg.ir.dtypes import DType
from dlg.ir.ops.opdef import OpDef
from dlg.ir.shapes import Dim, Sym


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v: Any) -> bool:
    """A Python (or NumPy scalar) int or float; bools are not numbers here."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
        v, (bool, np.bool_))


def is_static(v: Any) -> bool:
    """A plain number or bool: what constant folding works on."""
    return is_number(v) or isinstance(v, (bool, np.bool_))


def describe(F: Front, value: Any) -> str:
    """A short phrase naming a value, for error messages (the same from both front doors)."""
    if F.is_tensor(value):
        return f"a tensor {F.type_of(value)}"
    if isinstance(value, (bool, np.bool_)):
        return f"the bool {str(bool(value)).lower()}"
    if isinstance(value, DType):
        return f"the dtype {value.value}"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, Sym):
        return f"the dim {value}"
    if is_number(value) or isinstance(value, str):
        kind = "float" if isinstance(value, (float, np.floating)) else type(value).__name__
        kind = "int" if is_int(value) else kind
        return f"{kind} {value.item() if isinstance(value, np.generic) else value!r}"
    return F.describe(value)


def suggest(name: str, candidates: Any) -> str:
    """A '; did you mean ...?' suffix when a close name exists."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def tensor(F: Front, value: Any, what: str) -> Any:
    if not F.is_tensor(value):
        raise DlgTypeError(f"{what} must be a tensor, got {describe(F, value)}")
    return value


def ints(F: Front, value: Any, n: int, what: str) -> tuple[int, ...]:
    """An int for every one of `n` spatial dims, or a tuple of n ints (PyTorch's _pair)."""
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(map(is_int, value)):
        return tuple(int(v) for v in value)
    raise DlgTypeError(f"{what} must be an int or a tuple of {n} ints, got {describe(F, value)}")


def axis(F: Front, value: Any, what: str = "axis") -> int:
    if not is_int(value):
        raise DlgTypeError(f"{what} must be an int, got {describe(F, value)}")
    return int(value)


def axes(F: Front, value: Any, what: str = "axis") -> tuple[int, ...] | None:
    """None (every axis), an int or a tuple of ints."""
    if value is None:
        return None
    if is_int(value):
        return (int(value),)
    if isinstance(value, (tuple, list)) and all(map(is_int, value)):
        return tuple(int(v) for v in value)
    raise DlgTypeError(f"{what} must be an int or a tuple of ints, got {describe(F, value)}")


def shape(F: Front, dims: Sequence[Any]) -> tuple[Dim, ...]:
    """zeros(2, 3) and zeros((2, 3)) both mean shape (2, 3); dims are ints or symbols."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    for d in dims:
        if not (is_int(d) or isinstance(d, Sym)):
            raise DlgTypeError(f"a shape holds ints or dims, got {describe(F, d)}")
    return tuple(d if isinstance(d, Sym) else int(d) for d in dims)


def choice(F: Front, value: Any, options: Sequence[str], what: str) -> str:
    if value not in options:
        raise DlgTypeError(f"{what} must be {_or(options)}, got {describe(F, value)}")
    return value


def _or(options: Sequence[str]) -> str:
    quoted = [repr(o) for o in options]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def number_dtype(values: Sequence[Any]) -> DType:
    """The dtype numbers get when no tensor is there to meet: f32 if any is a float, bool if all
    are bools, else i64 (PyTorch's defaults)."""
    if any(isinstance(v, (float, np.floating)) for v in values):
        return DType.f32
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return DType.bool
    return DType.i64


def operands(F: Front, values: Sequence[Any], whats: Sequence[str]) -> list[Any]:
    """Tensors for `values`: tensors as they are, numbers lifted with the first tensor's dtype
    (weak types), or with `number_dtype` when there is no tensor."""
    tensors = [v for v in values if F.is_tensor(v)]
    numbers = [v for v in values if not F.is_tensor(v)]
    for v, what in zip(values, whats):
        if not (F.is_tensor(v) or is_static(v)):
            raise DlgTypeError(f"{what} must be a tensor or a number, got {describe(F, v)}")
    dtype = F.type_of(tensors[0]).dtype if tensors else number_dtype(numbers)
    return [v if F.is_tensor(v) else F.lift(weak(v, dtype), dtype) for v in values]


def weak(value: Any, dtype: DType) -> Any:
    """A number that is about to take `dtype`, if it may (.dlg's rule, see the docstring)."""
    if isinstance(value, (bool, np.bool_)):
        if dtype != DType.bool:
            raise DlgTypeError(f"a bool meets an {dtype} tensor; use cast")
    elif isinstance(value, (float, np.floating)) and not dtype.is_inexact:
        raise DlgTypeError(f"the float {value} meets an {dtype} tensor; cast the tensor to a "
                           "float dtype first")
    elif dtype.is_int and dtype.itemsize < 8 and isinstance(value, (int, np.integer)):
        info = np.iinfo(dtype.np)  # an int outside a small int's range wraps into it, as torch's
        return (int(value) - info.min) % (1 << info.bits) + info.min  # (uint8 x + 300 is x + 44)
    return value


def int_scalar(value: Any, dtype: DType) -> int:
    """An int stored into an integer dtype where torch checks it (full, fill_, masked_fill,
    clamp): c10's `overflows` rule, the dtype's range, and for uint8 down to -255, which wraps
    (fill_(-1) is 255); else a DlgValueError in torch's words."""
    info = np.iinfo(dtype.np)
    low = -int(info.max) if dtype.is_unsigned else int(info.min)
    if not low <= int(value) <= int(info.max):
        raise DlgValueError(f"value {value} cannot be converted to type {dtype.torch_name} "
                            f"without overflow")
    return (int(value) - int(info.min)) % (1 << int(info.bits)) + int(info.min)


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "float": ("a number", is_number), "int": ("an int", is_int),
    "bool": ("a bool", lambda v: isinstance(v, (bool, np.bool_))),
    "str": ("a string", lambda v: isinstance(v, str)),
    "dtype": ("a dtype such as f32", lambda v: isinstance(v, DType))}


def attributes(F: Front, op: OpDef, given: dict[str, Any]) -> dict[str, Any]:
    """`given` after checking each attribute's kind and choices, named as the user wrote it."""
    for name, value in given.items():
        spec = op.attrs[name]
        words, fits = _KINDS.get(spec.kind.rstrip("?"), ("", lambda v: True))
        if not (fits(value) or spec.kind.endswith("?") and value is None):
            raise DlgTypeError(f"{op.name}: {name} must be {words}, got {describe(F, value)}")
        if spec.choices:
            choice(F, value, spec.choices, f"{op.name}: {name}")
    return given
