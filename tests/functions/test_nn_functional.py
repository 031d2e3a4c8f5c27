"""dlg.nn.functional's neural-network functions against PyTorch's: values, input gradients
(torch.autograd.grad), options, the .dlg door where the function has one, and errors."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn.functional as F
from dlg.errors import DlgError

torch = pytest.importorskip("torch")
TF = torch.nn.functional

R = np.random.default_rng(0)
X4 = R.normal(size=(2, 3, 5, 6)).astype(np.float32)
X3 = R.normal(size=(2, 3, 7)).astype(np.float32)
X2 = R.normal(size=(4, 3)).astype(np.float32)


def both(name: str, *arrays: np.ndarray, grad: tuple[int, ...] = (0,), **kwargs):
    """`name` from dlg and from torch: outputs, and the gradients of a random projection of
    the (first) output w.r.t. the inputs at `grad`."""
    xs_d = [dlg.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    xs_t = [torch.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    out_d, out_t = getattr(F, name)(*xs_d, **kwargs), getattr(TF, name)(*xs_t, **kwargs)
    first_d = out_d[0] if isinstance(out_d, tuple) else out_d
    first_t = out_t[0] if isinstance(out_t, tuple) else out_t
    if not grad:
        return out_d, out_t, [], []
    weight = R.normal(size=tuple(first_t.shape)).astype(np.float32)
    (first_d * dlg.tensor(weight)).sum().backward()
    grads_t = torch.autograd.grad((first_t * torch.tensor(weight)).sum(),
                                  [xs_t[i] for i in grad])
    return (out_d, out_t, [xs_d[i].grad.numpy() for i in grad], [g.numpy() for g in grads_t])


def check(name: str, *arrays: np.ndarray, grad: tuple[int, ...] = (0,), rtol: float = 1e-5,
          **kwargs) -> None:
    out_d, out_t, grads_d, grads_t = both(name, *arrays, grad=grad, **kwargs)
    outs_d = out_d if isinstance(out_d, tuple) else (out_d,)
    outs_t = out_t if isinstance(out_t, tuple) else (out_t,)
    for d, t in zip(outs_d, outs_t):
        assert d.shape == tuple(t.shape)
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=1e-6)
    for d, t in zip(grads_d, grads_t):
        np.testing.assert_allclose(d, t, rtol=1e-4, atol=1e-5)


# ---- pad ----------------------------------------------------------------------------------------
PADS = [((1, 2), "constant", {}), ((1, 2, 0, -1), "constant", {"value": 2.5}),
        ((-1, -2, 1, 1, 1, 0), "constant", {}), ((2, 3, 1, 0), "reflect", {}),
        ((2, 3, 1, 1), "replicate", {}), ((-1, 2, 0, 0), "replicate", {}),
        ((5, 4, 4, 2), "circular", {}), ((1, -1, 0, 2), "circular", {}),
        ((2, 1, -1, 3), "reflect", {})]


@pytest.mark.parametrize("pad, mode, kwargs", PADS, ids=[f"{m}{p}" for p, m, _ in PADS])
def test_pad_matches_torch(pad, mode, kwargs):
    check("pad", X4, pad=pad, mode=mode, **kwargs)


def test_pad_reflect_1d_and_an_integer_tensor():
    check("pad", X3, pad=(3, 2), mode="reflect")
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(F.pad(dlg.tensor(ints), (1, 1), value=-1).numpy(),
                                  TF.pad(torch.tensor(ints), (1, 1), value=-1).numpy())


def test_pad_in_dlg_takes_both_spellings():
    src = """model M {
        input x: f32[2, 3, 5, 6]
        output a = pad(x, (1, 2, 0, -1), value=2.5)
        output b = pad(x, ((0, 0), (0, 0), (1, 1), (2, 0)))
        output c = pad(x, (2, 3, 1, 1), mode="replicate")
    }"""
    a, b, c = dlg.loads(src, file="t.dlg")(x=X4)
    x = torch.tensor(X4)
    np.testing.assert_allclose(a, TF.pad(x, (1, 2, 0, -1), value=2.5).numpy())
    np.testing.assert_allclose(b, TF.pad(x, (2, 0, 1, 1)).numpy())
    np.testing.assert_allclose(c, TF.pad(x, (2, 3, 1, 1), mode="replicate").numpy())


PAD_ERRORS = [
    (lambda x: F.pad(x, (1, 2, 3)), "pads must come in pairs"),
    (lambda x: F.pad(x, (1,) * 10), "at most two per axis"),
    (lambda x: F.pad(x, (1.5, 2)), "pad must be a tuple of ints"),
    (lambda x: F.pad(x, ((1, 1), (2, 2))), r"2 \(before, after\) pairs for the 4 axes"),
    (lambda x: F.pad(x, (6, 0), mode="reflect"), "reflect padding of .* must be at most 5"),
    (lambda x: F.pad(x, (7, 0), mode="circular"), "circular padding of .* must be at most 6"),
    (lambda x: F.pad(x, (1, 1), mode="edge"), "mode must be 'constant', 'reflect'"),
    (lambda x: F.pad(x, (1, 1), mode="reflect", value=1.0), "takes no value"),
    (lambda x: F.pad(x, (-7, 0)), "slice"),
]


@pytest.mark.parametrize("make, message", PAD_ERRORS, ids=[e[1] for e in PAD_ERRORS])
def test_pad_errors(make, message):
    with pytest.raises(DlgError, match=message):
        make(dlg.tensor(X4))
