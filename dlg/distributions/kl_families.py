"""KL(p || q) for the wider families (gamma, counts, heavy tails, transformed), registered in
kl.py's table: the pairs torch registers among them, in torch's formulas."""

from __future__ import annotations

import math

from dlg.distributions.continuous import Exponential
from dlg.distributions.counts import Binomial, Geometric, Poisson
from dlg.distributions.gamma import Beta, Dirichlet, Gamma
from dlg.distributions.heavy_tails import EULER_GAMMA, Cauchy, Gumbel
from dlg.distributions.kl import _kl_normal_normal, kl_divergence, register_kl
from dlg.distributions.lowrank import LowRankMultivariateNormal
from dlg.distributions.transformed import HalfNormal, TransformedDistribution
from dlg.distributions.triangular import solve_lower
from dlg.distributions.utils import is_traced
from dlg.errors import DlgValueError
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.tensor import Tensor


@register_kl(Beta, Beta)
def _kl_beta_beta(p: Beta, q: Beta) -> Tensor:
    sum_p = p.concentration1 + p.concentration0
    sum_q = q.concentration1 + q.concentration0
    t1 = q.concentration1.lgamma() + q.concentration0.lgamma() + sum_p.lgamma()
    t2 = p.concentration1.lgamma() + p.concentration0.lgamma() + sum_q.lgamma()
    t3 = (p.concentration1 - q.concentration1) * p.concentration1.digamma()
    t4 = (p.concentration0 - q.concentration0) * p.concentration0.digamma()
    t5 = (sum_q - sum_p) * sum_p.digamma()
    return t1 - t2 + t3 + t4 + t5


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> Tensor:
    sum_p, sum_q = p.concentration.sum(-1), q.concentration.sum(-1)
    t1 = sum_p.lgamma() - sum_q.lgamma()
    t2 = (p.concentration.lgamma() - q.concentration.lgamma()).sum(-1)
    t3 = p.concentration - q.concentration
    t4 = p.concentration.digamma() - sum_p.digamma().unsqueeze(-1)
    return t1 - t2 + (t3 * t4).sum(-1)


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p: Gamma, q: Gamma) -> Tensor:
    t1 = q.concentration * (p.rate / q.rate).log()
    t2 = q.concentration.lgamma() - p.concentration.lgamma()
    t3 = (p.concentration - q.concentration) * p.concentration.digamma()
    t4 = (q.rate - p.rate) * (p.concentration / p.rate)
    return t1 + t2 + t3 + t4


@register_kl(Exponential, Gamma)
def _kl_exponential_gamma(p: Exponential, q: Gamma) -> Tensor:
    ratio = q.rate / p.rate
    return (-q.concentration * ratio.log() + ratio + q.concentration.lgamma()
            + q.concentration * EULER_GAMMA - (1 + EULER_GAMMA))


@register_kl(Gamma, Exponential)
def _kl_gamma_exponential(p: Gamma, q: Exponential) -> Tensor:
    return -p.entropy() - q.rate.log() + q.rate * p.concentration / p.rate


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p: Poisson, q: Poisson) -> Tensor:
    return p.rate * (p.rate.log() - q.rate.log()) - (p.rate - q.rate)


@register_kl(Binomial, Binomial)
def _kl_binomial_binomial(p: Binomial, q: Binomial) -> Tensor:
    """Infinite where p has more trials than q; fewer is torch's NotImplementedError (read
    from the data, so only outside a trace)."""
    if not is_traced(p.total_count, q.total_count) and (
            p.total_count < q.total_count).any().item():
        raise NotImplementedError("KL between Binomials where q.total_count > "
                                  "p.total_count is not implemented")
    kl = p.total_count * (p.probs * (p.logits - q.logits) + F.log1p(-p.probs)
                          - F.log1p(-q.probs))
    return F.where(p.total_count > q.total_count, math.inf, kl)


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p: Geometric, q: Geometric) -> Tensor:
    return -p.entropy() - F.log1p(-q.probs) / p.probs - q.logits


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p: Gumbel, q: Gumbel) -> Tensor:
    ct1, ct2, ct3 = p.scale / q.scale, q.loc / q.scale, p.loc / q.scale
    t1 = -ct1.log() - ct2 + ct3
    t2 = ct1 * EULER_GAMMA
    t3 = (ct2 + (1 + ct1).lgamma() - ct3).exp()
    return t1 + t2 + t3 - (1 + EULER_GAMMA)


@register_kl(Cauchy, Cauchy)
def _kl_cauchy_cauchy(p: Cauchy, q: Cauchy) -> Tensor:
    t1 = ((p.scale + q.scale).pow(2) + (p.loc - q.loc).pow(2)).log()
    return t1 - (4 * p.scale * q.scale).log()


@register_kl(HalfNormal, HalfNormal)
def _kl_halfnormal_halfnormal(p: HalfNormal, q: HalfNormal) -> Tensor:
    return _kl_normal_normal(p.base_dist, q.base_dist)


@register_kl(LowRankMultivariateNormal, LowRankMultivariateNormal)
def _kl_lowrank_lowrank(p: LowRankMultivariateNormal, q: LowRankMultivariateNormal) -> Tensor:
    """torch's: the trace of q's precision (Woodbury, A = C_q^-1 W_q^T D_q^-1) times p's
    covariance expanded into four sums of squares."""
    if p.event_shape != q.event_shape:
        raise DlgValueError("KL-divergence between two Low Rank Multivariate Normals with "
                            "different event shapes cannot be computed", engine.caller_span())
    p_w, p_d = p._unbroadcasted_cov_factor, p._unbroadcasted_cov_diag
    q_w, q_d = q._unbroadcasted_cov_factor, q._unbroadcasted_cov_diag
    a = solve_lower(q._capacitance_tril, q_w.mT / q_d.unsqueeze(-2))
    trace = ((p_d / q_d).sum(-1) + (p_w * q_d.rsqrt().unsqueeze(-1)).pow(2).sum((-2, -1))
             - (a * p_d.sqrt().unsqueeze(-2)).pow(2).sum((-2, -1))
             - (a @ p_w).pow(2).sum((-2, -1)))
    term1 = q._log_det() - p._log_det()
    return 0.5 * (term1 + trace + q._mahalanobis(q.loc - p.loc) - p.event_shape[0])


@register_kl(TransformedDistribution, TransformedDistribution)
def _kl_transformed_transformed(p: TransformedDistribution,
                                q: TransformedDistribution) -> Tensor:
    """The base distributions' KL, when both push them through equal transforms."""
    if p.transforms != q.transforms:
        raise NotImplementedError("KL between TransformedDistributions with different "
                                  "transforms is not implemented")
    if p.event_shape != q.event_shape:
        raise NotImplementedError("KL between TransformedDistributions with different "
                                  "event shapes is not implemented")
    return kl_divergence(p.base_dist, q.base_dist)


__all__: list[str] = []
