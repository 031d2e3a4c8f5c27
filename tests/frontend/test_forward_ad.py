"""dlg.autograd.forward_ad against torch.autograd.forward_ad: tangents of expressions, of
modules with dual parameters, of a custom Function's jvp, and the level rules."""

from __future__ import annotations

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")


def _program(lib):
    fw = lib.autograd.forward_ad
    rng = np.random.default_rng(3)
    p, t, y = (lib.from_numpy(rng.standard_normal((3, 4)).astype(np.float32)) for _ in range(3))
    w = lib.from_numpy(rng.standard_normal((4, 2)).astype(np.float32))
    with fw.dual_level():
        d = fw.make_dual(p, t)
        assert fw.unpack_dual(d).tangent is t
        outs = [d ** 2 + y, (d @ w).tanh().sum(0), lib.softmax(d, dim=1) * y, y * 2]
        tangents = [fw.unpack_dual(o).tangent for o in outs]
    assert fw.unpack_dual(outs[0]).tangent is None
    return [None if t is None else t.numpy() for t in tangents]


def test_tangents_match_torch():
    ours, theirs = _program(dlg), _program(torch)
    assert ours[-1] is None and theirs[-1] is None  # no dual reaches y * 2
    for o, t in zip(ours[:-1], theirs[:-1]):
        np.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6)


def test_levels_and_shapes_are_checked():
    fw = dlg.autograd.forward_ad
    with pytest.raises(dlg.DlgValueError, match="dual_level"):
        fw.make_dual(dlg.ones(2), dlg.ones(2))
    with fw.dual_level(), pytest.raises(dlg.DlgShapeError, match="tangent's shape"):
        fw.make_dual(dlg.ones(2), dlg.ones(3))


def test_del_module_parameter_as_torch():
    """`delattr(model, 'weight')` removes the parameter (the forward-AD tutorial then sets a
    dual tensor in its place); dlg raised AttributeError."""
    for lib in (torch, dlg):
        m = lib.nn.Linear(2, 2)
        del m.weight
        assert "weight" not in dict(m.named_parameters())
        m.weight = lib.ones(2, 2)  # a plain tensor attribute
        assert m(lib.ones(1, 2)).shape == (1, 2)
        m.register_buffer("b", lib.zeros(1))
        del m.b
        assert "b" not in dict(m.named_buffers())
        with pytest.raises(AttributeError):
            del m.missing
