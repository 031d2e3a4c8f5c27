"""dlg.nn.utils.prune against torch.nn.utils.prune: masks, state_dict names and order, forward
values and gradients after L1, Ln-structured, iterative (PruningContainer), global and custom
pruning and after `remove`; the random methods by what their masks must be; a pruned model
compiled; torch's errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn.utils.prune as dprune

torch = pytest.importorskip("torch")
tprune = pytest.importorskip("torch.nn.utils.prune")
R = np.random.default_rng(0)


def net(lib):
    return lib.nn.Sequential(lib.nn.Conv2d(2, 4, 3), lib.nn.ReLU(), lib.nn.Flatten(),
                             lib.nn.Linear(16, 3))


def pair():
    torch.manual_seed(0)
    theirs, ours = net(torch), net(dlg)
    ours.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                          theirs.state_dict().items()})
    return ours, theirs


def same(ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k].numpy(), v.numpy(), rtol=1e-6,
                                   err_msg=k)
    x = R.standard_normal((2, 2, 4, 4)).astype(np.float32)
    out, want = ours(dlg.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    out.square().sum().backward()
    want.square().sum().backward()
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("prune", [
    lambda P, m: P.l1_unstructured(m[0], "weight", amount=0.3),
    lambda P, m: P.l1_unstructured(m[3], "weight", amount=7),
    lambda P, m: P.ln_structured(m[0], "weight", amount=0.5, n=2, dim=0),
    lambda P, m: P.ln_structured(m[3], "weight", amount=2, n=1, dim=1),
    lambda P, m: (P.l1_unstructured(m[0], "weight", amount=0.3),
                  P.ln_structured(m[0], "weight", amount=1, n=2, dim=0),
                  P.l1_unstructured(m[0], "weight", amount=5)),
    lambda P, m: P.global_unstructured([(m[0], "weight"), (m[0], "bias"), (m[3], "weight")],
                                       pruning_method=P.L1Unstructured, amount=0.4),
    lambda P, m: (P.l1_unstructured(m[3], "weight", amount=0.2),
                  P.global_unstructured([(m[0], "weight"), (m[3], "weight")],
                                        pruning_method=P.L1Unstructured, amount=20)),
    lambda P, m: P.custom_from_mask(m[3], "bias", mask=m[3].bias > 0),
    lambda P, m: P.l1_unstructured(m[0], "weight", amount=0.5,
                                   importance_scores=m[0].weight.detach().flip(0)),
    lambda P, m: P.identity(m[0], "weight"),
], ids=["l1", "l1_count", "ln_dim0", "ln_dim1", "iterative", "global", "global_after_l1",
        "custom", "importance_scores", "identity"])
def test_pruning_matches_torch(prune):
    ours, theirs = pair()
    prune(dprune, ours)
    prune(tprune, theirs)
    same(ours, theirs)
    assert dprune.is_pruned(ours)
    ours.zero_grad()
    theirs.zero_grad()
    for m, P in ((ours, dprune), (theirs, tprune)):  # made permanent
        for module in (m[0], m[3]):
            for name in ("weight", "bias"):
                if hasattr(module, name + "_orig"):
                    P.remove(module, name)
    same(ours, theirs)
    assert not dprune.is_pruned(ours)


def test_random_pruning_keeps_its_counts_and_slices():
    m = dlg.nn.Linear(10, 6)
    dprune.random_unstructured(m, "weight", amount=0.25)
    assert int((m.weight_mask == 0).sum()) == 15
    np.testing.assert_array_equal(m.weight.detach().numpy(),
                                  (m.weight_orig * m.weight_mask).detach().numpy())
    dprune.random_structured(m, "weight", amount=2, dim=0)
    rows = (m.weight_mask.sum(1) == 0).numpy()
    assert rows.sum() >= 2 and int((m.weight_mask == 0).sum()) >= 15
    dlg.manual_seed(3)
    a = dprune.RandomUnstructured(0.5).compute_mask(dlg.ones(20), dlg.ones(20))
    dlg.manual_seed(3)
    b = dprune.RandomUnstructured(0.5).compute_mask(dlg.ones(20), dlg.ones(20))
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_pruned_model_trains_compiled_and_its_zeros_stay():
    ours, theirs = pair()
    for m, P in ((ours, dprune), (theirs, tprune)):
        P.l1_unstructured(m[3], "weight", amount=0.5)
    compiled = dlg.compile(ours)
    opt_a = dlg.optim.SGD(ours.parameters(), lr=0.1)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1)
    x = R.standard_normal((3, 2, 4, 4)).astype(np.float32)
    for _ in range(3):
        for model, opt, lib in ((compiled, opt_a, dlg), (theirs, opt_t, torch)):
            opt.zero_grad()
            model(lib.tensor(x)).square().mean().backward()
            opt.step()
    np.testing.assert_allclose(ours[3].weight_orig.detach().numpy(),
                               theirs[3].weight_orig.detach().numpy(), rtol=1e-5, atol=1e-6)
    out = compiled(dlg.tensor(x))
    np.testing.assert_allclose(out.detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert (ours[3].weight.detach().numpy()[ours[3].weight_mask.numpy() == 0] == 0).all()


@pytest.mark.parametrize("call, error", [
    (lambda: dprune.l1_unstructured(dlg.nn.Linear(2, 2), "weight", amount=1.5), "amount=1.5"),
    (lambda: dprune.l1_unstructured(dlg.nn.Linear(2, 2), "weight", amount=-1), "amount=-1"),
    (lambda: dprune.l1_unstructured(dlg.nn.Linear(2, 2), "weight", amount="a"),
     "Invalid type for amount"),
    (lambda: dprune.l1_unstructured(dlg.nn.Linear(2, 2), "weight", amount=5),
     "should be smaller than the number of parameters"),
    (lambda: dprune.ln_structured(dlg.nn.Linear(2, 2), "bias", amount=1, n=2, dim=0),
     "Structured pruning can only be applied to multidimensional"),
    (lambda: dprune.remove(dlg.nn.Linear(2, 2), "weight"), "has to be pruned before"),
    (lambda: dprune.global_unstructured([(dlg.nn.Linear(2, 2), "weight")],
                                        pruning_method=dprune.LnStructured, amount=1, n=2),
     "Only \"unstructured\""),
])
def test_bad_calls_raise_like_torch(call, error):
    with pytest.raises(dlg.DlgError, match=error):
        call()
