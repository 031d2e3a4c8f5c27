"""Standard gamma draws, Gamma(concentration, 1), for Gamma, Beta, Dirichlet, Chi2 and StudentT:
Marsaglia and Tsang's squeeze on dlg's randn/rand draws (concentrations below 1 boosted by
U^(1/alpha)), so they follow `dlg.manual_seed` and trace. The draw is not a smooth function of
the concentration (it rejects), so its gradient is the implicit reparameterisation one,
dx/dalpha = -(dF/dalpha)(x) / p(x) for the gamma CDF F and density p, by torch's approximation
(_standard_gamma_grad: a Taylor series for small x, Rice's saddle point for large alpha, a
bivariate rational fit between), attached as a linear term so autodiff carries it."""

from __future__ import annotations

import math

from dlg.distributions.utils import is_traced
from dlg.frontend import engine
from dlg.frontend import functional as F
from dlg.frontend.dtypes import finfo
from dlg.frontend.tensor import Tensor

_TRACED_ROUNDS = 12  # a round accepts with probability > 0.95: 12 leave < 1e-15 undone

# torch's rational approximation of the gradient in (u, v) = (log(x / alpha), log(alpha))
_COEF_UV = ((0.16009398, -0.094634809, 0.025146376, -0.0030648343,
             1, 0.32668115, 0.10406089, 0.0014179084),
            (0.53487893, 0.1298071, 0.065735949, -0.0015649758,
             0.16639465, 0.020070113, -0.0035938915, -0.00058392623),
            (0.040121004, -0.0065914022, -0.0026286047, -0.0013441777,
             0.017050642, -0.0021309326, 0.00085092367, -1.5247877e-07))


def standard_gamma(concentration: Tensor) -> Tensor:
    """One Gamma(alpha, 1) draw per element of `concentration` (at least finfo.tiny, as
    torch's), differentiable in alpha by the implicit reparameterisation gradient."""
    alpha = concentration.detach()
    with engine.no_grad():
        x = _marsaglia_tsang(alpha).clamp(min=finfo(alpha.dtype).tiny)
    if not (concentration.requires_grad and engine.grad_enabled()):
        return x
    with engine.no_grad():
        slope = standard_gamma_grad(alpha, x)
    return x + (concentration - alpha) * slope


def _marsaglia_tsang(alpha: Tensor) -> Tensor:
    """Candidates d (1 + c z)^3 for z ~ N(0, 1), kept where log u < z^2/2 + d - d v + d log v,
    in rounds until every element has one (a trace, with no data to test, runs a fixed
    number of rounds)."""
    shape, dtype = tuple(alpha.shape), alpha.dtype
    boost = alpha < 1
    a = F.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3
    c = (9 * d).rsqrt()
    valid = (alpha > 0) & F.isfinite(alpha)  # the others (unvalidated) draw NaN, not forever
    out, done = F.where(valid, 0.0, math.nan), ~valid
    traced, rounds = is_traced(alpha), 0
    while (rounds < _TRACED_ROUNDS) if traced else not done.all().item():
        z, u = F.randn(shape, dtype=dtype), F.rand(shape, dtype=dtype)
        v = (1 + c * z) ** 3
        safe_v = F.where(v > 0, v, 1.0)
        ok = (v > 0) & (u.log() < 0.5 * z * z + d - d * safe_v + d * safe_v.log())
        out = F.where(ok & ~done, d * safe_v, out)
        done = done | ok
        rounds += 1
    u = F.rand(shape, dtype=dtype)
    return F.where(boost, out * (u.log() / alpha).exp(), out)


def standard_gamma_grad(alpha: Tensor, x: Tensor) -> Tensor:
    """d x / d alpha at a Gamma(alpha, 1) draw x, torch's _standard_gamma_grad in float64."""
    dtype = alpha.dtype
    alpha, x = alpha.double(), x.double()
    small_x = _taylor_small_x(alpha, x)
    saddle = _rice_saddle_point(alpha, x)
    rational = _rational_fit(alpha, x)
    out = F.where(x < 0.8, small_x, F.where(alpha > 8.0, saddle, rational))
    return F.where(F.isfinite(out), out, 0.0).to(dtype)


def _taylor_small_x(alpha: Tensor, x: Tensor) -> Tensor:
    """-(dF/dalpha) / p from the series of the lower incomplete gamma in x (x < 0.8)."""
    numer, denom = F.ones_like(x), alpha
    series1, series2 = numer / denom, numer / (denom * denom)
    for i in range(1, 6):
        numer = numer * (-x / i)
        denom = denom + 1
        series1 = series1 + numer / denom
        series2 = series2 + numer / (denom * denom)
    pow_x_alpha = x.pow(alpha)
    gamma_pdf = x.pow(alpha - 1) * (-x).exp()
    gamma_cdf = pow_x_alpha * series1
    gamma_cdf_alpha = (x.log() - alpha.digamma()) * gamma_cdf - pow_x_alpha * series2
    return -gamma_cdf_alpha / gamma_pdf


def _rice_saddle_point(alpha: Tensor, x: Tensor) -> Tensor:
    """Rice's saddle-point expansion for alpha > 8 (a polynomial within 10% of alpha)."""
    near = (0.9 * alpha <= x) & (x <= 1.1 * alpha)
    numer_1 = 1 + 24 * alpha * (1 + 12 * alpha)
    numer_2 = (1440 * alpha * alpha + 6 * x * (53 - 120 * x) - 65 * x * x / alpha
               + alpha * (107 + 3600 * x))
    close = numer_1 * numer_2 / (1244160 * alpha.pow(4))
    denom = (8 * alpha).sqrt()
    gap = F.where(near, alpha + 1, alpha - x)  # away from x == alpha, where `close` is chosen
    term2 = denom / gap
    term3 = (x - alpha - alpha * (x / alpha).log()).abs().pow(-1.5)
    term23 = F.where(x < alpha, term2 - term3, term2 + term3)
    term1 = (x / alpha).log() * term23 - (2 / alpha).sqrt() * (alpha + x) / (gap * gap)
    stirling = 1 + 1 / (12 * alpha) * (1 + 1 / (24 * alpha))
    return F.where(near, close, -stirling * x * term1 / denom)


def _rational_fit(alpha: Tensor, x: Tensor) -> Tensor:
    u, v = (x / alpha).log(), alpha.log()
    coef = [c0 + u * (c1 + u * c2) for c0, c1, c2 in zip(*_COEF_UV)]
    p = coef[0] + v * (coef[1] + v * (coef[2] + v * coef[3]))
    q = coef[4] + v * (coef[5] + v * (coef[6] + v * coef[7]))
    return (p / q).exp()


__all__ = ["standard_gamma", "standard_gamma_grad"]
