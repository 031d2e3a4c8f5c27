"""`dlg.testing`: torch.testing's `assert_close` (tutorials check their results with it), on
dlg tensors, NumPy arrays and Python numbers, nested in sequences and mappings, with torch's
default tolerances per dtype and torch's messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dlg.frontend.tensor import Tensor
from dlg.ir.dtypes import DType

# torch's defaults: (rtol, atol) per dtype; integers and bool compare exactly
_TOLERANCES = {DType.f16: (1e-3, 1e-5), DType.f32: (1.3e-6, 1e-5), DType.f64: (1e-7, 1e-7)}


def _dtype(value: Any) -> DType:
    if isinstance(value, Tensor):
        return value.dtype
    return DType.f64 if isinstance(value, float) else DType.i64 if isinstance(
        value, int) and not isinstance(value, bool) else DType.bool


def assert_close(actual: Any, expected: Any, *, allow_subclasses: bool = True,
                 rtol: float | None = None, atol: float | None = None, equal_nan: bool = False,
                 check_device: bool = True, check_dtype: bool = True, check_layout: bool = True,
                 check_stride: bool = False, msg: str | None = None) -> None:
    """Raise an AssertionError unless `actual` and `expected` are close (torch's rules)."""
    if (rtol is None) != (atol is None):
        raise ValueError(f"Both 'rtol' and 'atol' must be either specified or omitted, but got "
                         f"no {'rtol' if rtol is None else 'atol'}.")
    _compare(actual, expected, rtol, atol, equal_nan, check_dtype, msg, "")


def _compare(actual: Any, expected: Any, rtol: float | None, atol: float | None,
             equal_nan: bool, check_dtype: bool, msg: str | None, where: str) -> None:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping) or set(actual) != set(expected):
            _fail(f"The keys of the mappings do not match: {sorted(map(str, actual))} != "
                  f"{sorted(map(str, expected))}.", msg, where)
        for k in expected:
            _compare(actual[k], expected[k], rtol, atol, equal_nan, check_dtype, msg,
                     f"{where}[{k!r}]")
        return
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        if not isinstance(actual, Sequence) or len(actual) != len(expected):
            _fail(f"The length of the sequences mismatch: {len(actual)} != {len(expected)}",
                  msg, where)
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, rtol, atol, equal_nan, check_dtype, msg, f"{where}[{i}]")
        return
    a_tensor, e_tensor = isinstance(actual, Tensor), isinstance(expected, Tensor)
    if a_tensor != e_tensor:
        _fail(f"Comparing {type(actual).__name__} and {type(expected).__name__} is not "
              f"supported: both must be tensors or both numbers.", msg, where)
    a_dtype, e_dtype = _dtype(actual), _dtype(expected)
    a = np.asarray(actual.detach().numpy() if a_tensor else actual)
    e = np.asarray(expected.detach().numpy() if e_tensor else expected)
    if a.shape != e.shape:
        _fail(f"The values for attribute 'shape' do not match: dlg.Size({list(a.shape)}) != "
              f"dlg.Size({list(e.shape)}).", msg, where)
    if check_dtype and a_dtype != e_dtype:
        _fail(f"The values for attribute 'dtype' do not match: dlg.{a_dtype.torch_name} != "
              f"dlg.{e_dtype.torch_name}.", msg,
              where)
    if rtol is None:
        rtol, atol = max((_TOLERANCES.get(d, (0.0, 0.0)) for d in (a_dtype, e_dtype)),
                         key=lambda t: t[0])
    exact = rtol == 0 and atol == 0
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if close.all():
        return
    what = "numbers" if not a_tensor else "Tensor-likes"
    with np.errstate(all="ignore"):
        abs_diff = np.abs(a64 - e64)
        rel_diff = abs_diff / np.abs(e64)
    bad = ~close
    flat = np.where(bad.ravel())[0]
    i_abs = np.unravel_index(flat[np.argmax(abs_diff.ravel()[flat])], a.shape)
    i_rel = np.unravel_index(flat[np.argmax(rel_diff.ravel()[flat])], a.shape)
    ints = not (a_dtype.is_float or e_dtype.is_float)
    fmt = (lambda v: f"{int(v)}") if ints else (lambda v: f"{v}")
    allowed_abs = "" if exact else f" (up to {atol} allowed)"
    allowed_rel = "" if exact else f" (up to {rtol} allowed)"
    text = (f"{what} are not {'equal' if exact else 'close'}!\n\n"
            f"Mismatched elements: {int(bad.sum())} / {a.size} "
            f"({100 * bad.sum() / max(a.size, 1):.1f}%)\n"
            f"Greatest absolute difference: {fmt(abs_diff[i_abs])} at index "
            f"{tuple(int(i) for i in i_abs)}{allowed_abs}\n"
            f"Greatest relative difference: {rel_diff[i_rel]} at index "
            f"{tuple(int(i) for i in i_rel)}{allowed_rel}")
    _fail(text, msg, where)


def _fail(text: str, msg: str | None, where: str) -> None:
    if where:
        text += f"\n\nThe failure occurred for item {where}"
    raise AssertionError(msg if msg is not None else text)


__all__ = ["assert_close"]
