"""dlg.nn.init's in-place initialisers and dlg.nn.utils' parameter vectors, rnn.pad_sequence and
conv/linear + batch norm fusion, against torch."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name, args, shape", [
    ("eye_", (), (3, 4)), ("dirac_", (2,), (4, 3, 3, 3)), ("trunc_normal_", (0.0, 0.02), (8, 8)),
    ("orthogonal_", (), (4, 6)), ("sparse_", (0.5,), (4, 6))])
def test_init_functions_fill_in_place_as_torch(name, args, shape):
    ours = dlg.nn.Parameter(dlg.zeros(*shape))
    assert getattr(dlg.nn.init, name)(ours, *args) is ours
    theirs = getattr(torch.nn.init, name)(torch.zeros(shape), *args)
    assert ours.shape == tuple(theirs.shape) and ours.requires_grad
    if name in ("eye_", "dirac_"):
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.numpy())


def test_init_functions_follow_manual_seed():
    draws = []
    for _ in range(2):
        dlg.manual_seed(3)
        draws.append(dlg.nn.init.trunc_normal_(dlg.zeros(5), std=0.1).numpy().copy())
    np.testing.assert_array_equal(*draws)


def _nets():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    ours = dlg.nn.Sequential(dlg.nn.Linear(3, 4), dlg.nn.Linear(4, 2))
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def test_parameters_to_vector_and_back_as_torch():
    ours, theirs = _nets()
    v, tv = (dlg.nn.utils.parameters_to_vector(ours.parameters()),
             torch.nn.utils.parameters_to_vector(theirs.parameters()))
    np.testing.assert_array_equal(v.detach().numpy(), tv.detach().numpy())
    (v * dlg.arange(len(v), dtype=dlg.float32)).sum().backward()  # gradients reach each one
    (tv * torch.arange(len(tv), dtype=torch.float32)).sum().backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    new = np.linspace(-1, 1, len(v), dtype=np.float32)
    dlg.nn.utils.vector_to_parameters(dlg.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs.parameters())
    for (k, p), q in zip(ours.state_dict().items(), theirs.state_dict().values()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=k)
    with pytest.raises(dlg.DlgTypeError, match="expected a dlg tensor"):
        dlg.nn.utils.vector_to_parameters(new, ours.parameters())


@pytest.mark.parametrize("options", [
    {}, {"batch_first": True}, {"padding_value": -1.5, "padding_side": "left"},
    {"batch_first": True, "padding_side": "left"}])
@pytest.mark.parametrize("feature_shape", [(), (2,), (2, 3)])
def test_pad_sequence_as_torch(options, feature_shape):
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, *feature_shape)).astype(np.float32) for n in (3, 1, 4)]
    ours = [dlg.tensor(s, requires_grad=True) for s in seqs]
    theirs = [torch.tensor(s, requires_grad=True) for s in seqs]
    out = dlg.nn.utils.rnn.pad_sequence(ours, **options)
    tout = torch.nn.utils.rnn.pad_sequence(theirs, **options)
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    weights = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    (out * dlg.tensor(weights)).sum().backward()
    (tout * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_pad_sequence_errors():
    with pytest.raises(dlg.DlgValueError, match="padding_side must be 'left' or 'right'"):
        dlg.nn.utils.rnn.pad_sequence([dlg.ones(2)], padding_side="middle")
    with pytest.raises(dlg.DlgValueError, match="empty list"):
        dlg.nn.utils.rnn.pad_sequence([])


def _fusable(lib):
    torch.manual_seed(0)
    mods = [torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
            torch.nn.ConvTranspose2d(3, 4, 2, bias=False), torch.nn.BatchNorm2d(4),
            torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4)]
    if lib is dlg:
        ours = [dlg.nn.Conv2d(3, 4, 3), dlg.nn.BatchNorm2d(4),
                dlg.nn.ConvTranspose2d(3, 4, 2, bias=False), dlg.nn.BatchNorm2d(4),
                dlg.nn.Linear(5, 4), dlg.nn.BatchNorm1d(4)]
        for a, b in zip(ours, mods):
            a.load_state_dict({k: dlg.tensor(v.detach().numpy()) for k, v in
                               b.state_dict().items()})
        mods = ours
    rng = np.random.default_rng(1)
    for bn in mods[1::2]:
        with lib.no_grad():
            for name in ("running_mean", "running_var", "weight", "bias"):
                getattr(bn, name).copy_(lib.tensor(rng.uniform(0.5, 1.5, 4).astype(np.float32)))
    return [m.eval() for m in mods]


def test_conv_and_linear_batch_norm_fusion_as_torch():
    """fuse_conv_bn_eval (plain and transposed) and fuse_linear_bn_eval: the fused layer computes
    layer-then-norm, its parameters as torch's."""
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    results = []
    for lib in (torch, dlg):
        conv, bn, convt, bnt, linear, bnl = _fusable(lib)
        fuse = lib.nn.utils
        fused = [fuse.fuse_conv_bn_eval(conv, bn), fuse.fuse_conv_bn_eval(convt, bnt, True),
                 fuse.fuse_linear_bn_eval(linear, bnl)]
        inputs = [lib.tensor(x), lib.tensor(x), lib.tensor(x[:, 0, 0, :5].copy())]
        with lib.no_grad():
            outs = [f(i) for f, i in zip(fused, inputs)]
            np.testing.assert_allclose(outs[0].numpy(), bn(conv(inputs[0])).numpy(), rtol=1e-5,
                                       atol=1e-5)
        results.append(outs + [p.detach() for f in fused for p in f.parameters()])
        assert type(fused[0].weight).__name__ == "Parameter" and conv.weight is not fused[0].weight
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    conv, bn = _fusable(dlg)[:2]
    with pytest.raises(dlg.DlgValueError, match="Fusion only for eval"):
        dlg.nn.utils.fuse_conv_bn_eval(conv.train(), bn)
