"""`dlg.distributions`: torch.distributions for the programs people port (policy gradients,
VAEs, Bayesian layers, mixture density networks): the distributions' formulas in dlg tensor ops,
so log_prob, entropy and KL carry gradients through dlg's autograd and trace; samples drawn with
dlg's random functions (`dlg.manual_seed`), `rsample` reparameterised. Beta, Gamma and Dirichlet
are left out: dlg has no lgamma/digamma ops nor a gamma sampler."""

from dlg.distributions import constraints
from dlg.distributions.base import Distribution
from dlg.distributions.continuous import Exponential, Laplace, Normal, Uniform
from dlg.distributions.discrete import Bernoulli, Categorical, OneHotCategorical
from dlg.distributions.independent import Independent
from dlg.distributions.kl import kl_divergence, register_kl
from dlg.distributions.mixture import MixtureSameFamily
from dlg.distributions.multivariate import MultivariateNormal

__all__ = ["Bernoulli", "Categorical", "Distribution", "Exponential", "Independent", "Laplace",
           "MixtureSameFamily", "MultivariateNormal", "Normal", "OneHotCategorical", "Uniform",
           "constraints", "kl_divergence", "register_kl"]
