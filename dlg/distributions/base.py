"""`Distribution`, torch.distributions' base class: batch and event shapes, the sample shapes
(`sample_shape + batch_shape + event_shape`), `sample` as an rsample under no_grad, and the
argument and sample validation (on by default, as torch's; `validate_args=False` or
`Distribution.set_default_validate_args(False)` turn it off), whose failures are DlgValueErrors
with torch's messages. Validation reads the data, so a trace skips it."""

from __future__ import annotations

from typing import Any

from dlg.distributions import constraints
from dlg.distributions.utils import as_size, is_traced
from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor


class Distribution:
    """The abstract base: subclasses give their shapes, parameters and formulas."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = True
    arg_constraints: dict[str, constraints.Constraint] = {}
    support: Any = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        if value not in (True, False):
            raise DlgValueError("set_default_validate_args: expected True or False",
                                engine.caller_span())
        Distribution._validate_args = value

    def __init__(self, batch_shape: Any = (), event_shape: Any = (),
                 validate_args: bool | None = None):
        self._batch_shape = as_size(batch_shape, "batch_shape")
        self._event_shape = as_size(event_shape, "event_shape")
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            self._check_parameters()

    def _check_parameters(self) -> None:
        for name, constraint in self.arg_constraints.items():
            if constraints.is_dependent(constraint):
                continue
            if name in self.__dict__:
                value = self.__dict__[name]
            elif isinstance(getattr(type(self), name, None), property):
                value = getattr(self, name)  # a view of the parameters (Beta's, Chi2's df)
            else:
                continue  # a lazily computed parameter (probs of logits) is valid by making
            if is_traced(value) or not isinstance(value, Tensor):
                continue
            if not constraint.check(value).numpy().all():
                raise DlgValueError(
                    f"Expected parameter {name} ({type(value).__name__} of shape "
                    f"{tuple(value.shape)}) of distribution {self!r} to satisfy the constraint "
                    f"{constraint!r}, but found invalid values:\n{value}", engine.caller_span())

    # -- shapes -------------------------------------------------------------------------------
    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape: Any = ()) -> Size:
        return Size(as_size(sample_shape) + self._batch_shape + self._event_shape)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        raise NotImplementedError(f"{type(self).__name__} has no expand")

    def _get_checked_instance(self, cls: type, _instance: Any = None) -> Any:
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(f"Subclass {type(self).__name__} of {cls.__name__} that "
                                      f"defines a custom __init__ method must also define a "
                                      f"custom .expand() method.")
        return self.__new__(type(self)) if _instance is None else _instance

    def _expand_params(self, cls: type, batch_shape: Any, _instance: Any,
                       names: tuple[str, ...]) -> Any:
        """expand's usual body: a `cls` whose named tensor parameters are expanded to the new
        batch shape (the dims past the batch, a Dirichlet's K, kept)."""
        new = self._get_checked_instance(cls, _instance)
        shape = self._expand_to(batch_shape)
        for name in names:
            if name in self.__dict__:
                value = self.__dict__[name]
                setattr(new, name, value.expand(
                    tuple(shape) + tuple(value.shape[len(self._batch_shape):])))
        Distribution.__init__(new, shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _expand_to(self, batch_shape: Any) -> Size:
        """The new batch shape, checked to be an expansion of the current one."""
        shape = as_size(batch_shape, "batch_shape")
        old = tuple(self._batch_shape)
        if len(shape) < len(old) or any(
                o not in (1, n) for o, n in zip(old, shape[len(shape) - len(old):])):
            raise DlgValueError(f"expand: the batch shape {tuple(self._batch_shape)} cannot "
                                f"be expanded to {tuple(shape)}", engine.caller_span())
        return shape

    # -- moments ------------------------------------------------------------------------------
    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement mean")

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement mode")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement variance")

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    # -- sampling and densities ---------------------------------------------------------------
    def sample(self, sample_shape: Any = ()) -> Tensor:
        """Samples of shape sample_shape + batch_shape + event_shape, cut from the graph."""
        with engine.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no rsample: its samples are "
                                  f"not a differentiable function of its parameters")

    def sample_n(self, n: int) -> Tensor:
        return self.sample(Size([n]))

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement cdf")

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement icdf")

    def entropy(self) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement entropy")

    def perplexity(self) -> Tensor:
        return self.entropy().exp()

    def enumerate_support(self, expand: bool = True) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement "
                                  f"enumerate_support")

    def _validate_sample(self, value: Any) -> None:
        """torch's checks of a value given to log_prob/cdf: a tensor, event shape on the right,
        broadcastable with batch_shape + event_shape, inside the support."""
        span = engine.caller_span()
        if not isinstance(value, Tensor):
            raise DlgTypeError("The value argument to log_prob must be a Tensor", span)
        event_dim_start = len(value.shape) - len(self._event_shape)
        if tuple(value.shape[event_dim_start:]) != tuple(self._event_shape):
            raise DlgValueError(f"The right-most size of value must match event_shape: "
                                f"{tuple(value.shape)} vs {tuple(self._event_shape)}.", span)
        actual, expected = value.shape, self._batch_shape + self._event_shape
        for i, j in zip(reversed(actual), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise DlgValueError(f"Value is not broadcastable with batch_shape+event_shape: "
                                    f"{tuple(actual)} vs {tuple(expected)}.", span)
        if is_traced(value):
            return
        support = self.support
        if support is not None and not support.check(value).numpy().all():
            raise DlgValueError(
                f"Expected value argument ({type(value).__name__} of shape "
                f"{tuple(value.shape)}) to be within the support ({support!r}) of the "
                f"distribution {self!r}, but found invalid values:\n{value}", span)

    def __repr__(self) -> str:
        names = [k for k in self.arg_constraints if k in self.__dict__]
        parts = []
        for name in names:
            value = self.__dict__[name]
            shown = value.size() if value.numel() != 1 else value.item() if value.ndim == 0 \
                else value
            parts.append(f"{name}: {shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


class _CentredAtLoc(Distribution):
    """A family symmetric and unimodal about `loc` (Normal, Laplace, the multivariate
    normals): its mean and mode are both loc."""

    loc: Tensor

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc


__all__ = ["Distribution"]
