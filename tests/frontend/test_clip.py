"""Gradient clipping against torch.nn.utils: the same total norm returned and the same gradients
after, for each norm order (clip_grad_norm_, and its halves get_total_norm and
clip_grads_with_norm_); clipping by value; a training step with clipping matches."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


def gradients(module, scale: float):
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    leaves = [module.tensor(w, requires_grad=True) for w in ws]
    sum((w * w * scale).sum() for w in leaves).backward()
    return leaves


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = gradients(dlg, 3.0), gradients(torch, 3.0)
    got = dlg.nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    for d, t in zip(ours, theirs):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_get_total_norm_and_clip_grads_with_norm_match_torch(norm_type):
    """torch 2.6's two halves of clip_grad_norm_ (and its deprecated clip_grad_norm)."""
    ours, theirs = gradients(dlg, 3.0), gradients(torch, 3.0)
    got = dlg.nn.utils.get_total_norm([w.grad for w in ours], norm_type)
    want = torch.nn.utils.get_total_norm([w.grad for w in theirs], norm_type)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    dlg.nn.utils.clip_grads_with_norm_(ours, 0.5, got)
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.5, want)
    for d, t in zip(ours, theirs):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert float(dlg.nn.utils.get_total_norm([])) == 0.0
    assert dlg.nn.utils.clip_grad_norm is dlg.nn.utils.clip_grad_norm_


def test_clip_grad_value_matches_torch():
    ours, theirs = gradients(dlg, 0.5), gradients(torch, 0.5)
    dlg.nn.utils.clip_grad_value_(ours, 0.3)
    torch.nn.utils.clip_grad_value_(theirs, 0.3)
    for d, t in zip(ours, theirs):
        np.testing.assert_array_equal(d.grad.numpy(), t.grad.numpy())


def test_a_non_finite_norm_is_an_error_when_asked():
    (w,) = gradients(dlg, 1.0)[:1]
    w.grad.numpy_view()[0, 0] = np.inf
    with pytest.raises(dlg.DlgValueError, match="total norm of order 2.0 of the gradients is inf"):
        dlg.nn.utils.clip_grad_norm_(w, 1.0, error_if_nonfinite=True)
