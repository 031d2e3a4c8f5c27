"""The element types of dlg tensors and their NumPy counterparts.

`str(dtype)` is the .dlg and IR spelling (`f32`), which every printer uses; `repr(dtype)` is
PyTorch's (`dlg.float32`), so that Python sessions show what users type.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class DType(Enum):
    f16 = "f16"
    f32 = "f32"
    f64 = "f64"
    i32 = "i32"
    i64 = "i64"
    bool = "bool"
    u8 = "u8"  # PyTorch's small integers: images' bytes, quantised weights, audio samples
    i8 = "i8"
    i16 = "i16"
    c64 = "c64"  # complex64 (torch.cfloat): float32 real and imaginary parts
    c128 = "c128"  # complex128 (torch.cdouble)

    # members are singletons, equal only to themselves: C's identity hash, not Enum's Python
    # hash of the name, which every dict keyed by dtypes or types paid (the eager front ~20 per op)
    __hash__ = object.__hash__

    @property
    def np(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in _INTS

    @property
    def is_unsigned(self) -> bool:
        """uint8's: wraps modulo 256, compares, divides and widens without a sign."""
        return self is DType.u8

    # PyTorch's dtype attributes
    @property
    def is_floating_point(self) -> bool:
        return self.is_float

    @property
    def is_complex(self) -> bool:
        return self is DType.c64 or self is DType.c128

    @property
    def is_inexact(self) -> bool:
        """Float or complex: the dtypes that carry gradients."""
        return self.is_float or self.is_complex

    @property
    def kind(self) -> int:
        """torch's dtype categories in promotion order: 0 bool, 1 integers, 2 floats, 3
        complex (a number of a higher kind promotes a tensor; a cast never goes lower)."""
        return 3 if self.is_complex else 2 if self.is_float else 1 if self.is_int else 0

    @property
    def real(self) -> DType:
        """A complex dtype's part dtype (complex64 -> float32); others are their own."""
        return _PART.get(self, self)

    @property
    def to_complex(self) -> DType:
        """The complex dtype with this float's parts (float64 -> complex128; float16 and
        float32 -> complex64, as torch promotes them with complex64)."""
        return DType.c128 if self in (DType.f64, DType.c128) else DType.c64

    @property
    def is_signed(self) -> bool:
        return self is not DType.bool and self is not DType.u8

    @property
    def itemsize(self) -> int:
        return _NUMPY[self].itemsize

    @property
    def torch_name(self) -> str:
        """PyTorch's name for the dtype: float32, int64, bool."""
        return _NUMPY[self].name

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"dlg.{self.torch_name}"

    @staticmethod
    def parse(name: str) -> DType:
        return DType(name)

    @staticmethod
    def of(array: np.ndarray | np.generic) -> DType:
        """The dlg dtype of a NumPy array; raises KeyError for dtypes dlg does not have."""
        return _FROM_NUMPY[np.dtype(array.dtype)]


_NUMPY = {
    DType.f16: np.dtype(np.float16),
    DType.f32: np.dtype(np.float32),
    DType.f64: np.dtype(np.float64),
    DType.i32: np.dtype(np.int32),
    DType.i64: np.dtype(np.int64),
    DType.bool: np.dtype(np.bool_),
    DType.u8: np.dtype(np.uint8),
    DType.i8: np.dtype(np.int8),
    DType.i16: np.dtype(np.int16),
    DType.c64: np.dtype(np.complex64),
    DType.c128: np.dtype(np.complex128),
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}
_INTS = frozenset({DType.u8, DType.i8, DType.i16, DType.i32, DType.i64})
_PART = {DType.c64: DType.f32, DType.c128: DType.f64}

# PyTorch's promotion lattice (torch.promote_types): bool < the ints < the floats, each kind by
# width; uint8 with int8 meet at int16, the one pair neither of which holds the other
PROMOTION_ORDER = (DType.bool, DType.u8, DType.i8, DType.i16, DType.i32, DType.i64, DType.f16,
                   DType.f32, DType.f64, DType.c64, DType.c128)


def promote_types(a: DType, b: DType) -> DType:
    """The smallest dtype that holds both a's and b's values (a float for a float and an int)."""
    if a is b:
        return a
    if (a is DType.u8 and b is DType.i8) or (a is DType.i8 and b is DType.u8):
        return DType.i16
    if a.is_complex or b.is_complex:  # float64 with complex64 meet at complex128
        parts = [d.real for d in (a, b) if d.is_inexact]
        return max(parts, key=PROMOTION_ORDER.index).to_complex
    return max(a, b, key=PROMOTION_ORDER.index)



class AbsentDType:
    """A PyTorch dtype dlg has no tensors of, kept by name so that programs naming it run where
    it is not used: `autocast("cpu", dtype=dlg.bfloat16, enabled=False)`. A dtype argument
    refuses it (`functions.creation.dtype_arg`), and so does an enabled autocast."""

    def __init__(self, torch_name: str):
        self.torch_name = torch_name
        self.is_floating_point, self.is_complex, self.is_signed = True, False, True

    def __repr__(self) -> str:
        return f"dlg.{self.torch_name}"


bfloat16 = AbsentDType("bfloat16")

f16, f32, f64, i32, i64 = DType.f16, DType.f32, DType.f64, DType.i32, DType.i64
u8, i8, i16 = DType.u8, DType.i8, DType.i16
boolean = DType.bool
