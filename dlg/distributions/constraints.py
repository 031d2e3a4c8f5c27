"""torch.distributions.constraints, minimal: the sets a parameter or a sample must lie in. A
constraint's `check(value)` is a bool tensor (reduced over its `event_dim` rightmost dims), read
from the value's data: validation is eager, a trace skips it."""

from __future__ import annotations

from typing import Any

import numpy as np

from dlg.frontend.tensor import Tensor


def _array(value: Any) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, Tensor) else np.asarray(value)


class Constraint:
    """A set of values; `event_dim` dims on the right make up one element."""

    is_discrete = False
    event_dim = 0

    def check(self, value: Any) -> Tensor:
        return Tensor.of(np.asarray(self._check(_array(value)), dtype=bool))

    def _check(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__.lstrip("_") + "()"


class _Dependent(Constraint):
    """A placeholder: the set depends on other parameters (Uniform's low and high)."""

    def __init__(self, *, is_discrete: bool = False, event_dim: int = 0):
        self.is_discrete, self.event_dim = is_discrete, event_dim

    def __call__(self, *, is_discrete: bool = False, event_dim: int = 0) -> _Dependent:
        return _Dependent(is_discrete=is_discrete, event_dim=event_dim)


def is_dependent(constraint: Any) -> bool:
    return isinstance(constraint, _Dependent)


class dependent_property(property):  # noqa: N801  (torch's spelling)
    """A property whose constraint depends on the instance (a support of Uniform(low, high))."""

    def __init__(self, fn: Any = None, *, is_discrete: bool = False, event_dim: int = 0):
        super().__init__(fn)
        self.is_discrete, self.event_dim = is_discrete, event_dim

    def __call__(self, fn: Any) -> dependent_property:
        return dependent_property(fn, is_discrete=self.is_discrete, event_dim=self.event_dim)


class _Real(Constraint):
    def _check(self, a: np.ndarray) -> np.ndarray:
        return a == a  # not nan


class _Boolean(Constraint):
    is_discrete = True

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (a == 0) | (a == 1)


class _GreaterThan(Constraint):
    def __init__(self, lower_bound: float):
        self.lower_bound = lower_bound

    def _check(self, a: np.ndarray) -> np.ndarray:
        return a > self.lower_bound

    def __repr__(self) -> str:
        return f"GreaterThan(lower_bound={self.lower_bound})"


class _GreaterThanEq(_GreaterThan):
    def _check(self, a: np.ndarray) -> np.ndarray:
        return a >= self.lower_bound

    def __repr__(self) -> str:
        return f"GreaterThanEq(lower_bound={self.lower_bound})"


class _Interval(Constraint):
    def __init__(self, lower_bound: Any, upper_bound: Any):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (_array(self.lower_bound) <= a) & (a <= _array(self.upper_bound))

    def __repr__(self) -> str:
        return f"Interval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _IntegerInterval(_Interval):
    is_discrete = True

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (a % 1 == 0) & super()._check(a)

    def __repr__(self) -> str:
        return f"IntegerInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _IntegerGreaterThanEq(_GreaterThan):
    is_discrete = True

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (a % 1 == 0) & (a >= self.lower_bound)

    def __repr__(self) -> str:
        return f"IntegerGreaterThan(lower_bound={self.lower_bound})"


class _Multinomial(Constraint):
    """Non-negative counts over the last dim adding up to at most `upper_bound`."""

    is_discrete, event_dim = True, 1

    def __init__(self, upper_bound: int):
        self.upper_bound = upper_bound

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (a >= 0).all(-1) & (a.sum(-1) <= self.upper_bound)

    def __repr__(self) -> str:
        return f"Multinomial(upper_bound={self.upper_bound})"


class _Simplex(Constraint):
    event_dim = 1

    def _check(self, a: np.ndarray) -> np.ndarray:
        return (a >= 0).all(-1) & (np.abs(a.sum(-1) - 1) < 1e-6)


class _OneHot(Constraint):
    is_discrete, event_dim = True, 1

    def _check(self, a: np.ndarray) -> np.ndarray:
        return ((a == 0) | (a == 1)).all(-1) & (a.sum(-1) == 1)


class _LowerCholesky(Constraint):
    event_dim = 2

    def _check(self, a: np.ndarray) -> np.ndarray:
        diagonal = np.diagonal(a, axis1=-2, axis2=-1)
        return (np.tril(a) == a).all((-2, -1)) & (diagonal > 0).all(-1)


class _PositiveDefinite(Constraint):
    event_dim = 2

    def _check(self, a: np.ndarray) -> np.ndarray:
        symmetric = np.isclose(a, np.swapaxes(a, -1, -2), atol=1e-6).all((-2, -1))
        with np.errstate(invalid="ignore"):
            eigenvalues = np.linalg.eigvalsh(a.astype(np.float64))
        return symmetric & (eigenvalues > 0).all(-1)


class _IndependentConstraint(Constraint):
    """`base_constraint` over `reinterpreted_batch_ndims` more dims on the right."""

    def __init__(self, base_constraint: Constraint, reinterpreted_batch_ndims: int):
        self.base_constraint, self.reinterpreted_batch_ndims = (base_constraint,
                                                                 reinterpreted_batch_ndims)
        self.is_discrete = base_constraint.is_discrete
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims

    def _check(self, a: np.ndarray) -> np.ndarray:
        valid = np.asarray(self.base_constraint._check(a))
        n = self.reinterpreted_batch_ndims
        return valid.reshape(valid.shape[:valid.ndim - n] + (-1,)).all(-1) if n else valid

    def __repr__(self) -> str:
        return (f"IndependentConstraint({self.base_constraint!r}, "
                f"{self.reinterpreted_batch_ndims})")


dependent = _Dependent()
real = _Real()
boolean = _Boolean()
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
unit_interval = _Interval(0.0, 1.0)
simplex = _Simplex()
one_hot = _OneHot()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
independent = _IndependentConstraint
real_vector = independent(real, 1)
greater_than, greater_than_eq = _GreaterThan, _GreaterThanEq
interval, integer_interval = _Interval, _IntegerInterval
nonnegative_integer = _IntegerGreaterThanEq(0)
positive_integer = _IntegerGreaterThanEq(1)
multinomial = _Multinomial

__all__ = ["Constraint", "boolean", "dependent", "dependent_property", "greater_than",
           "greater_than_eq", "independent", "integer_interval", "interval", "is_dependent",
           "lower_cholesky", "multinomial", "nonnegative", "nonnegative_integer", "one_hot",
           "positive", "positive_definite", "positive_integer", "real", "real_vector",
           "simplex", "unit_interval"]
