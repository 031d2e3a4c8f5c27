"""LowRankMultivariateNormal(loc, cov_factor, cov_diag), torch's: covariance W W^T + diag(D)
with W of rank m much below the event size n, so log_prob and entropy go through the m x m
capacitance matrix I + W^T D^-1 W (Woodbury's identity and the matrix determinant lemma) and
never factor an n x n one; samples are loc + W eps_m + sqrt(D) eps_n. The Cholesky factor and
triangular solves are triangular.py's loops of dlg ops (over m), so all of it differentiates and
traces."""

from __future__ import annotations

import math
from typing import Any

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.multivariate import _VectorNormal
from dlg.distributions.triangular import cholesky, identity_like, mahalanobis, solve_lower
from dlg.errors import DlgShapeError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.distributions.utils import broadcast_shapes, lazy_property
from dlg.frontend.tensor import Tensor


def _capacitance_tril(w: Tensor, d: Tensor) -> Tensor:
    """The lower Cholesky factor of I + W^T D^-1 W."""
    wt_dinv = w.mT / d.unsqueeze(-2)
    k = wt_dinv @ w
    return cholesky(k + identity_like(k))


class LowRankMultivariateNormal(_VectorNormal):
    arg_constraints = {"loc": constraints.real_vector,
                       "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}

    def __init__(self, loc: Tensor, cov_factor: Tensor, cov_diag: Tensor,
                 validate_args: bool | None = None):
        span = engine.caller_span()
        if not isinstance(loc, Tensor) or loc.ndim < 1:
            raise DlgShapeError("loc must be at least one-dimensional.", span)
        n = loc.shape[-1]
        if not isinstance(cov_factor, Tensor) or cov_factor.ndim < 2:
            raise DlgShapeError("cov_factor must be at least two-dimensional, with optional "
                                "leading batch dimensions", span)
        if cov_factor.shape[-2] != n:
            raise DlgShapeError(f"cov_factor must be a batch of matrices with shape {n} x m",
                                span)
        if not isinstance(cov_diag, Tensor) or cov_diag.ndim < 1 or cov_diag.shape[-1] != n:
            raise DlgShapeError(f"cov_diag must be a batch of vectors with shape ({n},)", span)
        batch = tuple(broadcast_shapes(loc.shape[:-1], cov_factor.shape[:-2],
                                       cov_diag.shape[:-1]))
        self.loc = loc.expand(batch + (n,))
        self.cov_diag = cov_diag.expand(batch + (n,))
        self.cov_factor = cov_factor.expand(batch + tuple(cov_factor.shape[-2:]))
        self._unbroadcasted_cov_factor = cov_factor
        self._unbroadcasted_cov_diag = cov_diag
        self._capacitance_tril = _capacitance_tril(cov_factor, cov_diag)
        super().__init__(batch, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_params(LowRankMultivariateNormal, batch_shape, _instance,
                                  ("loc", "cov_diag", "cov_factor"))
        new._unbroadcasted_cov_factor = self._unbroadcasted_cov_factor
        new._unbroadcasted_cov_diag = self._unbroadcasted_cov_diag
        new._capacitance_tril = self._capacitance_tril
        return new

    @lazy_property
    def variance(self) -> Tensor:
        return (self._unbroadcasted_cov_factor.pow(2).sum(-1)
                + self._unbroadcasted_cov_diag).expand(
                    tuple(self._batch_shape) + tuple(self._event_shape))

    @lazy_property
    def scale_tril(self) -> Tensor:
        """sqrt(D) times the factor of I + D^-1/2 W W^T D^-1/2 (an n x n Cholesky)."""
        root = self._unbroadcasted_cov_diag.sqrt().unsqueeze(-1)
        scaled = self._unbroadcasted_cov_factor / root
        k = scaled @ scaled.mT
        return (root * cholesky(k + identity_like(k))).expand(self._matrix_shape())

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        w = self._unbroadcasted_cov_factor
        return (w @ w.mT + F.diag_embed(self._unbroadcasted_cov_diag)).expand(
            self._matrix_shape())

    @lazy_property
    def precision_matrix(self) -> Tensor:
        """Woodbury: D^-1 - A^T A with A = C^-1 W^T D^-1, C the capacitance factor."""
        wt_dinv = self._unbroadcasted_cov_factor.mT / self._unbroadcasted_cov_diag.unsqueeze(-2)
        a = solve_lower(self._capacitance_tril, wt_dinv)
        return (F.diag_embed(self._unbroadcasted_cov_diag.reciprocal()) - a.mT @ a).expand(
            self._matrix_shape())

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        eps_w = F.randn(shape[:-1] + tuple(self.cov_factor.shape[-1:]), dtype=self.loc.dtype)
        eps_d = F.randn(shape, dtype=self.loc.dtype)
        return (self.loc + (self._unbroadcasted_cov_factor @ eps_w.unsqueeze(-1)).squeeze(-1)
                + self._unbroadcasted_cov_diag.sqrt() * eps_d)

    def _log_det(self) -> Tensor:
        """log det(W W^T + D) = log det(capacitance) + log det(D)."""
        return (2 * self._capacitance_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
                + self._unbroadcasted_cov_diag.log().sum(-1))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        m = self._mahalanobis(value - self.loc)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + self._log_det() + m)

    def _mahalanobis(self, diff: Tensor) -> Tensor:
        """diff^T (W W^T + D)^-1 diff by Woodbury: diff^T D^-1 diff less the capacitance's
        Mahalanobis distance of W^T D^-1 diff."""
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        wt_dinv_x = ((w.mT / d.unsqueeze(-2)) @ diff.unsqueeze(-1)).squeeze(-1)
        return (diff.pow(2) / d).sum(-1) - mahalanobis(self._capacitance_tril, wt_dinv_x)

    def entropy(self) -> Tensor:
        h = 0.5 * (self._event_shape[0] * (1.0 + math.log(2 * math.pi)) + self._log_det())
        return h.expand(tuple(self._batch_shape)) if len(self._batch_shape) else h


__all__ = ["LowRankMultivariateNormal"]
