"""PyTorch's complex-number functions on dlg tensors: `dlg.complex`, `dlg.polar`,
`view_as_real`/`view_as_complex`, `real`/`imag` (also the properties `x.real`, `x.imag`),
`conj`, `angle`, `sgn`, `is_complex`, with torch's meaning on real tensors too (`real(x)` is x,
`conj(x)` is x, `angle(x)` is pi below 0). Each emits the registry's complex ops
(`ir/ops/complexes.py`) and shape ops, so gradients are the registry's VJPs (torch's convention).

`view_as_real` and `view_as_complex` give new tensors, not views sharing memory: an in-place
write to one does not reach the other (programs such as LLaMA's rotary embeddings only read
them). Complex values run eagerly and in the interpreter; `dlg.compile` refuses them."""

from __future__ import annotations

import math
from typing import Any

from dlg.errors import DlgShapeError, DlgTypeError
from dlg.frontend import engine
from dlg.frontend.tensor import Tensor, apply, call, tensor_argument
from dlg.ir.dtypes import DType
from dlg.ir.ops.complexes import ANGLE, COMPLEX_OP, CONJ, IMAG, REAL
from dlg.ir.ops.elementwise import CAST


def complex(real: Any, imag: Any) -> Tensor:  # noqa: A001  (torch.complex)
    """real + i imag: float32 parts make complex64, float64 parts complex128 (torch's rule:
    both parts one float dtype)."""
    real, imag = tensor_argument(real, "complex(): real"), tensor_argument(imag, "complex(): imag")
    if real.dtype != imag.dtype or real.dtype not in (DType.f32, DType.f64):
        raise DlgTypeError(f"complex(): expected both parts float32 or both float64, got "
                           f"{real.dtype!r} and {imag.dtype!r}", engine.caller_span())
    return apply(COMPLEX_OP, real, imag)


def polar(abs: Any, angle: Any) -> Tensor:  # noqa: A002  (torch.polar's names)
    """abs (cos angle + i sin angle)."""
    r, theta = tensor_argument(abs, "polar(): abs"), tensor_argument(angle, "polar(): angle")
    if r.dtype != theta.dtype or r.dtype not in (DType.f32, DType.f64):
        raise DlgTypeError(f"polar(): expected abs and angle both float32 or both float64, got "
                           f"{r.dtype!r} and {theta.dtype!r}", engine.caller_span())
    return apply(COMPLEX_OP, r * theta.cos(), r * theta.sin())


def view_as_real(input: Any) -> Tensor:  # noqa: A002
    """A complex tensor as its real and imaginary parts along a new last axis of 2."""
    z = tensor_argument(input, "view_as_real(): input")
    if not z.dtype.is_complex:
        raise DlgTypeError(f"view_as_real is only supported for complex tensors, got "
                           f"{z.dtype!r}", engine.caller_span())
    return call("stack", [apply(REAL, z), apply(IMAG, z)], -1)


def view_as_complex(input: Any) -> Tensor:  # noqa: A002
    """A float tensor whose last axis is 2 (real, imaginary) as complex numbers."""
    x = tensor_argument(input, "view_as_complex(): input")
    if x.dtype not in (DType.f32, DType.f64):
        raise DlgTypeError(f"view_as_complex is only supported for float32 and float64 "
                           f"tensors, got {x.dtype!r}", engine.caller_span())
    if x.ndim == 0 or x.shape[-1] != 2:
        raise DlgShapeError(f"view_as_complex(): the last dimension must have size 2, got "
                            f"shape {list(x.shape)}", engine.caller_span())
    return apply(COMPLEX_OP, x[..., 0], x[..., 1])


def real(input: Any) -> Tensor:  # noqa: A002
    """The real part; a real tensor is its own."""
    x = tensor_argument(input, "real(): input")
    return apply(REAL, x) if x.dtype.is_complex else x


def imag(input: Any) -> Tensor:  # noqa: A002
    """The imaginary part (complex tensors only, as torch)."""
    x = tensor_argument(input, "imag(): input")
    if not x.dtype.is_complex:
        raise DlgTypeError("imag is not implemented for tensors with non-complex dtypes.",
                           engine.caller_span())
    return apply(IMAG, x)


def conj(input: Any) -> Tensor:  # noqa: A002
    """The complex conjugate (computed, not a lazy flag); a real tensor is its own."""
    x = tensor_argument(input, "conj(): input")
    return apply(CONJ, x) if x.dtype.is_complex else x


def resolve(input: Any) -> Tensor:  # noqa: A002
    """resolve_conj / resolve_neg: dlg's conj is computed, so nothing is left to resolve."""
    return tensor_argument(input, "resolve_conj(): input")


def angle(input: Any) -> Tensor:  # noqa: A002
    """The argument in (-pi, pi]; a real tensor's is pi below 0 and 0 elsewhere (nan stays
    nan), as a float, with no gradient (torch's)."""
    x = tensor_argument(input, "angle(): input")
    if x.dtype.is_complex:
        return apply(ANGLE, x)
    if not x.dtype.is_float:
        x = apply(CAST, x, dtype=DType.f32)
    below = call("where", x < 0, math.pi, 0.0)
    return call("where", x != x, x, below.detach() if x.requires_grad else below)


def sgn(input: Any) -> Tensor:  # noqa: A002
    """z / |z| (0 at 0) for complex z; sign(x) for real x."""
    x = tensor_argument(input, "sgn(): input")
    if not x.dtype.is_complex:
        return call("sign", x)
    modulus = x.abs()
    unit = x / apply(CAST, call("where", modulus == 0, 1.0, modulus), dtype=x.dtype)
    return call("where", modulus == 0, 0.0, unit)


def is_complex(input: Any) -> bool:  # noqa: A002
    return tensor_argument(input, "is_complex(): input").dtype.is_complex


def _cast_method(dtype: DType) -> Any:
    def method(self: Tensor) -> Tensor:
        return self if self.dtype == dtype else apply(CAST, self, dtype=dtype)
    method.__name__ = "cfloat" if dtype == DType.c64 else "cdouble"
    return method


def is_conj(input: Any) -> bool:  # noqa: A002
    """False: dlg's conj is computed, never a lazy conjugate bit."""
    tensor_argument(input, "is_conj(): input")
    return False


TOP_LEVEL = {"complex": complex, "polar": polar, "view_as_real": view_as_real,
             "view_as_complex": view_as_complex, "real": real, "imag": imag, "conj": conj,
             "conj_physical": conj, "resolve_conj": resolve, "resolve_neg": resolve,
             "angle": angle, "sgn": sgn, "is_complex": is_complex, "is_conj": is_conj}

# the methods and properties (x.real is a property in torch, as x.imag)
Tensor.real = property(real)  # type: ignore[attr-defined,assignment]
Tensor.imag = property(imag)  # type: ignore[attr-defined,assignment]
for _name in ("conj", "conj_physical", "resolve_conj", "resolve_neg", "angle", "sgn",
              "is_complex", "is_conj"):
    setattr(Tensor, _name, TOP_LEVEL[_name])
del _name
Tensor.cfloat = _cast_method(DType.c64)  # type: ignore[attr-defined]
Tensor.cdouble = _cast_method(DType.c128)  # type: ignore[attr-defined]
