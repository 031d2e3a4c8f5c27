"""The little linear algebra MultivariateNormal needs, which dlg has no ops for: Cholesky
factors and lower-triangular solves, written as loops over the (static) event size with dlg
tensor ops, so gradients come from dlg's autograd and a trace unrolls them. Event sizes in these
programs are small (a few to a few dozen); the cost is O(D) ops per call."""

from __future__ import annotations

from dlg.distributions.utils import broadcast_shapes
from dlg.frontend import functional as F
from dlg.frontend.tensor import Tensor


def cholesky(a: Tensor) -> Tensor:
    """The lower factor L of a symmetric positive-definite `a` (..., D, D), L @ L^T == a,
    column by column (Cholesky-Banachiewicz). `a` is read as (a + a^T) / 2, so its gradient is
    symmetric, as torch.linalg.cholesky's."""
    n = a.shape[-1]
    a = (a + a.mT) * 0.5
    columns: list[Tensor] = []
    for j in range(n):
        residual = a[..., :, j]
        if columns:
            done = F.stack(columns, -1)  # (..., D, j)
            residual = residual - (done * done[..., j:j + 1, :]).sum(-1)
        pivot = residual[..., j:j + 1].sqrt()
        below = F.tensor([0.0] * j + [1.0] * (n - j), dtype=a.dtype)
        columns.append(residual / pivot * below)
    return F.stack(columns, -1)


def solve_lower(lower: Tensor, b: Tensor) -> Tensor:
    """X with lower @ X == b, for `lower` (..., D, D) lower-triangular and b (..., D, M), the
    batch dims broadcast (torch.linalg.solve_triangular(lower, b, upper=False)); forward
    substitution a row at a time."""
    n = lower.shape[-1]
    batch = broadcast_shapes(lower.shape[:-2], b.shape[:-2])
    lower = lower.expand(tuple(batch) + (n, n))
    b = b.expand(tuple(batch) + tuple(b.shape[-2:]))
    rows: list[Tensor] = []
    for i in range(n):
        row = b[..., i, :]
        if rows:
            solved = F.stack(rows, -2)  # (..., i, M)
            row = row - (lower[..., i:i + 1, :i] @ solved).squeeze(-2)
        rows.append(row / lower[..., i, i:i + 1])
    return F.stack(rows, -2)


def solve_lower_vector(lower: Tensor, b: Tensor) -> Tensor:
    """x with lower @ x == b for vectors b (..., D)."""
    return solve_lower(lower, b.unsqueeze(-1)).squeeze(-1)


def mahalanobis(lower: Tensor, diff: Tensor) -> Tensor:
    """|| lower^-1 diff ||^2 over the last dim: the squared Mahalanobis distance of `diff` for
    the covariance lower @ lower^T."""
    return solve_lower_vector(lower, diff).pow(2).sum(-1)


def identity_like(lower: Tensor) -> Tensor:
    n = lower.shape[-1]
    return F.eye(n, dtype=lower.dtype).expand(tuple(lower.shape[:-2]) + (n, n))
