"""dlg.distributions' samples against torch.distributions: shapes, dtypes and moments over many
draws (fixed seed, loose tolerance), rsample's gradients, and whole programs: a REINFORCE step
fed torch's sampled actions, a VAE's KL term, a traced and compiled log-likelihood."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.distributions as D

torch = pytest.importorskip("torch")
TD = torch.distributions

LOC, SCALE = np.array([0.5, -1.0], np.float32), np.array([1.0, 2.0], np.float32)
PROBS = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], np.float32)
TRIL = np.array([[1.0, 0.0], [0.5, 2.0]], np.float32)

MAKERS = {
    "normal": lambda m, t: m.Normal(t(LOC), t(SCALE)),
    "laplace": lambda m, t: m.Laplace(t(LOC), t(SCALE)),
    "uniform": lambda m, t: m.Uniform(t(LOC), t(LOC + SCALE)),
    "exponential": lambda m, t: m.Exponential(t(SCALE)),
    "bernoulli": lambda m, t: m.Bernoulli(probs=t(PROBS)),
    "categorical": lambda m, t: m.Categorical(probs=t(PROBS)),
    "onehot": lambda m, t: m.OneHotCategorical(probs=t(PROBS)),
    "mvn": lambda m, t: m.MultivariateNormal(t(LOC), scale_tril=t(TRIL)),
    "independent": lambda m, t: m.Independent(m.Normal(t(LOC), t(SCALE)), 1),
}
N = 20000


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_samples_have_torchs_shape_dtype_and_moments(name):
    p, q = MAKERS[name](D, dlg.tensor), MAKERS[name](TD, torch.tensor)
    dlg.manual_seed(0)
    ours, theirs = p.sample((N,)), q.sample((N,))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype.torch_name == str(theirs.dtype).removeprefix("torch.")
    assert tuple(p.sample().shape) == tuple(q.sample().shape)
    assert tuple(p.sample((2, 3)).shape) == tuple(q.sample((2, 3)).shape)
    a = ours.numpy().astype(np.float64)
    b = theirs.numpy().astype(np.float64)
    np.testing.assert_allclose(a.mean(0), b.mean(0), atol=0.06)
    np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.05, atol=0.02)
    if name == "mvn":  # the correlation L L^T shows in the samples
        np.testing.assert_allclose(np.cov(a.T), TRIL @ TRIL.T, rtol=0.06, atol=0.06)


def test_categorical_never_draws_a_zero_probability_class():
    dlg.manual_seed(1)
    s = D.Categorical(probs=dlg.tensor([0.0, 0.5, 0.0, 0.5, 0.0])).sample((5000,)).numpy()
    assert set(np.unique(s)) == {1, 3}


def test_the_seed_fixes_the_samples_and_sample_cuts_the_graph():
    loc = dlg.tensor(LOC, requires_grad=True)
    dlg.manual_seed(3)
    first = D.Normal(loc, 1.0).sample((4,))
    dlg.manual_seed(3)
    second = D.Normal(loc, 1.0).rsample((4,))
    np.testing.assert_array_equal(first.numpy(), second.detach().numpy())
    assert not first.requires_grad and second.requires_grad
    with pytest.raises(NotImplementedError, match="no rsample"):
        D.Categorical(probs=dlg.tensor(PROBS)).rsample()


@pytest.mark.parametrize("name", ["normal", "laplace", "uniform", "mvn", "independent"])
def test_rsample_passes_the_location_gradient(name):
    """d/dloc mean(rsample) = 1 per element: samples are loc plus noise."""
    loc = dlg.tensor(LOC, requires_grad=True)
    p = MAKERS[name](D, lambda a: loc if a is LOC else dlg.tensor(a))
    if name == "uniform":  # low = loc, high = loc + scale: both move with loc
        p = D.Uniform(loc, loc + dlg.tensor(SCALE))
    p.rsample((100,)).mean(0).sum().backward()
    np.testing.assert_allclose(loc.grad.numpy(), np.ones(2), rtol=1e-5)


def test_rsample_scale_gradient_is_the_noise():
    scale = dlg.tensor(SCALE, requires_grad=True)
    dlg.manual_seed(4)
    x = D.Normal(dlg.tensor(LOC), scale).rsample((50,))
    x.sum().backward()
    noise = (x.detach().numpy() - LOC) / SCALE
    np.testing.assert_allclose(scale.grad.numpy(), noise.sum(0), rtol=1e-4, atol=1e-4)
    rate = dlg.tensor(SCALE, requires_grad=True)
    y = D.Exponential(rate).rsample((50,))
    y.sum().backward()  # y = E / rate: dy/drate = -y / rate
    np.testing.assert_allclose(rate.grad.numpy(), (-y.detach().numpy() / SCALE).sum(0),
                               rtol=1e-4)


def _twin_linear(n_in: int, n_out: int):
    torch.manual_seed(0)
    theirs = torch.nn.Linear(n_in, n_out)
    ours = dlg.nn.Linear(n_in, n_out)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    return ours, theirs


def test_reinforce_step_matches_torch_on_the_same_actions():
    ours, theirs = _twin_linear(4, 3)
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    advantage = np.random.default_rng(1).standard_normal(8).astype(np.float32)
    policy = D.Categorical(logits=ours(dlg.tensor(x)))
    actions = policy.sample()
    assert actions.dtype == dlg.int64 and tuple(actions.shape) == (8,)
    loss = (-policy.log_prob(actions) * dlg.tensor(advantage)).mean()
    loss = loss - 0.01 * policy.entropy().mean()
    loss.backward()
    tpolicy = TD.Categorical(logits=theirs(torch.tensor(x)))
    tloss = (-tpolicy.log_prob(torch.tensor(actions.numpy())) * torch.tensor(advantage)).mean()
    tloss = tloss - 0.01 * tpolicy.entropy().mean()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(dict(ours.named_parameters())[name].grad.numpy(),
                                   param.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


def test_vae_kl_term_matches_torch():
    ours, theirs = _twin_linear(5, 6)
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)

    def kl(module, lib, tensor):
        mu, logvar = module(tensor(x)).chunk(2, dim=-1)
        posterior = lib.Normal(mu, (0.5 * logvar).exp())
        prior = lib.Normal(mu.detach() * 0, 1.0)
        return lib.kl_divergence(posterior, prior).sum(-1).mean(), posterior

    loss, posterior = kl(ours, D, dlg.tensor)
    tloss, _ = kl(theirs, TD, torch.tensor)
    z = posterior.rsample()
    (loss + z.pow(2).sum() * 0).backward()
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
    for name, param in theirs.named_parameters():
        np.testing.assert_allclose(dict(ours.named_parameters())[name].grad.numpy(),
                                   param.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


class _Likelihood(dlg.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = dlg.nn.Linear(4, 3)

    def forward(self, x):
        policy = D.Categorical(logits=self.fc(x))
        q = D.Independent(D.Normal(x, x.exp()), 1)
        prior = D.Independent(D.Normal(dlg.zeros_like(x), 1.0), 1)
        return (policy.entropy() + policy.log_prob(dlg.zeros(x.shape[0]).long())
                + D.kl_divergence(q, prior) + q.log_prob(x * 0.5))


def test_a_traced_and_compiled_program_gives_eager_values():
    net, x = _Likelihood(), dlg.randn(5, 4)
    exe = dlg.compile(net, x)
    np.testing.assert_allclose(exe(x.numpy()), net(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    other = dlg.randn(7, 4)  # the batch dim stayed symbolic
    np.testing.assert_allclose(exe(other.numpy()), net(other).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
