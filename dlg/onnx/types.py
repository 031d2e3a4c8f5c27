"""ONNX element types and dlg dtypes, one table for both directions, and the lazy `onnx` import."""

from __future__ import annotations

from types import ModuleType

from dlg.ir.dtypes import DType
from dlg.optional import optional_import

# TensorProto.DataType numbers (onnx.proto); fixed by the format, so spelled out here
_TO_ONNX = {DType.f32: 1, DType.u8: 2, DType.i8: 3, DType.i16: 5, DType.i32: 6, DType.i64: 7,
            DType.bool: 9, DType.f16: 10, DType.f64: 11}
_FROM_ONNX = {v: k for k, v in _TO_ONNX.items()}


def onnx_module() -> ModuleType:
    """The `onnx` package, or a DlgImportError saying how to install it."""
    return optional_import("onnx", "ONNX support", "pip install 'dlg[onnx]' (or pip install onnx)")


def to_onnx(dtype: DType) -> int:
    return _TO_ONNX[dtype]


def from_onnx(elem_type: int) -> DType:
    """The dlg dtype of an ONNX element type; KeyError for types dlg does not have."""
    return _FROM_ONNX[elem_type]
