"""`dlg.distributions`: torch.distributions for the programs people port (policy gradients,
SAC's tanh-squashed Normal, VAEs, Bayesian layers, mixture density networks, Gumbel-softmax):
the distributions' formulas in dlg tensor ops, so log_prob, entropy and KL carry gradients
through dlg's autograd and trace; samples drawn with dlg's random functions (`dlg.manual_seed`),
`rsample` reparameterised (Gamma, Beta, Dirichlet, Chi2 and StudentT by the gamma draw's
implicit gradient). Poisson and Binomial counts are drawn eagerly from dlg's generator. Not
here: Gamma's cdf (no incomplete gamma), and torch's rarer families (Pareto, Weibull,
Kumaraswamy, VonMises, Wishart, LKJCholesky, ContinuousBernoulli...)."""

from dlg.distributions import constraints, transforms
from dlg.distributions.base import Distribution
from dlg.distributions.continuous import Exponential, Laplace, Normal, Uniform
from dlg.distributions.counts import Binomial, Geometric, Multinomial, Poisson
from dlg.distributions.discrete import Bernoulli, Categorical, OneHotCategorical
from dlg.distributions.gamma import Beta, Chi2, Dirichlet, Gamma
from dlg.distributions.heavy_tails import Cauchy, Gumbel, StudentT
from dlg.distributions.independent import Independent
from dlg.distributions.kl import kl_divergence, register_kl
from dlg.distributions.lowrank import LowRankMultivariateNormal
from dlg.distributions import kl_families  # noqa: F401  (registers the families' KL pairs)
from dlg.distributions.mixture import MixtureSameFamily
from dlg.distributions.multivariate import MultivariateNormal
from dlg.distributions.relaxed import (ExpRelaxedCategorical, LogitRelaxedBernoulli,
                                       RelaxedBernoulli, RelaxedOneHotCategorical)
from dlg.distributions.transformed import HalfNormal, LogNormal, TransformedDistribution
from dlg.distributions.transforms import (AbsTransform, AffineTransform, ComposeTransform,
                                          ExpTransform, SigmoidTransform, TanhTransform,
                                          Transform)

__all__ = ["AbsTransform", "AffineTransform", "Bernoulli", "Beta", "Binomial", "Categorical",
           "Cauchy", "Chi2", "ComposeTransform", "Dirichlet", "Distribution",
           "ExpRelaxedCategorical", "ExpTransform", "Exponential", "Gamma", "Geometric",
           "Gumbel", "HalfNormal", "Independent", "Laplace", "LogNormal",
           "LogitRelaxedBernoulli", "LowRankMultivariateNormal", "MixtureSameFamily",
           "Multinomial", "MultivariateNormal", "Normal", "OneHotCategorical", "Poisson",
           "RelaxedBernoulli", "RelaxedOneHotCategorical", "SigmoidTransform", "StudentT",
           "TanhTransform", "Transform", "TransformedDistribution", "Uniform", "constraints",
           "kl_divergence", "register_kl", "transforms"]
