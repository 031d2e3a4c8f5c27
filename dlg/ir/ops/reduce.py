"""Reductions over axes (None = all axes), with keepdims; mean is a decomposition."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, NUMERIC, normalize_axes, require_dtype
from dlg.ir.ops.opdef import REDUCTION, Attr, defop
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType

_AXES = {"axes": Attr("axes", None), "keepdims": Attr("bool", False)}


def reduced_shape(op: str, x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> tuple:
    axes_n = normalize_axes(op, axes, x.rank)
    if keepdims:
        return tuple(1 if i in axes_n else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes_n)


def _reduce(name: str, fn: Callable[..., np.ndarray], empty_ok: bool, doc: str = ""):
    def infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
        require_dtype(name, x, NUMERIC)
        if not empty_ok:
            for a in normalize_axes(name, axes, x.rank):
                if x.shape[a] == 0:
                    raise DlgShapeError(f"{name}: cannot reduce an empty axis {a} of {x}")
        return x.with_shape(reduced_shape(name, x, axes, keepdims))

    def ref(x: np.ndarray, axes: tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
        axes_n = normalize_axes(name, axes, x.ndim)
        return np.asarray(fn(x, axis=axes_n, keepdims=keepdims)).astype(x.dtype, copy=False)

    return defop(name, ("x",), infer, attrs=_AXES, ref=ref, groups={REDUCTION}, doc=doc)


REDUCE_SUM = _reduce("reduce_sum", np.sum, True)
REDUCE_PROD = _reduce("reduce_prod", np.prod, True)
REDUCE_MAX = _reduce("reduce_max", np.max, False)
REDUCE_MIN = _reduce("reduce_min", np.min, False)


def _arg_infer(name: str):
    def infer(x: TensorType, axis: int | None, keepdims: bool) -> TensorType:
        require_dtype(name, x, NUMERIC)
        axes = None if axis is None else (axis,)
        for a in normalize_axes(name, axes, x.rank):
            if x.shape[a] == 0:
                raise DlgShapeError(f"{name}: cannot reduce an empty axis {a} of {x}")
        return TensorType(DType.i64, reduced_shape(name, x, axes, keepdims))
    return infer


def _arg_ref(fn: Callable[..., np.ndarray]):
    def ref(x: np.ndarray, axis: int | None, keepdims: bool) -> np.ndarray:
        if axis is None:
            out = np.asarray(fn(x.reshape(-1)))
            return out.reshape((1,) * x.ndim if keepdims else ()).astype(np.int64)
        return np.asarray(fn(x, axis=axis, keepdims=keepdims)).astype(np.int64)
    return ref


_ARG = {"axis": Attr("int?", None), "keepdims": Attr("bool", False)}
ARGMAX = defop("argmax", ("x",), _arg_infer("argmax"), attrs=_ARG, ref=_arg_ref(np.argmax),
               groups={REDUCTION}, doc="Index of the first maximum (PyTorch and NumPy agree).")
ARGMIN = defop("argmin", ("x",), _arg_infer("argmin"), attrs=_ARG, ref=_arg_ref(np.argmin),
               groups={REDUCTION})


def _numel_infer(x: TensorType, axes: tuple[int, ...] | None, dtype: DType) -> TensorType:
    normalize_axes("numel", axes, x.rank)
    return TensorType(dtype, ())


NUMEL = defop("numel", ("x",), _numel_infer,
              attrs={"axes": Attr("axes", None), "dtype": Attr("dtype", DType.f32)},
              ref=lambda x, axes, dtype: np.asarray(
                  numel([x.shape[a] for a in normalize_axes("numel", axes, x.ndim)]), dtype.np),
              doc="The element count over `axes` as a scalar: a runtime value for symbolic dims.")


def _mean_infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    dtype = x.dtype if x.dtype in FLOATS else DType.f32
    return TensorType(dtype, reduced_shape("mean", x, axes, keepdims))


def _mean_decompose(b, x, axes, keepdims):
    t = b.type_of(x)
    if t.dtype not in FLOATS:
        x = b.cast(x, dtype=DType.f32)
    dtype = b.type_of(x).dtype
    return b.div(b.reduce_sum(x, axes=axes, keepdims=keepdims), b.numel(x, axes=axes, dtype=dtype))


REDUCE_MEAN = defop("reduce_mean", ("x",), _mean_infer, attrs=_AXES, decompose=_mean_decompose,
                    groups={REDUCTION}, doc="sum / count; ints and bools average as f32.")

