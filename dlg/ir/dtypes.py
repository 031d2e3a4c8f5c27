"""The element types of dlg tensors and their NumPy counterparts."""

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

    @property
    def np(self) -> np.dtype:
        return _NUMPY[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.f16, DType.f32, DType.f64)

    @property
    def is_int(self) -> bool:
        return self in (DType.i32, DType.i64)

    def __str__(self) -> str:
        return self.value

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
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}

f16, f32, f64, i32, i64 = DType.f16, DType.f32, DType.f64, DType.i32, DType.i64
boolean = DType.bool
