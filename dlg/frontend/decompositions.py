"""torch.linalg's decompositions (qr, eigh, svd, svdvals) and matrix_norm, eager only, as
frontend/dense_linalg.py: NumPy forward, torch's backward formulas in dlg ops on the recorded
outputs (svdvals' backward uses U and Vh as constants: once_differentiable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend.dense_linalg import (
    EighResult,
    QRResult,
    SVDResult,
    _lapack,
    _matrices,
    _t,
    solve_triangular,
)
from dlg.frontend.function import Function, FunctionCtx, once_differentiable
from dlg.frontend.tensor import Tensor, call

_NO_CONVERGENCE = "The algorithm failed to converge."


def _diag_embed(x: Tensor) -> Tensor:
    return call("diag_embed", x)


def _fill_diagonal_one(E: Tensor) -> Tensor:  # noqa: N803
    """E with ones on its diagonal (the divisor of torch's eigh/svd backward)."""
    eye = Tensor.of(np.eye(E.shape[-1], dtype=E.numpy_view().dtype))
    return E * (1 - eye) + eye


# ---- qr ------------------------------------------------------------------------------------------
class _QR(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, mode: str) -> tuple[Tensor, Tensor]:  # noqa: N803
        q, r = np.linalg.qr(A.numpy_view(), mode="reduced" if mode == "r" else mode)
        Q, R = Tensor.of(q), Tensor.of(r)
        ctx.save_for_backward(Q, R)
        ctx.mode = mode
        return Q, R

    @staticmethod
    def backward(ctx: FunctionCtx, gQ: Tensor, gR: Tensor) -> tuple[Any, None]:  # noqa: N803
        """torch's linalg_qr_backward for m >= n: gA = [gQ + Q syminvadj(triu(gR R^T - Q^T gQ))]
        R^-T."""
        Q, R = ctx.saved_tensors
        m, n = Q.shape[-2], R.shape[-1]
        if ctx.mode == "r" or m < n or ctx.mode == "complete" and m > n:
            raise DlgValueError(f"linalg.qr: the derivative is not implemented for mode="
                                f"'{ctx.mode}' with {m}x{n} inputs (only 'reduced', or "
                                f"'complete' with square inputs, and m >= n)",
                                engine.caller_span())
        M = call("triu", gR @ _t(R) - _t(Q) @ gQ, 0)
        M = M + _t(M) - _diag_embed(call("diagonal", M, 0, -2, -1))  # syminvadj
        gA = Q @ M + gQ
        return solve_triangular(_t(R), gA, upper=False, left=False), None


def qr(A: Tensor, mode: str = "reduced") -> QRResult:  # noqa: N803
    """torch.linalg.qr: mode 'reduced', 'complete' or 'r' (Q empty, as torch)."""
    A = _matrices("linalg.qr", A, square=False)
    if mode not in ("reduced", "complete", "r"):
        raise DlgValueError(f"qr received unrecognized mode '{mode}' but expected one of "
                            "'reduced' (default), 'r', or 'complete'", engine.caller_span())
    if mode == "r":  # Q not returned; R's gradient refused at backward, as torch's
        return QRResult(Tensor.of(np.zeros((0,), A.numpy_view().dtype)), _QR.apply(A, "r")[1])
    return QRResult(*_QR.apply(A, mode))


# ---- eigh ----------------------------------------------------------------------------------------
class _Eigh(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, uplo: str) -> tuple[Tensor, Tensor]:  # noqa: N803
        w, v = _lapack("linalg.eigh", np.linalg.eigh, A.numpy_view(), uplo,
                       problem=_NO_CONVERGENCE)
        L, V = Tensor.of(w), Tensor.of(v)
        ctx.save_for_backward(L, V)
        return L, V

    @staticmethod
    def backward(ctx: FunctionCtx, gL: Tensor, gV: Tensor) -> tuple[Tensor, None]:  # noqa: N803
        """torch's linalg_eig_backward (Hermitian): gA = V (skew(V^T gV)/2 / E + diag(gL)) V^T,
        E_ij = L_j - L_i."""
        L, V = ctx.saved_tensors
        VtgV = _t(V) @ gV
        skew = 0.5 * (VtgV - _t(VtgV))
        E = _fill_diagonal_one(L.unsqueeze(-2) - L.unsqueeze(-1))
        return V @ (skew / E + _diag_embed(gL)) @ _t(V), None


def eigh(A: Tensor, UPLO: str = "L") -> EighResult:  # noqa: N803
    """torch.linalg.eigh: ascending eigenvalues, eigenvectors as columns; reads one triangle."""
    if UPLO not in ("L", "U"):
        raise DlgValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}",
                            engine.caller_span())
    return EighResult(*_Eigh.apply(_matrices("linalg.eigh", A), UPLO))


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:  # noqa: N803
    """torch.linalg.eigvalsh: eigh's eigenvalues."""
    return eigh(A, UPLO).eigenvalues


# ---- svd -----------------------------------------------------------------------------------------
class _SVD(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor, full: bool) -> tuple[Tensor, ...]:  # noqa: N803
        u, s, vh = _lapack("linalg.svd", np.linalg.svd, A.numpy_view(), full,
                           problem=_NO_CONVERGENCE)
        out = Tensor.of(u), Tensor.of(s), Tensor.of(vh)
        ctx.save_for_backward(*out)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, gU: Tensor, gS: Tensor,  # noqa: N803
                 gVh: Tensor) -> tuple[Tensor, None]:  # noqa: N803
        """torch's svd_backward (real): gA = U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)]
        V^T plus the parts of gU, gV outside U's and V's spans; E_jk = S_k^2 - S_j^2."""
        U, S, Vh = ctx.saved_tensors
        m, n = U.shape[-2], Vh.shape[-1]
        k = min(m, n)
        U, Vh = U[..., :k], Vh[..., :k, :]
        gU, gVh = gU[..., :k], gVh[..., :k, :]
        V, gV = _t(Vh), _t(gVh)
        UtgU, VtgV = _t(U) @ gU, _t(V) @ gV
        UtgU, VtgV = UtgU - _t(UtgU), VtgV - _t(VtgV)
        S2 = S * S
        E = _fill_diagonal_one(S2.unsqueeze(-2) - S2.unsqueeze(-1))
        gA = (UtgU * S.unsqueeze(-2) + S.unsqueeze(-1) * VtgV) / E + _diag_embed(gS)
        if m > n:
            gUS = gU / S.unsqueeze(-2)
            gA = (U @ gA + gUS - U @ (_t(U) @ gUS)) @ Vh
        elif m < n:
            SgVh = gVh / S.unsqueeze(-1)
            gA = U @ (gA @ Vh + SgVh - (SgVh @ V) @ Vh)
        else:
            gA = U @ gA @ Vh
        return gA, None


class _SVDVals(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, A: Tensor) -> Tensor:  # noqa: N803
        u, s, vh = _lapack("linalg.svdvals", np.linalg.svd, A.numpy_view(), False,
                           problem=_NO_CONVERGENCE)
        ctx.u, ctx.vh = u, vh
        return Tensor.of(s)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, gS: Tensor) -> Tensor:  # noqa: N803
        return Tensor.of(ctx.u) @ _diag_embed(gS) @ Tensor.of(ctx.vh)


def svd(A: Tensor, full_matrices: bool = True) -> SVDResult:  # noqa: N803
    """torch.linalg.svd: U, S (descending), Vh with A = U diag(S) Vh."""
    return SVDResult(*_SVD.apply(_matrices("linalg.svd", A, square=False), full_matrices))


def svdvals(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.svdvals: the singular values, descending (gradient U diag(gS) Vh)."""
    return _SVDVals.apply(_matrices("linalg.svdvals", A, square=False))


# ---- matrix_norm ---------------------------------------------------------------------------------
def matrix_norm(A: Tensor, ord: Any = "fro", dim: tuple[int, int] = (-2, -1),  # noqa: A002
                keepdim: bool = False) -> Tensor:
    """torch.linalg.matrix_norm: 'fro', 'nuc', 2, -2, 1, -1, inf, -inf over `dim`."""
    A = _matrices("linalg.matrix_norm", A, square=False)
    d0, d1 = (d % A.ndim for d in dim)
    if d0 == d1:
        raise DlgValueError(f"linalg.matrix_norm: dims must be different. Got ({dim[0]}, "
                            f"{dim[1]})", engine.caller_span())
    if ord == "fro":  # vector_norm's 2-norm: its gradient at a zero matrix is 0, as torch's
        return call("vector_norm", A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        B = call("movedim", A, (d0, d1), (-2, -1))
        s = svdvals(B)
        out = (s.sum(-1) if ord == "nuc" else s.max(-1).values if ord == 2 else s.min(-1).values)
        for d in sorted((d0, d1)) if keepdim else ():
            out = out.unsqueeze(d)
        return out
    if ord in (1, -1, float("inf"), float("-inf")):
        summed, other = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = call("sum", call("abs", A), summed, True)
        out = s.amax(other, keepdim=True) if ord > 0 else s.amin(other, keepdim=True)
        return out if keepdim else out.squeeze((d0, d1))
    raise DlgValueError(f"linalg.matrix_norm: Order {ord} not supported.", engine.caller_span())


__all__ = ["eigh", "eigvalsh", "matrix_norm", "qr", "svd", "svdvals"]
