"""Compiled scalar math against NumPy in float64: float32 tanh and sigmoid are a rational
approximation (codegen/scalar.py), checked here in ulps over a dense grid and the special
values."""

from __future__ import annotations

import numpy as np
import pytest

from dlg.ir import Builder, Graph, TensorType
from dlg.runtime.native import NativeGraph

GRID = np.concatenate([np.linspace(-12, 12, 200_001), np.geomspace(1e-8, 1e-2, 1001),
                       -np.geomspace(1e-8, 1e-2, 1001), [0.0, -0.0, 7.9053111, 1e30, -1e30]]
                      ).astype(np.float32)


def compiled(op: str, x: np.ndarray) -> np.ndarray:
    g = Graph(op)
    b = Builder(g)
    g.set_output("y", getattr(b, op)(b.input("x", TensorType.parse("f32[N]"))))
    return NativeGraph(g)({"x": x}, {})["y"]


@pytest.mark.parametrize("op,exact", [("tanh", np.tanh),
                                      ("sigmoid", lambda x: np.exp(-np.logaddexp(0, -x)))])
def test_float32_within_a_few_ulps(op, exact):
    got = compiled(op, GRID)
    want = exact(GRID.astype(np.float64))
    ulps = np.abs(got - want) / np.spacing(np.abs(want).astype(np.float32))
    assert ulps.max() <= 8, f"{op}: {ulps.max():.1f} ulps at x = {GRID[np.argmax(ulps)]}"
    assert np.array_equal(np.sign(got), np.sign(want.astype(np.float32)))


@pytest.mark.parametrize("op", ["tanh", "sigmoid"])
def test_special_values(op):
    got = compiled(op, np.array([np.nan, np.inf, -np.inf], np.float32))
    assert np.isnan(got[0])
    assert got[1] == 1.0 and got[2] == (-1.0 if op == "tanh" else 0.0)
