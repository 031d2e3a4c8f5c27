"""Schedules against the reference interpreter: register tiles (full, masked tails, clamped edge
rows, epilogues with and without a vector form), sums run inside out, explicit conv padding."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.compiler import schedule as schedule_module
from dlg.compiler.kernel_ir import Load, Loop, Store, Tile, walk
from dlg.compiler.passes.pad import explicit_padding
from dlg.compiler.schedule import Target, schedule
from dlg.compiler.lower import lower
from dlg.ir import Builder, Graph, TensorType
from dlg.ir.decompose import decompose
from dlg.runtime.interp import Interpreter
from dlg.runtime.native import NativeGraph

RTOL, ATOL = 1e-4, 1e-5  # float32 sums in another order than the float64 reference


def statements(stmts):
    """Every statement, nested ones included (a GEMM call's epilogue and fallback too)."""
    for s in stmts:
        yield s
        for part in ("body", "epilogue", "otherwise"):
            yield from statements(getattr(s, part, ()))


def kinds(ng: NativeGraph) -> list[type]:
    return [type(s) for k in ng.program.kernels for s in statements(k.body)]


def check(g: Graph, inputs: dict[str, np.ndarray], rtol: float = RTOL) -> NativeGraph:
    ng = NativeGraph(g)
    got = ng(inputs, {})
    want, _ = Interpreter().run(g, inputs, {})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=ATOL, err_msg=name)
    return ng


def linear(k: int, m: int, activation: str | None, dtype: str = "f32") -> Graph:
    g = Graph("linear")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"{dtype}[N, {k}]"))
    w = b.input("w", TensorType.parse(f"{dtype}[{k}, {m}]"))
    bias = b.input("b", TensorType.parse(f"{dtype}[{m}]"))
    y = b.add(b.matmul(x, w), bias)
    g.set_output("y", getattr(b, activation)(y) if activation else y)
    return g


@pytest.mark.parametrize("n,k,m", [(1, 5, 3), (3, 70, 37), (9, 8, 16), (13, 33, 64),
                                   (17, 1, 100), (8, 64, 5)])
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid"])
def test_matmul_epilogues_in_tiles_of_every_edge_shape(n, k, m, activation):
    """A short edge of rows runs as one-row tiles, columns past M are masked; tanh and
    sigmoid run lane by lane."""
    rng = np.random.default_rng(n * 1000 + k * 10 + m)
    g = linear(k, m, activation)
    ng = check(g, {"x": rng.standard_normal((n, k)).astype(np.float32),
                   "w": rng.standard_normal((k, m)).astype(np.float32),
                   "b": rng.standard_normal(m).astype(np.float32)})
    if m >= 4:
        assert Tile in kinds(ng)


def test_float64_tiles():
    rng = np.random.default_rng(1)
    g = linear(19, 23, "relu", "f64")
    check(g, {"x": rng.standard_normal((7, 19)), "w": rng.standard_normal((19, 23)),
              "b": rng.standard_normal(23)}, rtol=1e-12)


def test_weight_gradient_is_tiled_over_both_output_dims():
    """dw = g^T @ x: each step of the batch sum broadcasts g[n, o] over a vector of x[n, :]."""
    g = Graph("dw")
    b = Builder(g)
    gt = b.input("g", TensorType.parse("f32[N, 12]"))
    x = b.input("x", TensorType.parse("f32[N, 40]"))
    g.set_output("dw", b.matmul(b.transpose(gt, perm=(1, 0)), x))
    rng = np.random.default_rng(0)
    ng = check(g, {"g": rng.standard_normal((50, 12)).astype(np.float32),
                   "x": rng.standard_normal((50, 40)).astype(np.float32)})
    (tile,) = [s for s in statements(ng.program.kernels[0].body) if isinstance(s, Tile)][:1]
    assert tile.row == "i.0" and tile.col == "i.1"


def test_a_sum_with_no_row_dim_runs_inside_out():
    """Column sums stride through x along the batch and have one output dim: no tile, but
    out[j] += x[n, j] with j innermost (a loop interchange, same result)."""
    g = Graph("colsum")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 6]"))
    g.set_output("s", b.reduce_sum(x, axes=(0,)))
    x = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    ng = check(g, {"x": x})
    assert Tile not in kinds(ng)
    assert any(isinstance(s, Store) and s.accumulate
               for k in ng.program.kernels for s in statements(k.body))


def test_tiles_fit_the_target():
    """Lanes follow the vector width (halved for narrow outputs), rows the register count."""
    g = decompose(linear(16, 8, None))
    for target, lanes in ((Target(64, 32), 8), (Target(32, 16), 8), (Target(16, 16), 4)):
        p = schedule(lower(g), target)
        tiles = [s for k in p.kernels for s in statements(k.body) if isinstance(s, Tile)]
        assert tiles and {t.lanes for t in tiles} == {lanes}
        assert all(t.rows * t.cols <= target.registers - 4 for t in tiles)


def conv_graph(pad: int, stride: int) -> Graph:
    g = Graph("conv")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[N, 3, 11, 9]"))
    w = b.input("w", TensorType.parse("f32[6, 3, 3, 3]"))
    g.set_output("y", b.relu(b.conv2d_nobias(x, w, padding=(pad, pad), stride=(stride, stride))))
    return g


@pytest.mark.parametrize("pad,stride", [(0, 1), (1, 1), (2, 1), (1, 2)])
def test_convolutions_read_an_explicitly_padded_input(pad, stride):
    g = conv_graph(pad, stride)
    padded = explicit_padding(decompose(g))
    ops = [n.op.name for n in padded]
    assert ("pad" in ops) == (pad > 0)
    assert all(not any(lo or hi for lo, hi in n.attrs["padding"])
               for n in padded if n.op.name == "conv")
    rng = np.random.default_rng(pad * 10 + stride)
    ng = check(g, {"x": rng.standard_normal((2, 3, 11, 9)).astype(np.float32),
                   "w": rng.standard_normal((6, 3, 3, 3)).astype(np.float32)})
    guarded = [e for k in ng.program.kernels for s in statements(k.body)
               if isinstance(s, (Store, Tile)) for e in walk(s.value)
               if isinstance(e, Load) and e.guard is not None]
    assert not guarded
    if stride == 1:
        assert Tile in kinds(ng)


def linear_t(k: int, m: int) -> Graph:
    """x @ w^T with w as [out, in] (PyTorch's layout): both operands contiguous along the sum."""
    g = Graph("linear_t")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N, {k}]"))
    w = b.input("w", TensorType.parse(f"f32[{m}, {k}]"))
    g.set_output("y", b.tanh(b.matmul(x, b.transpose(w, perm=(1, 0)))))
    return g


@pytest.mark.parametrize("n,k,m", [(1, 4, 1), (3, 5, 7), (9, 16, 4), (5, 33, 9), (6, 70, 13),
                                   (2, 300, 3)])
def test_lanes_along_the_sum_for_transposed_weights(n, k, m):
    """Lanes split the sum (a masked remainder when k is not a multiple of them); rows and
    columns past the edge are clamped; the lanes are added up before the epilogue."""
    rng = np.random.default_rng(n + k + m)
    ng = check(linear_t(k, m), {"x": rng.standard_normal((n, k)).astype(np.float32),
                                "w": rng.standard_normal((m, k)).astype(np.float32)})
    tiles = [s for kern in ng.program.kernels for s in statements(kern.body)
             if isinstance(s, Tile)]
    assert [t.along for t in tiles] == ["sum"]


@pytest.mark.parametrize("n,k,m", [(1, 4, 1), (9, 16, 4), (6, 70, 13), (5, 33, 9)])
def test_a_huge_transposed_weight_puts_its_column_tiles_outside(monkeypatch, n, k, m):
    """Past HUGE_WEIGHT_L2S times L2 (here any weight, the limit set to 0) the tiles walk W's
    rows once: column tiles outermost and parallel, row tiles inside; same results."""
    monkeypatch.setattr(schedule_module, "HUGE_WEIGHT_L2S", 0)
    rng = np.random.default_rng(n * k + m)
    ng = check(linear_t(k, m), {"x": rng.standard_normal((n, k)).astype(np.float32),
                                "w": rng.standard_normal((m, k)).astype(np.float32)})
    loops = [s for kern in ng.program.kernels for s in statements(kern.body)
             if isinstance(s, Loop) and s.var.endswith(".tile")]
    assert [(lp.var, lp.parallel) for lp in loops] == [("i.1.tile", True), ("i.0.tile", False)]


def test_a_weight_past_l2_takes_wider_tiles_along_the_sum():
    """With 32 vector registers, x @ W^T whose W outgrows L2 gets WIDE_SUM_COLS columns per
    tile (each x vector feeds more multiply-adds); a W in L2, or 16 registers, keep square
    tiles."""
    g = decompose(linear_t(70, 13))  # W: 13 x 70 floats, 3,640 bytes
    for target, cols in ((Target(64, 32, l2_bytes=1024), schedule_module.WIDE_SUM_COLS),
                         (Target(64, 32, l2_bytes=1 << 20), 4), (Target(32, 16, l2_bytes=1024), 3)):
        tiles = [s for k in schedule(lower(g), target).kernels for s in statements(k.body)
                 if isinstance(s, Tile)]
        assert [(t.along, t.cols) for t in tiles] == [("sum", cols)]


@pytest.mark.parametrize("n,m", [(5, 13), (9, 6), (1, 7)])
def test_wide_tiles_along_the_sum_match_at_edges(monkeypatch, n, m):
    """The wider tiles (here at any weight: every W taken as a terabyte, so its column tiles
    also go outside) with rows and columns past the edge."""
    monkeypatch.setattr(schedule_module, "_weight_bytes", lambda *_: 1 << 40)
    rng = np.random.default_rng(n + m)
    check(linear_t(300, m), {"x": rng.standard_normal((n, 300)).astype(np.float32),
                             "w": rng.standard_normal((m, 300)).astype(np.float32)})


@pytest.mark.parametrize("size,stride", [(9, 1), (20, 1), (7, 2)])
def test_conv_weight_gradient_tiles(size, stride):
    g = Graph("dw")
    b = Builder(g)
    x = b.input("x", TensorType.parse(f"f32[N, 5, {size}, {size}]"))
    out = (size + 2 - 3) // stride + 1
    gy = b.input("g", TensorType.parse(f"f32[N, 6, {out}, {out}]"))
    g.set_output("dw", b.conv_weight_grad(x, gy, kernel=(3, 3), stride=(stride, stride),
                                          padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1))
    rng = np.random.default_rng(size)
    ng = check(g, {"x": rng.standard_normal((3, 5, size, size)).astype(np.float32),
                   "g": rng.standard_normal((3, 6, out, out)).astype(np.float32)})
    if stride == 1:
        assert any(isinstance(s, Tile) and s.along == "sum"
                   for kern in ng.program.kernels for s in statements(kern.body))


# ---- window nests in the order of what they read ---------------------------------------------
@pytest.mark.parametrize("n", [1, 3])
def test_a_pool_over_channels_first_data_walks_its_input_forward(n):
    g = Graph("f")
    b = Builder(g)
    x = b.input("x", TensorType.parse("f32[4, N, 6, 6]"))  # a GEMM's [C, N*H*W] layout
    nchw = b.transpose(x, perm=[1, 0, 2, 3])
    g.set_output("y", b.max_pool(nchw, kernel=[2, 2], stride=[2, 2], padding=[0, 0]))
    x_value = np.random.default_rng(n).standard_normal((4, n, 6, 6)).astype(np.float32)
    ng = check(g, {"x": x_value})
    (kernel,) = ng.program.kernels
    (outer,) = kernel.body
    assert outer.var == "i.1" and outer.parallel  # the channel: x's slowest axis, outermost
    assert outer.body[0].var == "i.0" and not outer.body[0].parallel
