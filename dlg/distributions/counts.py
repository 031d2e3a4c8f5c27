"""The count distributions: Poisson, Binomial, Geometric, Multinomial, in torch's formulas
(log_prob through lgamma, so it differentiates in the rate, probs or logits). Geometric draws
by inverse CDF and Multinomial by its categorical draws, so both trace; Poisson and Binomial
counts come from dlg's generator eagerly (`dlg.manual_seed`, as `dlg.multinomial`): their
samplers need the parameters' values, so a trace refuses them. None has rsample (as torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.discrete import Categorical, _BinaryParams, _CategoricalBacked
from dlg.distributions.utils import Number, broadcast_all, is_traced
from dlg.errors import DlgTypeError, DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.dtypes import finfo
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor


def _eager_draw(name: str, *params: Tensor) -> list[np.ndarray]:
    """The parameters' values for a NumPy sampler on dlg's generator; a trace has none."""
    if is_traced(*params):
        raise DlgTypeError(f"{name}.sample needs its parameters' values (a count sampler), "
                           f"which a trace does not have: draw outside the traced function",
                           engine.caller_span())
    return [p.detach().numpy().astype(np.float64) for p in params]


class Poisson(Distribution):
    """Counts with mean and variance `rate`."""

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate: Any, validate_args: bool | None = None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(Size() if isinstance(rate, Number) else self.rate.size(),
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        return self._expand_params(Poisson, batch_shape, _instance, ("rate",))

    @property
    def mean(self) -> Tensor:
        return self.rate

    @property
    def mode(self) -> Tensor:
        return self.rate.floor()

    @property
    def variance(self) -> Tensor:
        return self.rate

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        (rate,) = _eager_draw("Poisson", self.rate)
        counts = engine.rng().poisson(np.broadcast_to(rate, shape))
        return F.tensor(np.asarray(counts, dtype=self.rate.dtype.np), dtype=self.rate.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value.to(self.rate.dtype))
        return F.xlogy(value, rate) - rate - (value + 1).lgamma()


class Binomial(_BinaryParams):
    """Successes in `total_count` independent trials of probability `probs`."""

    arg_constraints = {"total_count": constraints.nonnegative_integer,
                       "probs": constraints.unit_interval, "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count: Any = 1, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        (total_count,) = self._set_param(probs, logits, total_count)
        self.total_count = total_count.to(self._param.dtype)
        super().__init__(self._param.size(), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_params(Binomial, batch_shape, _instance,
                                  ("total_count", "probs", "logits"))
        new._param = new.__dict__.get("probs", new.__dict__.get("logits"))
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self) -> Tensor:
        return self.total_count * self.probs

    @property
    def mode(self) -> Tensor:
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self) -> Tensor:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        probs = self.probs
        n, p = _eager_draw("Binomial", self.total_count, probs)
        counts = engine.rng().binomial(np.broadcast_to(n, shape).astype(np.int64),
                                       np.broadcast_to(p, shape))
        return F.tensor(np.asarray(counts, dtype=probs.dtype.np), dtype=probs.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        """torch's: the normaliser n log(1 + e^logits) written stably for either sign."""
        if self._validate_args:
            self._validate_sample(value)
        n, logits = self.total_count, self.logits
        normalize = (n * _clamp_by_zero(logits) + n * F.log1p((-logits.abs()).exp())
                     - (n + 1).lgamma())
        return value * logits - (value + 1).lgamma() - (n - value + 1).lgamma() - normalize

    def entropy(self) -> Tensor:
        log_prob = self.log_prob(self.enumerate_support(False))
        return -(log_prob.exp() * log_prob).sum(0)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        counts = self.total_count.detach().numpy()
        n = int(counts.max()) if counts.size else 0
        if counts.size and counts.min() != n:
            raise NotImplementedError("Inhomogeneous total count not supported by "
                                      "`enumerate_support`.")
        values = F.arange(1 + n, dtype=self._param.dtype).reshape(
            (-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values


class Geometric(_BinaryParams):
    """Failures before the first success of probability `probs`."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        self._set_param(probs, logits)
        super().__init__(self._param_batch_shape(probs, logits), validate_args=validate_args)
        if self._validate_args and probs is not None and not is_traced(self.probs) \
                and not (self.probs > 0).all().item():
            raise DlgValueError(f"Expected parameter probs ({type(self.probs).__name__} of "
                                f"shape {tuple(self.probs.shape)}) of distribution {self!r} "
                                f"to be positive but found invalid values:\n{self.probs}",
                                engine.caller_span())

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_params(Geometric, batch_shape, _instance, ("probs", "logits"))
        new._param = new.__dict__.get("probs", new.__dict__.get("logits"))
        return new

    @property
    def mean(self) -> Tensor:
        return 1.0 / self.probs - 1.0

    @property
    def mode(self) -> Tensor:
        return F.zeros_like(self.probs)

    @property
    def variance(self) -> Tensor:
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape: Any = ()) -> Tensor:
        """floor(log u / log(1 - p)), u uniform in [tiny, 1)."""
        shape = tuple(self._extended_shape(sample_shape))
        probs = self.probs
        with engine.no_grad():
            u = F.rand(shape, dtype=probs.dtype).clamp(min=finfo(probs.dtype).tiny)
            return (u.log() / F.log1p(-probs)).floor()

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, probs = broadcast_all(value.to(self.probs.dtype), self.probs)
        probs = F.where((probs == 1) & (value == 0), 0.0, probs)  # 0 * log(0) is 0 here
        return value * F.log1p(-probs) + self.probs.log()

    def entropy(self) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, self.probs,
                                                  reduction="none") / self.probs


class Multinomial(_CategoricalBacked):
    """Counts over the categories of `probs` (or `logits`) in `total_count` draws."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count: int = 1, probs: Tensor | None = None,
                 logits: Tensor | None = None, validate_args: bool | None = None):
        if isinstance(total_count, bool) or not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_categorical(Multinomial, batch_shape, _instance)
        new.total_count = self.total_count
        return new

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return constraints.multinomial(self.total_count)

    @property
    def mean(self) -> Tensor:
        return self.probs * self.total_count

    @property
    def variance(self) -> Tensor:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        """total_count categorical draws, counted per category."""
        probs = self.probs
        with engine.no_grad():
            draws = self._categorical.sample(Size([self.total_count]) + Size(sample_shape))
            counts = F.one_hot(draws, probs.shape[-1]).sum(0)
            return counts.to(probs.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value.to(self.logits.dtype))
        logits = F.where((value == 0) & (logits == -math.inf), 0.0, logits)
        return ((value.sum(-1) + 1).lgamma() - (value + 1).lgamma().sum(-1)
                + (logits * value).sum(-1))

    def entropy(self) -> Tensor:
        """torch's: n H(categorical) - lgamma(n + 1) plus each category's expected
        lgamma(count + 1) under its Binomial(n, p_k) marginal."""
        n = self.total_count
        marginal = Binomial(n, probs=self.probs, validate_args=False)
        support = marginal.enumerate_support(expand=False)[1:]
        binomial_probs = marginal.log_prob(support).exp()
        weights = (support + 1).lgamma()
        return (n * self._categorical.entropy() - math.lgamma(n + 1)
                + (binomial_probs * weights).sum((0, -1)))


def _clamp_by_zero(x: Tensor) -> Tensor:
    """max(x, 0) with gradient 1/2 at 0 (torch's)."""
    return (x.clamp(min=0) + x - x.clamp(max=0)) / 2


__all__ = ["Binomial", "Geometric", "Multinomial", "Poisson"]
