"""tril and triu against torch: every diagonal, eager and .dlg, gradients, a traced causal mask
over a symbolic length compiled at several lengths."""

from __future__ import annotations

import numpy as np
import pytest

import dlg
import dlg.nn as nn

torch = pytest.importorskip("torch")
X = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) - 10


@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("diagonal", [-4, -1, 0, 1, 3, 5])
def test_matches_torch_with_its_gradient(name, diagonal):
    x, tx = dlg.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    y, ty = getattr(x, name)(diagonal), getattr(torch, name)(tx, diagonal)
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    m = dlg.loads(f"model M {{ input x: f32[N, 3, 4] output y = {name}(x, {diagonal}) }}")
    np.testing.assert_array_equal(dlg.compile(m)(X), ty.detach().numpy())


class Causal(nn.Module):
    def forward(self, scores):
        t = scores.shape[-1]
        mask = dlg.ones(t, t).triu(1).bool()
        return scores.masked_fill(mask, float("-inf")).softmax(-1)


def test_a_causal_mask_follows_a_symbolic_length():
    model = dlg.trace(Causal(), np.zeros((2, 5, 5), np.float32), dynamic={"scores": {1: "T",
                                                                                      2: "T"}})
    exe = dlg.compile(model)
    for t in (1, 4, 7):
        s = np.random.default_rng(t).standard_normal((2, t, t)).astype(np.float32)
        mask = torch.ones(t, t).triu(1).bool()
        want = torch.tensor(s).masked_fill(mask, float("-inf")).softmax(-1).numpy()
        np.testing.assert_allclose(exe(s), want, rtol=1e-5, atol=1e-7)


def test_errors():
    with pytest.raises(dlg.DlgError, match=r"tril needs at least 2 dims, got f32\[3\]"):
        dlg.ones(3).tril()
    with pytest.raises(dlg.DlgError, match="triu: diagonal must be an int"):
        dlg.ones(3, 3).triu(0.5)
