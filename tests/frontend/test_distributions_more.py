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
