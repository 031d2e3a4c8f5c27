"""PyTorch's dtype queries: `dlg.finfo`, `dlg.iinfo`, `dlg.get_default_dtype` (and
`set_default_dtype`, float32 only). The numbers are NumPy's (the arrays eager tensors hold), as
Python floats and ints like torch's."""

from __future__ import annotations

import numpy as np

from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.tensor import checked
from dlg.functions.creation import dtype_arg
from dlg.ir.dtypes import DType


def get_default_dtype() -> DType:
    """The dtype of tensors made from Python floats: float32, as in PyTorch."""
    return DType.f32


def set_default_dtype(d: object) -> None:
    """torch's switch of the default float dtype: float32 only (dlg's factories and
    initialisers make float32); another is a DlgValueError naming the ways to float64."""
    dtype = checked(dtype_arg, d, "set_default_dtype(): d")
    if dtype != DType.f32:
        raise DlgValueError(f"set_default_dtype({dtype!r}): dlg's default float dtype is "
                            f"float32 and cannot be changed; make {dtype!r} tensors with "
                            f"dtype={dtype!r}, .to({dtype!r}) or model.to({dtype!r})",
                            engine.caller_span())


def _dtype(dtype: object, floats: bool, what: str) -> DType:
    """`dtype` as a dlg float (or integer) dtype."""
    out = checked(dtype_arg, dtype, f"{what}(): dtype")
    if not (out.is_float if floats else out.is_int):
        raise DlgTypeError(f"{what}() takes {'a float' if floats else 'an integer'} dtype, got "
                           f"{out!r}", engine.caller_span())
    return out


class finfo:  # noqa: N801  (PyTorch's spelling)
    """Machine limits of a float dtype: bits, eps, max, min, tiny (= smallest_normal),
    resolution."""

    def __init__(self, dtype: DType = DType.f32):
        info = np.finfo(_dtype(dtype, True, "finfo").np)
        self.dtype = info.dtype.name
        self.bits = int(info.bits)
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -int(info.precision)  # PyTorch's: a power of ten

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.tiny:g}, tiny={self.tiny:g}, "
                f"dtype={self.dtype})")


class iinfo:  # noqa: N801
    """Limits of an integer dtype: bits, max, min."""

    def __init__(self, dtype: DType):
        info = np.iinfo(_dtype(dtype, False, "iinfo").np)
        self.dtype = info.dtype.name
        self.bits, self.max, self.min = int(info.bits), int(info.max), int(info.min)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
