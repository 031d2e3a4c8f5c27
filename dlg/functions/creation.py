"""Tensors made from a shape or a range: full, zeros, ones, empty, eye, *_like, arange,
linspace, logspace, rand, randn, randint. `zeros(2, 3)` and `zeros((2, 3))` both work; dims may
be symbolic (`zeros(shape(x, 0), 4)`). `dtype_arg` reads a dtype argument for every function
that takes one, and tells a PyTorch dtype passed by mistake apart."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.functions import args
from dlg.functions.args import is_int, is_number, tensor
from dlg.functions.front import Front
from dlg.ir.dtypes import AbsentDType, DType
from dlg.ir.ops.complexes import COMPLEX_OP
from dlg.ir.ops.elementwise import ADD, CAST, DIV, EQ, FLOOR, MUL, POW, SUB, WHERE
from dlg.ir.ops.shape import RESHAPE
from dlg.ir.ops.sort import CUMSUM
from dlg.ir.ops.source import ARANGE, FULL, RANDOM_NORMAL, RANDOM_UNIFORM
from dlg.ir.shapes import Sym

_BY_TORCH_NAME = {d.torch_name: d for d in DType}


def dtype_arg(F: Front, value: Any, what: str = "dtype") -> DType:
    """A dlg dtype; a PyTorch one (torch.float32) is named with the dlg spelling to use."""
    if isinstance(value, DType):
        return value
    if isinstance(value, AbsentDType):
        raise DlgTypeError(f"{what} is {value!r}: dlg has no {value.torch_name} tensors (it "
                           f"computes in float32, float64 or float16)")
    text = str(value)
    if type(value).__module__.split(".")[0] == "torch" and text.startswith("torch."):
        name = text.removeprefix("torch.")
        fix = f"use dlg.{name}" if name in _BY_TORCH_NAME else f"dlg has no {name} dtype"
        raise DlgTypeError(f"{what} is PyTorch's {text}; {fix}")
    raise DlgTypeError(f"{what} must be a dlg dtype such as dlg.float32 (f32 in .dlg), got "
                       f"{args.describe(F, value)}")


def _fill_value(F: Front, value: Any, name: str) -> float:
    if not (is_number(value) or isinstance(value, bool)):
        raise DlgTypeError(f"{name}'s value must be a number, got {args.describe(F, value)}")
    return float(value)


def _stored(value: Any, fill: float, dtype: DType) -> float:
    """The fill value as the dtype stores it: an int checked against an integer dtype's range
    (torch's error for 300 as uint8; -1 wraps to 255)."""
    if dtype.is_int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return float(args.int_scalar(value, dtype))
    return fill


def _dtype_or(F: Front, dtype: Any, default: DType) -> DType:
    """`dtype`, or `default` where None (PyTorch's dtype=None: the default dtype)."""
    return default if dtype is None else dtype_arg(F, dtype)


def full(F: Front, shape: Any, value: Any, dtype: DType | None = None) -> Any:
    """A tensor of `shape` filled with `value` (a Python complex: complex64 by default)."""
    if isinstance(value, (complex, np.complexfloating)):
        return _full_complex(F, args.shape(F, (shape,)), value,
                             _dtype_or(F, dtype, DType.c64), "full")
    dtype = _dtype_or(F, dtype, DType.f32)
    return F.emit(FULL, shape=args.shape(F, (shape,)),
                  value=_stored(value, _fill_value(F, value, "full"), dtype), dtype=dtype)


def zeros(F: Front, *shape: Any, dtype: DType | None = None) -> Any:
    """Zeros (also `empty`: eager tensors have no uninitialised memory to give)."""
    return full(F, args.shape(F, shape), 0.0, dtype)


def ones(F: Front, *shape: Any, dtype: DType | None = None) -> Any:
    return full(F, args.shape(F, shape), 1.0, dtype)


def full_like(F: Front, x: Any, value: Any, dtype: DType | None = None) -> Any:
    """A tensor of x's shape (and dtype, unless given) filled with `value`."""
    t = F.type_of(tensor(F, x, "full_like's argument"))
    dtype = t.dtype if dtype is None else dtype_arg(F, dtype)
    if isinstance(value, (complex, np.complexfloating)):
        return _full_complex(F, t.shape, value, dtype, "full_like")
    return F.emit(FULL, shape=t.shape,
                  value=_stored(value, _fill_value(F, value, "full_like"), dtype), dtype=dtype)


def zeros_like(F: Front, x: Any, dtype: DType | None = None) -> Any:
    return full_like(F, x, 0.0, dtype)


def ones_like(F: Front, x: Any, dtype: DType | None = None) -> Any:
    return full_like(F, x, 1.0, dtype)


def eye(F: Front, n: Any, m: Any = None, dtype: DType | None = None) -> Any:
    """The n x m identity (square when m is not given): arange(n) == arange(m), crosswise."""
    m = n if m is None else m
    for v, what in ((n, "n"), (m, "m")):
        if not is_int(v) or v < 0:
            raise DlgValueError(f"eye: {what} must be a non-negative int, got "
                                f"{args.describe(F, v)}")
    rows = F.emit(RESHAPE, F.emit(ARANGE, stop=n, dtype=DType.i64), shape=(int(n), 1))
    cols = F.emit(RESHAPE, F.emit(ARANGE, stop=m, dtype=DType.i64), shape=(1, int(m)))
    return F.emit(CAST, F.emit(EQ, rows, cols), dtype=_dtype_or(F, dtype, DType.f32))


def arange(F: Front, start: Any, end: Any = None, step: Any = 1, dtype: DType | None = None
           ) -> Any:
    """arange(5) or arange(start, end, step); f32 when a bound is a float, else i64 (as
    PyTorch does)."""
    bounds = (start, step) if end is None else (start, end, step)
    for v in bounds:
        if not (is_number(v) or isinstance(v, Sym)):
            raise DlgTypeError(f"arange takes numbers, got {args.describe(F, v)}")
    start, stop = (0, start) if end is None else (start, end)
    dtype = args.number_dtype(bounds) if dtype is None else dtype_arg(F, dtype)
    if isinstance(start, Sym) or isinstance(stop, Sym):
        return _arange_to_dim(F, start, stop, step, dtype)
    return F.emit(ARANGE, start=start, stop=stop, step=step, dtype=dtype)


def _arange_to_dim(F: Front, start: Any, stop: Any, step: Any, dtype: DType) -> Any:
    """arange(start, stop) to a symbolic size (`arange(x.shape[1])` while tracing), as the
    running count of stop - start ones: ARANGE's bounds are numbers, its length static."""
    if step != 1 or not all(is_int(v) or isinstance(v, Sym) for v in (start, stop)):
        raise DlgTypeError(f"arange to a symbolic size takes integer bounds and step 1, got "
                           f"arange({start}, {stop}, {step})")
    ones = F.emit(FULL, shape=(stop - start,), value=1.0, dtype=dtype)
    return F.emit(ADD, F.emit(CUMSUM, ones, axis=0), F.lift(start - 1, dtype))


def linspace(F: Front, start: Any, end: Any, steps: Any, dtype: DType | None = None) -> Any:
    """`steps` evenly spaced values from start to end, both included; start and end are numbers
    or 0-d tensors. PyTorch's formula: the first half counted up from start, the rest down from
    end, in the output's float dtype (float64 for an integer dtype, whose bounds and values are
    truncated toward zero)."""
    out = _dtype_or(F, dtype, DType.f32)
    return F.emit(CAST, _spaced(F, "linspace", start, end, steps, out), dtype=out)


def logspace(F: Front, start: Any, end: Any, steps: Any, base: Any = 10.0,
             dtype: DType | None = None) -> Any:
    """base ** linspace(start, end, steps), the power taken in float64 (as PyTorch's)."""
    out = _dtype_or(F, dtype, DType.f32)
    if not is_number(base):
        raise DlgTypeError(f"logspace: base must be a number, got {args.describe(F, base)}")
    exponents = F.emit(CAST, _spaced(F, "logspace", start, end, steps, out), dtype=DType.f64)
    return F.emit(CAST, F.emit(POW, F.lift(float(base), DType.f64), exponents), dtype=out)


def _spaced(F: Front, name: str, start: Any, end: Any, steps: Any, out: DType) -> Any:
    """linspace's values in float64: start + step * i below steps // 2, end - step * (steps - 1
    - i) from there (so both ends are exact), step rounded to the output's float dtype first
    (PyTorch's formula, one rounding per value as its fused multiply-add)."""
    work = out if out.is_float else DType.f64
    lo, hi = (_bound(F, name, v, what, out, work) for v, what in ((start, "start"), (end, "end")))
    if not is_int(steps) or steps < 0:
        raise DlgValueError(f"{name}: steps must be a non-negative int, got "
                            f"{args.describe(F, steps)}")
    n = int(steps)
    if n <= 1:
        return F.emit(RESHAPE, lo, shape=(1,)) if n else F.lift([], work)
    step = F.emit(DIV, F.emit(SUB, hi, lo), F.lift(float(n - 1), work))
    lo, hi, step = (F.emit(CAST, v, dtype=DType.f64) for v in (lo, hi, step))
    i = np.arange(n)
    up = F.emit(ADD, lo, F.emit(MUL, step, F.lift(i.tolist(), DType.f64)))
    down = F.emit(SUB, hi, F.emit(MUL, step, F.lift((n - 1 - i).tolist(), DType.f64)))
    return F.emit(WHERE, F.lift((i < n // 2).tolist(), DType.bool), up, down)


def _bound(F: Front, name: str, value: Any, what: str, out: DType, work: DType) -> Any:
    """A bound of linspace as a 0-d tensor of the working dtype, in the output dtype first
    (an integer dtype truncates it, as PyTorch's does)."""
    if is_number(value):
        value = F.lift(float(value), DType.f64)
    elif not (F.is_tensor(value) and F.type_of(value).shape == ()):
        raise DlgTypeError(f"{name}: {what} must be a number or a 0-d tensor, got "
                           f"{args.describe(F, value)}")
    return F.emit(CAST, F.emit(CAST, value, dtype=out), dtype=work)


def _full_complex(F: Front, shape: Any, value: Any, dtype: DType, name: str) -> Any:
    """A complex fill: its parts filled and joined (complex dtypes only, as torch)."""
    if not dtype.is_complex:
        raise DlgTypeError(f"{name}: the complex value {value} meets {dtype!r}; give a complex "
                           f"dtype")
    part = dtype.real
    return F.emit(COMPLEX_OP, F.emit(FULL, shape=shape, value=float(value.real), dtype=part),
                  F.emit(FULL, shape=shape, value=float(value.imag), dtype=part))


def rand(F: Front, *shape: Any, dtype: DType | None = None) -> Any:
    """Uniform samples in [0, 1), fresh at every run; a complex dtype's parts each drawn so."""
    out = _float(F, dtype, "rand")
    if out.is_complex:
        return F.emit(COMPLEX_OP, *(rand(F, *shape, dtype=out.real) for _ in range(2)))
    return F.emit(RANDOM_UNIFORM, shape=args.shape(F, shape), dtype=out)


def randn(F: Front, *shape: Any, dtype: DType | None = None) -> Any:
    """Standard normal samples, fresh at every run; a complex dtype's parts each have variance
    1/2 (torch's, so that |z|^2 averages 1)."""
    out = _float(F, dtype, "randn")
    if out.is_complex:
        half = F.lift(np.sqrt(0.5), out.real)
        return F.emit(COMPLEX_OP, *(F.emit(MUL, randn(F, *shape, dtype=out.real), half)
                                    for _ in range(2)))
    return F.emit(RANDOM_NORMAL, shape=args.shape(F, shape), dtype=out)


def rand_like(F: Front, x: Any, dtype: DType | None = None) -> Any:
    t = F.type_of(tensor(F, x, "rand_like's argument"))
    return rand(F, t.shape, dtype=t.dtype if dtype is None else dtype)


def randn_like(F: Front, x: Any, dtype: DType | None = None) -> Any:
    t = F.type_of(tensor(F, x, "randn_like's argument"))
    return randn(F, t.shape, dtype=t.dtype if dtype is None else dtype)


def randint_like(F: Front, x: Any, low: Any = None, high: Any = None,
                 dtype: DType | None = None) -> Any:
    """randint of x's shape and (unless given) dtype: randint_like(x, high) or
    randint_like(x, low, high), as PyTorch's."""
    t = F.type_of(tensor(F, x, "randint_like's argument"))
    if high is None:
        low, high = 0, low
    if high is None:
        raise DlgTypeError("randint_like: missing its high bound, e.g. randint_like(x, 10)")
    low = 0 if low is None else low
    return randint(F, low, high, t.shape, dtype=t.dtype if dtype is None else dtype)


def _float(F: Front, dtype: Any, name: str) -> DType:
    out = _dtype_or(F, dtype, DType.f32)
    if not out.is_inexact:
        raise DlgTypeError(f"{name} makes float tensors (or complex ones), not {out}")
    return out


def randint(F: Front, low: Any = 0, high: Any = None, size: Any = None,
            dtype: DType | None = None) -> Any:
    """Uniform integers in [low, high): randint(high, size) or randint(low, high, size), fresh
    at every run (floor of a float64 uniform sample)."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    for v, what in ((low, "low"), (high, "high")):
        if not is_int(v):
            raise DlgTypeError(f"randint: {what} must be an int, got {args.describe(F, v)}")
    if high <= low:
        raise DlgValueError(f"randint: low {low} must be below high {high}")
    if size is None:
        raise DlgTypeError("randint: missing its size, e.g. randint(0, 10, (2, 3))")
    draws = F.emit(RANDOM_UNIFORM, shape=args.shape(F, (size,)), low=float(low),
                   high=float(high), dtype=DType.f64)
    return F.emit(CAST, F.emit(FLOOR, draws), dtype=_dtype_or(F, dtype, DType.i64))
