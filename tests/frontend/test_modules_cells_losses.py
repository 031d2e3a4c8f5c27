"""RNNCell/GRUCell/LSTMCell, the margin and likelihood losses, and the smaller activations and
layers added with them, against torch: outputs and the gradients of inputs and weights (torch's
state_dict loaded into dlg's), odd sizes, every reduction, unbatched inputs; a traced and
compiled check for the cells and a few losses, from_torch of a cell, and one DlgError each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import dlg
import dlg.nn as nn
from dlg.errors import DlgError
from tests.frontend.test_modules_torch import assert_close, f, pair

torch = pytest.importorskip("torch")
F, TF = nn.functional, torch.nn.functional
R = np.random.default_rng(7)


def leaves(arrays: list[np.ndarray]) -> tuple[list[Any], list[Any]]:
    """The arrays as dlg and torch tensors; the float ones require grad."""
    grads = [a.dtype.kind == "f" for a in arrays]
    return ([dlg.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)],
            [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)])


def backward_both(ours: Any, theirs: Any) -> None:
    """Backward from a random weighting of every output (a tensor or a tuple of them)."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    total_a, total_t = 0, 0
    for a, t in zip(ours, theirs):
        assert_close(a, t, "output", 1e-5)
        w = R.standard_normal(tuple(t.shape)).astype(np.float32)
        total_a = total_a + (a * dlg.tensor(w)).sum()
        total_t = total_t + (t * torch.tensor(w)).sum()
    total_a.backward()
    total_t.backward()


def assert_grads(xa: list[Any], xt: list[Any], tol: float = 1e-4) -> None:
    for i, (a, t) in enumerate(zip(xa, xt)):
        if t.grad is not None:
            assert_close(a.grad, t.grad, f"input {i} gradient", tol)


# ---- recurrent cells -----------------------------------------------------------------------------
IN, H = 3, 5
CELLS = [
    *[(kind, dict(bias=bias)) for kind in ("RNNCell", "GRUCell", "LSTMCell")
      for bias in (True, False)],
    ("RNNCell", dict(nonlinearity="relu")),
]


def cell_inputs(kind: str, batch: tuple[int, ...], state: bool) -> tuple[list[np.ndarray], Any]:
    """x, and the state (h, or h and c) when asked for; how the state is passed."""
    x = f(*batch, IN)
    if not state:
        return [x], lambda xs: (xs[0],)
    if kind == "LSTMCell":
        return [x, f(*batch, H), f(*batch, H)], lambda xs: (xs[0], (xs[1], xs[2]))
    return [x, f(*batch, H)], lambda xs: (xs[0], xs[1])


@pytest.mark.parametrize("batch", [(4,), ()], ids=["batched", "unbatched"])
@pytest.mark.parametrize("state", [False, True], ids=["zero-state", "state"])
@pytest.mark.parametrize("kind, options", CELLS,
                         ids=[f"{k}-{'-'.join(f'{a}={b}' for a, b in o.items())}"
                              for k, o in CELLS])
def test_cell_matches_torch(kind, options, state, batch):
    ours, theirs = pair(lambda ns: getattr(ns, kind)(IN, H, **options))
    arrays, arguments = cell_inputs(kind, batch, state)
    xa, xt = leaves(arrays)
    backward_both(ours(*arguments(xa)), theirs(*arguments(xt)))
    assert_grads(xa, xt)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, f"{name} gradient", 1e-4)


def test_cells_initialise_as_torch():
    for kind, gates in (("RNNCell", 1), ("GRUCell", 3), ("LSTMCell", 4)):
        ours = getattr(nn, kind)(4, 6)
        shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert shapes == {"weight_ih": (gates * 6, 4), "weight_hh": (gates * 6, 6),
                          "bias_ih": (gates * 6,), "bias_hh": (gates * 6,)}
        bound = 1 / np.sqrt(6)
        assert all(np.abs(v.numpy()).max() <= bound for v in ours.state_dict().values())


def test_cells_trace_compile_and_convert_from_torch():
    torch.manual_seed(0)
    theirs = torch.nn.LSTMCell(IN, H)
    model = dlg.from_torch(theirs, f(2, IN))
    assert list(model.params) == list(theirs.state_dict())
    x, h = f(3, IN), f(3, H)
    for got, want in zip(model(x), theirs(torch.tensor(x))):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    ours, theirs = pair(lambda ns: ns.GRUCell(IN, H, bias=False))
    want = theirs(torch.tensor(x), torch.tensor(h)).detach().numpy()
    for run in (dlg.trace(ours, x, h), dlg.compile(ours, x, h)):
        np.testing.assert_allclose(run(x, h), want, rtol=1e-4, atol=1e-5)


def test_cell_errors():
    with pytest.raises(DlgError, match='nonlinearity must be "tanh" or "relu"'):
        nn.RNNCell(3, 4, nonlinearity="sigmoid")
    with pytest.raises(DlgError, match="Expected input to be 1D or 2D, got 3D"):
        nn.GRUCell(3, 4)(dlg.randn(2, 2, 3))
    with pytest.raises(DlgError, match=r"LSTMCell\(input_size=3\) got 2 features"):
        nn.LSTMCell(3, 4)(dlg.randn(2, 2))
