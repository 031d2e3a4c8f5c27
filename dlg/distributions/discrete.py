"""The discrete distributions: Bernoulli, Categorical, OneHotCategorical, each made from `probs`
or `logits` (exactly one; the other computed when first read, as torch's). Samples are drawn
from dlg's uniform draws (a category by inverse CDF), so they trace and follow
`dlg.manual_seed`; they carry no gradient (no rsample, as torch)."""

from __future__ import annotations

from typing import Any

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.utils import (Number, broadcast_all, broadcast_shapes, lazy_property,
                                     logits_to_probs, probs_to_logits)
from dlg.errors import DlgShapeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.dtypes import finfo
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor


def _one_of(probs: Any, logits: Any) -> None:
    if (probs is None) == (logits is None):
        raise DlgValueError("Either `probs` or `logits` must be specified, but not both.",
                            engine.caller_span())


class _BinaryParams(Distribution):
    """probs or logits (exactly one, the other computed when read), as Bernoulli's: the base
    of every distribution parametrised by one success probability (Binomial, Geometric,
    LogitRelaxedBernoulli), so the two views convert in one place."""

    def _set_param(self, probs: Any, logits: Any, *others: Any) -> tuple[Tensor, ...]:
        """Keeps the given one of probs/logits (as `_param`), broadcast with `others`, which
        are returned."""
        _one_of(probs, logits)
        given = probs if probs is not None else logits
        param, *rest = broadcast_all(given, *others)
        if probs is not None:
            self.probs = param
        else:
            self.logits = param
        self._param = param
        return tuple(rest)

    def _param_batch_shape(self, probs: Any, logits: Any) -> Size:
        """torch's batch shape for a single parameter: () when it was a Python number."""
        given = probs if probs is not None else logits
        return Size() if isinstance(given, Number) else self._param.size()

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def param_shape(self) -> Size:
        return self._param.size()


class Bernoulli(_BinaryParams):
    """1 with probability `probs` (or sigmoid(`logits`)), else 0."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        self._set_param(probs, logits)
        super().__init__(self._param_batch_shape(probs, logits), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._get_checked_instance(Bernoulli, _instance)
        shape = self._expand_to(batch_shape)
        if "probs" in self.__dict__:
            new.probs = new._param = self.probs.expand(shape)
        if "logits" in self.__dict__:
            new.logits = new._param = self.logits.expand(shape)
        Distribution.__init__(new, shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def mode(self) -> Tensor:
        mode = (self.probs >= 0.5).to(self.probs.dtype)
        return F.where(self.probs == 0.5, float("nan"), mode)

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        probs = self.probs  # made outside no_grad: the lazily kept probs keep their gradient
        with engine.no_grad():
            probs = probs.expand(shape)
            return (F.rand(shape, dtype=probs.dtype) < probs).to(probs.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value.to(self.logits.dtype))
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = F.tensor([0.0, 1.0], dtype=self._param.dtype)
        values = values.reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((2,) + tuple(self._batch_shape)) if expand else values


class Categorical(Distribution):
    """One of `K` categories, the last dim of `probs` (normalised) or `logits` (log-softmaxed);
    the dims before it are the batch."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(
        constraints.real, 1)}
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        _one_of(probs, logits)
        given = probs if probs is not None else logits
        name = "probs" if probs is not None else "logits"
        if not isinstance(given, Tensor) or given.ndim < 1:
            raise DlgShapeError(f"`{name}` parameter must be at least one-dimensional.",
                                engine.caller_span())
        if probs is not None:
            self.probs = probs / probs.sum(-1, keepdim=True)
        else:
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self._param = self.probs if probs is not None else self.logits
        self._num_events = self._param.shape[-1]
        batch_shape = self._param.shape[:-1] if self._param.ndim > 1 else Size()
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._get_checked_instance(Categorical, _instance)
        shape = self._expand_to(batch_shape)
        param_shape = tuple(shape) + (self._num_events,)
        if "probs" in self.__dict__:
            new.probs = new._param = self.probs.expand(param_shape)
        if "logits" in self.__dict__:
            new.logits = new._param = self.logits.expand(param_shape)
        new._num_events = self._num_events
        Distribution.__init__(new, shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self._num_events - 1)

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits)

    @property
    def param_shape(self) -> Size:
        return self._param.size()

    @property
    def mean(self) -> Tensor:
        return F.full(tuple(self._extended_shape()), float("nan"), dtype=self.probs.dtype)

    @property
    def mode(self) -> Tensor:
        return self.probs.argmax(-1)

    @property
    def variance(self) -> Tensor:
        return F.full(tuple(self._extended_shape()), float("nan"), dtype=self.probs.dtype)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        """int64 categories: how many of the cumulative probabilities a uniform draw passes."""
        shape = tuple(self._extended_shape(sample_shape))
        probs = self.probs  # made outside no_grad, as Bernoulli's
        with engine.no_grad():
            cdf = F.cumsum(probs, -1)
            u = F.rand(shape + (1,), dtype=cdf.dtype)
            return (cdf <= u).long().sum(-1).clamp(max=self._num_events - 1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        shape = broadcast_shapes(value.shape, self.logits.shape)
        index = value.expand(tuple(shape[:-1]) + (1,))
        log_pmf = self.logits.expand(shape)
        return log_pmf.gather(-1, index).squeeze(-1)

    def entropy(self) -> Tensor:
        logits = self.logits.clamp(min=finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = F.arange(self._num_events).reshape((-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values


class _CategoricalBacked(Distribution):
    """A distribution built on a `Categorical` kept as `_categorical` (OneHotCategorical,
    Multinomial, ExpRelaxedCategorical): its probs, logits and param_shape are the
    categorical's, and expanding it expands the categorical."""

    _categorical: Categorical

    def _expand_categorical(self, cls: type, batch_shape: Any, _instance: Any) -> Any:
        """expand's common body: a `cls` over the expanded categorical, same event shape;
        the caller copies its other attributes."""
        new = self._get_checked_instance(cls, _instance)
        new._categorical = self._categorical.expand(batch_shape)
        Distribution.__init__(new, new._categorical.batch_shape, self._event_shape,
                              validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def logits(self) -> Tensor:
        return self._categorical.logits

    @property
    def probs(self) -> Tensor:
        return self._categorical.probs

    @property
    def param_shape(self) -> Size:
        return self._categorical.param_shape


class OneHotCategorical(_CategoricalBacked):
    """A Categorical whose samples are one-hot vectors of its `K` categories (the event)."""

    arg_constraints = {"probs": constraints.simplex,
                       "logits": constraints.independent(constraints.real, 1)}
    support = constraints.one_hot
    has_enumerate_support = True

    def __init__(self, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        self._categorical = Categorical(probs, logits)
        param = self._categorical._param
        super().__init__(self._categorical.batch_shape, param.shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        return self._expand_categorical(OneHotCategorical, batch_shape, _instance)

    @property
    def _param(self) -> Tensor:
        return self._categorical._param

    @property
    def mean(self) -> Tensor:
        return self._categorical.probs

    @property
    def mode(self) -> Tensor:
        probs = self._categorical.probs
        return F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)

    @property
    def variance(self) -> Tensor:
        return self._categorical.probs * (1 - self._categorical.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        probs = self._categorical.probs
        indices = self._categorical.sample(sample_shape)
        return F.one_hot(indices, probs.shape[-1]).to(probs.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self) -> Tensor:
        return self._categorical.entropy()

    def enumerate_support(self, expand: bool = True) -> Tensor:
        n = self._event_shape[0]
        values = F.eye(n, dtype=self._param.dtype).reshape(
            (n,) + (1,) * len(self._batch_shape) + (n,))
        return values.expand((n,) + tuple(self._batch_shape) + (n,)) if expand else values


__all__ = ["Bernoulli", "Categorical", "OneHotCategorical"]
