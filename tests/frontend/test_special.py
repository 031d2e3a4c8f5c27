"""dlg.special against torch.special: values (with the domain edges) and gradients."""

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

X = np.array([-30.0, -8.0, -5.5, -1.0, -0.2, 0.0, 0.3, 1.0, 2.5, 7.0, np.nan], np.float32)
P = np.array([-0.1, 0.0, 0.01, 0.3, 0.5, 0.9, 1.0, 1.2], np.float32)
UNARY = [("expit", X), ("gammaln", np.abs(X) + 0.5), ("psi", np.abs(X) + 0.5), ("entr", X),
         ("ndtr", X), ("log_ndtr", X), ("ndtri", P), ("erfinv", P * 2 - 1), ("sinc", X),
         ("i0", X / 4), ("exp2", X / 4), ("expm1", X / 4), ("log1p", np.abs(X)),
         ("logit", P), ("round", X * 1.37)]


@pytest.mark.parametrize("name, x", UNARY, ids=[n for n, _ in UNARY])
def test_special_unary_as_torch(name, x):
    ours = getattr(dlg.special, name)(dlg.tensor(x)).numpy()
    theirs = getattr(torch.special, name)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["entr", "ndtr", "log_ndtr", "expit"])
def test_special_gradients_as_torch(name):
    x = np.array([-7.0, -1.0, 0.3, 1.0, 2.5], np.float32)
    ours = dlg.tensor(x, requires_grad=True)
    getattr(dlg.special, name)(ours).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    getattr(torch.special, name)(theirs).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_special_binary_and_reductions_as_torch():
    x = np.array([[0.0, 0.0, 1.5], [2.0, -1.0, 3.0]], np.float32)
    y = np.array([np.nan, 0.5, -1.0], np.float32)
    for name in ["xlogy", "xlog1py"]:
        ours = getattr(dlg.special, name)(dlg.tensor(x), dlg.tensor(y)).numpy()
        theirs = getattr(torch.special, name)(torch.tensor(x), torch.tensor(y)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for name in ["softmax", "log_softmax", "logsumexp"]:
        ours = getattr(dlg.special, name)(dlg.tensor(x), 1).numpy()
        np.testing.assert_allclose(ours, getattr(torch.special, name)(torch.tensor(x), 1).numpy(),
                                   rtol=1e-5)
    assert dlg.special.polygamma(2, dlg.tensor([1.5])).item() == pytest.approx(
        torch.special.polygamma(2, torch.tensor([1.5])).item(), rel=1e-5)


def test_special_missing_function_names_itself():
    assert not hasattr(dlg.special, "zeta")
    with pytest.raises(dlg.DlgAttributeError, match=r"torch\.special\.bessel_j0 is not "
                                                    r"implemented in dlg"):
        dlg.special.bessel_j0(dlg.ones(2))
