"""Setting `requires_grad` (the attribute, or `requires_grad_()`) follows torch's rules: only a
leaf's flag changes; `requires_grad_()` may confirm a computed tensor's True; only float tensors
require grad. Each row runs on torch too, which must agree on raising or not."""

import numpy as np
import pytest

import dlg

torch = pytest.importorskip("torch")

LEAF_ONLY = "you can only change requires_grad flags of leaf variables"


def _computed(lib):
    return lib.tensor([1.0, 2.0], requires_grad=True) * 2


def _set(value):
    def run(t):
        t.requires_grad = value
    return run


# (tensor of lib, change, message fragment or None for accepted)
ROWS = [
    ("computed, attribute False", _computed, _set(False), LEAF_ONLY + r"\. If you want"),
    ("computed, attribute True", _computed, _set(True), LEAF_ONLY),
    ("computed, method False", _computed, lambda t: t.requires_grad_(False), "var.detach()"),
    ("computed, method True", _computed, lambda t: t.requires_grad_(True), None),
    ("leaf, attribute True", lambda lib: lib.tensor([1.0]), _set(True), None),
    ("leaf, attribute False", lambda lib: lib.tensor([1.0], requires_grad=True), _set(False),
     None),
    ("int leaf, attribute True", lambda lib: lib.tensor([1, 2]), _set(True), "float"),
    ("under no_grad, attribute True", lambda lib: _no_grad(lib), _set(True), None),
]


def _no_grad(lib):
    x = lib.tensor([1.0], requires_grad=True)
    with lib.no_grad():
        return x * 2  # a leaf: no graph was recorded


@pytest.mark.parametrize("name,make,change,fragment", ROWS, ids=[r[0] for r in ROWS])
def test_requires_grad_flags_like_torch(name, make, change, fragment):
    t = make(torch)
    if fragment is None:
        change(t)
    else:
        with pytest.raises(RuntimeError):
            change(t)
    d = make(dlg)
    before = d.requires_grad
    if fragment is None:
        change(d)
        assert d.requires_grad == t.requires_grad
        return
    with pytest.raises(dlg.DlgError, match=fragment) as info:
        change(d)
    assert info.value.span.file.endswith("test_requires_grad_flag.py")
    assert d.requires_grad == before == t.requires_grad  # unchanged


def test_a_leaf_turned_on_trains_and_off_stops():
    x = dlg.tensor(np.array([1.0, 2.0], np.float32))
    x.requires_grad = True
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    x.requires_grad = False
    assert not (x * 3).requires_grad
