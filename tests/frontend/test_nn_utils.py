"""dlg.nn.init's in-place initialisers and dlg.nn.utils' parameter vectors and
rnn.pad_sequence, against torch."""

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
