"""Reductions over axes (None = all axes, () = none), with keepdims. mean, var, std, vector_norm,
all and any are decompositions; a 0-d tensor reduces over its one "axis" 0 as PyTorch allows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import FLOATS, NUMERIC, normalize_axes, require_dtype, scalar
from dlg.ir.ops.complexes import COMPLEX
from dlg.ir.ops.opdef import Attr, Trait, defop, zero_vjp
from dlg.ir.shapes import numel
from dlg.ir.types import TensorType

_AXES = {"axes": Attr("axes", None), "keepdims": Attr("bool", False)}


def reduced_shape(op: str, x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> tuple:
    axes_n = normalize_axes(op, axes, x.rank)
    if keepdims:
        return tuple(1 if i in axes_n else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes_n)


def _np_axes(op: str, axes: tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """NumPy's axes for a reduction: axis 0 of a 0-d tensor is no axis at all."""
    return tuple(a for a in normalize_axes(op, axes, ndim) if a < ndim)


def _check_nonempty(op: str, x: TensorType, axes: tuple[int, ...] | None) -> None:
    """Extremes have no value over an empty axis (the sum and product do: 0 and 1)."""
    for a in _np_axes(op, axes, x.rank):
        if x.shape[a] == 0:
            raise DlgShapeError(f"{op}: cannot reduce an empty axis {a} of {x}")


def _expand_back(b, g, x, axes, keepdims):
    """A reduction's cotangent `g` broadcast back over the reduced axes to x's shape."""
    t = b.type_of(x)
    if not keepdims:
        g = b.reshape(g, shape=reduced_shape("vjp", t, axes, True))
    return b.broadcast_to(g, shape=t.shape)


def _sum_vjp(b, n, g):
    return (_expand_back(b, g, n.inputs[0], **n.attrs),)


def _prod_vjp(b, n, g):
    """The product of the other elements of the slice, as PyTorch: out / x where the slice has
    no zero; with one zero, the product of the nonzeros at the zero and 0 elsewhere; with two or
    more, 0 everywhere. Divisions read 1 in place of zeros, so no branch makes an inf or nan."""
    x = n.inputs[0]
    axes, keepdims = n.attrs["axes"], n.attrs["keepdims"]
    t = b.type_of(x)
    one, zero = scalar(b, 1, x), scalar(b, 0, x)
    is_zero = b.eq(x, zero)
    safe = b.where(is_zero, one, x)
    zeros = b.reduce_sum(b.cast(is_zero, dtype=t.dtype), axes=axes, keepdims=True)
    zeros = b.broadcast_to(zeros, shape=t.shape)
    others = b.broadcast_to(b.reduce_prod(safe, axes=axes, keepdims=True), shape=t.shape)
    no_zero = b.div(_expand_back(b, n.out, x, axes, keepdims), safe)
    one_zero = b.where(b.logical_and(is_zero, b.eq(zeros, one)), others, zero)
    local = b.where(b.eq(zeros, zero), no_zero, one_zero)
    return (b.mul(_expand_back(b, g, x, axes, keepdims), local),)


def _extremum_vjp(b, n, g):
    """Like PyTorch's amax/amin: the gradient is shared evenly between tied extremes."""
    x = n.inputs[0]
    hit = b.cast(b.eq(x, _expand_back(b, n.out, x, **n.attrs)), dtype=b.type_of(x).dtype)
    count = b.reduce_sum(hit, axes=n.attrs["axes"], keepdims=True)
    count = b.broadcast_to(count, shape=b.type_of(x).shape)
    share = b.div(_expand_back(b, g, x, **n.attrs), count)
    return (b.mul(share, hit),)


def _reduce(name: str, fn: Callable[..., np.ndarray], empty_ok: bool, vjp, doc: str = "",
            allowed: tuple[DType, ...] = NUMERIC):
    def infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
        require_dtype(name, x, allowed)
        if not empty_ok:
            _check_nonempty(name, x, axes)
        return x.with_shape(reduced_shape(name, x, axes, keepdims))

    def ref(x: np.ndarray, axes: tuple[int, ...] | None, keepdims: bool) -> np.ndarray:
        axes_n = _np_axes(name, axes, x.ndim)
        return np.asarray(fn(x, axis=axes_n, keepdims=keepdims)).astype(x.dtype, copy=False)

    return defop(name, ("x",), infer, attrs=_AXES, ref=ref, vjp=vjp, traits={Trait.REDUCTION},
                 doc=doc)


REDUCE_SUM = _reduce("reduce_sum", np.sum, True, _sum_vjp, allowed=NUMERIC + COMPLEX)
REDUCE_PROD = _reduce("reduce_prod", np.prod, True, _prod_vjp)
REDUCE_MAX = _reduce("reduce_max", np.max, False, _extremum_vjp)
REDUCE_MIN = _reduce("reduce_min", np.min, False, _extremum_vjp)


def _arg_infer(name: str):
    def infer(x: TensorType, axis: int | None, keepdims: bool) -> TensorType:
        require_dtype(name, x, NUMERIC)
        axes = None if axis is None else (axis,)
        _check_nonempty(name, x, axes)
        return TensorType(DType.i64, reduced_shape(name, x, axes, keepdims))
    return infer


def _arg_ref(fn: Callable[..., np.ndarray]):
    def ref(x: np.ndarray, axis: int | None, keepdims: bool) -> np.ndarray:
        if axis is None or x.ndim == 0:
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
                  numel([x.shape[a] for a in _np_axes("numel", axes, x.ndim)]), dtype.np),
              vjp=zero_vjp, traits={Trait.CHEAP, Trait.SHAPE_ONLY},
              doc="The element count over `axes` as a scalar: a runtime value for symbolic dims.")


def _mean_infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
    dtype = x.dtype if x.dtype in FLOATS + COMPLEX else DType.f32
    return TensorType(dtype, reduced_shape("mean", x, axes, keepdims))


def _mean_decompose(b, x, axes, keepdims):
    t = b.type_of(x)
    if t.dtype not in FLOATS + COMPLEX:
        x = b.cast(x, dtype=DType.f32)
    dtype = b.type_of(x).dtype
    return b.div(b.reduce_sum(x, axes=axes, keepdims=keepdims), b.numel(x, axes=axes, dtype=dtype))


REDUCE_MEAN = defop("reduce_mean", ("x",), _mean_infer, attrs=_AXES, decompose=_mean_decompose,
                    traits={Trait.REDUCTION}, doc="sum / count; ints and bools average as f32.")



# ---- statistics, norms and truth reductions: decompositions over the primitives above ---------
def _float_infer(name: str):
    def infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool, **attrs) -> TensorType:
        require_dtype(name, x, FLOATS)
        return x.with_shape(reduced_shape(name, x, axes, keepdims))
    return infer


def _var_decompose(b, x, axes, keepdims, correction):
    """sum((x - mean)^2) / max(0, n - correction): PyTorch's divisor (inf or nan when the
    correction leaves no degrees of freedom)."""
    d = b.sub(x, b.reduce_mean(x, axes=axes, keepdims=True))
    squares = b.reduce_sum(b.mul(d, d), axes=axes, keepdims=keepdims)
    n = b.numel(x, axes=axes, dtype=b.type_of(x).dtype)
    dof = b.maximum(b.sub(n, scalar(b, correction, x)), scalar(b, 0, x))
    return b.div(squares, dof)


def safe_sqrt(b, v):
    """sqrt(v) whose gradient is 0 where v is 0 (PyTorch's std and 2-norm), not inf * 0: the
    sqrt reads 1 there and its result is replaced by 0."""
    zero = b.eq(v, scalar(b, 0, v))
    return b.where(zero, scalar(b, 0, v), b.sqrt(b.where(zero, scalar(b, 1, v), v)))


_STATS = {**_AXES, "correction": Attr("float", 1.0)}
REDUCE_VAR = defop("reduce_var", ("x",), _float_infer("var"), attrs=_STATS,
                   decompose=_var_decompose, traits={Trait.REDUCTION},
                   doc="The variance with PyTorch's `correction` (1: unbiased).")
REDUCE_STD = defop("reduce_std", ("x",), _float_infer("std"), attrs=_STATS,
                   decompose=lambda b, x, **attrs: safe_sqrt(b, b.reduce_var(x, **attrs)),
                   traits={Trait.REDUCTION},
                   doc="sqrt(var); its gradient is 0 where it is 0, as in PyTorch.")


def _norm_decompose(b, x, axes, keepdims, ord):
    """PyTorch's vector norms: max/min |x| for +-inf, the nonzero count for 0, sum |x| for 1,
    sum(|x|^p)^(1/p) otherwise (2 through sqrt); gradients 0 where the norm is 0."""
    a = b.abs(x)
    if ord == math.inf:
        return b.reduce_max(a, axes=axes, keepdims=keepdims)
    if ord == -math.inf:
        return b.reduce_min(a, axes=axes, keepdims=keepdims)
    if ord == 0:
        nonzero = b.cast(b.ne(x, scalar(b, 0, x)), dtype=b.type_of(x).dtype)
        return b.reduce_sum(nonzero, axes=axes, keepdims=keepdims)
    if ord == 1:
        return b.reduce_sum(a, axes=axes, keepdims=keepdims)
    if ord == 2:
        return safe_sqrt(b, b.reduce_sum(b.mul(x, x), axes=axes, keepdims=keepdims))
    if ord < 1:  # |x|^p has an infinite slope at 0: 0^p there, with gradient 0 (torch's)
        at_zero = b.eq(a, scalar(b, 0, x))
        powered = b.where(at_zero, scalar(b, 0 if ord > 0 else math.inf, x),
                          b.pow(b.where(at_zero, scalar(b, 1, x), a), scalar(b, ord, x)))
    else:
        powered = b.pow(a, scalar(b, ord, x))
    total = b.reduce_sum(powered, axes=axes, keepdims=keepdims)
    zero = b.eq(total, scalar(b, 0, x))
    root = b.pow(b.where(zero, scalar(b, 1, x), total), scalar(b, 1 / ord, x))
    return b.where(zero, scalar(b, 0, x), root)


VECTOR_NORM = defop("vector_norm", ("x",), _float_infer("vector_norm"),
                    attrs={**_AXES, "ord": Attr("float", 2.0)}, decompose=_norm_decompose,
                    traits={Trait.REDUCTION}, doc="torch.linalg.vector_norm over `axes`.")


def _truth_infer(name: str):
    def infer(x: TensorType, axes: tuple[int, ...] | None, keepdims: bool) -> TensorType:
        require_dtype(name, x, NUMERIC + (DType.bool,))
        return TensorType(DType.bool, reduced_shape(name, x, axes, keepdims))
    return infer


def _count(b, x, truth: bool, axes, keepdims):
    """How many elements of x are true (nonzero), or false, over `axes`."""
    t = b.type_of(x)
    test = b.ne if truth else b.eq
    hit = x if truth and t.dtype == DType.bool else test(x, scalar(b, 0, x))
    return b.reduce_sum(b.cast(hit, dtype=DType.i64), axes=axes, keepdims=keepdims)


def _none(b):
    return b.full(shape=(), value=0.0, dtype=DType.i64)


REDUCE_ALL = defop(
    "reduce_all", ("x",), _truth_infer("all"), attrs=_AXES, traits={Trait.REDUCTION},
    decompose=lambda b, x, axes, keepdims: b.eq(_count(b, x, False, axes, keepdims), _none(b)),
    doc="Whether every element is nonzero (true over an empty axis).")
REDUCE_ANY = defop(
    "reduce_any", ("x",), _truth_infer("any"), attrs=_AXES, traits={Trait.REDUCTION},
    decompose=lambda b, x, axes, keepdims: b.gt(_count(b, x, True, axes, keepdims), _none(b)),
    doc="Whether some element is nonzero (false over an empty axis).")
