"""dlg.nn.grad (torch.nn.grad): convolution gradients for a given output gradient, as the fused
conv-bn custom Function tutorial calls them, against torch."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_weight_and_input_gradients_match_torch(nd):
    rng = np.random.default_rng(nd)
    x = rng.standard_normal((2, 4) + (7,) * nd).astype(np.float32)
    w = rng.standard_normal((6, 2) + (3,) * nd).astype(np.float32)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    out = getattr(torch.nn.functional, f"conv{nd}d")(torch.from_numpy(x), torch.from_numpy(w),
                                                     None, **kw)
    g = rng.standard_normal(tuple(out.shape)).astype(np.float32)
    want_w = getattr(torch.nn.grad, f"conv{nd}d_weight")(torch.from_numpy(x), w.shape,
                                                          torch.from_numpy(g), **kw)
    got_w = getattr(dlg.nn.grad, f"conv{nd}d_weight")(dlg.from_numpy(x), w.shape,
                                                      dlg.from_numpy(g), **kw)
    want_x = getattr(torch.nn.grad, f"conv{nd}d_input")(x.shape, torch.from_numpy(w),
                                                         torch.from_numpy(g), **kw)
    got_x = getattr(dlg.nn.grad, f"conv{nd}d_input")(x.shape, dlg.from_numpy(w),
                                                     dlg.from_numpy(g), **kw)
    np.testing.assert_allclose(got_w.numpy(), want_w.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_x.numpy(), want_x.numpy(), rtol=1e-5, atol=1e-5)
    assert not got_w.requires_grad and not got_x.requires_grad
    with dlg.no_grad():  # inside a Function's backward, grad mode is off
        again = dlg.nn.grad.conv2d_weight if nd == 2 else None
        if again is not None:
            np.testing.assert_allclose(again(dlg.from_numpy(x), w.shape, dlg.from_numpy(g),
                                             **kw).numpy(), want_w.numpy(), rtol=1e-5,
                                       atol=1e-5)
