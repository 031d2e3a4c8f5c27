"""Compiled scalar math against NumPy in float64: float32 exp, tanh and erf (and sigmoid
through exp) are polynomial approximations (codegen/scalar.py), checked here in ulps of the exact
value over a dense grid, subnormal and overflowing results, and the special values. Each op's
bound is the one scalar.py states: a sweep of every float32 input found at worst 2.74 ulps for
exp, 4.9 for tanh and 3.85 for sigmoid; erf's 5.5 is this grid's worst."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlg.ir import Builder, DType, Graph, TensorType
from dlg.runtime.native import NativeGraph

GRID = np.concatenate([np.linspace(-12, 12, 200_001), np.linspace(-110, 95, 100_001),
                       np.geomspace(1e-8, 1e-2, 1001),
                       -np.geomspace(1e-8, 1e-2, 1001), [0.0, -0.0, 7.9053111, 1e30, -1e30]]
                      ).astype(np.float32)


def compiled(op: str, x: np.ndarray) -> np.ndarray:
    g = Graph(op)
    b = Builder(g)
    g.set_output("y", getattr(b, op)(b.input("x", TensorType.parse("f32[N]"))))
    return NativeGraph(g)({"x": x}, {})["y"]


@pytest.mark.parametrize("op,exact,bound", [
    ("tanh", np.tanh, 5), ("exp", np.exp, 2.8),
    ("sigmoid", lambda x: np.exp(-np.logaddexp(0, -x)), 3.9),
    ("erf", np.vectorize(math.erf), 5.5)])
def test_float32_within_a_few_ulps(op, exact, bound):
    got = compiled(op, GRID)
    with np.errstate(all="ignore"):  # float64 exp overflows past 709, float32 past 88.7
        want = exact(GRID.astype(np.float64))
        ulps = np.abs(got - want) / np.spacing(np.abs(want).astype(np.float32))
        want32 = want.astype(np.float32)
        ulps[np.isinf(want32) & (got == want32)] = 0
    assert ulps.max() <= bound, f"{op}: {ulps.max():.1f} ulps at x = {GRID[np.argmax(ulps)]}"
    assert np.array_equal(np.sign(got), np.sign(want32))


@pytest.mark.parametrize("op,at_inf,at_minus_inf", [("tanh", 1, -1), ("sigmoid", 1, 0),
                                                    ("exp", np.inf, 0), ("erf", 1, -1)])
def test_special_values(op, at_inf, at_minus_inf):
    got = compiled(op, np.array([np.nan, np.inf, -np.inf], np.float32))
    assert np.isnan(got[0])
    assert got[1] == at_inf and got[2] == at_minus_inf


def test_float64_to_float16_rounds_once():
    """f64 -> f16 has no x86 instruction (it used to call an unlinked libgcc helper: a segfault);
    through f32 it must still round once, as NumPy does: half-way points of f16 and their f64
    neighbours, overflow, subnormals, signed zeros and NaN."""
    rng = np.random.default_rng(0)
    halves = rng.integers(0, 0x7BFF, 20_000).astype(np.uint16).view(np.float16)
    midpoints = (halves.astype(np.float64)
                 + np.nextafter(halves, np.float16(np.inf)).astype(np.float64)) / 2
    x = np.concatenate([midpoints, np.nextafter(midpoints, np.inf),
                        -np.nextafter(midpoints, -np.inf), [1.31494136],
                        rng.standard_normal(20_000) * np.exp(rng.uniform(-30, 12, 20_000)),
                        [1e300, -np.inf, 65519.99, 65520.0, 3e-8, 2.98e-8, -0.0, 1e-300]])
    g = Graph("narrow")
    b = Builder(g)
    g.set_output("y", b.cast(b.input("x", TensorType.parse("f64[N]")), dtype=DType.f16))
    got = NativeGraph(g)({"x": x}, {})["y"]
    with np.errstate(over="ignore"):
        assert np.array_equal(got.view(np.uint16), x.astype(np.float16).view(np.uint16))
    assert np.isnan(NativeGraph(g)({"x": np.array([np.nan])}, {})["y"]).all()


def test_float16_matmul_rounds_its_fused_multiply_adds():
    """A half-precision matmul's reduction is an f16 fma, which LLVM computes in f64 and rounds
    with a call to `__truncdfhf2` (codegen/half.py defines it; unlinked, the call segfaulted).
    Each step rounds to f16 once, as NumPy's f16 fma chain does."""
    rng = np.random.default_rng(1)
    q, k = (rng.standard_normal(s).astype(np.float16) for s in ((8, 16), (16, 6)))
    g = Graph("half_matmul")
    b = Builder(g)
    product = b.matmul(b.input("q", TensorType.parse("f16[8,16]")),
                       b.input("k", TensorType.parse("f16[16,6]")))
    g.set_output("y", b.cast(product, dtype=DType.f32))
    got = NativeGraph(g)({"q": q, "k": k}, {})["y"]
    want = np.zeros((8, 6), np.float16)
    wide_q, wide_k = q.astype(np.float64), k.astype(np.float64)
    for r in range(16):  # fma: the product exact in f64, one rounding of the sum
        want = (want + wide_q[:, r:r + 1] * wide_k[r]).astype(np.float16)
    np.testing.assert_allclose(got, want, rtol=0, atol=2 ** -8 * np.abs(want).max())
