"""dlg.distributions against torch.distributions: log_prob, entropy, cdf/icdf and KL values and
their gradients w.r.t. the parameters over broadcast batch shapes; expand; argument and sample
validation. Sampling, rsample and whole programs are in test_distributions_sampling.py."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.distributions as D

torch = pytest.importorskip("torch")
TD = torch.distributions

RNG = np.random.default_rng(0)


def _spd(*shape: int) -> np.ndarray:
    a = RNG.standard_normal(shape)
    return (a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(np.float32)


def _tril(*shape: int) -> np.ndarray:
    return np.linalg.cholesky(_spd(*shape)).astype(np.float32)


def _f(*shape: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def _onehot(*shape: int) -> np.ndarray:
    return np.eye(shape[-1], dtype=np.float32)[RNG.integers(0, shape[-1], shape[:-1])]


# name: (params as keyword -> array, a constructor taking (module, **params), a value)
CASES = {
    "normal": (dict(loc=_f(3, 1), scale=_f(4, low=0.5, high=2)),
               lambda m, **p: m.Normal(**p), _f(2, 3, 4, low=-2, high=2)),
    "laplace": (dict(loc=_f(3, 1), scale=_f(4, low=0.5, high=2)),
                lambda m, **p: m.Laplace(**p), _f(2, 3, 4, low=-2, high=2)),
    "exponential": (dict(rate=_f(3, low=0.5, high=2)),
                    lambda m, **p: m.Exponential(**p), _f(2, 3, low=0.1, high=3)),
    "uniform": (dict(low=_f(3, low=-2, high=-1), high=_f(3, low=1, high=2)),
                lambda m, **p: m.Uniform(**p), _f(2, 3, low=-0.9, high=0.9)),
    "bernoulli_probs": (dict(probs=_f(3, low=0.1, high=0.9)),
                        lambda m, **p: m.Bernoulli(**p),
                        RNG.integers(0, 2, (2, 3)).astype(np.float32)),
    "bernoulli_logits": (dict(logits=_f(2, 3, low=-2, high=2)),
                         lambda m, **p: m.Bernoulli(**p),
                         RNG.integers(0, 2, (2, 3)).astype(np.float32)),
    "categorical_probs": (dict(probs=_f(2, 4, low=0.1, high=1)),
                          lambda m, **p: m.Categorical(**p), RNG.integers(0, 4, (5, 2))),
    "categorical_logits": (dict(logits=_f(2, 4, low=-2, high=2)),
                           lambda m, **p: m.Categorical(**p), RNG.integers(0, 4, (5, 1))),
    "onehot": (dict(logits=_f(3, 4, low=-2, high=2)),
               lambda m, **p: m.OneHotCategorical(**p), _onehot(2, 3, 4)),
    "mvn_scale_tril": (dict(loc=_f(3), scale_tril=_tril(2, 3, 3)),
                       lambda m, **p: m.MultivariateNormal(**p), _f(4, 2, 3, low=-2, high=2)),
    "mvn_covariance": (dict(loc=_f(2, 3), covariance_matrix=_spd(3, 3)),
                       lambda m, **p: m.MultivariateNormal(**p), _f(4, 1, 3, low=-2, high=2)),
    "mvn_precision": (dict(loc=_f(3), precision_matrix=_spd(2, 3, 3)),
                      lambda m, **p: m.MultivariateNormal(**p), _f(2, 3, low=-2, high=2)),
    "independent": (dict(loc=_f(2, 3), scale=_f(2, 3, low=0.5, high=2)),
                    lambda m, **p: m.Independent(m.Normal(**p), 1), _f(4, 2, 3)),
}
DISCRETE_INT = {"categorical_probs", "categorical_logits"}


def _both(params: dict[str, np.ndarray], make):
    ours = {k: dlg.tensor(v, requires_grad=True) for k, v in params.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    return make(D, **ours), make(TD, **theirs), ours, theirs


def _value(name: str, value: np.ndarray):
    if name in DISCRETE_INT:
        return dlg.tensor(value), torch.tensor(value)
    return dlg.tensor(value), torch.tensor(value)


def _close_grads(ours, theirs, out, expected, rtol=2e-4, atol=2e-5):
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=rtol,
                               atol=atol)
    weights = RNG.standard_normal(tuple(expected.shape)).astype(np.float32)
    (out * dlg.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for k in theirs:
        if theirs[k].grad is None:  # no path to this parameter (entropy and loc)
            assert ours[k].grad is None or not ours[k].grad.numpy().any(), k
            continue
        np.testing.assert_allclose(ours[k].grad.numpy(), theirs[k].grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=k)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_prob_and_its_gradient(name):
    params, make, value = CASES[name]
    p, q, ours, theirs = _both(params, make)
    assert tuple(p.batch_shape) == tuple(q.batch_shape)
    assert tuple(p.event_shape) == tuple(q.event_shape)
    v, tv = _value(name, value)
    _close_grads(ours, theirs, p.log_prob(v), q.log_prob(tv))


@pytest.mark.parametrize("name", sorted(CASES))
def test_entropy_moments_and_gradient(name):
    params, make, _ = CASES[name]
    p, q, ours, theirs = _both(params, make)
    for attr in ("mean", "variance", "stddev", "mode"):
        np.testing.assert_allclose(getattr(p, attr).detach().numpy(),
                                   getattr(q, attr).detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=attr)
    _close_grads(ours, theirs, p.entropy(), q.entropy())


@pytest.mark.parametrize("name", ["normal", "laplace", "exponential", "uniform"])
def test_cdf_icdf_and_gradients(name):
    params, make, value = CASES[name]
    p, q, ours, theirs = _both(params, make)
    _close_grads(ours, theirs, p.cdf(dlg.tensor(value)), q.cdf(torch.tensor(value)))
    u = _f(2, 3, 4 if name in ("normal", "laplace") else 3, low=0.05, high=0.95)
    p, q, ours, theirs = _both(params, make)
    _close_grads(ours, theirs, p.icdf(dlg.tensor(u)), q.icdf(torch.tensor(u)), rtol=1e-3)


def test_normal_icdf_gradient_wrt_the_probability():
    u = _f(5, low=0.02, high=0.98)
    ours, theirs = dlg.tensor(u, requires_grad=True), torch.tensor(u, requires_grad=True)
    x, tx = D.Normal(0.5, 2.0).icdf(ours), TD.Normal(0.5, 2.0).icdf(theirs)
    np.testing.assert_allclose(x.detach().numpy(), tx.detach().numpy(), rtol=1e-5, atol=1e-5)
    x.sum().backward(), tx.sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4)


def test_probs_and_logits_convert_both_ways():
    logits = _f(2, 4)
    p, q = D.Categorical(logits=dlg.tensor(logits)), TD.Categorical(logits=torch.tensor(logits))
    np.testing.assert_allclose(p.probs.numpy(), q.probs.numpy(), rtol=1e-6)
    b, c = D.Bernoulli(probs=dlg.tensor([0.2, 0.7])), TD.Bernoulli(probs=torch.tensor([0.2, 0.7]))
    np.testing.assert_allclose(b.logits.numpy(), c.logits.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(b.enumerate_support().numpy(), c.enumerate_support().numpy())


KL_CASES = {
    "normal": (lambda m, a, b: (m.Normal(a[0], b[0].exp()), m.Normal(a[1], b[1].exp())),
               (3, 1), (4,)),
    "categorical": (lambda m, a, b: (m.Categorical(logits=a), m.Categorical(logits=b)),
                    (2, 5), (5,)),
    "bernoulli": (lambda m, a, b: (m.Bernoulli(logits=a), m.Bernoulli(logits=b)), (2, 3), (2, 3)),
    "mvn": (lambda m, a, b: (m.MultivariateNormal(a[0], scale_tril=b[0].tril()),
                             m.MultivariateNormal(a[1], covariance_matrix=b[1])),
            (2, 3), None),
    "independent": (lambda m, a, b: (m.Independent(m.Normal(a[0], b[0].exp()), 2),
                                     m.Independent(m.Normal(a[1], b[1].exp()), 2)),
                    (2, 3, 4), (2, 3, 4)),
    "exponential": (lambda m, a, b: (m.Exponential(a.exp()), m.Exponential(b.exp())),
                    (3,), (3,)),
    "laplace": (lambda m, a, b: (m.Laplace(a[0], b[0].exp()), m.Laplace(a[1], b[1].exp())),
                (3,), (3,)),
}


@pytest.mark.parametrize("name", sorted(KL_CASES))
def test_kl_divergence_and_its_gradient(name):
    make, a_shape, b_shape = KL_CASES[name]
    if name == "mvn":  # a: two locs; b: a lower factor (made positive on the diagonal), an SPD
        a = _f(2, *a_shape)
        b = np.stack([_tril(2, 3, 3), np.broadcast_to(_spd(3, 3), (2, 3, 3))])
    elif name in ("categorical", "bernoulli", "exponential"):
        a, b = _f(*a_shape), _f(*b_shape)
    else:
        a, b = _f(2, *a_shape), _f(2, *b_shape)
    ours = {"a": dlg.tensor(a, requires_grad=True), "b": dlg.tensor(b, requires_grad=True)}
    theirs = {"a": torch.tensor(a, requires_grad=True), "b": torch.tensor(b, requires_grad=True)}
    out = D.kl_divergence(*make(D, ours["a"], ours["b"]))
    expected = TD.kl_divergence(*make(TD, theirs["a"], theirs["b"]))
    assert tuple(out.shape) == tuple(expected.shape)
    _close_grads(ours, theirs, out, expected)


def test_kl_with_zero_probabilities_is_torchs():
    p, q = [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]
    for a, b in ((p, q), (q, p)):
        out = D.kl_divergence(D.Categorical(probs=dlg.tensor(a)), D.Categorical(
            probs=dlg.tensor(b)))
        expected = TD.kl_divergence(TD.Categorical(probs=torch.tensor(a)),
                                    TD.Categorical(probs=torch.tensor(b)))
        assert out.item() == expected.item()
    out = D.kl_divergence(D.Bernoulli(dlg.tensor([0.0, 1.0, 0.3])),
                          D.Bernoulli(dlg.tensor([0.0, 0.5, 1.0])))
    expected = TD.kl_divergence(TD.Bernoulli(torch.tensor([0.0, 1.0, 0.3])),
                                TD.Bernoulli(torch.tensor([0.0, 0.5, 1.0])))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5)


def test_register_kl_dispatches_to_the_most_specific_pair():
    class Wide(D.Normal):
        pass

    @D.register_kl(Wide, D.Normal)
    def _kl_wide(p, q):
        return dlg.tensor(-1.0)

    assert D.kl_divergence(Wide(0.0, 1.0), D.Normal(0.0, 1.0)).item() == -1.0
    assert D.kl_divergence(D.Normal(0.0, 1.0), Wide(0.0, 1.0)).item() == 0.0
    with pytest.raises(NotImplementedError, match="No KL"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Exponential(1.0))


@pytest.mark.parametrize("name", ["normal", "categorical_logits", "mvn_scale_tril", "onehot",
                                  "bernoulli_probs", "independent", "uniform"])
def test_expand_is_torchs(name):
    params, make, _ = CASES[name]
    p, q, _, _ = _both(params, make)
    shape = (5,) + tuple(q.batch_shape)
    pe, qe = p.expand(shape), q.expand(torch.Size(shape))
    assert tuple(pe.batch_shape) == tuple(qe.batch_shape) == shape
    assert tuple(pe.sample().shape) == tuple(qe.sample().shape)
    v = qe.sample((2,)).numpy()
    np.testing.assert_allclose(pe.log_prob(dlg.tensor(v)).detach().numpy(),
                               qe.log_prob(torch.tensor(v)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(dlg.DlgValueError, match="cannot be expanded"):
        p.expand((7,) * (len(shape) + 1))


BAD = [
    (lambda: D.Normal(dlg.tensor([0.0]), dlg.tensor([-1.0])),
     r"Expected parameter scale \(Tensor of shape \(1,\)\) of distribution Normal"),
    (lambda: D.Bernoulli(probs=dlg.tensor([1.5])), "constraint Interval"),
    (lambda: D.Categorical(probs=dlg.tensor([0.5, -0.5, 1.0])), "Simplex"),
    (lambda: D.Categorical(dlg.tensor([0.5, 0.5]), logits=dlg.tensor([0.0, 0.0])),
     "Either `probs` or `logits`"),
    (lambda: D.Categorical(probs=dlg.tensor(0.5)), "at least one-dimensional"),
    (lambda: D.Exponential(dlg.tensor([1.0])).log_prob(dlg.tensor([-1.0])),
     r"to be within the support \(GreaterThanEq\(lower_bound=0.0\)\)"),
    (lambda: D.Bernoulli(dlg.tensor([0.5])).log_prob(dlg.tensor([0.5])), "support"),
    (lambda: D.Categorical(logits=dlg.zeros(3)).log_prob(dlg.tensor([3])), "IntegerInterval"),
    (lambda: D.Normal(dlg.zeros(3), 1.0).log_prob(dlg.zeros(2)), "not broadcastable"),
    (lambda: D.MultivariateNormal(dlg.zeros(2), scale_tril=dlg.eye(2)).log_prob(dlg.zeros(3)),
     "right-most size of value must match event_shape"),
    (lambda: D.Uniform(1.0, 0.0), "Uniform is not defined when low>= high"),
    (lambda: D.MultivariateNormal(dlg.zeros(2), covariance_matrix=dlg.tensor(
        [[1.0, 2.0], [2.0, 1.0]])), "PositiveDefinite"),
    (lambda: D.MultivariateNormal(dlg.zeros(2), scale_tril=dlg.eye(2), covariance_matrix=dlg.eye(
        2)), "Exactly one of"),
    (lambda: D.MultivariateNormal(dlg.zeros(2), scale_tril=dlg.ones(2)), "two-dimensional"),
    (lambda: D.MultivariateNormal(dlg.zeros(2), scale_tril=dlg.ones(2, 2)), "LowerCholesky"),
    (lambda: D.Independent(D.Normal(dlg.zeros(3), 1.0), 2), "reinterpreted_batch_ndims <="),
    (lambda: D.Normal(0.0, 1.0).sample("x"), "sample_shape must be"),
    (lambda: D.Normal("a", 1.0), "numbers or dlg tensors"),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_arguments_raise_dlg_errors(make, message):
    with pytest.raises(dlg.DlgError, match=message):
        make()


@pytest.mark.filterwarnings("ignore:invalid value")
def test_validate_args_false_skips_the_checks():
    p = D.Normal(dlg.tensor([0.0]), dlg.tensor([-1.0]), validate_args=False)
    assert np.isnan(p.log_prob(dlg.tensor([0.0])).numpy()).all()
    assert D.Exponential(1.0, validate_args=False).log_prob(dlg.tensor(-1.0)).item() == 1.0
    D.Distribution.set_default_validate_args(False)
    try:
        D.Normal(0.0, -1.0)
    finally:
        D.Distribution.set_default_validate_args(True)
    with pytest.raises(dlg.DlgValueError):
        D.Normal(0.0, -1.0)


def _mixture(m, logits, loc, scale, event: bool):
    comp = m.Normal(loc, scale)
    return m.MixtureSameFamily(m.Categorical(logits=logits),
                               m.Independent(comp, 1) if event else comp)


@pytest.mark.parametrize("event", [False, True], ids=["normal", "independent_normal"])
def test_mixture_same_family_is_torchs(event):
    """log_prob (a logsumexp over the components) and its gradients to the mixture and the
    components, mean, variance, cdf, expand and the sample shapes, as torch's."""
    shape = (2, 3, 4) if event else (2, 3)
    params = dict(logits=_f(2, 3, low=-2, high=2), loc=_f(*shape),
                  scale=_f(*shape, low=0.5, high=2))
    make = lambda m, **p: _mixture(m, event=event, **p)
    p, q, ours, theirs = _both(params, make)
    assert (tuple(p.batch_shape), tuple(p.event_shape)) == (tuple(q.batch_shape),
                                                            tuple(q.event_shape))
    value = _f(5, 2, *((4,) if event else ()), low=-2, high=2)
    _close_grads(ours, theirs, p.log_prob(dlg.tensor(value)), q.log_prob(torch.tensor(value)))
    for attr in ("mean", "variance", "stddev"):
        np.testing.assert_allclose(getattr(p, attr).detach().numpy(),
                                   getattr(q, attr).detach().numpy(), rtol=1e-5, atol=1e-6)
    if not event:
        np.testing.assert_allclose(p.cdf(dlg.tensor(value)).detach().numpy(),
                                   q.cdf(torch.tensor(value)).detach().numpy(), rtol=1e-5)
    assert tuple(p.sample((7,)).shape) == tuple(q.sample((7,)).shape)
    pe, qe = p.expand((4, 2)), q.expand(torch.Size((4, 2)))
    assert tuple(pe.sample().shape) == tuple(qe.sample().shape)
    v = qe.sample((2,)).numpy()
    np.testing.assert_allclose(pe.log_prob(dlg.tensor(v)).detach().numpy(),
                               qe.log_prob(torch.tensor(v)).detach().numpy(), rtol=1e-5)


def test_mixture_same_family_samples_follow_the_mixture():
    """A well separated two-component mixture: the samples split by the mixture weights."""
    dlg.manual_seed(3)
    p = D.MixtureSameFamily(D.Categorical(probs=dlg.tensor([0.25, 0.75])),
                            D.Normal(dlg.tensor([-10.0, 10.0]), dlg.tensor([0.5, 0.5])))
    x = p.sample((4000,)).numpy()
    assert abs((x > 0).mean() - 0.75) < 0.03
    assert np.abs(np.abs(x) - 10).max() < 3


@pytest.mark.parametrize("make,message", [
    (lambda: D.MixtureSameFamily(D.Normal(0.0, 1.0), D.Normal(dlg.zeros(2), 1.0)),
     "needs to be an instance of dlg.distributions.Categorical"),
    (lambda: D.MixtureSameFamily(D.Categorical(logits=dlg.zeros(3)),
                                 D.Normal(dlg.zeros(2), 1.0)),
     r"`mixture_distribution component` \(3\) does not equal"),
    (lambda: D.MixtureSameFamily(D.Categorical(logits=dlg.zeros(2, 3)),
                                 D.Normal(dlg.zeros(4, 3), 1.0)), "is not compatible"),
])
def test_mixture_same_family_bad_arguments(make, message):
    with pytest.raises(dlg.DlgError, match=message):
        make()
