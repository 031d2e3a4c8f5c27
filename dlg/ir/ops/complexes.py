"""Complex numbers: `complex(real, imag)`, `real`, `imag`, `conj`, `angle`, and the dtype sets
and helper the other families use for complex values.

Gradients follow PyTorch's convention: a real loss L of complex z gets dL/dx + i dL/dy (the
conjugate Wirtinger derivative, doubled), so the VJP of a product multiplies the cotangent by
the *conjugate* of the other factor (`conj`, the identity on real values, so real graphs are
unchanged), and a real input whose cotangent came out complex keeps its real part (the autodiff
pass does that in one place). These ops are INTERPRETED: the compiler does not lower complex
values yet and refuses a graph holding one; eager Python and the interpreter run them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.ir.dtypes import DType
from dlg.ir.ops.common import (FLOATS, broadcast_shapes, require_dtype, same_dtype, scalar,
                                zeros_like)
from dlg.ir.ops.opdef import OpDef, Trait, defop
from dlg.ir.types import TensorType

COMPLEX = (DType.c64, DType.c128)
INEXACT = FLOATS + COMPLEX  # the dtypes with gradients
_PARTS = (DType.f32, DType.f64)  # the part dtypes of complex64 and complex128


def conj(b: Any, v: Any) -> Any:
    """v's complex conjugate, v itself when real: the VJPs of products multiply the cotangent
    by the conjugate of the other factor (torch's convention), which leaves real graphs as
    they were."""
    return b.conj(v) if b.type_of(v).dtype.is_complex else v


def _complex_infer(real: TensorType, imag: TensorType) -> TensorType:
    dtype = same_dtype("complex", real, imag)
    require_dtype("complex", real, _PARTS, "parts")
    return TensorType(dtype.to_complex, broadcast_shapes("complex", real.shape, imag.shape))


def _complex_ref(real: np.ndarray, imag: np.ndarray) -> np.ndarray:
    """real + i imag, part by part (real + 1j * imag would make nan of inf * 0j)."""
    out = np.empty(np.broadcast_shapes(real.shape, imag.shape),
                   DType.of(real).to_complex.np)
    out.real, out.imag = real, imag
    return out


def _part_infer(name: str):
    def infer(x: TensorType) -> TensorType:
        require_dtype(name, x, COMPLEX)
        return x.with_dtype(x.dtype.real)
    return infer


def _to_complex(b: Any, g: Any, like: Any) -> Any:
    return b.cast(g, dtype=b.type_of(like).dtype)


def _imag_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """imag(z) = y: its cotangent enters as i g."""
    return (b.complex(zeros_like(b, g), g),)


def _angle_vjp(b: Any, n: Any, g: Any) -> tuple[Any]:
    """d angle / dz in torch's convention: g i z / |z|^2, 0 at z = 0."""
    z = n.inputs[0]
    x, y = b.real(z), b.imag(z)
    r2 = b.add(b.mul(x, x), b.mul(y, y))
    zero = b.eq(r2, scalar(b, 0, r2))
    safe = b.where(zero, b.add(r2, scalar(b, 1, r2)), r2)
    gr = b.where(zero, zeros_like(b, g), b.div(g, safe))
    return (b.complex(b.neg(b.mul(gr, y)), b.mul(gr, x)),)


def _interpreted(name: str, inputs: tuple[str, ...], infer: Any, ref: Any, vjp: Any,
                 doc: str) -> OpDef:
    arity = Trait.UNARY if len(inputs) == 1 else Trait.BINARY
    return defop(name, inputs, infer, ref=ref, vjp=vjp, doc=doc,
                 traits={arity, Trait.ELEMENTWISE, Trait.INTERPRETED})


COMPLEX_OP = _interpreted(
    "complex", ("real", "imag"), _complex_infer, _complex_ref,
    lambda b, n, g: (b.real(g), b.imag(g)),
    "real + i imag from float32 (float64) parts: complex64 (complex128), broadcast.")
REAL = _interpreted("real", ("x",), _part_infer("real"), lambda x: np.array(np.real(x)),
                    lambda b, n, g: (_to_complex(b, g, n.inputs[0]),),
                    "The real part of a complex tensor.")
IMAG = _interpreted("imag", ("x",), _part_infer("imag"), lambda x: np.array(np.imag(x)), _imag_vjp,
                    "The imaginary part of a complex tensor.")
CONJ = _interpreted("conj", ("x",), lambda x: (require_dtype("conj", x, COMPLEX), x)[1],
                    lambda x: np.asarray(np.conj(x)), lambda b, n, g: (b.conj(g),),
                    "x - 2i imag(x).")
ANGLE = _interpreted("angle", ("x",), _part_infer("angle"),
                     lambda x: np.asarray(np.angle(x), DType.of(x).real.np), _angle_vjp,
                     "The argument of a complex tensor, in (-pi, pi]; its gradient is 0 at 0, "
                     "as PyTorch's.")
