"""dlg.distributions' wider families (Gamma, Beta, Dirichlet, Chi2, StudentT, Cauchy, Gumbel,
LogNormal, HalfNormal, Poisson, Binomial, Geometric, Multinomial, the relaxed (Gumbel-softmax)
ones, TransformedDistribution and its transforms) against torch.distributions from the same
parameters: values and parameter gradients of log_prob, entropy, moments, cdf/icdf and KL;
rsample gradients (the gamma's implicit reparameterisation against torch's); sample moments
under a fixed seed; support and argument validation; a traced and compiled program."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["lgamma", "digamma"])
def test_gamma_functions_differentiate_at_the_integers(name):
    """The concentrations people write (1, 2, 3) sit where lgamma's reflection branch, not
    chosen there, has a pole: its NaN must not leak into the gradient."""
    v = np.array([0.3, 1.0, 2.0, 3.0, 10.0, 2.5], np.float32)
    x, t = dlg.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    getattr(x, name)().sum().backward()
    getattr(t, name)().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5)


import dlg.distributions as D  # noqa: E402

TD = torch.distributions
TT = torch.distributions.transforms
RNG = np.random.default_rng(0)


def _f(*shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def _simplex(*shape: int) -> np.ndarray:
    x = RNG.uniform(0.05, 1.0, shape)
    return (x / x.sum(-1, keepdims=True)).astype(np.float32)


# boosted; 1 (xlogy's gradient at 0) and 2 (lgamma's at an integer); Rice's saddle point
CONC = np.array([0.3, 1.0, 2.0, 12.0], np.float32)


def _tanh_normal(m, loc, scale):
    lib = TT if m is TD else m.transforms
    return m.TransformedDistribution(m.Normal(loc, scale),
                                     [lib.TanhTransform(), lib.AffineTransform(0.5, 2.0)])


def _log_logistic(m, loc, scale):
    """A logistic pushed through exp: a composite of inverses and a tensor affine."""
    lib = TT if m is TD else m.transforms
    return m.TransformedDistribution(m.Uniform(0.0 * loc + 0.01, 0.0 * loc + 0.99), [
        lib.ComposeTransform([lib.SigmoidTransform().inv, lib.AffineTransform(loc, scale)]),
        lib.ExpTransform()])


# name: (params as keyword -> array, a constructor taking (module, **params), a value)
CASES = {
    "gamma": (dict(concentration=CONC.reshape(4, 1), rate=_f(3, low=0.5, high=2)),
              lambda m, **p: m.Gamma(**p), _f(2, 4, 3, low=0.05, high=4)),
    "chi2": (dict(df=CONC * 2), lambda m, **p: m.Chi2(**p), _f(3, 4, low=0.05, high=6)),
    "beta": (dict(concentration1=CONC.reshape(4, 1), concentration0=_f(3, low=0.5, high=3)),
             lambda m, **p: m.Beta(**p), _f(2, 4, 3, low=0.02, high=0.98)),
    "dirichlet": (dict(concentration=np.stack([CONC, CONC[::-1] + 0.5])),
                  lambda m, **p: m.Dirichlet(**p), _simplex(3, 2, 4)),
    "lognormal": (dict(loc=_f(3, 1), scale=_f(4, low=0.5, high=1.5)),
                  lambda m, **p: m.LogNormal(**p), _f(2, 3, 4, low=0.1, high=3)),
    "halfnormal": (dict(scale=_f(3, low=0.5, high=2)), lambda m, **p: m.HalfNormal(**p),
                   _f(2, 3, low=0.0, high=3)),
    "cauchy": (dict(loc=_f(3, 1), scale=_f(4, low=0.5, high=2)),
               lambda m, **p: m.Cauchy(**p), _f(2, 3, 4, low=-4, high=4)),
    "gumbel": (dict(loc=_f(3, 1), scale=_f(4, low=0.5, high=2)),
               lambda m, **p: m.Gumbel(**p), _f(2, 3, 4, low=-2, high=4)),
    "studentt": (dict(df=np.array([0.8, 1.5, 3.0, 30.0], np.float32), loc=_f(3, 1),
                      scale=_f(4, low=0.5, high=2)),
                 lambda m, **p: m.StudentT(**p), _f(2, 3, 4, low=-3, high=3)),
    "poisson": (dict(rate=_f(3, low=0.2, high=6)), lambda m, **p: m.Poisson(**p),
                RNG.integers(0, 8, (2, 3)).astype(np.float32)),
    "binomial_probs": (dict(total_count=np.full(3, 6.0, np.float32),
                            probs=_f(2, 3, low=0.1, high=0.9)),
                       lambda m, **p: m.Binomial(**p),
                       RNG.integers(0, 7, (2, 3)).astype(np.float32)),
    "binomial_logits": (dict(total_count=np.full(3, 5.0, np.float32), logits=_f(3, low=-2,
                                                                                 high=2)),
                        lambda m, **p: m.Binomial(**p),
                        RNG.integers(0, 6, (4, 3)).astype(np.float32)),
    "geometric_probs": (dict(probs=_f(3, low=0.1, high=0.9)), lambda m, **p: m.Geometric(**p),
                        RNG.integers(0, 6, (2, 3)).astype(np.float32)),
    "geometric_logits": (dict(logits=_f(3, low=-2, high=2)), lambda m, **p: m.Geometric(**p),
                         RNG.integers(0, 6, (2, 3)).astype(np.float32)),
    "multinomial": (dict(probs=_simplex(2, 4)), lambda m, **p: m.Multinomial(5, **p),
                    np.stack([RNG.multinomial(5, [0.25] * 4, 2) for _ in range(3)]).astype(
                        np.float32)),
    "lowrank_mvn": (dict(loc=_f(2, 1, 5), cov_factor=_f(3, 5, 2), cov_diag=_f(5, low=0.5,
                                                                                high=2)),
                    lambda m, **p: m.LowRankMultivariateNormal(**p), _f(4, 2, 3, 5, low=-2,
                                                                           high=2)),
    "tanh_normal": (dict(loc=_f(3, 1), scale=_f(4, low=0.3, high=1)), _tanh_normal,
                    _f(2, 3, 4, low=-1.4, high=2.4)),
    "log_logistic": (dict(loc=_f(3), scale=_f(3, low=0.5, high=2)), _log_logistic,
                     _f(2, 3, low=0.1, high=4)),
    "relaxed_bernoulli": (dict(probs=_f(3, low=0.1, high=0.9)),
                          lambda m, **p: m.RelaxedBernoulli(m is TD and torch.tensor(0.7)
                                                            or dlg.tensor(0.7), **p),
                          _f(2, 3, low=0.05, high=0.95)),
    "relaxed_onehot": (dict(logits=_f(2, 4, low=-2, high=2)),
                       lambda m, **p: m.RelaxedOneHotCategorical(
                           m is TD and torch.tensor(0.5) or dlg.tensor(0.5), **p),
                       _simplex(3, 2, 4)),
}
MOMENTS = {  # the moments torch defines for each (a TransformedDistribution has none)
    name: ("mean", "variance", "stddev", "mode") for name in CASES}
MOMENTS.update({"tanh_normal": (), "log_logistic": (), "relaxed_bernoulli": (),
                "relaxed_onehot": (), "multinomial": ("mean", "variance", "stddev")})
NO_ENTROPY = {"tanh_normal", "log_logistic", "relaxed_bernoulli", "relaxed_onehot",
              "poisson"}  # torch's Poisson.entropy is NotImplementedError too


def _both(params: dict[str, np.ndarray], make):
    ours = {k: dlg.tensor(v, requires_grad=True) for k, v in params.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    return make(D, **ours), make(TD, **theirs), ours, theirs


def _close_grads(ours, theirs, out, expected, rtol=2e-4, atol=2e-5):
    """Equal values, and equal gradients of a random weighting of them per parameter."""
    assert tuple(out.shape) == tuple(expected.shape)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=rtol,
                               atol=atol)
    weights = RNG.standard_normal(tuple(expected.shape)).astype(np.float32)
    keep = np.isfinite(expected.detach().numpy())
    weights = np.where(keep, weights, 0).astype(np.float32)
    (F_where(out, keep) * dlg.tensor(weights)).sum().backward()
    (torch.where(torch.tensor(keep), expected, 0.0) * torch.tensor(weights)).sum().backward()
    for k in theirs:
        if theirs[k].grad is None or not theirs[k].requires_grad:
            assert ours[k].grad is None or not ours[k].grad.numpy().any(), k
            continue
        np.testing.assert_allclose(ours[k].grad.numpy(), theirs[k].grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=k)


def F_where(out, keep):  # noqa: N802  (the non-finite entries of torch's values left out)
    return dlg.where(dlg.tensor(keep), out, 0.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_and_its_gradient(name):
    params, make, value = CASES[name]
    p, q, ours, theirs = _both(params, make)
    assert (tuple(p.batch_shape), tuple(p.event_shape)) == (tuple(q.batch_shape),
                                                            tuple(q.event_shape))
    assert p.has_rsample == q.has_rsample
    _close_grads(ours, theirs, p.log_prob(dlg.tensor(value)), q.log_prob(torch.tensor(value)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_moments_entropy_and_gradient(name):
    params, make, _ = CASES[name]
    p, q, ours, theirs = _both(params, make)
    for attr in MOMENTS[name]:
        np.testing.assert_allclose(getattr(p, attr).detach().numpy(),
                                   getattr(q, attr).detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=attr)
    if name not in NO_ENTROPY:
        _close_grads(ours, theirs, p.entropy(), q.entropy())


def test_concentration_one_gradient_is_the_derivative():
    """At concentration 1 the density's (c - 1) log x term still has derivative log x in c:
    against central differences in float64."""
    x = np.array([0.2, 0.5, 0.9])

    def log_prob(c1):
        return D.Beta(c1, dlg.tensor(2.5, dtype=dlg.float64)).log_prob(
            dlg.tensor(x)).sum()

    c1 = dlg.tensor(1.0, dtype=dlg.float64, requires_grad=True)
    log_prob(c1).backward()
    h = 1e-6
    numeric = (log_prob(dlg.tensor(1 + h, dtype=dlg.float64)).item()
               - log_prob(dlg.tensor(1 - h, dtype=dlg.float64)).item()) / (2 * h)
    np.testing.assert_allclose(c1.grad.item(), numeric, rtol=1e-6)


CDF_CASES = ["cauchy", "gumbel", "lognormal", "halfnormal", "tanh_normal", "log_logistic"]


@pytest.mark.parametrize("name", CDF_CASES)
def test_cdf_icdf_and_gradients(name):
    params, make, value = CASES[name]
    p, q, ours, theirs = _both(params, make)
    _close_grads(ours, theirs, p.cdf(dlg.tensor(value)), q.cdf(torch.tensor(value)))
    u = _f(*value.shape, low=0.05, high=0.95)
    p, q, ours, theirs = _both(params, make)
    _close_grads(ours, theirs, p.icdf(dlg.tensor(u)), q.icdf(torch.tensor(u)), rtol=1e-3,
                 atol=1e-4)


def _positive(a):
    return a.exp() if isinstance(a, dlg.Tensor) else a.exp()


KL_CASES = {  # (make p and q from a, b (each [2, ...] unless noted), shape of a, of b)
    "gamma": (lambda m, a, b: (m.Gamma(a[0].exp(), b[0].exp()), m.Gamma(a[1].exp(),
                                                                        b[1].exp())), (3,), (3,)),
    "beta": (lambda m, a, b: (m.Beta(a[0].exp(), b[0].exp()), m.Beta(a[1].exp(), b[1].exp())),
             (2, 3), (3,)),
    "dirichlet": (lambda m, a, b: (m.Dirichlet(a[0].exp()), m.Dirichlet(b[0].exp())),
                  (2, 4), (4,)),
    "poisson": (lambda m, a, b: (m.Poisson(a[0].exp()), m.Poisson(b[0].exp())), (3,), (3,)),
    "binomial": (lambda m, a, b: (m.Binomial(4, logits=a[0]), m.Binomial(4, logits=b[0])),
                 (3,), (3,)),
    "geometric": (lambda m, a, b: (m.Geometric(logits=a[0]), m.Geometric(logits=b[0])),
                  (3,), (3,)),
    "gumbel": (lambda m, a, b: (m.Gumbel(a[0], b[0].exp()), m.Gumbel(a[1], b[1].exp())),
               (3,), (3,)),
    "cauchy": (lambda m, a, b: (m.Cauchy(a[0], b[0].exp()), m.Cauchy(a[1], b[1].exp())),
               (3,), (3,)),
    "halfnormal": (lambda m, a, b: (m.HalfNormal(a[0].exp()), m.HalfNormal(b[0].exp())),
                   (3,), (3,)),
    "lognormal": (lambda m, a, b: (m.LogNormal(a[0], b[0].exp()), m.LogNormal(a[1],
                                                                              b[1].exp())),
                  (3,), (3,)),
    "exponential_gamma": (lambda m, a, b: (m.Exponential(a[0].exp()),
                                           m.Gamma(b[0].exp(), b[1].exp())), (3,), (3,)),
    "gamma_exponential": (lambda m, a, b: (m.Gamma(a[0].exp(), a[1].exp()),
                                           m.Exponential(b[0].exp())), (3,), (3,)),
    "lowrank_mvn": (lambda m, a, b: (m.LowRankMultivariateNormal(a[0, :, 0], a[1], b[0].exp()),
                                     m.LowRankMultivariateNormal(a[0, :, 1], a[1, :, :1],
                                                                 b[1].exp())),
                    (4, 3), (4,)),
    "chi2_gamma": (lambda m, a, b: (m.Chi2(a[0].exp()), m.Gamma(b[0].exp(), b[1].exp())),
                   (3,), (3,)),
}


@pytest.mark.parametrize("name", sorted(KL_CASES))
def test_kl_divergence_and_its_gradient(name):
    make, a_shape, b_shape = KL_CASES[name]
    a, b = _f(2, *a_shape), _f(2, *b_shape)
    ours = {"a": dlg.tensor(a, requires_grad=True), "b": dlg.tensor(b, requires_grad=True)}
    theirs = {"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)}
    out = D.kl_divergence(*make(D, ours["a"], ours["b"]))
    expected = TD.kl_divergence(*make(TD, theirs["a"], theirs["b"]))
    _close_grads(ours, theirs, out, expected)


def test_kl_edge_cases_are_torchs():
    """Binomial: more trials in p than q is infinite, fewer is NotImplementedError; transformed
    distributions need equal transforms."""
    p, q = D.Binomial(dlg.tensor([5.0, 4.0]), probs=dlg.tensor([0.3, 0.3])), D.Binomial(
        dlg.tensor([4.0, 4.0]), probs=dlg.tensor([0.5, 0.5]))
    tp, tq = TD.Binomial(torch.tensor([5.0, 4.0]), probs=torch.tensor([0.3, 0.3])), \
        TD.Binomial(torch.tensor([4.0, 4.0]), probs=torch.tensor([0.5, 0.5]))
    np.testing.assert_allclose(D.kl_divergence(p, q).numpy(), TD.kl_divergence(tp, tq).numpy(),
                               rtol=1e-5)
    assert np.isinf(D.kl_divergence(p, q).numpy()[0])
    with pytest.raises(NotImplementedError, match="q.total_count > p.total_count"):
        D.kl_divergence(q, p)
    base = D.Normal(dlg.zeros(2), 1.0)
    with pytest.raises(NotImplementedError, match="different transforms"):
        D.kl_divergence(D.TransformedDistribution(base, D.ExpTransform()),
                        D.TransformedDistribution(base, D.TanhTransform()))
    same = D.kl_divergence(
        D.TransformedDistribution(base, D.AffineTransform(1.0, 2.0)),
        D.TransformedDistribution(D.Normal(dlg.ones(2), 1.0), D.AffineTransform(1.0, 2.0)))
    np.testing.assert_allclose(same.numpy(), [0.5, 0.5], rtol=1e-6)


# ---- samples -----------------------------------------------------------------------------------
N = 20000
T = dlg.tensor
SAMPLERS = {  # name: constructor over (module, tensor)
    "gamma": lambda m, t: m.Gamma(t(CONC), t([2.0, 0.5, 1.0, 3.0])),
    "chi2": lambda m, t: m.Chi2(t([0.6, 1.0, 5.0])),
    "beta": lambda m, t: m.Beta(t(CONC), t([0.5, 2.0, 1.0, 9.0])),
    "dirichlet": lambda m, t: m.Dirichlet(t([[0.3, 1.0, 2.0], [4.0, 0.7, 12.0]])),
    "lognormal": lambda m, t: m.LogNormal(t([0.0, 1.0]), t([0.25, 0.5])),
    "halfnormal": lambda m, t: m.HalfNormal(t([0.5, 2.0])),
    "gumbel": lambda m, t: m.Gumbel(t([0.0, 1.0]), t([0.5, 2.0])),
    "studentt": lambda m, t: m.StudentT(t([9.0, 30.0]), t([0.5, -1.0]), t([1.0, 2.0])),
    "poisson": lambda m, t: m.Poisson(t([0.5, 3.0, 40.0])),
    "binomial": lambda m, t: m.Binomial(t([3.0, 10.0]), probs=t([0.2, 0.7])),
    "geometric": lambda m, t: m.Geometric(probs=t([0.2, 0.7])),
    "multinomial": lambda m, t: m.Multinomial(7, probs=t([0.1, 0.3, 0.6])),
    "relaxed_bernoulli": lambda m, t: m.RelaxedBernoulli(t(0.5), probs=t([0.2, 0.7])),
    "relaxed_onehot": lambda m, t: m.RelaxedOneHotCategorical(t(0.7), logits=t([0.0, 1.0, -1.0])),
    "lowrank_mvn": lambda m, t: m.LowRankMultivariateNormal(t([0.5, -1.0, 2.0]), t(
        [[1.0, 0.0], [0.5, 1.0], [-1.0, 0.3]]), t([0.2, 0.5, 1.0])),
    "tanh_normal": lambda m, t: m.TransformedDistribution(
        m.Normal(t([0.0, 1.0]), t([0.5, 2.0])),
        (TT if m is TD else m.transforms).TanhTransform()),
}
NO_MOMENTS = {"relaxed_bernoulli", "relaxed_onehot", "tanh_normal"}  # torch has none: vs samples


def _within_standard_errors(a: np.ndarray, mean: np.ndarray, var: np.ndarray, name: str):
    """The sample mean within 5 standard errors of `mean`, the sample variance within 5 of
    `var` (its standard error from the sample's 4th central moment)."""
    m = a.mean(0)
    np.testing.assert_array_less(np.abs(m - mean), 5 * np.sqrt(var / len(a)) + 1e-6, name)
    centred = a - m
    v = centred.var(0)
    se_var = np.sqrt(np.maximum((centred ** 4).mean(0) - v ** 2, 0) / len(a))
    np.testing.assert_array_less(np.abs(v - var), 5 * se_var + 1e-6, name)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samples_have_torchs_shape_support_and_moments(name):
    p, q = SAMPLERS[name](D, dlg.tensor), SAMPLERS[name](TD, torch.tensor)
    dlg.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = p.sample((N,)), q.sample((N,))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")
    assert not ours.requires_grad
    assert tuple(p.sample((2, 3)).shape) == tuple(q.sample((2, 3)).shape)
    assert p.support.check(ours).numpy().all()
    a = ours.numpy().astype(np.float64)
    if name in NO_MOMENTS:  # against torch's own samples: the difference of two means
        b = theirs.numpy().astype(np.float64)
        se = np.sqrt((a.var(0) + b.var(0)) / N)
        np.testing.assert_array_less(np.abs(a.mean(0) - b.mean(0)), 5 * se + 1e-6)
        np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.04)
    else:
        _within_standard_errors(a, q.mean.numpy().astype(np.float64),
                                q.variance.numpy().astype(np.float64), name)


def test_cauchy_samples_have_its_quartiles():
    dlg.manual_seed(1)
    p = D.Cauchy(dlg.tensor([0.5, -2.0]), dlg.tensor([1.0, 3.0]))
    x = p.sample((N,)).numpy()
    for level in (0.25, 0.5, 0.75):
        expected = p.icdf(dlg.full((2,), level)).numpy()
        # a quartile's standard error is sqrt(p (1 - p) / N) / density: 0.02 scale here
        np.testing.assert_array_less(np.abs(np.quantile(x, level, axis=0) - expected),
                                     0.1 * np.array([1.0, 3.0]))


def test_the_seed_fixes_gamma_draws_and_rsample_keeps_the_graph():
    conc = dlg.tensor(CONC, requires_grad=True)
    dlg.manual_seed(5)
    first = D.Gamma(conc, 1.0).sample((3,))
    dlg.manual_seed(5)
    second = D.Gamma(conc, 1.0).rsample((3,))
    np.testing.assert_array_equal(first.numpy(), second.detach().numpy())
    assert not first.requires_grad and second.requires_grad
    with pytest.raises(NotImplementedError, match="no rsample"):
        D.Poisson(dlg.tensor([1.0])).rsample()


# ---- reparameterised gradients -----------------------------------------------------------------
def test_gamma_rsample_gradient_is_torchs_implicit_one():
    """Per draw, d x / d concentration is torch's _standard_gamma_grad at that draw (for
    concentrations in each of its three regimes and the boosted one), and d x / d rate is
    -x / rate."""
    alpha = np.repeat(np.array([0.05, 0.3, 1.0, 2.5, 7.0, 9.0, 40.0], np.float32), 300)
    conc = dlg.tensor(alpha, requires_grad=True)
    rate = dlg.tensor(np.float32(1.7), requires_grad=True)
    dlg.manual_seed(2)
    x = D.Gamma(conc, rate).rsample()
    x.sum().backward()
    standard = torch.tensor(x.detach().numpy() * 1.7)
    expected = torch._standard_gamma_grad(torch.tensor(alpha), standard) / 1.7
    np.testing.assert_allclose(conc.grad.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rate.grad.item(), (-x.detach().numpy() / 1.7).sum(), rtol=1e-4)


def _per_draw_grads(make, params: dict[str, float], f, n: int = N):
    """The gradient of f(rsample) for each of n draws with respect to each parameter (the
    parameters repeated n times, so each draw's gradient lands in its own entry)."""
    leaves = {k: dlg.full((n,) + np.shape(v), 0.0) + dlg.tensor(np.float32(v))
              for k, v in params.items()}
    leaves = {k: v.detach().requires_grad_() for k, v in leaves.items()}
    f(make(**leaves).rsample()).sum().backward()
    return {k: v.grad.numpy().astype(np.float64) for k, v in leaves.items()}


RSAMPLE_GRADIENTS = {  # name: (make, params, f, the exact gradient of E f(x) per parameter)
    "beta_mean": (D.Beta, dict(concentration1=0.6, concentration0=2.0), lambda x: x,
                  dict(concentration1=2.0 / 2.6 ** 2, concentration0=-0.6 / 2.6 ** 2)),
    "beta_square": (D.Beta, dict(concentration1=3.0, concentration0=1.5), lambda x: x * x,
                    # E x^2 = a (a + 1) / ((a + b)(a + b + 1))
                    dict(concentration1=(7 * 4.5 * 5.5 - 12 * (2 * 4.5 + 1)) / (4.5 * 5.5) ** 2,
                         concentration0=-12 * (2 * 4.5 + 1) / (4.5 * 5.5) ** 2)),
    "gamma_square": (lambda concentration: D.Gamma(concentration, 1.0),
                     dict(concentration=0.4), lambda x: x * x, dict(concentration=2 * 0.4 + 1)),
    "chi2_log": (D.Chi2, dict(df=3.0), lambda x: x.log(),  # E log x = digamma(df/2) + log 2
                 dict(df=0.5 * float(torch.polygamma(1, torch.tensor(1.5))))),
    "dirichlet_first": (D.Dirichlet, dict(concentration=[0.5, 2.0, 4.0]), lambda x: x[..., 0],
                        dict(concentration=[6.0 / 42.25, -0.5 / 42.25, -0.5 / 42.25])),
    "studentt_square": (lambda df: D.StudentT(df), dict(df=12.0), lambda x: x * x,
                        dict(df=-2 / 10.0 ** 2)),  # E x^2 = df / (df - 2)
}


@pytest.mark.parametrize("name", sorted(RSAMPLE_GRADIENTS))
def test_rsample_gradients_are_unbiased(name):
    """The pathwise gradients average to the exact derivative of the expectation, within 5
    standard errors of the per-draw gradients (a wrong or missing gamma gradient fails)."""
    make, params, f, exact = RSAMPLE_GRADIENTS[name]
    dlg.manual_seed(11)
    grads = _per_draw_grads(make, params, f)
    for k, g in grads.items():
        se = g.std(0) / np.sqrt(len(g))
        np.testing.assert_array_less(np.abs(g.mean(0) - np.asarray(exact[k])), 5 * se + 1e-9,
                                     k)


# ---- transforms and the tanh-squashed policy ---------------------------------------------------
TRANSFORMS = {  # name: make(transforms module), the input values
    "exp": (lambda t: t.ExpTransform(), _f(2, 3, low=-2, high=2)),
    "affine": (lambda t: t.AffineTransform(0.5, -2.0), _f(2, 3)),
    "sigmoid": (lambda t: t.SigmoidTransform(), _f(2, 3, low=-4, high=4)),
    "tanh": (lambda t: t.TanhTransform(), _f(2, 3, low=-3, high=3)),
    "compose": (lambda t: t.ComposeTransform([t.TanhTransform(), t.AffineTransform(1.0, 3.0),
                                              t.ExpTransform().inv.inv]), _f(2, 3)),
    "inverse": (lambda t: t.SigmoidTransform().inv, _f(2, 3, low=0.05, high=0.95)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_are_torchs(name):
    """Forward, inverse, log |dy/dx| (and its gradient in x), sign, the codomain's check."""
    make, x = TRANSFORMS[name]
    ours, theirs = make(D.transforms), make(TT)
    tx = torch.tensor(x, requires_grad=True)
    dx = dlg.tensor(x, requires_grad=True)
    y, ty = ours(dx), theirs(tx)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.inv(y).detach().numpy(), x, rtol=1e-3, atol=1e-4)
    assert ours.inv.inv is ours and ours.sign == theirs.sign
    assert ours.codomain.check(y).numpy().all()
    out, expected = ours.log_abs_det_jacobian(dx, y), theirs.log_abs_det_jacobian(tx, ty)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    assert out.requires_grad == expected.requires_grad  # an affine's is constant in x
    if expected.requires_grad:
        out.sum().backward()
        expected.sum().backward()
        np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)


def _sac_actor_loss(lib, mu, log_std, eps, cache: int):
    """SAC's actor loss on given noise: a = tanh(mu + std * eps), loss = mean(0.2 log pi(a) -
    Q(a)) with Q(a) = -(a - 0.3)^2, log pi(a) read back from the transform's cache."""
    tanh = (TT if lib is TD else lib.transforms).TanhTransform(cache_size=cache)
    policy = lib.TransformedDistribution(lib.Normal(mu, log_std.exp()), tanh)
    x = mu + log_std.exp() * eps
    action = tanh(x)
    log_pi = policy.log_prob(action).sum(-1)
    return (0.2 * log_pi + ((action - 0.3) ** 2).sum(-1)).mean(), log_pi


def test_sac_tanh_normal_policy_loss_and_gradients_are_torchs():
    mu, log_std = _f(8, 2, low=-1, high=1), _f(8, 2, low=-1.5, high=0.5)
    eps = RNG.standard_normal((8, 2)).astype(np.float32)
    mu[0, 0], eps[0, 0] = 12.0, 1.0  # tanh(12) rounds to 1: only the cache keeps log pi finite
    ours = {"mu": dlg.tensor(mu, requires_grad=True),
            "log_std": dlg.tensor(log_std, requires_grad=True)}
    theirs = {"mu": torch.tensor(mu, requires_grad=True),
              "log_std": torch.tensor(log_std, requires_grad=True)}
    loss, log_pi = _sac_actor_loss(D, ours["mu"], ours["log_std"], dlg.tensor(eps), 1)
    tloss, tlog_pi = _sac_actor_loss(TD, theirs["mu"], theirs["log_std"], torch.tensor(eps), 1)
    assert np.isfinite(log_pi.detach().numpy()).all()
    _close_grads(ours, theirs, log_pi, tlog_pi, rtol=1e-4, atol=1e-4)
    ours = {k: dlg.tensor(v.detach().numpy(), requires_grad=True) for k, v in ours.items()}
    theirs = {k: torch.tensor(v.detach().numpy(), requires_grad=True) for k, v in theirs.items()}
    loss, _ = _sac_actor_loss(D, ours["mu"], ours["log_std"], dlg.tensor(eps), 1)
    tloss, _ = _sac_actor_loss(TD, theirs["mu"], theirs["log_std"], torch.tensor(eps), 1)
    _close_grads(ours, theirs, loss, tloss, rtol=1e-4, atol=1e-5)
    _, uncached = _sac_actor_loss(D, dlg.tensor(mu), dlg.tensor(log_std), dlg.tensor(eps), 0)
    assert not np.isfinite(uncached.numpy()[0])  # atanh(1): what the cache is for


def test_tanh_normal_rsample_then_log_prob_uses_the_cache():
    dlg.manual_seed(3)
    mu = dlg.tensor([[12.0, 0.0]], requires_grad=True)
    policy = D.TransformedDistribution(D.Normal(mu, 1.0), D.TanhTransform(cache_size=1))
    action = policy.rsample()
    log_pi = policy.log_prob(action)
    assert np.isfinite(log_pi.detach().numpy()).all()
    (action.sum() + log_pi.sum()).backward()
    assert np.isfinite(mu.grad.numpy()).all()


# ---- expand, validation ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gamma", "beta", "dirichlet", "chi2", "studentt", "gumbel",
                                  "poisson", "binomial_logits", "geometric_probs",
                                  "multinomial", "lognormal", "halfnormal", "tanh_normal",
                                  "lowrank_mvn",
                                  "relaxed_bernoulli", "relaxed_onehot"])
def test_expand_is_torchs(name):
    params, make, _ = CASES[name]
    p, q, _, _ = _both(params, make)
    shape = (5,) + tuple(q.batch_shape)
    pe, qe = p.expand(shape), q.expand(torch.Size(shape))
    assert type(pe) is type(p)
    assert (tuple(pe.batch_shape), tuple(pe.event_shape)) == (shape, tuple(qe.event_shape))
    assert tuple(pe.sample().shape) == tuple(qe.sample().shape)
    v = qe.sample((2,)).numpy()
    np.testing.assert_allclose(pe.log_prob(dlg.tensor(v)).detach().numpy(),
                               qe.log_prob(torch.tensor(v)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(dlg.DlgValueError, match="cannot be expanded"):
        p.expand((7,) * (len(shape) + 1))


BAD = [
    (lambda: D.Gamma(dlg.tensor([1.0]), dlg.tensor([-1.0])),
     r"Expected parameter rate \(Tensor of shape \(1,\)\) of distribution Gamma"),
    (lambda: D.Beta(dlg.tensor([0.0]), 1.0), "parameter concentration"),  # its Dirichlet
    (lambda: D.Chi2(dlg.tensor([-2.0])), "parameter df"),
    (lambda: D.Dirichlet(dlg.tensor([1.0, -1.0])), "IndependentConstraint"),
    (lambda: D.Dirichlet(dlg.tensor(1.0)), "at least one-dimensional"),
    (lambda: D.StudentT(dlg.tensor([-1.0])), "parameter df"),
    (lambda: D.Poisson(dlg.tensor([-0.5])), "parameter rate"),
    (lambda: D.Binomial(dlg.tensor([2.5]), probs=dlg.tensor([0.5])), "IntegerGreaterThan"),
    (lambda: D.Binomial(3, probs=dlg.tensor([0.5]), logits=dlg.tensor([0.0])),
     "Either `probs` or `logits`"),
    (lambda: D.Geometric(probs=dlg.tensor([0.0, 0.5])), "to be positive"),
    (lambda: D.Multinomial(dlg.tensor(3), probs=dlg.tensor([0.5, 0.5])), None),
    (lambda: D.Gamma(dlg.tensor([1.0]), 1.0).log_prob(dlg.tensor([-1.0])),
     r"within the support \(GreaterThanEq\(lower_bound=0.0\)\)"),
    (lambda: D.Beta(dlg.tensor([2.0]), 2.0).log_prob(dlg.tensor([1.5])), "Interval"),
    (lambda: D.Dirichlet(dlg.ones(3)).log_prob(dlg.tensor([0.5, 0.5, 0.5])), "Simplex"),
    (lambda: D.Poisson(dlg.tensor([1.0])).log_prob(dlg.tensor([1.5])), "IntegerGreaterThan"),
    (lambda: D.Binomial(4, probs=dlg.tensor([0.5])).log_prob(dlg.tensor([5.0])),
     "IntegerInterval"),
    (lambda: D.Multinomial(3, probs=dlg.tensor([0.5, 0.5])).log_prob(dlg.tensor([2.0, 2.0])),
     "Multinomial"),
    (lambda: D.HalfNormal(dlg.tensor([1.0])).log_prob(dlg.tensor([-1.0])), "GreaterThanEq"),
    (lambda: D.LogNormal(0.0, 1.0).log_prob(dlg.tensor(0.0)), "GreaterThan"),
    (lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), [D.TanhTransform(), "exp"]),
     "must be a Transform or a list of Transforms"),
    (lambda: D.TanhTransform(cache_size=2), "cache_size must be 0 or 1"),
    (lambda: D.LowRankMultivariateNormal(dlg.zeros(3), dlg.ones(2, 1), dlg.ones(3)),
     "cov_factor must be a batch of matrices with shape 3 x m"),
    (lambda: D.LowRankMultivariateNormal(dlg.zeros(3), dlg.ones(3, 1), -dlg.ones(3)),
     "parameter cov_diag"),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_arguments_raise_clear_errors(make, message):
    if message is None:  # torch's error for a tensor total_count
        with pytest.raises(NotImplementedError, match="inhomogeneous total_count"):
            make()
        return
    with pytest.raises(dlg.DlgError, match=message):
        make()


# ---- traced and compiled programs --------------------------------------------------------------
class _BetaAndTanhLikelihood(dlg.nn.Module):
    """A Beta regression's and a tanh-squashed policy's log-likelihoods, a Gamma prior's KL
    and entropy: the formulas (lgamma, digamma, xlogy, the transforms) traced."""

    def __init__(self):
        super().__init__()
        self.fc = dlg.nn.Linear(3, 4)

    def forward(self, x, y, action):
        a, b, mu, log_std = self.fc(x).chunk(4, dim=-1)
        beta = D.Beta(F_softplus(a) + 0.1, F_softplus(b) + 0.1)
        policy = D.TransformedDistribution(D.Normal(mu, log_std.exp()), D.TanhTransform())
        prior = D.Gamma(F_softplus(a) + 1.0, 2.0)
        return (beta.log_prob(y) + policy.log_prob(action) + beta.entropy()
                + D.kl_divergence(prior, D.Gamma(2.0 + 0 * a, 1.0)))


def F_softplus(x):  # noqa: N802
    return dlg.nn.functional.softplus(x)


def test_a_traced_and_compiled_beta_and_tanh_normal_loss_gives_eager_values():
    net = _BetaAndTanhLikelihood()
    x, y, action = dlg.randn(5, 3), dlg.rand(5, 1) * 0.9 + 0.05, dlg.rand(5, 1) * 1.8 - 0.9
    exe = dlg.compile(net, x, y, action)
    np.testing.assert_allclose(exe(x.numpy(), y.numpy(), action.numpy()),
                               net(x, y, action).detach().numpy(), rtol=1e-4, atol=1e-4)
    x, y, action = dlg.randn(7, 3), dlg.rand(7, 1) * 0.9 + 0.05, dlg.rand(7, 1) * 1.8 - 0.9
    np.testing.assert_allclose(exe(x.numpy(), y.numpy(), action.numpy()),
                               net(x, y, action).detach().numpy(), rtol=1e-4, atol=1e-4)


class _GammaSampler(dlg.nn.Module):
    def forward(self, concentration):
        return D.Gamma(concentration, 1.0).rsample((4000,))


def test_gamma_draws_trace_and_compile():
    """In a trace the squeeze runs a fixed number of rounds: the compiled draws still have
    the gamma's mean and variance."""
    conc = dlg.tensor([0.5, 2.0, 9.0])
    exe = dlg.compile(_GammaSampler(), conc)
    x = np.asarray(exe(conc.numpy())).astype(np.float64)
    assert x.shape == (4000, 3) and (x > 0).all()
    _within_standard_errors(x, conc.numpy(), conc.numpy(), "compiled gamma")


class _PoissonSampler(dlg.nn.Module):
    def forward(self, rate):
        return D.Poisson(rate).sample()


def test_a_poisson_draw_in_a_trace_is_a_clear_error():
    with pytest.raises(dlg.DlgTypeError, match="Poisson.sample needs its parameters' values"):
        dlg.compile(_PoissonSampler(), dlg.ones(3))
