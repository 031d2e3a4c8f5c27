"""MixtureSameFamily(mixture, components), torch's: a Categorical over k components and one
distribution whose rightmost batch dim indexes them (mixture density networks, Gaussian
mixtures). log_prob is a logsumexp over the components, so it carries gradients to both; a
sample picks a component per draw and gathers its sample (no rsample, as torch)."""

from __future__ import annotations

from typing import Any

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.discrete import Categorical
from dlg.distributions.utils import as_size
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.size import Size
from dlg.frontend.tensor import Tensor


class _MixtureSupport(constraints.Constraint):
    """The components' support, checked with the component dim added back (torch's
    MixtureSameFamilyConstraint): a value is valid when every component accepts it."""

    def __init__(self, base_constraint: constraints.Constraint):
        self.base_constraint = base_constraint
        self.is_discrete = base_constraint.is_discrete
        self.event_dim = base_constraint.event_dim

    def _check(self, a: Any) -> Any:
        valid = self.base_constraint._check(a.reshape(
            a.shape[:a.ndim - self.event_dim] + (1,) + a.shape[a.ndim - self.event_dim:]))
        keep = a.ndim - self.event_dim
        return valid.reshape(valid.shape[:keep] + (-1,)).all(-1)

    def __repr__(self) -> str:
        return f"MixtureSameFamilyConstraint({self.base_constraint!r})"


class MixtureSameFamily(Distribution):
    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = False

    def __init__(self, mixture_distribution: Categorical, component_distribution: Distribution,
                 validate_args: bool | None = None):
        span = engine.caller_span()
        if not isinstance(mixture_distribution, Categorical):
            raise DlgValueError("MixtureSameFamily: the mixture distribution needs to be an "
                                "instance of dlg.distributions.Categorical", span)
        if not isinstance(component_distribution, Distribution):
            raise DlgValueError("MixtureSameFamily: the component distribution needs to be an "
                                "instance of dlg.distributions.Distribution", span)
        mdbs = tuple(mixture_distribution.batch_shape)
        cdbs = tuple(component_distribution.batch_shape)
        if not cdbs:
            raise DlgValueError("MixtureSameFamily: component_distribution needs a batch dim "
                                "on the right that indexes the components", span)
        for m, c in zip(reversed(mdbs), reversed(cdbs[:-1])):
            if m != 1 and c != 1 and m != c:
                raise DlgValueError(f"`mixture_distribution.batch_shape` ({mdbs}) is not "
                                    f"compatible with `component_distribution.batch_shape`"
                                    f"({cdbs[:-1]})", span)
        km, kc = mixture_distribution.logits.shape[-1], cdbs[-1]
        if km != kc:
            raise DlgValueError(f"`mixture_distribution component` ({km}) does not equal "
                                f"`component_distribution.batch_shape[-1]` ({kc})", span)
        self._mixture_distribution = mixture_distribution
        self._component_distribution = component_distribution
        self._num_component = km
        self._event_ndims = len(component_distribution.event_shape)
        super().__init__(cdbs[:-1], component_distribution.event_shape,
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        shape = as_size(batch_shape, "batch_shape")
        new = self._get_checked_instance(MixtureSameFamily, _instance)
        new._component_distribution = self._component_distribution.expand(
            Size(tuple(shape) + (self._num_component,)))
        new._mixture_distribution = self._mixture_distribution.expand(shape)
        new._num_component, new._event_ndims = self._num_component, self._event_ndims
        Distribution.__init__(new, shape, new._component_distribution.event_shape,
                              validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def support(self) -> constraints.Constraint:  # type: ignore[override]
        return _MixtureSupport(self._component_distribution.support)

    @property
    def mixture_distribution(self) -> Categorical:
        return self._mixture_distribution

    @property
    def component_distribution(self) -> Distribution:
        return self._component_distribution

    @property
    def mean(self) -> Tensor:
        probs = self._pad_mixture_dimensions(self._mixture_distribution.probs)
        return (probs * self._component_distribution.mean).sum(-1 - self._event_ndims)

    @property
    def variance(self) -> Tensor:
        """The law of total variance: the mean of the components' variances plus the
        variance of their means."""
        probs = self._pad_mixture_dimensions(self._mixture_distribution.probs)
        comp = self._component_distribution
        mean_cond_var = (probs * comp.variance).sum(-1 - self._event_ndims)
        var_cond_mean = (probs * (comp.mean - self._pad(self.mean)).pow(2.0)).sum(
            -1 - self._event_ndims)
        return mean_cond_var + var_cond_mean

    def cdf(self, value: Tensor) -> Tensor:
        cdf_x = self._component_distribution.cdf(self._pad(value))
        return (cdf_x * self._mixture_distribution.probs).sum(-1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_prob_x = self._component_distribution.log_prob(self._pad(value))  # [S, B, k]
        log_mix_prob = F.log_softmax(self._mixture_distribution.logits, dim=-1)  # [B, k]
        return F.logsumexp(log_prob_x + log_mix_prob, dim=-1)

    def sample(self, sample_shape: Any = ()) -> Tensor:
        """One component per draw (the mixture's sample), then its sample among all the
        components' (torch draws them in this order, so seeded runs agree in shape)."""
        sample_shape = as_size(sample_shape, "sample_shape")
        with engine.no_grad():
            gather_dim = len(sample_shape) + len(self.batch_shape)
            es = tuple(self.event_shape)
            mix_sample = self._mixture_distribution.sample(sample_shape)
            mix_shape = tuple(mix_sample.shape)
            comp_samples = self._component_distribution.sample(sample_shape)
            index = mix_sample.reshape(mix_shape + (1,) * (len(es) + 1))
            index = index.repeat((1,) * len(mix_shape) + (1,) + es)
            return F.gather(comp_samples, gather_dim, index).squeeze(gather_dim)

    def _pad(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-1 - self._event_ndims)

    def _pad_mixture_dimensions(self, x: Tensor) -> Tensor:
        """The mixture's probs [..., k] shaped to broadcast against the components'
        [B, k, E]."""
        dist_batch_ndims = len(self.batch_shape)
        cat_batch_ndims = len(self._mixture_distribution.batch_shape)
        pad_ndims = 0 if cat_batch_ndims == 1 else dist_batch_ndims - cat_batch_ndims
        xs = tuple(x.shape)
        return x.reshape(xs[:-1] + (1,) * pad_ndims + xs[-1:] + (1,) * self._event_ndims)

    def __repr__(self) -> str:
        return (f"MixtureSameFamily(\n  {self._mixture_distribution!r},\n  "
                f"{self._component_distribution!r})")


__all__ = ["MixtureSameFamily"]
