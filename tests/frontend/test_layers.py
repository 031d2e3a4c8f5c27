"""Every dlg.nn layer against torch.nn with the same weights (outputs, input and parameter
gradients, state_dict names), and traced against eager (same outputs)."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)

LAYERS = [  # name, constructor arguments, input shape, integer input?
    ("Linear", (6, 4), (3, 6)),
    ("Conv1d", (3, 4, 3), (2, 3, 9)),
    ("Conv2d", (3, 4, 3), (2, 3, 7, 7)),
    ("MaxPool2d", (2,), (2, 3, 6, 6)),
    ("AvgPool2d", (2,), (2, 3, 6, 6)),
    ("ReLU", (), (3, 5)), ("Sigmoid", (), (3, 5)), ("Tanh", (), (3, 5)), ("GELU", (), (3, 5)),
    ("Flatten", (), (2, 3, 4)),
    ("BatchNorm1d", (4,), (6, 4)),
    ("BatchNorm2d", (3,), (4, 3, 5, 5)),
    ("LayerNorm", (5,), (3, 5)),
    ("Softmax", (1,), (3, 5)), ("LogSoftmax", (1,), (3, 5)),
    ("RNN", (5, 7), (4, 3, 5)),
    ("GRU", (5, 7, 2), (4, 3, 5)),
    ("LSTM", (5, 7), (4, 3, 5)),
]


def pair(name, args):
    torch.manual_seed(0)
    ours, theirs = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name, args, shape", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("training", [True, False])
def test_layer_matches_torch(name, args, shape, training):
    ours, theirs = pair(name, args)
    ours.train(training)
    theirs.train(training)
    x = R.standard_normal(shape).astype(np.float32)
    xa, xt = dlg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = first(ours(xa)), first(theirs(xt))
    np.testing.assert_allclose(ya.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    w = R.standard_normal(tuple(yt.shape)).astype(np.float32)
    (ya * dlg.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    for (k, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=k)
    for k, v in ours.state_dict().items():  # running statistics follow too
        np.testing.assert_allclose(v.numpy(), theirs.state_dict()[k].numpy(), rtol=1e-5,
                                   atol=1e-6, err_msg=k)


def test_embedding_matches_torch():
    ours, theirs = pair("Embedding", (10, 3))
    idx = np.array([[1, 4], [9, 1]])
    ya, yt = ours(dlg.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(ya.detach().numpy(), yt.detach().numpy())
    ya.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(ours.weight.grad.numpy(), theirs.weight.grad.numpy())


@pytest.mark.parametrize("name, args, shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_traced_layer_matches_eager(name, args, shape):
    layer = getattr(nn, name)(*args).eval()
    x = R.standard_normal(shape).astype(np.float32)
    eager = first(layer(dlg.tensor(x))).detach().numpy()
    model = dlg.trace(layer, x)  # axis 0 symbolic: the batch, or a recurrent layer's time
    traced = model(x)
    traced = traced[0] if isinstance(traced, tuple) else traced
    np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-6)
