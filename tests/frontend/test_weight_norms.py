"""weight_norm, spectral_norm (old hooks and new parametrizations) and parametrize against torch:
state_dict keys, values and gradients of the originals, power iteration in training and none in
eval, remove_*, generic parametrizations with right_inverse, traced models, bad calls."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
from dlg.nn.utils import parametrizations, parametrize

torch = pytest.importorskip("torch")


def twins(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "linear":
        theirs, ours = torch.nn.Linear(5, 4), dlg.nn.Linear(5, 4)
        x = np.random.default_rng(seed).standard_normal((3, 5)).astype(np.float32)
    else:
        theirs, ours = torch.nn.Conv2d(2, 3, 3), dlg.nn.Conv2d(2, 3, 3)
        x = np.random.default_rng(seed).standard_normal((2, 2, 6, 6)).astype(np.float32)
    ours.load_state_dict(_to_dlg(theirs.state_dict()))
    return ours, theirs, x


def _to_dlg(state):
    return {k: dlg.tensor(v.detach().numpy()) for k, v in state.items()}


def close(a, b, rtol=1e-5):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol, atol=1e-6)


def check_step(ours, theirs, x):
    """The outputs, and every parameter's gradient of sum(y^2), by state_dict name."""
    y, t = ours(dlg.tensor(x)), theirs(torch.tensor(x))
    close(y, t)
    (y * y).sum().backward()
    (t * t).sum().backward()
    ps, qs = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert ps.keys() == qs.keys()
    for k in ps:
        close(ps[k].grad, qs[k].grad, rtol=1e-4)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_matches_torch(kind, dim):
    ours, theirs, x = twins(kind)
    dlg.nn.utils.weight_norm(ours, dim=dim)
    with pytest.warns(FutureWarning):
        torch.nn.utils.weight_norm(theirs, dim=dim)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        close(ours.state_dict()[k], v)
    check_step(ours, theirs, x)
    dlg.nn.utils.remove_weight_norm(ours)
    torch.nn.utils.remove_weight_norm(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    close(ours.weight, theirs.weight)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("dim", [0, None])
def test_parametrized_weight_norm_matches_torch(kind, dim):
    ours, theirs, x = twins(kind, 1)
    parametrizations.weight_norm(ours, dim=dim)
    torch.nn.utils.parametrizations.weight_norm(theirs, dim=dim)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        close(ours.state_dict()[k], v)
    check_step(ours, theirs, x)
    parametrize.remove_parametrizations(ours, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(theirs, "weight")
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert type(ours) is {"linear": dlg.nn.Linear, "conv": dlg.nn.Conv2d}[kind]
    close(ours.weight, theirs.weight)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("new_style", [False, True])
def test_spectral_norm_matches_torch(kind, new_style):
    ours, theirs, x = twins(kind, 2)
    if new_style:
        parametrizations.spectral_norm(ours, n_power_iterations=2)
        torch.nn.utils.parametrizations.spectral_norm(theirs, n_power_iterations=2)
    else:
        dlg.nn.utils.spectral_norm(ours, n_power_iterations=2)
        torch.nn.utils.spectral_norm(theirs, n_power_iterations=2)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(_to_dlg(theirs.state_dict()))  # torch's random u and v
    check_step(ours, theirs, x)  # training: u and v move
    for k, v in theirs.state_dict().items():
        close(ours.state_dict()[k], v, rtol=1e-4)
    ours.eval(), theirs.eval()
    before = {k: v.numpy().copy() for k, v in ours.state_dict().items()}
    close(ours(dlg.tensor(x)), theirs(torch.tensor(x)), rtol=1e-4)
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # eval: no power iteration


def test_spectral_norm_estimates_the_largest_singular_value():
    dlg.manual_seed(0)
    m = parametrizations.spectral_norm(dlg.nn.Linear(6, 4))
    m.eval()
    assert np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)[0] == pytest.approx(1.0,
                                                                                        rel=1e-3)


def test_remove_spectral_norm():
    ours, theirs, x = twins("linear", 3)
    dlg.nn.utils.spectral_norm(ours)
    torch.nn.utils.spectral_norm(theirs)
    ours.load_state_dict(_to_dlg(theirs.state_dict()))
    dlg.nn.utils.remove_spectral_norm(ours)
    torch.nn.utils.remove_spectral_norm(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    close(ours.weight, theirs.weight, rtol=1e-4)


def symmetric(m):
    class Symmetric(m.nn.Module):
        def forward(self, x):
            return x.triu() + x.triu(1).transpose(0, 1)

        def right_inverse(self, a):
            return a.triu()
    return Symmetric()


def scaled(m):
    class Scale(m.nn.Module):
        def forward(self, x):
            return x * 3.0

        def right_inverse(self, a):
            return a / 3.0
    return Scale()


def test_register_parametrization_chain_assign_and_remove():
    ours, theirs = dlg.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    ours.load_state_dict(_to_dlg(theirs.state_dict()))
    for m, mod in ((dlg, ours), (torch, theirs)):
        m.nn.utils.parametrize.register_parametrization(mod, "weight", symmetric(m))
        m.nn.utils.parametrize.register_parametrization(mod, "weight", scaled(m))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert parametrize.is_parametrized(ours) and parametrize.is_parametrized(ours, "weight")
    assert not parametrize.is_parametrized(ours, "bias")
    close(ours.parametrizations.weight.original, theirs.parametrizations.weight.original)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    check_step(ours, theirs, x)
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    ours.weight, theirs.weight = dlg.tensor(w), torch.tensor(w)  # through right_inverse
    close(ours.parametrizations.weight.original, theirs.parametrizations.weight.original)
    close(ours.weight, theirs.weight)
    parametrize.remove_parametrizations(ours, "weight", leave_parametrized=False)
    torch.nn.utils.parametrize.remove_parametrizations(theirs, "weight", leave_parametrized=False)
    assert type(ours) is dlg.nn.Linear and list(ours.state_dict()) == list(theirs.state_dict())
    close(ours.weight, theirs.weight)


def test_parametrized_module_traces():
    net = dlg.nn.Sequential(dlg.nn.Linear(4, 6), dlg.nn.Tanh(), dlg.nn.Linear(6, 2))
    parametrizations.weight_norm(net[0])
    dlg.nn.utils.weight_norm(net[2])
    m = dlg.trace(net, dlg.randn(3, 4))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(m(x), net(dlg.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, error", [
    (lambda: dlg.nn.utils.weight_norm(dlg.nn.ReLU()), dlg.DlgValueError),
    (lambda: dlg.nn.utils.remove_weight_norm(dlg.nn.Linear(2, 2)), dlg.DlgValueError),
    (lambda: dlg.nn.utils.spectral_norm(dlg.nn.Linear(2, 2), n_power_iterations=0),
     dlg.DlgValueError),
    (lambda: parametrize.register_parametrization(dlg.nn.Linear(2, 2), "nope", scaled(dlg)),
     dlg.DlgValueError),
    (lambda: parametrize.remove_parametrizations(dlg.nn.Linear(2, 2), "weight"),
     dlg.DlgValueError),
])
def test_bad_calls(call, error):
    with pytest.raises(error):
        call()


def test_parametrize_cached_computes_each_tensor_once_per_block():
    """The parametrizations tutorial's `with P.cached(): output = model(inputs)`: inside the
    block a parametrized weight is computed at its first read and reused; after it, each read
    computes it again, as torch."""
    import dlg.nn.utils.parametrize as P

    calls = []

    class Skew(dlg.nn.Module):
        def forward(self, X):
            calls.append(1)
            A = X.triu(1)
            return A - A.transpose(-1, -2)

    layer = dlg.nn.Linear(3, 3)
    P.register_parametrization(layer, "weight", Skew())
    calls.clear()
    with P.cached():
        first = layer.weight
        with P.cached():  # nested blocks share the cache
            assert layer.weight is first
        assert layer.weight is first
        layer(dlg.ones(2, 3)).sum().backward()
    assert len(calls) == 1
    assert layer.parametrizations.weight.original.grad is not None
    assert layer.weight is not first and len(calls) == 2


def test_remove_parametrizations_keeps_the_original_and_buffers_stay_buffers():
    """torch's remove_parametrizations puts the original tensor back (set_ to the parametrized
    value), so an optimizer made before still trains the module's weight; a parametrized buffer's
    original is a buffer, out of parameters()."""
    for lib in (torch, dlg):
        P = lib.nn.utils.parametrize

        class Sym(lib.nn.Module):
            def forward(self, X):
                return X.triu() + X.triu(1).transpose(-1, -2)

        layer = lib.nn.Linear(3, 3)
        P.register_parametrization(layer, "weight", Sym())
        original = layer.parametrizations.weight.original
        opt = lib.optim.SGD(layer.parameters(), lr=0.5)
        P.remove_parametrizations(layer, "weight")
        assert layer.weight is original and type(layer.weight) is lib.nn.Parameter
        assert (layer.weight - layer.weight.T).abs().max().item() == 0
        layer(lib.ones(1, 3)).sum().backward()
        before = layer.weight.detach().clone()
        opt.step()
        assert not lib.equal(layer.weight.detach(), before)
        bn = lib.nn.BatchNorm1d(3)
        P.register_parametrization(bn, "running_mean", lib.nn.Identity())
        assert sorted(dict(bn.named_parameters())) == ["bias", "weight"]
        assert "parametrizations.running_mean.original" in dict(bn.named_buffers())
        P.remove_parametrizations(bn, "running_mean")
        assert "running_mean" in dict(bn.named_buffers())
