"""Discrete Fourier transforms over some axes: complex to complex (`fft_c2c`, forward or
inverse), real to half-spectrum (`fft_r2c`, the last of `axes` halved to n // 2 + 1) and back
(`fft_c2r`, the last axis made `n` long), each with NumPy's and PyTorch's `norm` ("backward":
the inverse divides by n; "ortho": both by sqrt(n); "forward": the forward does).

Three primitives are PyTorch's own (`_fft_c2c`, `_fft_r2c`, `_fft_c2r`), so their VJPs are
torch's: the adjoint of a transform is the opposite direction with the dual norm (backward <->
forward, ortho its own); r2c's cotangent is zero-padded to the full length, transformed back
and its real part kept; c2r's is r2c'd and the entries that stand for two conjugate bins
doubled. Resizing to `n`/`s` (crop or zero-pad) is the functions layer's `slice`/`pad`
(`dlg/functions/fft.py`), so the primitives transform whole axes. References compute in
complex128 and round once to the result's dtype. INTERPRETED: the compiler does not lower them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgShapeError
from dlg.ir.dtypes import DType
from dlg.ir.ops.common import normalize_axis, require_dtype
from dlg.ir.ops.complexes import COMPLEX
from dlg.ir.ops.opdef import Attr, Trait, defop
from dlg.ir.types import TensorType

NORMS = ("backward", "ortho", "forward")
_DUAL = {"backward": "forward", "ortho": "ortho", "forward": "backward"}
_NORM = {"norm": Attr("str", "backward", NORMS)}
_TRAITS = {Trait.OWN_KERNEL, Trait.INTERPRETED}


def _axes(op: str, x: TensorType, axes: tuple[int, ...]) -> tuple[int, ...]:
    """The axes normalised, in the given order (the last is r2c's and c2r's halved axis);
    each must be distinct and of a static size."""
    out = tuple(normalize_axis(op, a, x.rank) for a in axes)
    if not out or len(set(out)) != len(out):
        raise DlgShapeError(f"{op}: axes {list(axes)} must be one or more distinct axes of {x}")
    if any(not isinstance(x.shape[a], int) for a in out):
        raise DlgShapeError(f"{op}: the transformed axes of {x} must have static sizes")
    return out


def _c2c_infer(x: TensorType, axes: tuple[int, ...], inverse: bool, norm: str) -> TensorType:
    require_dtype("fft_c2c", x, COMPLEX)
    _axes("fft_c2c", x, axes)
    return x


def _c2c_ref(x: np.ndarray, axes: tuple[int, ...], inverse: bool, norm: str) -> np.ndarray:
    fn = np.fft.ifftn if inverse else np.fft.fftn
    return fn(x.astype(np.complex128), axes=axes, norm=norm).astype(x.dtype)


FFT_C2C = defop(
    "fft_c2c", ("x",), _c2c_infer, ref=_c2c_ref,
    attrs={"axes": Attr("ints"), "inverse": Attr("bool", False), **_NORM},
    vjp=lambda b, n, g: (b.fft_c2c(g, axes=n.attrs["axes"], inverse=not n.attrs["inverse"],
                                   norm=_DUAL[n.attrs["norm"]]),),
    traits=_TRAITS, doc="fftn (ifftn) over `axes`: complex to complex, shape kept.")


def _r2c_infer(x: TensorType, axes: tuple[int, ...], norm: str) -> TensorType:
    require_dtype("fft_r2c", x, (DType.f32, DType.f64))
    last = _axes("fft_r2c", x, axes)[-1]
    shape = list(x.shape)
    shape[last] = shape[last] // 2 + 1
    return TensorType(x.dtype.to_complex, tuple(shape))


def _r2c_ref(x: np.ndarray, axes: tuple[int, ...], norm: str) -> np.ndarray:
    out = np.fft.rfftn(x.astype(np.float64), axes=axes, norm=norm)
    return out.astype(DType.of(x).to_complex.np)


def _r2c_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """The half spectrum's cotangent zero-padded to the full length, transformed back with the
    dual norm; the real input keeps the real part."""
    x = b.type_of(n.inputs[0])
    axes = tuple(normalize_axis("fft_r2c", a, x.rank) for a in n.attrs["axes"])
    last = axes[-1]
    have = b.type_of(g).shape[last]
    full = b.pad(g, pads=tuple((0, x.shape[last] - have) if i == last else (0, 0)
                               for i in range(x.rank)))
    back = b.fft_c2c(full, axes=axes, inverse=True, norm=_DUAL[n.attrs["norm"]])
    return (b.real(back),)


FFT_R2C = defop("fft_r2c", ("x",), _r2c_infer, ref=_r2c_ref, attrs={"axes": Attr("ints"), **_NORM},
                vjp=_r2c_vjp, traits=_TRAITS,
                doc="rfftn over `axes`: real to the half spectrum (the last axis n // 2 + 1).")


def _c2r_infer(x: TensorType, axes: tuple[int, ...], n: int, norm: str) -> TensorType:
    require_dtype("fft_c2r", x, COMPLEX)
    last = _axes("fft_c2r", x, axes)[-1]
    if n < 1 or x.shape[last] != n // 2 + 1:
        raise DlgShapeError(f"fft_c2r: an output length n={n} needs {n // 2 + 1} bins on axis "
                            f"{last} of {x}")
    shape = list(x.shape)
    shape[last] = n
    return TensorType(x.dtype.real, tuple(shape))


def _c2r_ref(x: np.ndarray, axes: tuple[int, ...], n: int, norm: str) -> np.ndarray:
    sizes = [x.shape[a] for a in axes[:-1]] + [n]
    out = np.fft.irfftn(x.astype(np.complex128), s=sizes, axes=axes, norm=norm)
    return out.astype(DType.of(x).real.np)


def _c2r_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """torch's: the cotangent r2c'd with the dual norm, the bins that stand for two (all but
    the first and, for an even n, the last) doubled."""
    x = b.type_of(n.inputs[0])
    axes = tuple(normalize_axis("fft_c2r", a, x.rank) for a in n.attrs["axes"])
    last, length = axes[-1], n.attrs["n"]
    half = b.fft_r2c(g, axes=axes, norm=_DUAL[n.attrs["norm"]])
    bins = length // 2 + 1
    weights = np.ones(bins, x.dtype.real.np)
    weights[1:1 + length - bins] = 2
    weights = weights.reshape((bins,) + (1,) * (x.rank - 1 - last))
    return (b.mul(half, b.cast(b.constant(weights, x.dtype.real), dtype=x.dtype)),)


FFT_C2R = defop("fft_c2r", ("x",), _c2r_infer, ref=_c2r_ref,
                attrs={"axes": Attr("ints"), "n": Attr("int"), **_NORM}, vjp=_c2r_vjp,
                traits=_TRAITS,
                doc="irfftn over `axes`: a half spectrum (n // 2 + 1 bins on the last axis) to "
                    "n real values, the other axes as they are.")
