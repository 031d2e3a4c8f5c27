"""Reductions over axes (None = all axes), with keepdims; mean is a decomposition."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, NUMERIC, normalize_axes, require_dtype
from dlg.ir.ops.opdef import Attr, Trait, defop, zero_vjp
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType

_AXES = {"axes": Attr("axes", None), "keepdims": Attr("bool", False)}


def reduced_shape(op: str, x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> tuple:
    axes_n = normalize_axes(op, axes, x.rank)
    if keepdims:
        return tuple(1 if i in axes_n else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes_n)


def _expand_back(b, g, x, axes, keepdims):
    """A reduction's cotangent `g` broadcast back over the reduced axes to x's shape."""
    t = b.type_of(x)
    if not keepdims:
        g = b.reshape(g, shape=reduced_shape("vjp", t, axes, True))
    return b.broadcast_to(g, shape=t.shape)


def _sum_vjp(b, n, g):
    return (_expand_back(b, g, n.inputs[0], **n.attrs),)


def _prod_vjp(b, n, g):
    """out / x: exact where x has no zeros (a zero input gives an inf/nan gradient; PyTorch
    special-cases zeros, dlg does not yet)."""
    x = n.inputs[0]
    out = _expand_back(b, n.out, x, **n.attrs)
    return (b.mul(_expand_back(b, g, x, **n.attrs), b.div(out, x)),)


def _extremum_vjp(b, n, g):
    """Like PyTorch's amax/amin: the gradient is shared evenly between tied extremes."""
    x = n.inputs[0]
    hit = b.cast(b.eq(x, _expand_back(b, n.out, x, **n.attrs)), dtype=b.type_of(x).dtype)
    count = b.reduce_sum(hit, axes=n.attrs["axes"], keepdims=True)
    count = b.broadcast_to(count, shape=b.type_of(x).shape)
    share = b.div(_expand_back(b, g, x, **n.attrs), count)
    return (b.mul(share, hit),)


def _reduce(name: str, fn: Callable[..., np.ndarray], empty_ok: bool, vjp, doc: str = ""):
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

    return defop(name, ("x",), infer, attrs=_AXES, ref=ref, vjp=vjp, traits={Trait.REDUCTION},
                 doc=doc)


REDUCE_SUM = _reduce("reduce_sum", np.sum, True, _sum_vjp)
REDUCE_PROD = _reduce("reduce_prod", np.prod, True, _prod_vjp)
REDUCE_MAX = _reduce("reduce_max", np.max, False, _extremum_vjp)
REDUCE_MIN = _reduce("reduce_min", np.min, False, _extremum_vjp)


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
               vjp=zero_vjp, traits={Trait.REDUCTION},
               doc="Index of the first maximum (PyTorch and NumPy agree).")
ARGMIN = defop("argmin", ("x",), _arg_infer("argmin"), attrs=_ARG, ref=_arg_ref(np.argmin),
               vjp=zero_vjp, traits={Trait.REDUCTION})


def _numel_infer(x: TensorType, axes: tuple[int, ...] | None, dtype: DType) -> TensorType:
    normalize_axes("numel", axes, x.rank)
    return TensorType(dtype, ())


NUMEL = defop("numel", ("x",), _numel_infer,
              attrs={"axes": Attr("axes", None), "dtype": Attr("dtype", DType.f32)},
              ref=lambda x, axes, dtype: np.asarray(
                  numel([x.shape[a] for a in normalize_axes("numel", axes, x.ndim)]), dtype.np),
              vjp=zero_vjp, traits={Trait.CHEAP},
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
                    traits={Trait.REDUCTION}, doc="sum / count; ints and bools average as f32.")

