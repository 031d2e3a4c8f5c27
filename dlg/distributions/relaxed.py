"""The Gumbel-softmax (concrete) relaxations, torch's: RelaxedBernoulli (a sigmoid of
LogitRelaxedBernoulli) and RelaxedOneHotCategorical (an exp of ExpRelaxedCategorical), at a
`temperature`. Samples are logistic/Gumbel noise on dlg's uniform draws added to the logits,
so rsample passes gradients to the logits (and temperature), and a trace keeps them."""

from __future__ import annotations

from typing import Any

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.discrete import Categorical, _BinaryParams, _CategoricalBacked
from dlg.distributions.transformed import TransformedDistribution
from dlg.distributions.transforms import ExpTransform, SigmoidTransform
from dlg.distributions.utils import broadcast_all, clamp_probs
from dlg.frontend import functional as F
from dlg.frontend.tensor import Tensor


def _as_tensor(temperature: Any, like: Tensor) -> Tensor:
    return temperature if isinstance(temperature, Tensor) else F.tensor(float(temperature),
                                                                        dtype=like.dtype)


class LogitRelaxedBernoulli(_BinaryParams):
    """The logit of a RelaxedBernoulli: (logit(u) + logits) / temperature."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        self._set_param(probs, logits)
        self.temperature = _as_tensor(temperature, self._param)
        super().__init__(self._param_batch_shape(probs, logits), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_params(LogitRelaxedBernoulli, batch_shape, _instance,
                                  ("probs", "logits"))
        new._param = new.__dict__.get("probs", new.__dict__.get("logits"))
        new.temperature = self.temperature
        return new

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        probs = clamp_probs(self.probs.expand(shape))
        uniforms = clamp_probs(F.rand(shape, dtype=probs.dtype))
        return (uniforms.log() - F.log1p(-uniforms) + probs.log()
                - F.log1p(-probs)) / self.temperature

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return self.temperature.log() + diff - 2 * F.log1p(diff.exp())


class _Relaxed(TransformedDistribution):
    """A relaxation as a transform of its log/logit form (`base_dist`, which holds the
    parameters): temperature, logits and probs are read from there."""

    has_rsample = True  # type: ignore[assignment]

    @property
    def temperature(self) -> Tensor:
        return self.base_dist.temperature

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    @property
    def probs(self) -> Tensor:
        return self.base_dist.probs


class RelaxedBernoulli(_Relaxed):
    """A relaxed coin in (0, 1): sigmoid of LogitRelaxedBernoulli."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval  # type: ignore[assignment]

    def __init__(self, temperature: Any, probs: Any = None, logits: Any = None,
                 validate_args: bool | None = None):
        super().__init__(LogitRelaxedBernoulli(temperature, probs, logits), SigmoidTransform(),
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        return super().expand(batch_shape,
                              self._get_checked_instance(RelaxedBernoulli, _instance))


class ExpRelaxedCategorical(_CategoricalBacked):
    """The log of a RelaxedOneHotCategorical: log_softmax((logits + Gumbel) / temperature)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector  # really a submanifold of it
    has_rsample = True

    def __init__(self, temperature: Any, probs: Tensor | None = None,
                 logits: Tensor | None = None, validate_args: bool | None = None):
        self._categorical = Categorical(probs, logits)
        self.temperature = _as_tensor(temperature, self._categorical._param)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        new = self._expand_categorical(ExpRelaxedCategorical, batch_shape, _instance)
        new.temperature = self.temperature
        return new

    def rsample(self, sample_shape: Any = ()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        uniforms = clamp_probs(F.rand(shape, dtype=self.logits.dtype))
        gumbels = -((-(uniforms.log())).log())
        scores = (self.logits + gumbels) / self.temperature
        return scores - scores.logsumexp(-1, keepdim=True)

    def log_prob(self, value: Tensor) -> Tensor:
        k = self._categorical._num_events
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        log_scale = F.full_like(self.temperature, float(k)).lgamma() \
            + (k - 1) * self.temperature.log()
        score = logits - value * self.temperature
        score = (score - score.logsumexp(-1, keepdim=True)).sum(-1)
        return score + log_scale


class RelaxedOneHotCategorical(_Relaxed):
    """A relaxed one-hot vector on the simplex (Gumbel-softmax): exp of
    ExpRelaxedCategorical."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex  # type: ignore[assignment]

    def __init__(self, temperature: Any, probs: Tensor | None = None,
                 logits: Tensor | None = None, validate_args: bool | None = None):
        super().__init__(ExpRelaxedCategorical(temperature, probs, logits,
                                               validate_args=validate_args),
                         ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> Distribution:
        return super().expand(
            batch_shape, self._get_checked_instance(RelaxedOneHotCategorical, _instance))


__all__ = ["ExpRelaxedCategorical", "LogitRelaxedBernoulli", "RelaxedBernoulli",
           "RelaxedOneHotCategorical"]
