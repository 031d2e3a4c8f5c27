"""F.grid_sample and F.affine_grid against torch: values and the gradients of input, grid and
theta for every mode, padding mode and align_corners, 2-d and 3-d, size-1 and odd dims, grids far
outside [-1, 1] (several reflections) and exactly on pixels; a spatial transformer traced and
compiled against eager, its compiled training step against the interpreter's and torch's; bad
calls as DlgErrors."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import dlg
from dlg.errors import DlgError
from tests.frontend.test_modules_torch import assert_close

torch = pytest.importorskip("torch")
F = dlg.nn.functional
TF = torch.nn.functional
R = np.random.default_rng(0)

SHAPES = [  # input shape, grid shape
    ((2, 3, 4, 5), (2, 3, 7, 2)),
    ((1, 2, 1, 6), (1, 1, 4, 2)),        # a size-1 input dim, a size-1 output dim
    ((2, 1, 3, 2, 5), (2, 2, 1, 3, 3)),  # 3-d: trilinear
]


def both(ours: Any, theirs: Any, inputs: list[np.ndarray]) -> list[tuple[Any, Any]]:
    """Each function on leaves made from `inputs`, its output weighted and summed, backward:
    [(output, torch output), (gradient, torch gradient) per input]."""
    xa = [dlg.tensor(a, requires_grad=True) for a in inputs]
    xt = [torch.tensor(a, requires_grad=True) for a in inputs]
    ya, yt = ours(*xa), theirs(*xt)
    w = R.standard_normal(tuple(yt.shape)).astype(np.float32)
    (ya * dlg.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    return [(ya, yt), *((a.grad, t.grad) for a, t in zip(xa, xt))]


@pytest.mark.parametrize("mode, padding_mode, align_corners", list(itertools.product(
    ("bilinear", "nearest"), ("zeros", "border", "reflection"), (False, True))))
@pytest.mark.parametrize("shapes", SHAPES, ids=["2d", "2d-size-1", "3d"])
def test_grid_sample_matches_torch(shapes, mode, padding_mode, align_corners):
    xs, gs = shapes
    x = R.standard_normal(xs).astype(np.float32)
    grid = R.uniform(-2.5, 2.5, gs).astype(np.float32)  # far outside: several reflections
    kw = {"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners}
    (y, yt), (dx, dxt), (dgrid, dgridt) = both(lambda x, g: F.grid_sample(x, g, **kw),
                                               lambda x, g: TF.grid_sample(x, g, **kw), [x, grid])
    assert_close(y, yt, "output")
    assert_close(dx, dxt, "input gradient", 1e-4)
    if mode == "nearest":  # no path from the grid to the output: torch's gradient is zeros
        assert dgrid is None and not dgridt.numpy().any()
    else:
        assert_close(dgrid, dgridt, "grid gradient", 1e-4)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0, affine_grid")  # torch: unit-size grids
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (3, 1, 1, 7), (2, 3, 3, 1, 4)],
                         ids=["2d", "2d-size-1", "3d"])
def test_affine_grid_matches_torch(size, align_corners):
    nd = len(size) - 2
    theta = R.standard_normal((size[0], nd, nd + 1)).astype(np.float32)
    (grid, gridt), (dtheta, dthetat) = both(lambda t: F.affine_grid(t, size, align_corners),
                                            lambda t: TF.affine_grid(t, size, align_corners),
                                            [theta])
    assert_close(grid, gridt, "grid")
    assert_close(dtheta, dthetat, "theta gradient", 1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("align_corners", [False, True])
def test_an_identity_affine_grid_is_torchs_bit_for_bit(dtype, align_corners):
    """At sizes whose pixel centres are inexact in binary (12: -0.25 is -0.24999999 in torch's
    float32 linspace), and so is the float32 position grid_sample reads at (torch's 2-d CPU
    kernel rounds (x + 1) * W/2 - 0.5 once, a fused multiply-add): each point then sits on
    torch's side of its bilinear kink, and theta's gradient is torch's, not the other one-sided
    derivative (the spatial transformer tutorial starts at the identity). float64 positions round
    twice, so its gradient may take the other side."""
    size = (2, 1, 12, 13)
    x = R.standard_normal(size).astype(dtype)
    theta = np.tile(np.eye(2, 3, dtype=dtype), (2, 1, 1))
    (grid, gridt), _ = both(lambda t: F.affine_grid(t, size, align_corners),
                            lambda t: TF.affine_grid(t, size, align_corners), [theta])
    np.testing.assert_array_equal(grid.detach().numpy(), gridt.detach().numpy())
    if dtype == np.float64:
        return
    _, (dtheta, dthetat) = both(
        lambda t: F.grid_sample(dlg.tensor(x), F.affine_grid(t, size, align_corners),
                                align_corners=align_corners),
        lambda t: TF.grid_sample(torch.tensor(x), TF.affine_grid(t, size, align_corners),
                                 align_corners=align_corners), [theta])
    assert_close(dtheta, dthetat, "theta gradient", 1e-4)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_points_exactly_on_pixels_give_the_input_and_torchs_gradients(padding_mode,
                                                                           align_corners):
    """Every pixel's own grid point, exact in binary (the last one on the border, where the
    clipping's gradient and the corner past the edge meet); the identity transform through
    dlg's affine_grid gives the input back too."""
    spatial = (3, 5) if align_corners else (2, 4)  # sizes whose pixel coordinates are exact
    x = R.standard_normal((2, 2, *spatial)).astype(np.float32)
    ys, xs = (np.linspace(-1, 1, n) if align_corners else (2 * np.arange(n) + 1) / n - 1
              for n in spatial)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)[None].repeat(2, 0).astype(np.float32)
    theta = np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1))
    kw = {"padding_mode": padding_mode, "align_corners": align_corners}
    (y, yt), (dx, dxt), (dgrid, dgridt) = both(lambda x, g: F.grid_sample(x, g, **kw),
                                               lambda x, g: TF.grid_sample(x, g, **kw), [x, grid])
    np.testing.assert_array_equal(y.detach().numpy(), x)
    assert_close(y, yt, "output")
    assert_close(dx, dxt, "input gradient", 1e-4)
    assert_close(dgrid, dgridt, "grid gradient", 1e-4)
    ours = F.grid_sample(dlg.tensor(x), F.affine_grid(dlg.tensor(theta), x.shape, align_corners),
                         **kw)
    np.testing.assert_allclose(ours.numpy(), x, atol=1e-6)


def transformer(ns: Any, mode: str, padding_mode: str, align_corners: bool) -> Any:
    """A spatial transformer: theta from a linear layer, the input resampled, then classified."""
    class STN(ns.Module):
        def __init__(self) -> None:
            super().__init__()
            self.loc, self.fc = ns.Linear(2 * 5 * 6, 6), ns.Linear(2 * 4 * 3, 3)

        def forward(self, x: Any) -> Any:
            theta = self.loc(x.flatten(1)).view(-1, 2, 3)
            grid = ns.functional.affine_grid(theta, [x.size(0), 2, 4, 3], align_corners)
            y = ns.functional.grid_sample(x, grid, mode, padding_mode, align_corners)
            return self.fc(y.flatten(1))
    return STN()


CONFIGS = [("bilinear", "zeros", False), ("bilinear", "reflection", True),
           ("nearest", "border", False)]


@pytest.mark.parametrize("config", CONFIGS, ids=["-".join(map(str, c)) for c in CONFIGS])
def test_a_spatial_transformer_compiles_like_eager_at_any_batch(config):
    dlg.manual_seed(0)
    net = transformer(dlg.nn, *config).eval()
    x = R.standard_normal((4, 2, 5, 6)).astype(np.float32)
    exe = dlg.compile(net, x)
    for batch in (x, x[:3]):
        eager = net(dlg.tensor(batch)).detach().numpy()
        np.testing.assert_allclose(exe(batch), eager, rtol=1e-5, atol=1e-5)


def test_3d_grid_sample_compiles_like_eager():
    x = R.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    grid = R.uniform(-1.5, 1.5, (2, 2, 3, 1, 3)).astype(np.float32)

    def sample(x: Any, grid: Any) -> Any:
        return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    eager = sample(dlg.tensor(x), dlg.tensor(grid)).numpy()
    np.testing.assert_allclose(dlg.compile(sample, x, grid)(x, grid), eager, rtol=1e-5,
                               atol=1e-5)


def test_compiled_spatial_transformer_training_matches_the_interpreter_and_torch():
    x = R.standard_normal((4, 2, 5, 6)).astype(np.float32)
    y = R.standard_normal((4, 3)).astype(np.float32)
    theirs = transformer(torch.nn, "bilinear", "border", False)
    start = {k: v.numpy().copy() for k, v in theirs.state_dict().items()}
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    their_losses = []
    for _ in range(2):
        topt.zero_grad()
        loss = TF.mse_loss(theirs(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        topt.step()
        their_losses.append(loss.item())
    states = []
    for compiled in (False, True):
        ours = transformer(dlg.nn, "bilinear", "border", False)
        ours.load_state_dict(start)
        step = dlg.trace_train(ours, F.mse_loss, dlg.optim.SGD(ours.parameters(), lr=0.1), x,
                               y).train_step(compiled=compiled)
        losses = [float(step(x=x, y=y)["loss"]) for _ in range(2)]
        np.testing.assert_allclose(losses, their_losses, rtol=1e-5)
        states.append({k: v.numpy() for k, v in ours.state_dict().items()})
    for key, value in theirs.state_dict().items():
        for state in states:
            np.testing.assert_allclose(state[key], value.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def t(*shape: int, dtype: Any = np.float32) -> Any:
    return dlg.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize("call, error", [
    (lambda: F.grid_sample(t(2, 3, 4), t(2, 4, 1)), "grid_sample: input"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(2, 4, 4, 3)), "grid"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(3, 4, 4, 2)), "grid"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(2, 4, 4, 2, dtype=np.float64)), "one dtype"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(2, 4, 4, 2), mode="bicubic"), "mode"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(2, 4, 4, 2), padding_mode="wrap"), "padding_mode"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), t(2, 4, 4, 2), align_corners="yes"), "align_corners"),
    (lambda: F.grid_sample(t(2, 3, 4, 4), [[0.0]]), "grid"),
    (lambda: F.affine_grid(t(2, 2, 3), (2, 3, 4)), "size"),
    (lambda: F.affine_grid(t(2, 2, 3), (2, 3, 0, 4)), "size"),
    (lambda: F.affine_grid(t(2, 3, 4), (2, 3, 4, 4)), "theta"),
    (lambda: F.affine_grid(t(3, 2, 3), (2, 3, 4, 4)), "theta"),
])
def test_bad_calls_are_dlg_errors(call, error):
    with pytest.raises(DlgError, match=error):
        call()
