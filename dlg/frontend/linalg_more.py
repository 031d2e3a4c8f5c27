"""More of torch.linalg, composed of the dense functions (frontend/dense_linalg.py,
decompositions.py) and matmul: pinv, lstsq, matrix_rank, cond, matrix_exp, matrix_power,
multi_dot, norm, vecdot, vander, solve_ex/inv_ex/cholesky_ex, lu_factor and lu_solve, and
torch's top-level spellings (pinverse, matrix_exp, matrix_power, svd, qr, cholesky_solve,
cholesky_inverse).

pinv is its own Function (NumPy's SVD forward, torch's closed-form backward in dlg ops);
cholesky_solve and cholesky_inverse solve with the product of the whole factor, as torch's
gradients treat it;
lu_factor runs partial pivoting in NumPy (its backward torch's formula for square matrices);
the rest compose those, so gradients come from the parts. matrix_exp is a Taylor series of
degree 18 after scaling A by 2^-s (s from A's 1-norm and torch's bound, read eagerly), squared
back.
multi_dot, vecdot and vander are plain compositions of ops, traced and compiled like any other.
The _ex forms return info 0: a failure raises, as the plain functions do.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from dlg.errors import DlgShapeError, DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.decompositions import matrix_norm, qr as _linalg_qr, svd as _linalg_svd
from dlg.frontend.decompositions import svdvals
from dlg.frontend.dense_linalg import (
    _eager_only,
    _matrices,
    _t,
    cholesky,
    inv,
    solve,
    solve_triangular,
)
from dlg.frontend.function import Function, FunctionCtx
from dlg.frontend.tensor import Tensor, call
from dlg.ir.dtypes import DType


def _info(A: Tensor) -> Tensor:
    return Tensor.of(np.zeros(A.shape[:-2], np.int32))


# ---- pinv, matrix_rank, lstsq, cond --------------------------------------------------------------
def _tolerance(s: np.ndarray, shape: tuple[int, ...], atol: Any, rtol: Any) -> np.ndarray:
    """torch's: max(atol, rtol * largest singular value); rtol defaults to eps * max(m, n), or
    to 0 when only atol is given."""
    if rtol is None:
        rtol = 0.0 if atol is not None and np.any(np.asarray(atol) > 0) else (
            np.finfo(s.dtype).eps * max(shape[-2:]))
    top = s.max(-1, keepdims=True) if s.shape[-1] else np.zeros((*s.shape[:-1], 1), s.dtype)
    return np.maximum(np.asarray(0.0 if atol is None else atol, s.dtype)[..., None],
                      np.asarray(rtol, s.dtype)[..., None] * top)


def _value(v: Any) -> Any:
    return v.numpy_view() if isinstance(v, Tensor) else v


class _Pinv(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, atol: Any, rtol: Any) -> Tensor:  # noqa: N803
        a = A.numpy_view()
        with np.errstate(all="ignore"):
            u, s, vh = np.linalg.svd(a, full_matrices=False)
            keep = s > _tolerance(s, a.shape, atol, rtol)
            inverse = np.where(keep, 1 / np.where(keep, s, 1), 0).astype(a.dtype)
        P = Tensor.of(np.swapaxes(vh, -1, -2) @ (inverse[..., None] * np.swapaxes(u, -1, -2)))
        ctx.save_for_backward(A, P)
        return P

    @staticmethod
    def backward(ctx: FunctionCtx, g: Tensor) -> tuple[Any, None, None]:
        """torch's pinv_backward (real matrices)."""
        A, P = ctx.saved_tensors
        m, n = A.shape[-2:]
        Ph, gh = _t(P), _t(g)
        if m <= n:
            K = gh @ P
            KPh = K @ Ph
            out = -_t(P @ K) + KPh - (A @ P) @ KPh + (Ph @ P) @ (gh - K @ A)
        else:
            K = P @ gh
            PhK = Ph @ K
            out = -_t(K @ P) + (gh - A @ K) @ P @ Ph + PhK - PhK @ P @ A
        return out, None, None


def pinv(A: Tensor, *, atol: Any = None, rtol: Any = None,  # noqa: N803
         hermitian: bool = False) -> Tensor:
    """torch.linalg.pinv: the Moore-Penrose inverse by SVD, singular values at or below
    max(atol, rtol * largest) treated as 0."""
    A = _matrices("linalg.pinv", A, square=hermitian)
    if hermitian:  # torch's: by eigh (its lower triangle), 1/eigenvalue above the tolerance
        return _PinvHermitian.apply(A, _value(atol), _value(rtol))
    return _Pinv.apply(A, _value(atol), _value(rtol))


class _PinvHermitian(Function):
    """hermitian=True: torch's eigh forward (the lower triangle), its pinv_backward on the
    input as given."""

    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, atol: Any, rtol: Any) -> Tensor:  # noqa: N803
        with np.errstate(all="ignore"):
            w, v = np.linalg.eigh(A.numpy_view(), "L")
            size = np.abs(w)
            keep = size > _tolerance(size, A.shape, atol, rtol)
            inverse = np.where(keep, 1 / np.where(keep, w, 1), 0).astype(w.dtype)
        P = Tensor.of((v * inverse[..., None, :]) @ np.swapaxes(v, -1, -2))
        ctx.save_for_backward(A, P)
        return P

    backward = staticmethod(_Pinv.backward)


def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:  # noqa: A002
    """torch.pinverse: pinv with rcond as rtol."""
    return pinv(input, rtol=rcond)


def matrix_rank(A: Tensor, *, atol: Any = None, rtol: Any = None,  # noqa: N803
                hermitian: bool = False) -> Tensor:
    """torch.linalg.matrix_rank: the singular values above pinv's tolerance, counted."""
    A = _matrices("linalg.matrix_rank", A, square=False)
    s = np.linalg.svd(A.numpy_view(), compute_uv=False)
    tol = _tolerance(s, A.shape, _value(atol), _value(rtol))
    return Tensor.of((s > tol).sum(-1).astype(np.int64))


class LstsqResult(NamedTuple):
    solution: Tensor
    residuals: Tensor
    rank: Tensor
    singular_values: Tensor


def lstsq(A: Tensor, B: Tensor, rcond: float | None = None, *,  # noqa: N803
          driver: str | None = None) -> LstsqResult:
    """torch.linalg.lstsq: pinv(A) @ B (the minimum-norm solution), with the outputs torch's
    CPU drivers give: 'gelsy' (the default) the rank; 'gelsd' and 'gelss' the rank and the
    singular values; the residuals (squared, per column) where A is tall and of full rank,
    except for 'gelsy'."""
    A = _matrices("linalg.lstsq", A, square=False)
    if driver not in (None, "gelsy", "gelsd", "gelss", "gels"):
        raise DlgValueError(f"linalg.lstsq: parameter `driver` should be one of (gels, gelsy, "
                            f"gelsd, gelss), got {driver}", engine.caller_span())
    driver = driver or "gelsy"
    vector = isinstance(B, Tensor) and B.ndim == A.ndim - 1
    rhs = B.unsqueeze(-1) if vector else B
    X = pinv(A, rtol=rcond) @ rhs
    empty = A.reshape(-1)[:0]  # on A's gradient path, as torch's empty outputs
    rank = matrix_rank(A, rtol=rcond) if driver != "gels" else Tensor.of(np.zeros((0,), np.int64))
    m, n = A.shape[-2:]
    residuals = empty
    full = driver == "gels" or bool(np.all(rank.numpy_view() == n))
    if m > n and full and driver != "gelsy":
        residuals = call("sum", (A @ X - rhs) ** 2, -2)
    values = svdvals(A) if driver in ("gelsd", "gelss") else empty
    return LstsqResult(X.squeeze(-1) if vector else X, residuals,
                       rank if driver != "gels" else Tensor.of(np.zeros((0,), np.int64)), values)


def cond(A: Tensor, p: Any = None) -> Tensor:  # noqa: N803
    """torch.linalg.cond: largest over smallest singular value (p None or 2; -2 the inverse), or
    norm(A, p) * norm(inv(A), p) for 'fro', 'nuc', 1, -1, inf, -inf."""
    A = _matrices("linalg.cond", A, square=p not in (None, 2, -2))
    if p in (None, 2, -2):
        s = svdvals(A)
        big, small = s.amax(-1), s.amin(-1)
        return big / small if p != -2 else small / big
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


# ---- powers and the exponential ------------------------------------------------------------------
def _eye_like(A: Tensor) -> Tensor:
    n = A.shape[-1]
    return Tensor.of(np.broadcast_to(np.eye(n, dtype=A.numpy_view().dtype), A.shape).copy())


def matrix_power(A: Tensor, n: int) -> Tensor:  # noqa: N803
    """torch.linalg.matrix_power: A^n by repeated squaring (n < 0: of inv(A); n = 0: I)."""
    if not isinstance(A, Tensor) or A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise DlgShapeError("linalg.matrix_power: A must be batches of square matrices",
                            engine.caller_span())
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise DlgTypeError(f"linalg.matrix_power: n must be an int, got {type(n).__name__}",
                           engine.caller_span())
    if n == 0:  # I, its gradient 0, traced as well as eager
        eye = Tensor.of(np.eye(A.shape[-1], dtype=A.dtype.np))
        return call("where", Tensor.of(np.ones(A.shape[-2:], bool)), eye, A)
    base = inv(A) if n < 0 else A
    out = None
    k = abs(int(n))
    while k:
        if k & 1:
            out = base if out is None else out @ base
        k >>= 1
        if k:
            base = base @ base
    assert out is not None
    return out


_TAYLOR = 18  # terms; A is scaled to torch's float64 bound for degree 18, the rest below eps
_THETA = {DType.f64: 1.090863719290036}


def matrix_exp(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.matrix_exp: exp(A / 2^s) by its Taylor series, squared s times (s per
    matrix from its 1-norm, read eagerly), in float64; the gradient is autodiff's of those
    products."""
    A = _matrices("linalg.matrix_exp", A)
    dtype = A.dtype
    A = A.to(DType.f64)  # float32's squarings would lose 1e-3 at large norms
    norms = np.abs(A.numpy_view()).sum(-2).max(-1, initial=0.0)  # per matrix
    with np.errstate(all="ignore"):
        wanted = np.ceil(np.log2(norms / _THETA[DType.f64]))
    s = np.where(np.isfinite(wanted) & (wanted > 0), wanted, 0).astype(np.int64)
    X = A * Tensor.of((0.5 ** s)[..., None, None]) if s.any() else A
    term = _eye_like(A)
    out = term
    for k in range(1, _TAYLOR + 1):
        term = (term @ X) * (1.0 / k)
        out = out + term
    for k in range(int(s.max(initial=0))):  # each matrix squared back its own s times
        out = call("where", Tensor.of((k < s)[..., None, None]), out @ out, out)
    return out.to(dtype)


# ---- products, norms, Vandermonde ----------------------------------------------------------------
def multi_dot(tensors: Any) -> Tensor:
    """torch.linalg.multi_dot: the chained matrix product (a 1-d first or last tensor is a row
    or column vector, dropped from the result)."""
    xs = list(tensors)
    if len(xs) < 2:
        raise DlgValueError(f"linalg.multi_dot(): expected at least 2 tensors but got {len(xs)}",
                            engine.caller_span())
    first, last = xs[0].ndim == 1, xs[-1].ndim == 1
    if first:
        xs[0] = xs[0].unsqueeze(0)
    if last:
        xs[-1] = xs[-1].unsqueeze(-1)
    if any(x.ndim != 2 for x in xs):
        raise DlgShapeError("linalg.multi_dot(): the tensors must be 2-d (the first and last "
                            "may be 1-d)", engine.caller_span())
    out = xs[0]
    for x in xs[1:]:
        out = call("matmul", out, x)
    if first:
        out = out.squeeze(0)
    if last:
        out = out.squeeze(-1)
    return out


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """torch.linalg.vecdot: sum(x * y) along dim (broadcast; dlg's tensors are real)."""
    return call("sum", x * y, dim)


def norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *,  # noqa: A002, N803
         dtype: DType | None = None) -> Tensor:
    """torch.linalg.norm: a vector norm (1-d, or one dim) or a matrix norm (2-d, or two dims);
    without ord, the 2-norm of the flattened tensor (Frobenius for matrices)."""
    if dtype is not None:
        A = A.to(dtype)
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        return call("vector_norm", A, 2, dim, keepdim)
    dims = tuple(range(A.ndim)) if dim is None else tuple(dim)
    if len(dims) == 1:
        return call("vector_norm", A, ord, dims, keepdim)
    if len(dims) == 2:
        return matrix_norm(A, ord, dims, keepdim)
    raise DlgValueError(f"linalg.norm: with ord={ord!r}, the input must be 1-d or 2-d, or dim "
                        "must name one or two dims", engine.caller_span())


def vander(x: Tensor, *, N: int | None = None) -> Tensor:  # noqa: N803
    """torch.linalg.vander: columns x^0, x^1, ..., x^(N-1) (a running product, as torch)."""
    if x.ndim == 0:
        x = x.reshape(1)
    n = x.shape[-1] if N is None else N
    if n <= 0:
        raise DlgValueError(f"linalg.vander: N must be > 0, got {n}", engine.caller_span())
    column = x.unsqueeze(-1)
    ones = call("ones_like", column)
    if n == 1:
        return ones
    parts = [ones] + [column] * (n - 1)
    return call("cumprod", call("cat", parts, -1), -1)


# ---- the _ex forms -------------------------------------------------------------------------------
class SolveResult(NamedTuple):
    result: Tensor
    info: Tensor


class InvResult(NamedTuple):
    inverse: Tensor
    info: Tensor


class CholeskyResult(NamedTuple):
    L: Tensor
    info: Tensor


def solve_ex(A: Tensor, B: Tensor, *, left: bool = True,  # noqa: N803
             check_errors: bool = False) -> SolveResult:
    """torch.linalg.solve_ex: solve's result and info 0 (a singular A raises)."""
    return SolveResult(solve(A, B, left=left), _info(A))


def inv_ex(A: Tensor, *, check_errors: bool = False) -> InvResult:  # noqa: N803
    """torch.linalg.inv_ex: inv's result and info 0 (a singular A raises)."""
    return InvResult(inv(A), _info(A))


def cholesky_ex(A: Tensor, *, upper: bool = False,  # noqa: N803
                check_errors: bool = False) -> CholeskyResult:
    """torch.linalg.cholesky_ex: cholesky's result and info 0 (a matrix that is not
    positive-definite raises)."""
    return CholeskyResult(cholesky(A, upper=upper), _info(A))


# ---- LU ------------------------------------------------------------------------------------------
class LUResult(NamedTuple):
    LU: Tensor
    pivots: Tensor


def _lu(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partial pivoting (LAPACK's getrf): LU packed, 1-based pivots, batched."""
    lu = np.array(a, copy=True)
    m, n = lu.shape[-2:]
    k = min(m, n)
    batch = lu.reshape(-1, m, n)
    pivots = np.zeros((batch.shape[0], k), np.int32)
    rows = np.arange(batch.shape[0])
    with np.errstate(all="ignore"):
        for j in range(k):
            p = j + np.argmax(np.abs(batch[:, j:, j]), axis=1)
            pivots[:, j] = p + 1
            top, chosen = batch[rows, j].copy(), batch[rows, p].copy()
            batch[rows, j], batch[rows, p] = chosen, top
            pivot = batch[:, j, j][:, None]
            safe = np.where(pivot == 0, 1, pivot)
            batch[:, j + 1:, j] = np.where(pivot == 0, batch[:, j + 1:, j],
                                           batch[:, j + 1:, j] / safe)
            batch[:, j + 1:, j + 1:] -= batch[:, j + 1:, j, None] * batch[:, j, None, j + 1:]
    return batch.reshape(lu.shape), pivots.reshape(*lu.shape[:-2], k)


def _permutation(pivots: np.ndarray, m: int) -> np.ndarray:
    """The row order P^T applies: the pivots' swaps replayed on 0..m-1, batched."""
    batch = int(np.prod(pivots.shape[:-1], dtype=np.int64))
    flat = pivots.reshape(batch, pivots.shape[-1]) - 1
    order = np.tile(np.arange(m), (batch, 1))
    rows = np.arange(flat.shape[0])
    for j in range(flat.shape[1]):
        a, b = order[rows, j].copy(), order[rows, flat[:, j]].copy()
        order[rows, j], order[rows, flat[:, j]] = b, a
    return order.reshape(*pivots.shape[:-1], m)


class _LUFactor(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> tuple[Tensor, Tensor]:  # noqa: N803
        lu, pivots = _lu(A.numpy_view())
        LU = Tensor.of(lu)
        ctx.save_for_backward(LU)
        ctx.pivots = pivots
        piv = Tensor.of(pivots)
        ctx.mark_non_differentiable(piv)
        return LU, piv

    @staticmethod
    def backward(ctx: FunctionCtx, gLU: Tensor, _: Any) -> Tensor:  # noqa: N803
        """torch's lu_factor_ex_backward (linalg_lu_backward) for A = P L U, L (m, k) unit lower,
        U (k, n) upper: square, wide and tall."""
        (LU,) = ctx.saved_tensors
        m, n = LU.shape[-2:]
        k = min(m, n)
        L = call("tril", LU[..., :, :k], -1) + Tensor.of(np.eye(m, k, dtype=LU.dtype.np))
        U = call("triu", LU[..., :k, :], 0)
        gL, gU = call("tril", gLU[..., :, :k], -1), call("triu", gLU[..., :k, :], 0)
        if m == n:  # L^-T (tril(L^T gL, -1) + triu(gU U^T)) U^-T
            phi = call("tril", _t(L) @ gL, -1) + call("triu", gU @ _t(U), 0)
            inner = solve_triangular(_t(L), phi, upper=True, unitriangular=True)
            inner = solve_triangular(_t(U), inner, upper=False, left=False)
        elif m < n:  # wide: L is square
            inner = solve_triangular(_t(U[..., :, :k]), call("tril", _t(L) @ gL - gU @ _t(U), -1),
                                     upper=False, left=False)
            inner = call("cat", [inner + call("triu", gU[..., :, :k], 0), gU[..., :, k:]], -1)
            inner = solve_triangular(_t(L), inner, upper=True, unitriangular=True)
        else:  # tall: U is square
            inner = solve_triangular(_t(L[..., :k, :]), call("triu", gU @ _t(U) - _t(L) @ gL, 0),
                                     upper=True, unitriangular=True)
            inner = call("cat", [inner + call("tril", gL[..., :k, :], -1), gL[..., k:, :]], -2)
            inner = solve_triangular(_t(U), inner, upper=False, left=False)
        order = _permutation(ctx.pivots, m)
        inverse = np.argsort(order, axis=-1)
        rows = Tensor.of(inverse[..., None].astype(np.int64))
        return call("take_along_dim", inner, rows.expand(*rows.shape[:-1], n), -2)


def lu_factor(A: Tensor, *, pivot: bool = True) -> LUResult:  # noqa: N803
    """torch.linalg.lu_factor: L (unit, below the diagonal) and U packed in one matrix, and
    LAPACK's 1-based row swaps."""
    A = _matrices("linalg.lu_factor", A, square=False)
    if not pivot:
        raise DlgValueError("linalg.lu_factor: LU without pivoting is not implemented on the "
                            "CPU (torch's rule)", engine.caller_span())
    return LUResult(*_LUFactor.apply(A))


def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True,  # noqa: N803
             adjoint: bool = False) -> Tensor:
    """torch.linalg.lu_solve: A X = B (A^T X = B with adjoint; X A = B with left=False) from
    lu_factor's output, by two triangular solves and the row order."""
    _eager_only("linalg.lu_solve", LU, pivots, B)
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return _t(lu_solve(LU, pivots, _t(B), adjoint=not adjoint))
    order = Tensor.of(_permutation(pivots.numpy_view(), LU.shape[-2])[..., None].astype(np.int64))
    if not adjoint:  # L U X = P^T B
        rows = call("take_along_dim", B, order.expand(*order.shape[:-1], B.shape[-1]), -2)
        Y = solve_triangular(LU, rows, upper=False, unitriangular=True)
        return solve_triangular(LU, Y, upper=True)
    Z = solve_triangular(_t(LU), B, upper=False)  # U^T L^T P^T X = B
    W = solve_triangular(_t(LU), Z, upper=True, unitriangular=True)
    inverse = Tensor.of(np.argsort(order.numpy_view()[..., 0], -1)[..., None])
    return call("take_along_dim", W, inverse.expand(*inverse.shape[:-1], W.shape[-1]), -2)


# ---- torch's top-level spellings -----------------------------------------------------------------
class SvdResult(NamedTuple):
    U: Tensor
    S: Tensor
    V: Tensor


def svd(input: Tensor, some: bool = True, compute_uv: bool = True) -> SvdResult:  # noqa: A002
    """torch.svd: U, S, V (not V^T) with A = U diag(S) V^T; zeros for U and V without
    compute_uv, as torch."""
    if not compute_uv:  # torch's zeros of the full shapes
        m, n = input.shape[-2:]
        dtype = input.dtype.np
        return SvdResult(Tensor.of(np.zeros((*input.shape[:-2], m, m), dtype)), svdvals(input),
                         Tensor.of(np.zeros((*input.shape[:-2], n, n), dtype)))
    U, S, Vh = _linalg_svd(input, full_matrices=not some)
    return SvdResult(U, S, _t(Vh))


def qr(input: Tensor, some: bool = True) -> Any:  # noqa: A002
    """torch.qr: linalg.qr's reduced (some) or complete factors."""
    return _linalg_qr(input, "reduced" if some else "complete")


def _gram(L: Tensor, upper: bool) -> Tensor:  # noqa: N803
    """L L^T (U^T U with upper), of the whole factor: torch's gradients treat it so."""
    return _t(L) @ L if upper else L @ _t(L)


def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False) -> Tensor:  # noqa: N803
    """torch.cholesky_solve: X with (L L^T) X = B (U^T U with upper)."""
    return solve(_gram(L, upper), B)


def cholesky_inverse(L: Tensor, upper: bool = False) -> Tensor:  # noqa: N803
    """torch.cholesky_inverse: (L L^T)^-1 (or (U^T U)^-1)."""
    return inv(_gram(L, upper))


LINALG = {"pinv": pinv, "lstsq": lstsq, "matrix_rank": matrix_rank, "cond": cond,
          "matrix_exp": matrix_exp, "matrix_power": matrix_power, "multi_dot": multi_dot,
          "norm": norm, "vecdot": vecdot, "vander": vander, "solve_ex": solve_ex,
          "inv_ex": inv_ex, "cholesky_ex": cholesky_ex, "lu_factor": lu_factor,
          "lu_solve": lu_solve}
TOP_LEVEL = {"pinverse": pinverse, "matrix_exp": matrix_exp, "matrix_power": matrix_power,
             "svd": svd, "qr": qr, "cholesky_solve": cholesky_solve,
             "cholesky_inverse": cholesky_inverse}
for _name, _fn in TOP_LEVEL.items():  # x.pinverse(), x.svd(), x.cholesky_solve(L), ...
    setattr(Tensor, _name, _fn)
