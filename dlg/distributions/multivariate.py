"""MultivariateNormal(loc, covariance_matrix= | precision_matrix= | scale_tril=), torch's: the
lower Cholesky factor of the covariance is the working parameter (`_unbroadcasted_scale_tril`),
the others are computed from it when read; samples are loc + L @ eps."""

from __future__ import annotations

import math
from typing import Any

from dlg.distributions import constraints
from dlg.distributions.base import Distribution, _CentredAtLoc
from dlg.distributions.triangular import (cholesky, identity_like, mahalanobis,
                                          solve_lower)
from dlg.distributions.utils import broadcast_shapes, lazy_property
from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.tensor import Tensor


def _precision_to_scale_tril(precision: Tensor) -> Tensor:
    """torch's: the Cholesky factor of the flipped precision, flipped and transposed, is the
    inverse of the covariance's factor."""
    flipped = cholesky(F.flip(precision, (-2, -1)))
    inverse_lower = F.flip(flipped, (-2, -1)).mT
    return solve_lower(inverse_lower, identity_like(inverse_lower))


class _VectorNormal(_CentredAtLoc):
    """A Gaussian over the last dim of `loc` (MultivariateNormal, LowRankMultivariateNormal),
    whose matrix views (scale_tril, covariance, precision) are shaped batch + (n, n)."""

    support = constraints.real_vector
    has_rsample = True

    def _matrix_shape(self) -> tuple[int, ...]:
        return tuple(self._batch_shape) + tuple(self._event_shape) * 2


class MultivariateNormal(_VectorNormal):
    """N(loc, Sigma) over the last dim of `loc`; exactly one of covariance_matrix,
    precision_matrix, scale_tril (lower-triangular, positive diagonal) gives Sigma."""

    arg_constraints = {"loc": constraints.real_vector,
                       "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky}

    def __init__(self, loc: Tensor, covariance_matrix: Tensor | None = None,
                 precision_matrix: Tensor | None = None, scale_tril: Tensor | None = None,
                 validate_args: bool | None = None):
        span = engine.caller_span()
        if not isinstance(loc, Tensor) or loc.ndim < 1:
            raise DlgShapeError("loc must be at least one-dimensional.", span)
        given = [(n, m) for n, m in (("covariance_matrix", covariance_matrix),
                                     ("precision_matrix", precision_matrix),
                                     ("scale_tril", scale_tril)) if m is not None]
        if len(given) != 1:
            raise DlgValueError("Exactly one of covariance_matrix or precision_matrix or "
                                "scale_tril may be specified.", span)
        name, matrix = given[0]
        if not isinstance(matrix, Tensor) or matrix.ndim < 2:
            what = "scale_tril matrix" if name == "scale_tril" else name.replace("_", " ")
            raise DlgShapeError(f"{what} must be at least two-dimensional, with optional "
                                f"leading batch dimensions", span)
        if matrix.shape[-1] != matrix.shape[-2] or matrix.shape[-1] != loc.shape[-1]:
            raise DlgShapeError(f"MultivariateNormal: {name} must be square with the size of "
                                f"loc's last dim, got {tuple(matrix.shape)} for loc "
                                f"{tuple(loc.shape)}", span)
        batch_shape = broadcast_shapes(matrix.shape[:-2], loc.shape[:-1])
        n = loc.shape[-1]
        setattr(self, name, matrix.expand(tuple(batch_shape) + (n, n)))
        self.loc = loc.expand(tuple(batch_shape) + (n,))
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(matrix)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._get_checked_instance(MultivariateNormal, _instance)
        shape = self._expand_to(batch_shape)
        n = self._event_shape[0]
        new.loc = self.loc.expand(tuple(shape) + (n,))
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        for name in ("covariance_matrix", "scale_tril", "precision_matrix"):
            if name in self.__dict__:
                setattr(new, name, self.__dict__[name].expand(tuple(shape) + (n, n)))
        Distribution.__init__(new, shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @lazy_property
    def scale_tril(self) -> Tensor:
        return self._unbroadcasted_scale_tril.expand(self._matrix_shape())

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        lower = self._unbroadcasted_scale_tril
        return (lower @ lower.mT).expand(self._matrix_shape())

    @lazy_property
    def precision_matrix(self) -> Tensor:
        inverse = solve_lower(self._unbroadcasted_scale_tril,
                              identity_like(self._unbroadcasted_scale_tril))
        return (inverse.mT @ inverse).expand(self._matrix_shape())

    @property
    def variance(self) -> Tensor:
        return self._unbroadcasted_scale_tril.pow(2).sum(-1).expand(
            tuple(self._batch_shape) + tuple(self._event_shape))

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        eps = F.randn(shape, dtype=self.loc.dtype)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self) -> Tensor:
        return self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        m = mahalanobis(self._unbroadcasted_scale_tril, value - self.loc)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + m) - self._half_log_det()

    def entropy(self) -> Tensor:
        n = self._event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return h.expand(tuple(self._batch_shape)) if len(self._batch_shape) else h


__all__ = ["MultivariateNormal"]
