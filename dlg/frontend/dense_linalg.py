"""torch's dense linear algebra (torch.linalg.inv, det, slogdet, solve, cholesky,
solve_triangular, qr, eigh, svd, svdvals, matrix_norm), eager only.

Each is one `dlg.autograd.Function` (frontend/function.py): forward runs NumPy's LAPACK
(`np.linalg`, batched over the leading dims as torch), backward is torch's closed form written
with dlg ops on the saved (recorded) outputs, so create_graph differentiates it again. There is
no IR op: traced or compiled, each refuses by name (`_eager_only`) rather than record a wrong
graph. LAPACK's failures (a singular matrix, one not positive-definite) are DlgValueErrors with
torch's wording.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.function import Function, FunctionCtx
from dlg.frontend.tensor import Tensor, call


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


# ---- checks -------------------------------------------------------------------------------------
def _eager_only(name: str, *tensors: Any) -> None:
    tracer = engine.current_tracer()
    if any(isinstance(t, Tensor) and (t.graph_value is not None or tracer is not None
                                      and tracer.owns(t)) for t in tensors):
        raise DlgValueError(f"{name} runs eagerly only (NumPy's LAPACK computes it): it cannot "
                            "be traced or compiled (dlg.trace, dlg.compile)", engine.caller_span())


def _matrices(name: str, A: Any, square: bool = True) -> Tensor:  # noqa: N803
    _eager_only(name, A)
    if not isinstance(A, Tensor):
        raise DlgTypeError(f"{name}: expected a tensor, got {type(A).__name__}",
                           engine.caller_span())
    if not A.dtype.is_float:
        raise DlgTypeError(f"{name}: Expected a floating point tensor as input. Got {A.dtype}",
                           engine.caller_span())
    if A.ndim < 2:
        raise DlgShapeError(f"{name}: The input tensor A must have at least 2 dimensions.",
                            engine.caller_span())
    if square and A.shape[-1] != A.shape[-2]:
        raise DlgShapeError(f"{name}: A must be batches of square matrices, but they are "
                            f"{A.shape[-2]} by {A.shape[-1]} matrices", engine.caller_span())
    return A


def _lapack(name: str, fn: Any, *arrays: np.ndarray, problem: str) -> Any:
    try:
        with np.errstate(all="ignore"):
            return fn(*arrays)
    except np.linalg.LinAlgError:
        raise DlgValueError(f"{name}: {problem}", engine.caller_span()) from None


_SINGULAR = "The inversion could not be completed because the input matrix is singular."
_NOT_PD = "The factorization could not be completed because the input is not positive-definite."


def _t(x: Tensor) -> Tensor:
    return x.mT


def _rows(x: Tensor) -> Tensor:
    """x[..., None, :]: a vector batch as a batch of row vectors."""
    return x.unsqueeze(-2)


# ---- inv, det, slogdet --------------------------------------------------------------------------
class _Inv(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> Tensor:  # noqa: N803
        Y = Tensor.of(_lapack("linalg.inv", np.linalg.inv, A.numpy_view(), problem=_SINGULAR))
        ctx.save_for_backward(Y)
        return Y

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> Tensor:
        (Y,) = ctx.saved_tensors
        return -(_t(Y) @ g @ _t(Y))


class _Slogdet(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> tuple[Tensor, Tensor]:  # noqa: N803
        sign, logabs = np.linalg.slogdet(A.numpy_view())
        dtype = A.numpy_view().dtype
        out = Tensor.of(np.asarray(sign, dtype)), Tensor.of(np.asarray(logabs, dtype))
        ctx.save_for_backward(A)  # the sign requires grad as torch's (its gradient is zero)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, g_sign: Tensor, g_logabs: Tensor) -> Tensor:
        (A,) = ctx.saved_tensors
        return g_logabs.unsqueeze(-1).unsqueeze(-1) * _t(inv(A))


class _Det(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> Tensor:  # noqa: N803
        d = Tensor.of(np.asarray(np.linalg.det(A.numpy_view()), A.numpy_view().dtype))
        ctx.save_for_backward(A, d)
        return d

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> Tensor:
        A, d = ctx.saved_tensors
        return (g * d).unsqueeze(-1).unsqueeze(-1) * _t(inv(A))


def inv(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.inv (torch.inverse): a singular input is a DlgValueError."""
    return _Inv.apply(_matrices("linalg.inv", A))


def det(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.det; its gradient needs A invertible (torch's also covers singular A)."""
    return _Det.apply(_matrices("linalg.det", A))


def slogdet(A: Tensor) -> SlogdetResult:  # noqa: N803
    """torch.linalg.slogdet: (sign, logabsdet), the gradient through logabsdet."""
    return SlogdetResult(*_Slogdet.apply(_matrices("linalg.slogdet", A)))


def logdet(A: Tensor) -> Tensor:  # noqa: N803
    """torch.logdet: log det A, nan where det A < 0 (and -inf where it is 0)."""
    sign, logabs = slogdet(_matrices("logdet", A))
    return call("where", sign < 0, float("nan"), logabs)


# ---- solve, solve_triangular, cholesky ----------------------------------------------------------
class _Solve(Function):
    """X = A^-1 B, B a batch of matrices: dB = A^-T g, dA = -dB X^T."""

    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, B: Tensor) -> Tensor:  # noqa: N803
        X = Tensor.of(_lapack("linalg.solve", np.linalg.solve, A.numpy_view(), B.numpy_view(),
                           problem="The solver failed because the input matrix is singular."))
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> tuple[Tensor, Tensor]:
        A, X = ctx.saved_tensors
        dB = solve(_t(A), g)
        return -(dB @ _t(X)), dB


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:  # noqa: N803
    """torch.linalg.solve: X with A X = B (X A = B if not `left`); B a vector or a batch of them
    when B.shape == A.shape[:-1] (torch's rule), batch dims broadcast."""
    A = _matrices("linalg.solve", A)
    _eager_only("linalg.solve", B)
    B = B if isinstance(B, Tensor) else Tensor.of(np.asarray(B, A.numpy_view().dtype))
    if B.dtype != A.dtype:
        raise DlgTypeError(f"linalg.solve: Expected A and B to have the same dtype, but found "
                           f"A of type {A.dtype} and B of type {B.dtype} instead",
                           engine.caller_span())
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    n = A.shape[-1]
    if (B.shape[-1] if vector else B.shape[-1 if not left else -2]) != n:
        raise DlgShapeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                            f"{'AX = B' if left else 'XA = B'} ({A.shape[-2]}x{n} and "
                            f"{'x'.join(map(str, B.shape[-2:]))})", engine.caller_span())
    if vector:
        return _Solve.apply(A if left else _t(A), B.unsqueeze(-1)).squeeze(-1)
    if not left:
        return _t(_Solve.apply(_t(A), _t(B)))
    return _Solve.apply(A, B)


def _triangle(A: Tensor | np.ndarray, upper: bool, unit: bool) -> Any:
    """The triangle of A that solve_triangular reads (strict with a unit diagonal)."""
    if isinstance(A, np.ndarray):
        T = np.triu(A, int(unit)) if upper else np.tril(A, -int(unit))
        return T + np.eye(A.shape[-1], dtype=A.dtype) if unit else T
    return call("triu", A, int(unit)) if upper else call("tril", A, -int(unit))


class _SolveTriangular(Function):
    """Left X = A^-1 B with A triangular; dB = A^-T g, dA = -dB X^T on A's triangle."""

    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, B: Tensor, upper: bool,  # noqa: N803
                unit: bool) -> Tensor:
        T = _triangle(A.numpy_view(), upper, unit)
        X = Tensor.of(_lapack("linalg.solve_triangular", np.linalg.solve, T, B.numpy_view(),
                           problem="The solver failed because the input matrix is singular."))
        ctx.save_for_backward(A, X)
        ctx.upper, ctx.unit = upper, unit
        return X

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> tuple[Any, ...]:
        A, X = ctx.saved_tensors
        dB = solve_triangular(_t(A), g, upper=not ctx.upper, unitriangular=ctx.unit)
        return _triangle(-(dB @ _t(X)), ctx.upper, ctx.unit), dB, None, None


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True,  # noqa: N803
                     unitriangular: bool = False) -> Tensor:
    """torch.linalg.solve_triangular: only A's `upper` (else lower) triangle is read."""
    A = _matrices("linalg.solve_triangular", A)
    _eager_only("linalg.solve_triangular", B)
    if not isinstance(B, Tensor) or B.ndim < 2:
        raise DlgShapeError("linalg.solve_triangular: The input tensor B must have at least 2 "
                            "dimensions.", engine.caller_span())
    if B.shape[-2 if left else -1] != A.shape[-1]:
        raise DlgShapeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the "
                            f"equation {'AX = B' if left else 'XA = B'} ({A.shape[-2]}x"
                            f"{A.shape[-1]} and {B.shape[-2]}x{B.shape[-1]})",
                            engine.caller_span())
    if not left:  # X A = B  <=>  A^T X^T = B^T, A^T's triangle the other one
        return _t(_SolveTriangular.apply(_t(A), _t(B), not upper, unitriangular))
    return _SolveTriangular.apply(A, B, upper, unitriangular)


class _Cholesky(Function):
    """L L^T = A; gA = L^-T Φ(L^T gL) L^-1, Φ the lower triangle with a halved diagonal made
    symmetric (torch's cholesky_backward)."""

    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> Tensor:  # noqa: N803
        a = A.numpy_view()
        try:
            L = Tensor.of(np.linalg.cholesky(a))
        except np.linalg.LinAlgError:
            raise DlgValueError(f"linalg.cholesky: {_NOT_PD}{_minor(a)}",
                                engine.caller_span()) from None
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx: FunctionCtx, gL: Tensor) -> Tensor:  # noqa: N803
        (L,) = ctx.saved_tensors
        gA = call("tril", _t(L) @ gL, 0)
        gA = 0.5 * (gA + _t(call("tril", gA, -1)))
        gA = solve_triangular(_t(L), gA, upper=True)
        return solve_triangular(L, gA, upper=False, left=False)


def _minor(a: np.ndarray) -> str:
    """torch's detail: the order of the first leading minor that is not positive-definite."""
    for k in range(1, a.shape[-1] + 1):
        try:
            np.linalg.cholesky(a[..., :k, :k])
        except np.linalg.LinAlgError:
            return f" (the leading minor of order {k} is not positive-definite)"
    return ""


def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:  # noqa: N803
    """torch.linalg.cholesky: lower L with L L^T = A (only A's lower triangle read, as
    LAPACK); upper gives L^T. Not positive-definite is a DlgValueError."""
    L = _Cholesky.apply(_matrices("linalg.cholesky", A))
    return _t(L) if upper else L


def cholesky_torch(input: Tensor, upper: bool = False) -> Tensor:  # noqa: A002
    """torch.cholesky (the deprecated spelling, `upper` positional)."""
    return cholesky(input, upper=upper)


# torch's Tensor methods (x.inverse(), ...), attached when dlg is imported
Tensor.inverse = inv  # type: ignore[attr-defined]
Tensor.det = det  # type: ignore[attr-defined]
Tensor.logdet = logdet  # type: ignore[attr-defined]
Tensor.slogdet = slogdet  # type: ignore[attr-defined]
Tensor.cholesky = cholesky_torch  # type: ignore[attr-defined]

__all__ = ["EighResult", "QRResult", "SVDResult", "SlogdetResult", "cholesky", "cholesky_torch",
           "det", "inv", "logdet", "slogdet", "solve", "solve_triangular"]
